package scheduler

import (
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// interPod is the state behind pod affinity, pod anti-affinity and topology
// spread constraints: the placed pods grouped by namespace and labels, how
// many of each group every node holds, and the terms placed pods carry.
//
// Pods with the same namespace and labels (the replicas of one template)
// form one group, so a term's selector is matched once per group, not per
// pod; terms and spread constraints are compiled once per distinct text.
// Per-domain marks carry the number of the pod being placed (gen), so no
// array is cleared between pods.
type interPod struct {
	c          *cluster
	groups     []*group
	groupIDs   map[string]int32
	terms      map[string]*term
	spreads    map[string]*spreadRule
	topologies map[string]*topology
	// Terms carried by placed pods, for the rules that hold both ways:
	// required anti-affinity (an existing pod keeps matching pods out of
	// its domain) and preferred terms (which score for both pods).
	antiHolders, prefHolders []*term
	gen                      uint32
	scratch                  []int64
}

// raw returns scratch room for n raw scores.
func (in *interPod) raw(n int) []int64 {
	if cap(in.scratch) < n {
		in.scratch = make([]int64, n)
	}
	return in.scratch[:n]
}

// group is the placed pods of one namespace and label set.
type group struct {
	ns     string
	labels labels.Set
	nodes  map[int32]int32 // node -> pods of the group on it
	total  int
}

// topology maps nodes to the domains of one topology key: the distinct
// values of that node label.
type topology struct {
	domain []int32 // per node; -1 when the node lacks the label
	n      int
}

// term is a compiled pod affinity term: the pods it selects (namespaces and
// label selector) and the topology key that makes their nodes' domains.
type term struct {
	sel        labels.Selector
	namespaces []string
	topo       *topology
	weight     int64 // preferred terms: +weight for affinity, -weight for anti-affinity

	match []int8 // per group: 0 not yet known, 1 selected, 2 not

	// For the pod being placed: domains holding pods the term selects
	// (seen, count) and domains holding pods that carry the term (hseen,
	// hcount), valid where the stamp equals interPod.gen.
	seen, hseen   []uint32
	count, hcount []int64

	holders map[int32]int32 // node -> placed pods carrying the term
}

// needsInterPod reports whether any pod has rules that depend on other pods.
func needsInterPod(pods []Pod) bool {
	for i := range pods {
		p := &pods[i]
		if len(p.TopologySpreadConstraints) > 0 {
			return true
		}
		if a := p.Affinity; a != nil && (a.PodAffinity != nil || a.PodAntiAffinity != nil) {
			return true
		}
	}
	return false
}

func newInterPod(c *cluster) *interPod {
	return &interPod{
		c:          c,
		groupIDs:   map[string]int32{},
		terms:      map[string]*term{},
		spreads:    map[string]*spreadRule{},
		topologies: map[string]*topology{},
	}
}

func (in *interPod) topology(key string) *topology {
	if t := in.topologies[key]; t != nil {
		return t
	}
	t := &topology{domain: make([]int32, len(in.c.names))}
	ids := map[string]int32{}
	for n, l := range in.c.labels {
		v, ok := l[key]
		if !ok {
			t.domain[n] = -1
			continue
		}
		id, ok := ids[v]
		if !ok {
			id = int32(len(ids))
			ids[v] = id
		}
		t.domain[n] = id
	}
	t.n = len(ids)
	in.topologies[key] = t
	return t
}

// groupOf returns the id of p's group, creating it.
func (in *interPod) groupOf(p *Pod) int32 {
	var b strings.Builder
	b.WriteString(p.Namespace)
	for _, k := range sortedKeys(p.Labels) {
		b.WriteByte(0)
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(p.Labels[k])
	}
	key := b.String()
	if id, ok := in.groupIDs[key]; ok {
		return id
	}
	id := int32(len(in.groups))
	in.groups = append(in.groups, &group{ns: p.Namespace, labels: labels.Set(p.Labels), nodes: map[int32]int32{}})
	in.groupIDs[key] = id
	return id
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// compile fills in r's inter-pod rules.
func (in *interPod) compile(r *rules) {
	p := r.pod
	r.interPod = true
	r.group = in.groupOf(p)
	if a := p.Affinity; a != nil {
		if pa := a.PodAffinity; pa != nil {
			for i := range pa.RequiredDuringSchedulingIgnoredDuringExecution {
				r.affinity = append(r.affinity, in.term('A', 0, &pa.RequiredDuringSchedulingIgnoredDuringExecution[i], p))
			}
			for i := range pa.PreferredDuringSchedulingIgnoredDuringExecution {
				w := &pa.PreferredDuringSchedulingIgnoredDuringExecution[i]
				if w.Weight != 0 {
					r.preferredTerms = append(r.preferredTerms, in.term('P', int64(w.Weight), &w.PodAffinityTerm, p))
				}
			}
		}
		if pa := a.PodAntiAffinity; pa != nil {
			for i := range pa.RequiredDuringSchedulingIgnoredDuringExecution {
				r.anti = append(r.anti, in.term('N', 0, &pa.RequiredDuringSchedulingIgnoredDuringExecution[i], p))
			}
			for i := range pa.PreferredDuringSchedulingIgnoredDuringExecution {
				w := &pa.PreferredDuringSchedulingIgnoredDuringExecution[i]
				if w.Weight != 0 {
					r.preferredTerms = append(r.preferredTerms, in.term('P', -int64(w.Weight), &w.PodAffinityTerm, p))
				}
			}
		}
	}
	for i := range p.TopologySpreadConstraints {
		r.spread = append(r.spread, in.spread(&p.TopologySpreadConstraints[i], p))
	}
}

// term returns the compiled form of t as pod p states it (its namespace is
// the default, its labels fill in matchLabelKeys and mismatchLabelKeys).
func (in *interPod) term(kind byte, weight int64, t *corev1.PodAffinityTerm, p *Pod) *term {
	namespaces := t.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{p.Namespace}
	} else {
		namespaces = slices.Sorted(slices.Values(namespaces))
		namespaces = slices.Compact(namespaces)
	}
	var b strings.Builder
	b.WriteByte(kind)
	b.WriteString(strconv.FormatInt(weight, 10))
	b.WriteByte(0)
	b.WriteString(t.TopologyKey)
	b.WriteByte(0)
	b.WriteString(strings.Join(namespaces, ","))
	b.WriteByte(0)
	writeSelectorKey(&b, t.LabelSelector)
	extra := labelKeyRequirements(p.Labels, t.MatchLabelKeys, selection.In)
	extra = append(extra, labelKeyRequirements(p.Labels, t.MismatchLabelKeys, selection.NotIn)...)
	for _, r := range extra {
		b.WriteByte(0)
		b.WriteString(r.String())
	}
	key := b.String()
	if ct := in.terms[key]; ct != nil {
		return ct
	}
	topo := in.topology(t.TopologyKey)
	ct := &term{
		sel:        selectorOf(t.LabelSelector, extra),
		namespaces: namespaces,
		topo:       topo,
		weight:     weight,
		seen:       make([]uint32, topo.n),
		hseen:      make([]uint32, topo.n),
	}
	if weight != 0 {
		ct.count = make([]int64, topo.n)
		ct.hcount = make([]int64, topo.n)
	}
	in.terms[key] = ct
	return ct
}

// writeSelectorKey writes a canonical text of sel: equal selectors give
// equal texts.
func writeSelectorKey(b *strings.Builder, sel *metav1.LabelSelector) {
	if sel == nil {
		b.WriteString("<nil>")
		return
	}
	for _, k := range sortedKeys(sel.MatchLabels) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(sel.MatchLabels[k])
		b.WriteByte(';')
	}
	for _, e := range sel.MatchExpressions {
		b.WriteString(e.Key)
		b.WriteByte(' ')
		b.WriteString(string(e.Operator))
		b.WriteByte(' ')
		b.WriteString(strings.Join(e.Values, ","))
		b.WriteByte(';')
	}
}

