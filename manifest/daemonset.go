package manifest

import (
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// daemonSetFieldTable is the rules of apps/v1 DaemonSet's own types.
var daemonSetFieldTable = []typeFields{
	{Type: reflect.TypeFor[appsv1.DaemonSet](), Where: "apps/v1 DaemonSet", Fields: []fieldRule{
		{"metadata", honoured, ""},
		{"spec", refused, "not yet"},
		{"status", refused, observed},
	}},
}

func defaultDaemonSet(ds *appsv1.DaemonSet) {}

func validateDaemonSet(ds *appsv1.DaemonSet) problems {
	var ps problems
	validateMeta(&ds.ObjectMeta, validation.IsDNS1123Subdomain, subdomainRule, metaOther, &ps)
	return ps
}
