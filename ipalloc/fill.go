package ipalloc

import (
	corev1 "k8s.io/api/core/v1"

	"bosun/manifest"
)

// Fill allocates the Services of a loaded revision (Allocate) and stores
// the result in set. When anything cannot be given it leaves set as it
// was and returns manifest.Errors naming each field's file and line, so
// that the revision is rejected whole like any invalid one.
func Fill(cfg Config, set *manifest.Set, previous ...[]corev1.Service) error {
	out, errs := Allocate(cfg, set.Services, previous...)
	if len(errs) == 0 {
		set.Services = out
		return nil
	}
	return Errors(set, errs)
}

// Errors places allocation errors in the revision's files.
func Errors(set *manifest.Set, errs []Error) manifest.Errors {
	out := make(manifest.Errors, len(errs))
	for i, e := range errs {
		src := set.Where(manifest.ObjectKey{Kind: manifest.KindService, Namespace: e.Namespace, Name: e.Name}, e.Field)
		out[i] = manifest.Error{File: src.File, Line: src.Line, Field: e.Field, Message: e.Message}
	}
	manifest.SortErrors(out)
	return out
}