// labelKeyRequirements turns matchLabelKeys (op In) or mismatchLabelKeys
// (op NotIn) into requirements on the values the pod's own labels have, as
// Kubernetes does; a key the pod does not carry is ignored.
func labelKeyRequirements(podLabels map[string]string, keys []string, op selection.Operator) []labels.Requirement {
	var out []labels.Requirement
	for _, k := range keys {
		v, ok := podLabels[k]
		if !ok {
			continue
		}
		if r, err := labels.NewRequirement(k, op, []string{v}); err == nil {
			out = append(out, *r)
		}
	}
	return out
}

// selectorOf compiles sel plus extra requirements. A nil selector selects
// nothing, an empty one everything; an invalid one (which validation
// refuses) nothing.
func selectorOf(sel *metav1.LabelSelector, extra []labels.Requirement) labels.Selector {
	if sel == nil {
		return labels.Nothing()
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return labels.Nothing()
	}
	if len(extra) > 0 {
		s = s.Add(extra...)
	}
	return s
}

// selects reports whether the term selects the pods of group g.
func (t *term) selects(in *interPod, g int32) bool {
	for int(g) >= len(t.match) {
		t.match = append(t.match, 0)
	}
	switch t.match[g] {
	case 1:
		return true
	case 2:
		return false
	}
	grp := in.groups[g]
	ok := slices.Contains(t.namespaces, grp.ns) && t.sel.Matches(grp.labels)
	t.match[g] = 2
	if ok {
		t.match[g] = 1
	}
	return ok
}

