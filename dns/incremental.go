package dns

import (
	"maps"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"

	"bosun/kube"
)

// Builder produces successive Indexes from successive snapshots, recomputing
// only the names of the Services whose inputs changed: the Service itself, or
// a pod it selects (added, removed, changed, or relabelled into or out of
// it) when it answers with its endpoints (a Service with a virtual IP
// answers the same whatever its pods). Every other name, and its records,
// is shared with the previous Index.
// The Index it returns answers exactly as BuildIndex of the same input.
//
// A Builder is not safe for concurrent use: it belongs to the goroutine that
// follows the store (the Indexes it returns are immutable and may be read by
// any goroutine). Pods and Services are identified by namespace and name, so
// each must appear at most once in an input, as in the store.
type Builder struct {
	domain string
	ttl    uint32
	soa    []mdns.RR

	prev *Index // nil before the first Update and after Reset

	gen     uint64 // Update count, marks the pods seen by this Update
	pods    map[objKey]*podState
	order   []*podState // pods in the previous input's order
	scratch []*podState
	byLabel map[labelKey]map[*podState]struct{} // namespace, label pair -> pods

	groups     map[string]*group     // by owner name (lowercased service name)
	bySelector map[labelKey][]string // namespace, selector pair -> owners
	nsCount    map[string]int        // <ns>.svc.<domain> -> groups below it
}

// UpdateStats says what an Update did; the server logs it.
type UpdateStats struct {
	// Full is true when nothing was kept from a previous Index.
	Full bool
	// PodsChanged counts pods added, removed, or changed in a way DNS sees.
	PodsChanged int
	// Recomputed counts the Services whose names were recomputed
	// (Services whose names differ only in case count once).
	Recomputed int
	// Services counts the Services with DNS names.
	Services int
}

type objKey struct{ ns, name string }

type labelKey struct{ ns, k, v string }

type podState struct {
	pod *corev1.Pod
	gen uint64
}

// group is the Services sharing one owner name (names are case-insensitive,
// so "Web" and "web" of one namespace are one name), in input order, and
// the names they own: the owner name, its SRV names, their targets and the
// empty non-terminals between them. No two groups own the same name; the
// names above a group (<ns>.svc.<domain> and up) are shared.
type group struct {
	owner    string
	nsName   string // <ns>.svc.<domain>, the parent of owner
	services []*corev1.Service
	names    nameSet
}

// NewBuilder returns a Builder for domain; opts are those of BuildIndex.
func NewBuilder(domain string, opts ...IndexOption) *Builder {
	cfg := indexConfig{ttl: DefaultTTL}
	for _, o := range opts {
		o(&cfg)
	}
	domain = mdns.CanonicalName(domain)
	b := &Builder{domain: domain, ttl: cfg.ttl, soa: soaRecords(domain, cfg.ttl)}
	b.Reset()
	return b
}

// Reset forgets everything, so that the next Update computes every name
// again (the first load, and the periodic resync, which also bounds the
// cost of any mistake in following changes).
func (b *Builder) Reset() {
	b.prev = nil
	b.pods = make(map[objKey]*podState)
	b.order, b.scratch = nil, nil
	b.byLabel = make(map[labelKey]map[*podState]struct{})
	b.groups = make(map[string]*group)
	b.bySelector = make(map[labelKey][]string)
	b.nsCount = make(map[string]int)
}

// podChange is a pod as it was and as it is (nil: absent).
type podChange struct{ old, new *corev1.Pod }

