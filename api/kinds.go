package api

import (
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"bosun/store"
)

// kind is one collection the API lists: its names in URLs and the objects
// of a snapshot it holds, each with its apiVersion and kind set.
type kind struct {
	names []string // the collection's name first, then aliases
	items func(snap *store.Snapshot, match func(metav1.Object) bool) []any
}

// kinds are the collections of GET /api/v1/{kind}[/{name}].
var kinds = []kind{
	{[]string{"pods", "pod", "po"}, func(s *store.Snapshot, m func(metav1.Object) bool) []any {
		var out []any
		for _, p := range s.Pods {
			if m(p) {
				c := *p // shared with the cache: set the kind on a copy
				c.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
				out = append(out, &c)
			}
		}
		return out
	}},
	{[]string{"deployments", "deployment", "deploy"}, func(s *store.Snapshot, m func(metav1.Object) bool) []any {
		return pick(s.Deployments, appsv1.SchemeGroupVersion.WithKind("Deployment"), m)
	}},
	{[]string{"services", "service", "svc"}, func(s *store.Snapshot, m func(metav1.Object) bool) []any {
		return pick(s.Services, corev1.SchemeGroupVersion.WithKind("Service"), m)
	}},
	{[]string{"nodes", "node", "no"}, func(s *store.Snapshot, m func(metav1.Object) bool) []any {
		return pick(Nodes(s), corev1.SchemeGroupVersion.WithKind("Node"), m) // nodeops.go: NotReady and cordoned ones too
	}},
	{[]string{"configmaps", "configmap", "cm"}, func(s *store.Snapshot, m func(metav1.Object) bool) []any {
		return pick(s.ConfigMaps, corev1.SchemeGroupVersion.WithKind("ConfigMap"), m)
	}},
	{[]string{"secrets", "secret"}, func(s *store.Snapshot, m func(metav1.Object) bool) []any {
		var out []any
		for i := range s.Secrets {
			if sec := &s.Secrets[i]; m(sec) {
				out = append(out, SummarizeSecret(sec))
			}
		}
		return out
	}},
	{[]string{"namespaces", "namespace", "ns"}, func(s *store.Snapshot, m func(metav1.Object) bool) []any {
		return pick(Namespaces(s), corev1.SchemeGroupVersion.WithKind("Namespace"), m)
	}}, {[]string{"jobs", "job"}, func(s *store.Snapshot, m func(metav1.Object) bool) []any {
		return pick(Jobs(s), batchv1.SchemeGroupVersion.WithKind("Job"), m)
	}},
	{[]string{"cronjobs", "cronjob", "cj"}, func(s *store.Snapshot, m func(metav1.Object) bool) []any {
		return pick(s.CronJobs, batchv1.SchemeGroupVersion.WithKind("CronJob"), m)
	}},
	{[]string{"daemonsets", "daemonset", "ds"}, func(s *store.Snapshot, m func(metav1.Object) bool) []any {
		return pick(s.DaemonSets, appsv1.SchemeGroupVersion.WithKind("DaemonSet"), m)
	}},
	{[]string{"statefulsets", "statefulset", "sts"}, func(s *store.Snapshot, m func(metav1.Object) bool) []any {
		return pick(s.StatefulSets, appsv1.SchemeGroupVersion.WithKind("StatefulSet"), m)
	}},
	{[]string{"persistentvolumeclaims", "persistentvolumeclaim", "pvc"}, func(s *store.Snapshot, m func(metav1.Object) bool) []any {
		return pick(s.Claims, corev1.SchemeGroupVersion.WithKind("PersistentVolumeClaim"), m)
	}},
	{[]string{"ingresses", "ingress", "ing"}, func(s *store.Snapshot, m func(metav1.Object) bool) []any {
		return pick(s.Ingresses, networkingv1.SchemeGroupVersion.WithKind("Ingress"), m)
	}},
	{[]string{"ingressclasses", "ingressclass"}, func(s *store.Snapshot, m func(metav1.Object) bool) []any {
		return pick(s.IngressClasses, networkingv1.SchemeGroupVersion.WithKind("IngressClass"), m)
	}},
}

