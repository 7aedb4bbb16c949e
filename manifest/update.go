package manifest

import (
	"bytes"
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CheckUpdate reports what Kubernetes' API server would refuse in going
// from the applied revision prev (nil: none yet) to next: the data of an
// immutable ConfigMap or Secret cannot change, and an immutable object
// cannot become mutable again. Such a revision is rejected whole, like an
// invalid one; the error says to give the object a new name. It returns nil
// or Errors.
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
