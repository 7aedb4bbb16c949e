package scheduler

import (
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// rules is one pod's placement rules, compiled once per Schedule call.
type rules struct {
	pod *Pod
	// hostPorts are the pod's host ports normalized (HostPort.norm), once
	// for every node the filter compares them on (ports.go).
	hostPorts []HostPort
	// required is the pod's required node affinity (nodeSelector is checked
	// on its own); preferred its preferred terms. nil when absent.
	required  *nodeaffinity.LazyErrorNodeSelector
	preferred *nodeaffinity.PreferredSchedulingTerms

	// interPod is set when the cluster tracks inter-pod state (some pod has
	// pod (anti-)affinity or spread constraints); the fields below are then
	// filled in (affinity.go, spread.go).
	interPod bool
	group    int32
	// The pod's own terms: required affinity and anti-affinity, and
	// preferred ones (weight negative for anti-affinity).
	affinity, anti, preferredTerms []*term
	spread                         []*spreadRule

	// Set by prepare: placed pods' terms that apply to this pod.
	blockers        []*term // required anti-affinity terms that select it
	scorers         []*term // preferred terms that select it
	affinityIgnored bool    // see interPod.prepare
	eligCleared     bool    // cluster.elig was reset for this pod
}

// rules compiles p's rules into the cluster's one rules value, which is
// valid until the next call: pods are placed one at a time. Only placing a
// pod needs its node affinity; every pod's inter-pod terms count once it
// is on a node.
func (c *cluster) rules(p *Pod) *rules {
	r := &c.r
	*r = rules{
		pod:            p,
		hostPorts:      r.hostPorts[:0],
		affinity:       r.affinity[:0],
		anti:           r.anti[:0],
		preferredTerms: r.preferredTerms[:0],
		spread:         r.spread[:0],
		blockers:       r.blockers[:0],
		scorers:        r.scorers[:0],
	}
	for _, h := range p.HostPorts {
		r.hostPorts = append(r.hostPorts, h.norm())
	}
	if p.NodeName == "" && p.Affinity != nil && p.Affinity.NodeAffinity != nil {
		na := p.Affinity.NodeAffinity
		if req := na.RequiredDuringSchedulingIgnoredDuringExecution; req != nil {
			r.required = nodeaffinity.NewLazyErrorNodeSelector(req)
		}
		if pref := na.PreferredDuringSchedulingIgnoredDuringExecution; len(pref) > 0 {
			// Parse errors are validation's to report; a term that does not
			// parse scores nothing.
			if terms, err := nodeaffinity.NewPreferredSchedulingTerms(pref); err == nil {
				r.preferred = terms
			}
		}
	}
	if c.inter != nil {
		c.inter.compile(r)
	}
	return r
}

// matchRequired reports whether node n matches r's required node affinity
// (nodeSelectorTerms ORed, matchExpressions and matchFields ANDed).
func (c *cluster) matchRequired(r *rules, n int) bool {
	ok, _ := r.required.Match(c.nodeObj(n))
	return ok
}

// prepare sets up what the filters and scores need for r beyond the nodes
// themselves: which domains hold pods its terms select.
func (c *cluster) prepare(r *rules) {
	if r.interPod {
		c.inter.prepare(r)
	}
}

// discard is the logger the toleration helpers get: with comparison
// operators off they have nothing to log.
var discard = logr.Discard()

// Tolerates reports whether any of tolerations tolerates taint, by
// Kubernetes' rules: the effect matches (or the toleration's is empty), the
// key matches (or is empty with operator Exists), and the value is equal
// (operator Equal, the default) or anything (Exists). The Lt and Gt
// operators tolerate nothing (validation refuses them).
func Tolerates(tolerations []corev1.Toleration, taint *corev1.Taint) bool {
	for i := range tolerations {
		if ToleratesTaint(&tolerations[i], taint) {
			return true
		}
	}
	return false
}

// ToleratesTaint reports whether one toleration tolerates taint; see
// Tolerates.
func ToleratesTaint(t *corev1.Toleration, taint *corev1.Taint) bool {
	return t.ToleratesTaint(discard, taint, false)
}

// untolerated returns the first of taints that tolerations do not tolerate,
// or nil.
func untolerated(taints []corev1.Taint, tolerations []corev1.Toleration) *corev1.Taint {
	for i := range taints {
		if !Tolerates(tolerations, &taints[i]) {
			return &taints[i]
		}
	}
	return nil
}

func countUntolerated(taints []corev1.Taint, tolerations []corev1.Toleration) int {
	n := 0
	for i := range taints {
		if !Tolerates(tolerations, &taints[i]) {
			n++
		}
	}
	return n
}