// AnnotationExpired marks a Job whose ttlSecondsAfterFinished ran out: the
// leader keeps it only as a record, so that the same spec from Git does not
// run again (reconciler.AnnotationExpired). The API hides it.
const AnnotationExpired = "bosun.dev/expired"

// Jobs lists the Jobs of the cluster, but those that expired.
func Jobs(snap *store.Snapshot) []batchv1.Job {
	out := make([]batchv1.Job, 0, len(snap.Jobs))
	for _, j := range snap.Jobs {
		if _, expired := j.Annotations[AnnotationExpired]; !expired {
			out = append(out, j)
		}
	}
	return out
}

// kindNamed finds a collection by any of its names.
func kindNamed(name string) (kind, bool) {
	for _, k := range kinds {
		if slices.Contains(k.names, name) {
			return k, true
		}
	}
	return kind{}, false
}

// kindNames lists the collections' names, for errors.
func kindNames() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.names[0]
	}
	return out
}

// SecretSummary is what the API shows of a Secret: its keys and the size
// of each value, never a value. It has a Secret's apiVersion, kind and
// metadata, so it reads like one; Keys takes the place of data.
type SecretSummary struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Type              corev1.SecretType `json:"type,omitempty"`
	Immutable         *bool             `json:"immutable,omitempty"`
	// Keys are the Secret's keys, sorted, with the length of each value in
	// bytes.
	Keys []SecretKey `json:"keys"`
}

// SecretKey is one key of a Secret and the size of its value.
type SecretKey struct {
	Name string `json:"name"`
	Size int    `json:"size"`
}

// SummarizeSecret describes a Secret without its values.
func SummarizeSecret(s *corev1.Secret) SecretSummary {
	out := SecretSummary{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: *s.ObjectMeta.DeepCopy(),
		Type:       s.Type,
		Immutable:  s.Immutable,
		Keys:       []SecretKey{},
	}
	for _, k := range slices.Sorted(maps.Keys(s.Data)) {
		out.Keys = append(out.Keys, SecretKey{Name: k, Size: len(s.Data[k])})
	}
	return out
}

// AnnotationImplied marks a namespace that objects live in but no manifest
// declares.
const AnnotationImplied = "bosun.dev/implied"

// Namespaces lists the namespaces of the cluster: those declared in Git,
// and those only used by objects (AnnotationImplied "true"), sorted by
// name. Every one is Active.
func Namespaces(snap *store.Snapshot) []corev1.Namespace {
	byName := map[string]corev1.Namespace{}
	for _, ns := range snap.Namespaces {
		ns.Status.Phase = corev1.NamespaceActive
		byName[ns.Name] = ns
	}
	use := func(name string) {
		if _, ok := byName[name]; ok || name == "" {
			return
		}
		byName[name] = corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{AnnotationImplied: "true"}},
			Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
		}
	}
	for _, p := range snap.Pods {
		use(p.Namespace)
	}
	useAll(snap.Deployments, use)
	useAll(snap.Services, use)
	useAll(snap.ConfigMaps, use)
	useAll(snap.Secrets, use)
	useAll(snap.Jobs, use)
	useAll(snap.CronJobs, use)
	useAll(snap.DaemonSets, use)
	useAll(snap.StatefulSets, use)
	useAll(snap.Claims, use)
	useAll(snap.Ingresses, use)
	out := make([]corev1.Namespace, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		out = append(out, byName[name])
	}
	return out
}

// useAll calls use with the namespace of every object of list.
func useAll[T any, PT interface {
	*T
	GetNamespace() string
}](list []T, use func(string)) {
	for i := range list {
		use(PT(&list[i]).GetNamespace())
	}
}

// pick returns copies of the objects that match, with their apiVersion and
// kind set as the Kubernetes API serves them. The snapshot is shared (the
// replica's cache): it is never written to.
func pick[T any, PT interface {
	*T
	metav1.Object
	GetObjectKind() schema.ObjectKind
}](objs []T, gvk schema.GroupVersionKind, match func(metav1.Object) bool) []any {
	var out []any
	for i := range objs {
		if !match(PT(&objs[i])) {
			continue
		}
		c := objs[i]
		o := PT(&c)
		o.GetObjectKind().SetGroupVersionKind(gvk)
		out = append(out, o)
	}
	return out
}
