package manifest

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Values checks of the placement fields of a pod spec (tolerations,
// affinity, topologySpreadConstraints), as the Kubernetes API server makes
// them, limited to what bosun's scheduler carries out: toleration
// operators Equal and Exists (not Lt and Gt).

func validatePlacement(spec *corev1.PodSpec, path *field.Path, ps *problems) {
	for i := range spec.Tolerations {
		validateToleration(&spec.Tolerations[i], path.Child("tolerations").Index(i), ps)
	}
	if a := spec.Affinity; a != nil {
		ap := path.Child("affinity")
		if na := a.NodeAffinity; na != nil {
			np := ap.Child("nodeAffinity")
			if req := na.RequiredDuringSchedulingIgnoredDuringExecution; req != nil {
				rp := np.Child("requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms")
				if len(req.NodeSelectorTerms) == 0 {
					ps.add(rp, "must have at least one node selector term")
				}
				for i := range req.NodeSelectorTerms {
					validateNodeSelectorTerm(&req.NodeSelectorTerms[i], rp.Index(i), ps)
				}
			}
			for i, pt := range na.PreferredDuringSchedulingIgnoredDuringExecution {
				p := np.Child("preferredDuringSchedulingIgnoredDuringExecution").Index(i)
				validateWeight(pt.Weight, p.Child("weight"), ps)
				validateNodeSelectorTerm(&pt.Preference, p.Child("preference"), ps)
			}
		}
		if pa := a.PodAffinity; pa != nil {
			validatePodAffinityTerms(pa.RequiredDuringSchedulingIgnoredDuringExecution, pa.PreferredDuringSchedulingIgnoredDuringExecution, ap.Child("podAffinity"), ps)
		}
		if pa := a.PodAntiAffinity; pa != nil {
			validatePodAffinityTerms(pa.RequiredDuringSchedulingIgnoredDuringExecution, pa.PreferredDuringSchedulingIgnoredDuringExecution, ap.Child("podAntiAffinity"), ps)
		}
	}
	seen := map[string]bool{}
	for i := range spec.TopologySpreadConstraints {
		c := &spec.TopologySpreadConstraints[i]
		p := path.Child("topologySpreadConstraints").Index(i)
		validateSpreadConstraint(c, p, ps)
		if pair := c.TopologyKey + " " + string(c.WhenUnsatisfiable); seen[pair] {
			ps.add(p, "duplicate constraint: topologyKey %q with whenUnsatisfiable %q is already given", c.TopologyKey, c.WhenUnsatisfiable)
		} else {
			seen[pair] = true
		}
	}
}

func validateToleration(t *corev1.Toleration, path *field.Path, ps *problems) {
	if t.Key != "" {
		validateQualifiedName(t.Key, path.Child("key"), ps)
	}
	switch t.Operator {
	case corev1.TolerationOpEqual, "":
		if t.Key == "" {
			ps.add(path.Child("operator"), "must be Exists when key is empty (an empty key with Exists tolerates every taint)")
		}
		for _, msg := range validation.IsValidLabelValue(t.Value) {
			ps.add(path.Child("value"), "invalid value %q: %s", t.Value, msg)
		}
	case corev1.TolerationOpExists:
		if t.Value != "" {
			ps.add(path.Child("value"), "must be empty when operator is Exists")
		}
	default:
		ps.add(path.Child("operator"), "unsupported value %q: must be Equal or Exists", t.Operator)
	}
	switch t.Effect {
	case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		ps.add(path.Child("effect"), "unsupported value %q: must be NoSchedule, PreferNoSchedule or NoExecute", t.Effect)
	}
	if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
		ps.add(path.Child("tolerationSeconds"), "only applies to effect NoExecute")
	}
}

func validateNodeSelectorTerm(term *corev1.NodeSelectorTerm, path *field.Path, ps *problems) {
	for i := range term.MatchExpressions {
		e := &term.MatchExpressions[i]
		p := path.Child("matchExpressions").Index(i)
		validateQualifiedName(e.Key, p.Child("key"), ps)
		switch e.Operator {
		case corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn:
			if len(e.Values) == 0 {
				ps.add(p.Child("values"), "must have at least one value when operator is %s", e.Operator)
			}
			for j, v := range e.Values {
				for _, msg := range validation.IsValidLabelValue(v) {
					ps.add(p.Child("values").Index(j), "invalid value %q: %s", v, msg)
				}
			}
		case corev1.NodeSelectorOpExists, corev1.NodeSelectorOpDoesNotExist:
			if len(e.Values) > 0 {
				ps.add(p.Child("values"), "must be empty when operator is %s", e.Operator)
			}
		case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
			if len(e.Values) != 1 {
				ps.add(p.Child("values"), "must have exactly one value when operator is %s", e.Operator)
			} else if _, err := strconv.ParseInt(e.Values[0], 10, 64); err != nil {
				ps.add(p.Child("values").Index(0), "invalid value %q: must be an integer when operator is %s", e.Values[0], e.Operator)
			}
		default:
			ps.add(p.Child("operator"), "unsupported value %q: must be In, NotIn, Exists, DoesNotExist, Gt or Lt", e.Operator)
		}
	}
	for i := range term.MatchFields {
		e := &term.MatchFields[i]
		p := path.Child("matchFields").Index(i)
		if e.Key != "metadata.name" {
			ps.add(p.Child("key"), "unsupported value %q: must be metadata.name", e.Key)
		}
		switch e.Operator {
		case corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn:
			if len(e.Values) != 1 {
				ps.add(p.Child("values"), "must have exactly one value")
			}
		default:
			ps.add(p.Child("operator"), "unsupported value %q: must be In or NotIn", e.Operator)
		}
	}
}

