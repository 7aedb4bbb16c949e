package manifest

import (
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// DaemonSets (apps/v1): one pod per eligible node, run by the reconciler
// (reconciler/daemonset.go). The defaults and checks are Kubernetes'.

// defaultDaemonSet applies Kubernetes' defaults: updateStrategy
// RollingUpdate with maxUnavailable 1 and maxSurge 0, and
// revisionHistoryLimit 10.
func defaultDaemonSet(ds *appsv1.DaemonSet) {
	if ds.Namespace == "" {
		ds.Namespace = DefaultNamespace
	}
	ds.Status = appsv1.DaemonSetStatus{}
	st := &ds.Spec.UpdateStrategy
	if st.Type == "" {
		st.Type = appsv1.RollingUpdateDaemonSetStrategyType
	}
	if st.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		if st.RollingUpdate == nil {
			st.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
		}
		if st.RollingUpdate.MaxUnavailable == nil {
			v := intstr.FromInt32(1)
			st.RollingUpdate.MaxUnavailable = &v
		}
		if st.RollingUpdate.MaxSurge == nil {
			v := intstr.FromInt32(0)
			st.RollingUpdate.MaxSurge = &v
		}
	}
	if ds.Spec.RevisionHistoryLimit == nil {
		ten := int32(10)
		ds.Spec.RevisionHistoryLimit = &ten
	}
	defaultPodSpec(&ds.Spec.Template.Spec, corev1.RestartPolicyAlways)
}

// validateDaemonSet checks a DaemonSet as Kubernetes does: a selector that
// matches the template's labels, a pod template whose pods restart Always
// (checked as a Deployment's), and an update strategy that can move.
func validateDaemonSet(ds *appsv1.DaemonSet) problems {
	var ps problems
	validateMeta(&ds.ObjectMeta, validation.IsDNS1123Subdomain, subdomainRule, metaOther, &ps)
	spec := field.NewPath("spec")
	if ds.Spec.MinReadySeconds < 0 {
		ps.add(spec.Child("minReadySeconds"), "must be >= 0")
	}
	if v := ds.Spec.RevisionHistoryLimit; v != nil && *v < 0 {
		ps.add(spec.Child("revisionHistoryLimit"), "must be >= 0")
	}
	validateTemplateMeta(&ds.Spec.Template.ObjectMeta, spec.Child("template", "metadata"), true, &ps)
	validateSelector(ds.Spec.Selector, ds.Spec.Template.Labels, spec.Child("selector"), &ps)
	validateDaemonSetStrategy(&ds.Spec.UpdateStrategy, spec.Child("updateStrategy"), &ps)
	tmpl := spec.Child("template", "spec")
	if rp := ds.Spec.Template.Spec.RestartPolicy; rp == corev1.RestartPolicyOnFailure || rp == corev1.RestartPolicyNever {
		// Other values are validatePodSpec's to refuse.
		ps.add(tmpl.Child("restartPolicy"), "unsupported value %q: a DaemonSet's pods must use Always", rp)
	}
	validatePodSpec(&ds.Spec.Template.Spec, tmpl, ownerNone, &ps)
	return ps
}

// validateDaemonSetStrategy is Kubernetes' rule: RollingUpdate with
// exactly one of maxUnavailable and maxSurge non-zero (each an integer or
// a percentage up to 100%), or OnDelete without rollingUpdate.
func validateDaemonSetStrategy(st *appsv1.DaemonSetUpdateStrategy, path *field.Path, ps *problems) {
	switch st.Type {
	case appsv1.OnDeleteDaemonSetStrategyType:
		if st.RollingUpdate != nil {
			ps.add(path.Child("rollingUpdate"), "must not be set when type is OnDelete")
		}
	case appsv1.RollingUpdateDaemonSetStrategyType:
		if st.RollingUpdate == nil {
			return
		}
		ru := path.Child("rollingUpdate")
		unavail, okU := validateIntOrPercent(st.RollingUpdate.MaxUnavailable, ru.Child("maxUnavailable"), ps)
		surge, okS := validateIntOrPercent(st.RollingUpdate.MaxSurge, ru.Child("maxSurge"), ps)
		switch {
		case !okU || !okS:
		case unavail != 0 && surge != 0:
			ps.add(ru.Child("maxSurge"), "must be 0 when maxUnavailable is not 0 (maxUnavailable defaults to 1: set it to 0 to surge)")
		case unavail == 0 && surge == 0:
			ps.add(ru.Child("maxUnavailable"), "must not be 0 when maxSurge is 0")
		}
	default:
		ps.add(path.Child("type"), "unsupported value %q: must be RollingUpdate or OnDelete", st.Type)
	}
}

// daemonSetFieldTable is what bosun does with each field of a DaemonSet's
// own types (fields.go appends it to fieldTable).
var daemonSetFieldTable = []typeFields{
	{Type: reflect.TypeFor[appsv1.DaemonSet](), Where: "apps/v1 DaemonSet", Fields: []fieldRule{
		{"metadata", honoured, ""},
		{"spec", honoured, "one pod per node its nodeSelector, required node affinity and tolerations admit; daemon pods also tolerate not-ready, unreachable, disk/memory/PID pressure and cordoned nodes, as in Kubernetes"},
		{"status", refused, observed},
	}},
	{Type: reflect.TypeFor[appsv1.DaemonSetSpec](), Where: "DaemonSet spec", Fields: []fieldRule{
		{"selector", honoured, "must match the template's labels"},
		{"template", honoured, "restartPolicy Always; pods are pinned to their node by required node affinity on metadata.name, as in Kubernetes"},
		{"updateStrategy", honoured, "RollingUpdate (maxUnavailable, default 1, or maxSurge) or OnDelete"},
		{"minReadySeconds", honoured, ""},
		{"revisionHistoryLimit", honoured, "bosun keeps no old revisions of a DaemonSet (Git is its history), so any limit holds"},
	}},
	{Type: reflect.TypeFor[appsv1.DaemonSetUpdateStrategy](), Where: "DaemonSet spec.updateStrategy", Fields: []fieldRule{
		{"type", honoured, "RollingUpdate (default) or OnDelete: old pods stay until deleted by hand"},
		{"rollingUpdate", honoured, ""},
	}},
	{Type: reflect.TypeFor[appsv1.RollingUpdateDaemonSet](), Where: "DaemonSet spec.updateStrategy.rollingUpdate", Fields: []fieldRule{
		{"maxUnavailable", honoured, "nodes without an available pod during the update; a number or a percentage of the nodes that run it, rounded up"},
		{"maxSurge", honoured, "nodes where the updated pod starts before the old one stops (then maxUnavailable must be 0); rounded up"},
	}},
}