// Update returns the Index of services and pods, computed from the previous
// one. Pods are compared by pointer first (the cache's pods are immutable),
// then by the fields DNS reads (see dnsEqual), so that copies of an
// unchanged pod cost no recomputation either.
func (b *Builder) Update(services []corev1.Service, pods []*corev1.Pod) (*Index, UpdateStats) {
	stats := UpdateStats{Full: b.prev == nil}
	changes := b.diffPods(pods)
	stats.PodsChanged = len(changes)

	// Group the Services by owner name, in input order; compare each group
	// with the previous one.
	var skipped []string
	byOwner := make(map[string][]*corev1.Service, len(b.groups))
	var owners []string
	for i := range services {
		svc := &services[i]
		owner, ok := serviceName(svc, b.domain)
		if !ok {
			skipped = append(skipped, svc.Namespace+"/"+svc.Name+": name or namespace is not a DNS label")
			continue
		}
		skipped = serviceSkips(svc, skipped)
		if _, ok := byOwner[owner]; !ok {
			owners = append(owners, owner)
		}
		byOwner[owner] = append(byOwner[owner], svc)
	}
	stats.Services = len(byOwner)

	dirty := make(map[string]bool)
	var removed []*group
	for owner, g := range b.groups {
		if _, ok := byOwner[owner]; !ok {
			removed = append(removed, g)
		}
	}
	for _, owner := range owners {
		g := b.groups[owner]
		if g == nil || !slices.EqualFunc(g.services, byOwner[owner], sameService) {
			dirty[owner] = true
		}
	}
	if len(removed) > 0 || len(dirty) > 0 {
		// Selectors moved: index them again (a few hundred entries). A
		// Service with a virtual IP answers the same whatever its pods:
		// pods never dirty it.
		clear(b.bySelector)
		for _, owner := range owners {
			for _, svc := range byOwner[owner] {
				if hasClusterIP(svc) {
					continue
				}
				for k, v := range svc.Spec.Selector {
					lk := labelKey{svc.Namespace, k, v}
					b.bySelector[lk] = append(b.bySelector[lk], owner)
				}
			}
		}
	}

	// A changed pod dirties the groups that select it, before or after.
	for _, c := range changes {
		for _, p := range [2]*corev1.Pod{c.old, c.new} {
			if p == nil {
				continue
			}
			for k, v := range p.Labels {
				for _, owner := range b.bySelector[labelKey{p.Namespace, k, v}] {
					if dirty[owner] {
						continue
					}
					for _, svc := range byOwner[owner] {
						if svc.Namespace == p.Namespace && !hasClusterIP(svc) && kube.Selects(svc.Spec.Selector, p.Labels) {
							dirty[owner] = true
							break
						}
					}
				}
			}
		}
	}
	stats.Recomputed = len(dirty)

	if b.prev != nil && len(dirty) == 0 && len(removed) == 0 {
		if !slices.Equal(skipped, b.prev.Skipped) { // a Service without DNS names came or went
			b.prev = &Index{domain: b.domain, soa: b.soa, names: b.prev.names, Skipped: skipped}
		}
		return b.prev, stats
	}

	// Copy on write: the shards of the previous Index are shared until
	// written, and written only once copied.
	var names shards
	var copied [nameShards]bool
	if b.prev != nil {
		names = b.prev.names
	}
	shard := func(name string) nameSet {
		i := shardOf(name, len(b.domain))
		if !copied[i] {
			if names[i] == nil {
				names[i] = make(nameSet)
			} else {
				names[i] = maps.Clone(names[i])
			}
			copied[i] = true
		}
		return names[i]
	}
	if b.prev == nil {
		shard(b.domain)[b.domain] = &entry{}
	}
	for _, g := range removed {
		b.dropGroup(shard, g)
		delete(b.groups, g.owner)
	}
	for _, owner := range owners {
		if !dirty[owner] {
			continue
		}
		if old := b.groups[owner]; old != nil {
			b.dropGroup(shard, old)
		}
		g := b.computeGroup(owner, byOwner[owner])
		b.groups[owner] = g
		for name, e := range g.names {
			shard(name)[name] = e
		}
		if b.nsCount[g.nsName]++; b.nsCount[g.nsName] == 1 {
			shard(g.nsName)[g.nsName] = &entry{}
		}
	}
	svcDomain := "svc." + b.domain
	if len(b.groups) > 0 {
		if m := shard(svcDomain); m[svcDomain] == nil {
			m[svcDomain] = &entry{}
		}
	} else {
		delete(shard(svcDomain), svcDomain)
	}

	ix := &Index{domain: b.domain, soa: b.soa, names: names, Skipped: skipped}
	b.prev = ix
	return ix, stats
}

// dropGroup removes the names of g from the shards, and its namespace name when
// g was the last group below it.
func (b *Builder) dropGroup(shard func(name string) nameSet, g *group) {
	for name := range g.names {
		delete(shard(name), name)
	}
	if b.nsCount[g.nsName]--; b.nsCount[g.nsName] <= 0 {
		delete(b.nsCount, g.nsName)
		delete(shard(g.nsName), g.nsName)
	}
}

// computeGroup computes the names of the services sharing owner, as
// BuildIndex does, from the pods' label index.
func (b *Builder) computeGroup(owner string, services []*corev1.Service) *group {
	g := &group{
		owner:    owner,
		nsName:   owner[strings.IndexByte(owner, '.')+1:],
		services: services,
		names:    make(nameSet),
	}
	for _, svc := range services {
		var eps []endpoint
		if !hasClusterIP(svc) {
			eps = endpoints(svc, b.candidates(svc))
		}
		g.names.addService(owner, svc, eps, b.ttl)
	}
	for name := range g.names {
		for n := name; n != owner; {
			n = n[strings.IndexByte(n, '.')+1:]
			g.names.add(n)
		}
	}
	g.names.clip()
	return g
}

