package manifest

import (
	"reflect"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// claimFieldTable is the rules of v1 PersistentVolumeClaim's own types.
var claimFieldTable = []typeFields{
	{Type: reflect.TypeFor[corev1.PersistentVolumeClaim](), Where: "v1 PersistentVolumeClaim", Fields: []fieldRule{
		{"metadata", honoured, ""},
		{"spec", refused, "not yet"},
		{"status", refused, observed},
	}},
}

func defaultClaim(c *corev1.PersistentVolumeClaim) {}

func validateClaim(c *corev1.PersistentVolumeClaim) problems {
	var ps problems
	validateMeta(&c.ObjectMeta, validation.IsDNS1123Subdomain, subdomainRule, metaOther, &ps)
	return ps
}