func validateWeight(w int32, path *field.Path, ps *problems) {
	if w < 1 || w > 100 {
		ps.add(path, "must be from 1 to 100, got %d", w)
	}
}

func validatePodAffinityTerms(required []corev1.PodAffinityTerm, preferred []corev1.WeightedPodAffinityTerm, path *field.Path, ps *problems) {
	for i := range required {
		validatePodAffinityTerm(&required[i], path.Child("requiredDuringSchedulingIgnoredDuringExecution").Index(i), ps)
	}
	for i := range preferred {
		p := path.Child("preferredDuringSchedulingIgnoredDuringExecution").Index(i)
		validateWeight(preferred[i].Weight, p.Child("weight"), ps)
		validatePodAffinityTerm(&preferred[i].PodAffinityTerm, p.Child("podAffinityTerm"), ps)
	}
}

func validatePodAffinityTerm(t *corev1.PodAffinityTerm, path *field.Path, ps *problems) {
	if t.TopologyKey == "" {
		ps.add(path.Child("topologyKey"), "required")
	} else {
		validateQualifiedName(t.TopologyKey, path.Child("topologyKey"), ps)
	}
	validatePodSelector(t.LabelSelector, path.Child("labelSelector"), ps)
	for i, ns := range t.Namespaces {
		if len(validation.IsDNS1123Label(ns)) > 0 {
			ps.add(path.Child("namespaces").Index(i), "invalid namespace %q: %s", ns, labelRule)
		}
	}
	validateLabelKeys(t.MatchLabelKeys, t.LabelSelector, path.Child("matchLabelKeys"), ps)
	validateLabelKeys(t.MismatchLabelKeys, t.LabelSelector, path.Child("mismatchLabelKeys"), ps)
	both := sets.New(t.MatchLabelKeys...).Intersection(sets.New(t.MismatchLabelKeys...))
	for _, k := range sets.List(both) {
		ps.add(path.Child("mismatchLabelKeys"), "%q is also in matchLabelKeys", k)
	}
}

func validateSpreadConstraint(c *corev1.TopologySpreadConstraint, path *field.Path, ps *problems) {
	if c.MaxSkew <= 0 {
		ps.add(path.Child("maxSkew"), "must be greater than 0, got %d", c.MaxSkew)
	}
	if c.TopologyKey == "" {
		ps.add(path.Child("topologyKey"), "required")
	} else {
		validateQualifiedName(c.TopologyKey, path.Child("topologyKey"), ps)
	}
	switch c.WhenUnsatisfiable {
	case corev1.DoNotSchedule, corev1.ScheduleAnyway:
	default:
		ps.add(path.Child("whenUnsatisfiable"), "unsupported value %q: must be DoNotSchedule or ScheduleAnyway", c.WhenUnsatisfiable)
	}
	if c.MinDomains != nil {
		switch {
		case *c.MinDomains <= 0:
			ps.add(path.Child("minDomains"), "must be greater than 0, got %d", *c.MinDomains)
		case c.WhenUnsatisfiable != corev1.DoNotSchedule:
			ps.add(path.Child("minDomains"), "only applies when whenUnsatisfiable is DoNotSchedule")
		}
	}
	for _, policy := range []struct {
		name string
		v    *corev1.NodeInclusionPolicy
	}{{"nodeAffinityPolicy", c.NodeAffinityPolicy}, {"nodeTaintsPolicy", c.NodeTaintsPolicy}} {
		if policy.v != nil && *policy.v != corev1.NodeInclusionPolicyHonor && *policy.v != corev1.NodeInclusionPolicyIgnore {
			ps.add(path.Child(policy.name), "unsupported value %q: must be Honor or Ignore", *policy.v)
		}
	}
	validatePodSelector(c.LabelSelector, path.Child("labelSelector"), ps)
	validateLabelKeys(c.MatchLabelKeys, c.LabelSelector, path.Child("matchLabelKeys"), ps)
}

// validatePodSelector checks a selector of pods; nil is allowed (it
// selects nothing, as in Kubernetes).
func validatePodSelector(sel *metav1.LabelSelector, path *field.Path, ps *problems) {
	if sel == nil {
		return
	}
	ps.addList(metavalidation.ValidateLabelSelector(sel, metavalidation.LabelSelectorValidationOptions{}, path))
}

// validateLabelKeys checks matchLabelKeys and mismatchLabelKeys: label
// keys, each once, none already in the label selector, and a selector to
// add them to.
func validateLabelKeys(keys []string, sel *metav1.LabelSelector, path *field.Path, ps *problems) {
	if len(keys) == 0 {
		return
	}
	if sel == nil {
		ps.add(path, "requires labelSelector to be set")
		return
	}
	inSelector := sets.New[string]()
	for k := range sel.MatchLabels {
		inSelector.Insert(k)
	}
	for _, e := range sel.MatchExpressions {
		inSelector.Insert(e.Key)
	}
	seen := sets.New[string]()
	for i, k := range keys {
		p := path.Index(i)
		validateQualifiedName(k, p, ps)
		switch {
		case seen.Has(k):
			ps.add(p, "duplicate key %q", k)
		case inSelector.Has(k):
			ps.add(p, "key %q is already in labelSelector", k)
		}
		seen.Insert(k)
	}
}

func validateQualifiedName(s string, path *field.Path, ps *problems) {
	for _, msg := range validation.IsQualifiedName(s) {
		ps.add(path, "invalid key %q: %s", s, msg)
	}
}