// candidates returns the pods carrying the rarest label pair of svc's
// selector (endpoints checks the whole selector).
func (b *Builder) candidates(svc *corev1.Service) []*corev1.Pod {
	var best map[*podState]struct{}
	first := true
	for k, v := range svc.Spec.Selector {
		if s := b.byLabel[labelKey{svc.Namespace, k, v}]; first || len(s) < len(best) {
			best, first = s, false
		}
	}
	out := make([]*corev1.Pod, 0, len(best))
	for st := range best {
		out = append(out, st.pod)
	}
	return out
}

// diffPods brings the pod state to pods and returns the pods that changed
// for DNS. The common case, the same pods in the same order as last time,
// costs a key comparison per pod and no map lookup.
func (b *Builder) diffPods(pods []*corev1.Pod) []podChange {
	b.gen++
	var changes []podChange
	next := b.scratch[:0]
	for i, p := range pods {
		var st *podState
		if i < len(b.order) {
			// The same pointer needs no look at the pod itself.
			if o := b.order[i]; o.pod == p || o.pod.Namespace == p.Namespace && o.pod.Name == p.Name {
				st = o
			}
		}
		if st == nil {
			st = b.pods[objKey{p.Namespace, p.Name}]
		}
		switch {
		case st == nil:
			st = &podState{pod: p}
			b.pods[objKey{p.Namespace, p.Name}] = st
			b.indexLabels(st, p.Labels)
			changes = append(changes, podChange{new: p})
		case st.pod != p:
			if !dnsEqual(st.pod, p) {
				changes = append(changes, podChange{old: st.pod, new: p})
				if !maps.Equal(st.pod.Labels, p.Labels) {
					b.unindexLabels(st, st.pod.Labels)
					b.indexLabels(st, p.Labels)
				}
			}
			st.pod = p
		}
		st.gen = b.gen
		next = append(next, st)
	}
	if len(b.pods) > len(pods) {
		for k, st := range b.pods {
			if st.gen != b.gen {
				changes = append(changes, podChange{old: st.pod})
				b.unindexLabels(st, st.pod.Labels)
				delete(b.pods, k)
			}
		}
	}
	b.order, b.scratch = next, b.order
	clear(b.scratch) // drop pointers to pods no longer present
	return changes
}

func (b *Builder) indexLabels(st *podState, labels map[string]string) {
	for k, v := range labels {
		lk := labelKey{st.pod.Namespace, k, v}
		s := b.byLabel[lk]
		if s == nil {
			s = make(map[*podState]struct{})
			b.byLabel[lk] = s
		}
		s[st] = struct{}{}
	}
}

func (b *Builder) unindexLabels(st *podState, labels map[string]string) {
	for k, v := range labels {
		lk := labelKey{st.pod.Namespace, k, v}
		if s := b.byLabel[lk]; s != nil {
			delete(s, st)
			if len(s) == 0 {
				delete(b.byLabel, lk)
			}
		}
	}
}

// sameService reports whether a and b have the same DNS names and records
// given the same pods: everything BuildIndex reads of a Service.
func sameService(a, b *corev1.Service) bool {
	if a == b {
		return true
	}
	return a.Namespace == b.Namespace && a.Name == b.Name &&
		a.Spec.PublishNotReadyAddresses == b.Spec.PublishNotReadyAddresses &&
		a.Spec.ClusterIP == b.Spec.ClusterIP && slices.Equal(a.Spec.ClusterIPs, b.Spec.ClusterIPs) &&
		maps.Equal(a.Spec.Selector, b.Spec.Selector) &&
		slices.EqualFunc(a.Spec.Ports, b.Spec.Ports, func(x, y corev1.ServicePort) bool {
			return x.Name == y.Name && x.Protocol == y.Protocol && x.Port == y.Port && x.TargetPort == y.TargetPort
		})
}

// dnsEqual reports whether a and b, the same pod (namespace and name), give
// the same DNS records: everything endpoints, kube.EndpointPort,
// kube.EndpointHostname and kube.EndpointGroup read.
func dnsEqual(a, b *corev1.Pod) bool {
	if a == b {
		return true
	}
	return a.UID == b.UID &&
		a.Status.PodIP == b.Status.PodIP &&
		a.Spec.Hostname == b.Spec.Hostname && a.Spec.Subdomain == b.Spec.Subdomain &&
		kube.PodReady(a) == kube.PodReady(b) &&
		kube.PodFinished(a) == kube.PodFinished(b) &&
		(a.DeletionTimestamp == nil) == (b.DeletionTimestamp == nil) &&
		maps.Equal(a.Labels, b.Labels) &&
		a.Annotations[kube.AnnotationWeight] == b.Annotations[kube.AnnotationWeight] &&
		slices.EqualFunc(a.Spec.Containers, b.Spec.Containers, func(x, y corev1.Container) bool {
			return slices.EqualFunc(x.Ports, y.Ports, func(p, q corev1.ContainerPort) bool {
				return p.Name == q.Name && p.Protocol == q.Protocol && p.ContainerPort == q.ContainerPort
			})
		})
}
