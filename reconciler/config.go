package reconciler

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// syncObjects decides the puts and deletes that make the stored objects of
// one kind equal to the desired ones: an object is put when it is new or
// differs from the stored one (same says whether two hold the same content;
// labels and annotations are compared here), and a stored object Git no
// longer has is deleted. Puts keep the metadata the store owns. Both lists
// come in namespace/name order.
func syncObjects[T any, PT interface {
	*T
	metav1.Object
	DeepCopy() *T
}](desired, observed []T, same func(a, b PT) bool, put func(obj PT, reason string) Action, del func(namespace, name string) Action) (puts, deletes []Action) {
	stored := make(map[string]PT, len(observed))
	for i := range observed {
		o := PT(&observed[i])
		stored[key(o.GetNamespace(), o.GetName())] = o
	}
	want := make(map[string]bool, len(desired))
	for i := range desired {
		d := PT(&desired[i])
		k := key(d.GetNamespace(), d.GetName())
		want[k] = true
		o := stored[k]
		reason := "create"
		if o != nil {
			if same(d, o) && equality.Semantic.DeepEqual(d.GetLabels(), o.GetLabels()) &&
				equality.Semantic.DeepEqual(d.GetAnnotations(), o.GetAnnotations()) {
				continue
			}
			reason = "changed in Git"
		}
		out := PT(d.DeepCopy())
		if o != nil {
			out.SetUID(o.GetUID())
			out.SetResourceVersion(o.GetResourceVersion())
			out.SetCreationTimestamp(o.GetCreationTimestamp())
		}
		puts = append(puts, put(out, reason))
	}
	for k, o := range stored {
		if !want[k] {
			deletes = append(deletes, del(o.GetNamespace(), o.GetName()))
		}
	}
	slices.SortFunc(puts, byObjectKey)
	slices.SortFunc(deletes, byDeleteKey)
	return puts, deletes
}

func byObjectKey(a, b Action) int {
	ma, mb := a.meta(), b.meta()
	return cmp.Or(cmp.Compare(ma.GetNamespace(), mb.GetNamespace()), cmp.Compare(ma.GetName(), mb.GetName()))
}

// configObjects plans Namespaces, ConfigMaps and Secrets: their puts come
// first in a plan (pods that use them must find them), their deletes last.
func (p *planner) configObjects(nss []corev1.Namespace, cms []corev1.ConfigMap, secrets []corev1.Secret) {
	const pruned = "pruned: removed from Git"
	puts, dels := syncObjects(nss, p.observed.Namespaces,
		func(a, b *corev1.Namespace) bool { return true },
		func(o *corev1.Namespace, why string) Action {
			o.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}
			return Action{Type: PutNamespace, NamespaceObject: o, Reason: why}
		},
		func(_, name string) Action {
			return Action{Type: DeleteNamespace, Namespace: name, Name: name, Reason: pruned}
		})
	p.first = append(p.first, puts...)
	p.last = append(p.last, dels...)
	puts, dels = syncObjects(cms, p.observed.ConfigMaps,
		func(a, b *corev1.ConfigMap) bool {
			return equality.Semantic.DeepEqual(a.Data, b.Data) && equality.Semantic.DeepEqual(a.BinaryData, b.BinaryData) &&
				equality.Semantic.DeepEqual(a.Immutable, b.Immutable)
		},
		func(o *corev1.ConfigMap, why string) Action {
			o.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}
			return Action{Type: PutConfigMap, ConfigMap: o, Reason: why}
		},
		func(ns, name string) Action {
			return Action{Type: DeleteConfigMap, Namespace: ns, Name: name, Reason: pruned}
		})
	p.first = append(p.first, puts...)
	p.last = append(p.last, dels...)
	puts, dels = syncObjects(secrets, p.observed.Secrets,
		func(a, b *corev1.Secret) bool {
			return equality.Semantic.DeepEqual(a.Data, b.Data) && a.Type == b.Type &&
				equality.Semantic.DeepEqual(a.Immutable, b.Immutable)
		},
		func(o *corev1.Secret, why string) Action {
			o.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}
			return Action{Type: PutSecret, Secret: o, Reason: why}
		},
		func(ns, name string) Action {
			return Action{Type: DeleteSecret, Namespace: ns, Name: name, Reason: pruned}
		})
	p.first = append(p.first, puts...)
	p.last = append(p.last, dels...)
}
