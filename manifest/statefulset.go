package manifest

import (
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// statefulSetFieldTable is the rules of apps/v1 StatefulSet's own types.
var statefulSetFieldTable = []typeFields{
	{Type: reflect.TypeFor[appsv1.StatefulSet](), Where: "apps/v1 StatefulSet", Fields: []fieldRule{
		{"metadata", honoured, ""},
		{"spec", refused, "not yet"},
		{"status", refused, observed},
	}},
}

func defaultStatefulSet(sts *appsv1.StatefulSet) {}

func validateStatefulSet(sts *appsv1.StatefulSet) problems {
	var ps problems
	validateMeta(&sts.ObjectMeta, validation.IsDNS1123Subdomain, subdomainRule, metaOther, &ps)
	return ps
}