// place records that the pod r describes now runs on node n.
func (in *interPod) place(n int, r *rules) {
	g := in.groups[r.group]
	g.nodes[int32(n)]++
	g.total++
	for _, t := range r.anti {
		if t.holders == nil {
			t.holders = map[int32]int32{}
			in.antiHolders = append(in.antiHolders, t)
		}
		t.holders[int32(n)]++
	}
	for _, t := range r.preferredTerms {
		if t.holders == nil {
			t.holders = map[int32]int32{}
			in.prefHolders = append(in.prefHolders, t)
		}
		t.holders[int32(n)]++
	}
}

// prepare marks, for the pod r describes, the domains that hold pods its
// terms select and those that hold pods whose terms select it.
func (in *interPod) prepare(r *rules) {
	in.gen++
	gen := in.gen
	anyMatch := false
	for _, t := range r.affinity {
		if in.markSelected(t, gen) {
			anyMatch = true
		}
	}
	// As in Kubernetes: when no pod anywhere matches the pod's required
	// affinity and the pod matches its own terms, it may go anywhere (else
	// the first replica of a self-affine group could never start).
	r.affinityIgnored = false
	if len(r.affinity) > 0 && !anyMatch {
		r.affinityIgnored = true
		for _, t := range r.affinity {
			if !t.selects(in, r.group) {
				r.affinityIgnored = false
			}
		}
	}
	for _, t := range r.anti {
		in.markSelected(t, gen)
	}
	for _, t := range r.preferredTerms {
		in.countSelected(t, gen)
	}
	r.blockers = r.blockers[:0]
	for _, t := range in.antiHolders {
		if t.selects(in, r.group) {
			r.blockers = append(r.blockers, t)
			for n := range t.holders {
				if d := t.topo.domain[n]; d >= 0 {
					t.hseen[d] = gen
				}
			}
		}
	}
	r.scorers = r.scorers[:0]
	for _, t := range in.prefHolders {
		if t.selects(in, r.group) {
			r.scorers = append(r.scorers, t)
			for n, k := range t.holders {
				if d := t.topo.domain[n]; d >= 0 {
					if t.hseen[d] != gen {
						t.hseen[d], t.hcount[d] = gen, 0
					}
					t.hcount[d] += int64(k)
				}
			}
		}
	}
	for _, s := range r.spread {
		in.prepareSpread(r, s, gen)
	}
}

// markSelected stamps the domains holding pods t selects; it reports
// whether t selects any placed pod at all.
func (in *interPod) markSelected(t *term, gen uint32) bool {
	found := false
	for g, grp := range in.groups {
		if grp.total == 0 || !t.selects(in, int32(g)) {
			continue
		}
		found = true
		for n := range grp.nodes {
			if d := t.topo.domain[n]; d >= 0 {
				t.seen[d] = gen
			}
		}
	}
	return found
}

