package manifest

import (
	"bytes"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CheckUpdate reports what Kubernetes' API server would refuse in going
// from the applied revision prev (nil: none yet) to next: the data of an
// immutable ConfigMap or Secret cannot change, and an immutable object
// cannot become mutable again (the error says to give the object a new
// name); a StatefulSet's spec may change only in replicas, ordinals,
// template, updateStrategy, persistentVolumeClaimRetentionPolicy,
// minReadySeconds and revisionHistoryLimit (the error says to remove it in
// one commit and add it back in the next). Such a revision is rejected
// whole, like an invalid one. It returns nil or Errors.
func CheckUpdate(prev, next *Set) error {
	if prev == nil {
		return nil
	}
	var errs Errors
	checkImmutable(prev.ConfigMaps, next.ConfigMaps, KindConfigMap, next.Sources, &errs,
		func(cm *corev1.ConfigMap) *bool { return cm.Immutable },
		func(a, b *corev1.ConfigMap) bool {
			return maps.Equal(a.Data, b.Data) && maps.EqualFunc(a.BinaryData, b.BinaryData, bytes.Equal)
		})
	checkImmutable(prev.Secrets, next.Secrets, KindSecret, next.Sources, &errs,
		func(s *corev1.Secret) *bool { return s.Immutable },
		func(a, b *corev1.Secret) bool { return a.Type == b.Type && maps.EqualFunc(a.Data, b.Data, bytes.Equal) })
	checkStatefulSetUpdates(prev.StatefulSets, next, &errs)
	if len(errs) == 0 {
		return nil
	}
	sortErrors(errs)
	return errs
}

// checkImmutable compares the objects of one kind that were immutable in
// prev with their next version. Messages never quote data.
func checkImmutable[T any, PT interface {
	*T
	metav1.Object
}](prev, next []T, kind string, sources map[ObjectKey]Source, errs *Errors, immutable func(PT) *bool, sameData func(a, b PT) bool) {
	old := make(map[string]PT, len(prev))
	for i := range prev {
		o := PT(&prev[i])
		old[o.GetNamespace()+"/"+o.GetName()] = o
	}
	for i := range next {
		n := PT(&next[i])
		o := old[n.GetNamespace()+"/"+n.GetName()]
		if o == nil || !isTrue(immutable(o)) {
			continue
		}
		src := sources[ObjectKey{Kind: kind, Namespace: n.GetNamespace(), Name: n.GetName()}]
		switch {
		case !isTrue(immutable(n)):
			*errs = append(*errs, Error{File: src.File, Line: src.Line, Field: "immutable",
				Message: "an immutable " + kind + " cannot become mutable; give it a new name"})
		case !sameData(o, n):
			*errs = append(*errs, Error{File: src.File, Line: src.Line, Field: "data",
				Message: "the " + kind + " is immutable: its data cannot change; give it a new name and point its users at it"})
		}
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

// statefulSetFixedFields are the StatefulSet spec fields Kubernetes'
// API server refuses to change (every field but replicas, ordinals,
// template, updateStrategy, persistentVolumeClaimRetentionPolicy,
// minReadySeconds and revisionHistoryLimit). bosun would not carry such a
// change to the running pods and claims either.
var statefulSetFixedFields = []string{"spec.selector", "spec.serviceName", "spec.volumeClaimTemplates", "spec.podManagementPolicy"}

// checkStatefulSetUpdates refuses a change of a fixed field of a
// StatefulSet of prev in next, at the field's line.
func checkStatefulSetUpdates(prev []appsv1.StatefulSet, next *Set, errs *Errors) {
	old := make(map[string]*appsv1.StatefulSet, len(prev))
	for i := range prev {
		old[prev[i].Namespace+"/"+prev[i].Name] = &prev[i]
	}
	for i := range next.StatefulSets {
		n := &next.StatefulSets[i]
		o := old[n.Namespace+"/"+n.Name]
		if o == nil {
			continue
		}
		for j, same := range []bool{
			equality.Semantic.DeepEqual(o.Spec.Selector, n.Spec.Selector),
			o.Spec.ServiceName == n.Spec.ServiceName,
			equality.Semantic.DeepEqual(o.Spec.VolumeClaimTemplates, n.Spec.VolumeClaimTemplates),
			o.Spec.PodManagementPolicy == n.Spec.PodManagementPolicy,
		} {
			if same {
				continue
			}
			path := statefulSetFixedFields[j]
			src := next.Where(ObjectKey{Kind: KindStatefulSet, Namespace: n.Namespace, Name: n.Name}, path)
			*errs = append(*errs, Error{File: src.File, Line: src.Line, Field: path, Message: "cannot change on StatefulSet " + n.Namespace + "/" + n.Name +
				" (Kubernetes forbids it: only replicas, ordinals, template, updateStrategy, persistentVolumeClaimRetentionPolicy, minReadySeconds and revisionHistoryLimit may change): " +
				"remove the StatefulSet in one commit, let bosun apply it, then add it back with the change in the next; with whenDeleted: Retain (the default) its claims and their data stay, and the new pods mount those of a claim template of the same name"})
		}
	}
}
