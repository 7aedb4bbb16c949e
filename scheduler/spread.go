package scheduler

import (
	"math"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// spreadRule is a compiled topology spread constraint.
type spreadRule struct {
	sel        labels.Selector
	ns         string
	topo       *topology
	maxSkew    int32
	hard       bool // DoNotSchedule: a filter; else ScheduleAnyway: a score
	minDomains int32
	// Which nodes count as domains: by default those that match the pod's
	// nodeSelector and required node affinity (nodeAffinityPolicy Honor),
	// whatever their taints (nodeTaintsPolicy Ignore).
	honorAffinity, honorTaints bool

	match []int8 // per group: 0 not yet known, 1 selected, 2 not

	// For the pod being placed: the selected pods per domain (valid where
	// pgen equals interPod.gen), the smallest count over the domains, and
	// whether the pod itself is selected.
	pgen []uint32
	cnt  []int32
	min  int32
	self int32
}

// spread returns the compiled form of c as pod p states it.
func (in *interPod) spread(c *corev1.TopologySpreadConstraint, p *Pod) *spreadRule {
	extra := labelKeyRequirements(p.Labels, c.MatchLabelKeys, selection.In)
	var minDomains int32
	if c.MinDomains != nil {
		minDomains = *c.MinDomains
	}
	honorAffinity := c.NodeAffinityPolicy == nil || *c.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor
	honorTaints := c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor
	hard := c.WhenUnsatisfiable != corev1.ScheduleAnyway

	var b strings.Builder
	b.WriteString(p.Namespace)
	b.WriteByte(0)
	b.WriteString(c.TopologyKey)
	b.WriteByte(0)
	writeSelectorKey(&b, c.LabelSelector)
	for _, r := range extra {
		b.WriteByte(0)
		b.WriteString(r.String())
	}
	b.WriteByte(0)
	b.WriteString(strconv.Itoa(int(c.MaxSkew)))
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(int(minDomains)))
	b.WriteByte(' ')
	b.WriteString(strconv.FormatBool(hard))
	b.WriteString(strconv.FormatBool(honorAffinity))
	b.WriteString(strconv.FormatBool(honorTaints))
	key := b.String()
	if s := in.spreads[key]; s != nil {
		return s
	}
	topo := in.topology(c.TopologyKey)
	s := &spreadRule{
		sel:           selectorOf(c.LabelSelector, extra),
		ns:            p.Namespace,
		topo:          topo,
		maxSkew:       c.MaxSkew,
		hard:          hard,
		minDomains:    minDomains,
		honorAffinity: honorAffinity,
		honorTaints:   honorTaints,
		pgen:          make([]uint32, topo.n),
		cnt:           make([]int32, topo.n),
	}
	in.spreads[key] = s
	return s
}

// selects reports whether the constraint counts the pods of group g:
// pods of the constraint's own namespace that its selector matches.
func (s *spreadRule) selects(in *interPod, g int32) bool {
	for int(g) >= len(s.match) {
		s.match = append(s.match, 0)
	}
	switch s.match[g] {
	case 1:
		return true
	case 2:
		return false
	}
	grp := in.groups[g]
	ok := grp.ns == s.ns && s.sel.Matches(grp.labels)
	s.match[g] = 2
	if ok {
		s.match[g] = 1
	}
	return ok
}

// Bits of cluster.elig, the per-node scratch of spread eligibility.
const (
	eligAffinityKnown uint8 = 1 << iota
	eligAffinity
	eligTaintsKnown
	eligTaints
)

// eligible reports whether node n counts for s when placing r's pod.
func (in *interPod) eligible(r *rules, s *spreadRule, n int) bool {
	c := in.c
	p := r.pod
	if s.honorAffinity && (len(p.NodeSelector) > 0 || r.required != nil) {
		e := c.elig[n]
		if e&eligAffinityKnown == 0 {
			e |= eligAffinityKnown
			if matches(c.labels[n], p.NodeSelector) && (r.required == nil || c.matchRequired(r, n)) {
				e |= eligAffinity
			}
			c.elig[n] = e
		}
		if e&eligAffinity == 0 {
			return false
		}
	}
	if s.honorTaints && len(c.hardTaints[n]) > 0 {
		e := c.elig[n]
		if e&eligTaintsKnown == 0 {
			e |= eligTaintsKnown
			if untolerated(c.hardTaints[n], p.Tolerations) == nil {
				e |= eligTaints
			}
			c.elig[n] = e
		}
		if e&eligTaints == 0 {
			return false
		}
	}
	return true
}

// prepareSpread counts the pods s selects per domain of the eligible
// nodes, and the smallest count, for the pod r describes.
func (in *interPod) prepareSpread(r *rules, s *spreadRule, gen uint32) {
	c := in.c
	if c.elig == nil {
		c.elig = make([]uint8, len(c.names))
	}
	if !r.eligCleared {
		clear(c.elig)
		r.eligCleared = true
	}
	s.self = 0
	if s.selects(in, r.group) {
		s.self = 1
	}
	domains := int32(0)
	for n := range c.names {
		d := s.topo.domain[n]
		if d < 0 || s.pgen[d] == gen || !in.eligible(r, s, n) {
			continue
		}
		s.pgen[d], s.cnt[d] = gen, 0
		domains++
	}
	for g, grp := range in.groups {
		if grp.total == 0 || !s.selects(in, int32(g)) {
			continue
		}
		for n, k := range grp.nodes {
			d := s.topo.domain[n]
			if d < 0 || s.pgen[d] != gen || !in.eligible(r, s, int(n)) {
				continue
			}
			s.cnt[d] += k
		}
	}
	s.min = math.MaxInt32
	for d := range s.pgen {
		if s.pgen[d] == gen {
			s.min = min(s.min, s.cnt[d])
		}
	}
	// Fewer eligible domains than minDomains: the global minimum is 0, so
	// pods go to new domains before piling up.
	if domains == 0 || domains < s.minDomains {
		s.min = 0
	}
}

// check is the PodTopologySpread filter for a DoNotSchedule constraint: the
// node must carry the topology label, and placing the pod there must keep
// its domain within maxSkew of the least loaded one.
func (s *spreadRule) check(n int, gen uint32) failure {
	if !s.hard {
		return fits
	}
	d := s.topo.domain[n]
	if d < 0 {
		return failSpreadLabel
	}
	var cnt int32
	if s.pgen[d] == gen {
		cnt = s.cnt[d]
	}
	if cnt+s.self-s.min > s.maxSkew {
		return failSpread
	}
	return fits
}