// countSelected counts, per domain, the pods t selects.
func (in *interPod) countSelected(t *term, gen uint32) {
	for g, grp := range in.groups {
		if grp.total == 0 || !t.selects(in, int32(g)) {
			continue
		}
		for n, k := range grp.nodes {
			if d := t.topo.domain[n]; d >= 0 {
				if t.seen[d] != gen {
					t.seen[d], t.count[d] = gen, 0
				}
				t.count[d] += int64(k)
			}
		}
	}
}

// check runs the PodTopologySpread and InterPodAffinity filters on node n.
func (in *interPod) check(r *rules, n int) failure {
	gen := in.gen
	for _, s := range r.spread {
		if f := s.check(n, gen); f != fits {
			return f
		}
	}
	if !r.affinityIgnored {
		for _, t := range r.affinity {
			if d := t.topo.domain[n]; d < 0 || t.seen[d] != gen {
				return failPodAffinity
			}
		}
	}
	for _, t := range r.anti {
		if d := t.topo.domain[n]; d >= 0 && t.seen[d] == gen {
			return failPodAnti
		}
	}
	for _, t := range r.blockers {
		if d := t.topo.domain[n]; d >= 0 && t.hseen[d] == gen {
			return failExistingAnti
		}
	}
	return fits
}

// scores reports whether inter-pod scores apply to r.
func (in *interPod) scores(r *rules) bool {
	if len(r.preferredTerms) > 0 || len(r.scorers) > 0 {
		return true
	}
	for _, s := range r.spread {
		if !s.hard {
			return true
		}
	}
	return false
}

// score fills podAff and spread for the feasible nodes, normalized and
// weighted: preferred (anti-)affinity as kube-scheduler's InterPodAffinity
// scores it (each selected pod in the node's domain adds the term's weight,
// or subtracts it for anti-affinity; placed pods' preferred terms that
// select this pod count too), and ScheduleAnyway spread constraints (fewer
// selected pods in the node's domains is better; a node without the
// topology label gets nothing).
func (in *interPod) score(r *rules, feasible []int32, podAff, spread []float64) {
	gen := in.gen
	if len(r.preferredTerms) > 0 || len(r.scorers) > 0 {
		lo, hi := int64(1<<62), int64(-1<<62)
		raw := in.raw(len(feasible))
		for i, n := range feasible {
			var s int64
			for _, t := range r.preferredTerms {
				if d := t.topo.domain[n]; d >= 0 && t.seen[d] == gen {
					s += t.weight * t.count[d]
				}
			}
			for _, t := range r.scorers {
				if d := t.topo.domain[n]; d >= 0 && t.hseen[d] == gen {
					s += t.weight * t.hcount[d]
				}
			}
			raw[i] = s
			lo, hi = min(lo, s), max(hi, s)
		}
		if hi > lo {
			for i, n := range feasible {
				podAff[n] = weightPodAffinity * float64(raw[i]-lo) / float64(hi-lo)
			}
		}
	}
	soft := false
	for _, s := range r.spread {
		if !s.hard {
			soft = true
		}
	}
	if !soft {
		return
	}
	lo, hi := int64(1<<62), int64(-1)
	raw := in.raw(len(feasible))
	for i, n := range feasible {
		var sum int64
		for _, s := range r.spread {
			if s.hard {
				continue
			}
			d := s.topo.domain[n]
			if d < 0 {
				sum = -1
				break
			}
			if s.pgen[d] == gen {
				sum += int64(s.cnt[d])
			}
		}
		raw[i] = sum
		if sum >= 0 {
			lo, hi = min(lo, sum), max(hi, sum)
		}
	}
	for i, n := range feasible {
		switch {
		case raw[i] < 0:
			spread[n] = 0
		case hi > lo:
			spread[n] = weightSpread * float64(hi-raw[i]) / float64(hi-lo)
		default:
			spread[n] = weightSpread
		}
	}
}
