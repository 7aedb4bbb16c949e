package manifest

import (
	"bytes"
	"maps"

	corev1 "k8s.io/api/core/v1"
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
	at := func(kind, namespace, name, field, msg string) {
		src := next.Sources[ObjectKey{Kind: kind, Namespace: namespace, Name: name}]
		errs = append(errs, Error{File: src.File, Line: src.Line, Field: field, Message: msg})
	}
	oldMaps := map[string]*corev1.ConfigMap{}
	for i := range prev.ConfigMaps {
		cm := &prev.ConfigMaps[i]
		oldMaps[cm.Namespace+"/"+cm.Name] = cm
	}
	for i := range next.ConfigMaps {
		cm := &next.ConfigMaps[i]
		old := oldMaps[cm.Namespace+"/"+cm.Name]
		if old == nil || !isTrue(old.Immutable) {
			continue
		}
		switch {
		case !isTrue(cm.Immutable):
			at(KindConfigMap, cm.Namespace, cm.Name, "immutable", "an immutable ConfigMap cannot become mutable; give it a new name")
		case !maps.Equal(old.Data, cm.Data) || !maps.EqualFunc(old.BinaryData, cm.BinaryData, bytes.Equal):
			at(KindConfigMap, cm.Namespace, cm.Name, "data", "the ConfigMap is immutable: its data cannot change; give it a new name and point its users at it")
		}
	}
	oldSecrets := map[string]*corev1.Secret{}
	for i := range prev.Secrets {
		s := &prev.Secrets[i]
		oldSecrets[s.Namespace+"/"+s.Name] = s
	}
	for i := range next.Secrets {
		s := &next.Secrets[i]
		old := oldSecrets[s.Namespace+"/"+s.Name]
		if old == nil || !isTrue(old.Immutable) {
			continue
		}
		switch {
		case !isTrue(s.Immutable):
			at(KindSecret, s.Namespace, s.Name, "immutable", "an immutable Secret cannot become mutable; give it a new name")
		case !maps.EqualFunc(old.Data, s.Data, bytes.Equal) || old.Type != s.Type:
			at(KindSecret, s.Namespace, s.Name, "data", "the Secret is immutable: its data cannot change; give it a new name and point its users at it")
		}
	}
	if len(errs) == 0 {
		return nil
	}
	sortErrors(errs)
	return errs
}

func isTrue(b *bool) bool { return b != nil && *b }
