package proxy

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/kube"
)

const (
	// LabelTrack is the pod label that names a pod's endpoint group
	// (kube.EndpointGroup).
	LabelTrack = kube.LabelTrack
	// AnnotationWeight is the pod annotation that gives its endpoint group's
	// weight (kube.EndpointGroup).
	AnnotationWeight = kube.AnnotationWeight
)

// PortsStats says what a PortsBuilder.Update did; the runner logs it.
type PortsStats struct {
	// Full is true when nothing was kept from a previous result.
	Full bool
	// PodsChanged counts pods that came, went or changed (a changed pod
	// counts twice: its old and its new version).
	PodsChanged int
	// Recomputed counts the Services whose ports were computed anew
	// (added, changed, or selecting a pod that changed), Changed those of
	// them whose ports differ from before, Removed the Services gone. The
	// result is the previous one when Changed and Removed are 0.
	Recomputed, Changed, Removed int
	// Which names the Services that changed or went (namespace/name,
	// unordered), but for a full computation, where every Service is new.
	Which []string
	// Services counts the Services with a virtual IP; Ports and Endpoints
	// the service ports and endpoints of the result.
	Services, Ports, Endpoints int
	// Skipped says which service ports were left out, and why (see
	// Ports).
	Skipped []string
}

// Ports returns the service ports of services with their ready endpoints
// among pods, computed from nothing. It is the definition a PortsBuilder
// follows incrementally; see PortsBuilder.Update for the rules.
func Ports(services []corev1.Service, pods []*corev1.Pod) ([]ServicePort, []string) {
	var out []ServicePort
	for i := range services {
		out = append(out, servicePorts(&services[i], pods)...)
	}
	return dropConflicts(out, nil)
}

// dropConflicts leaves out the service ports that repeat an earlier one's
// key (a port name twice in one Service), virtual IP, port and protocol
// (two Services given one address), or node port and protocol, and says
// which: the rules could not tell them apart. Validation and allocation
// keep them from the store; this keeps one mistake from holding every
// other Service's rules up. It works in place; seen may be reused between
// calls (nil: a new one).
func dropConflicts(ports []ServicePort, seen *conflictIndex) ([]ServicePort, []string) {
	if seen == nil {
		seen = &conflictIndex{}
	}
	seen.reset(len(ports))
	var skipped []string
	out := ports[:0]
	for i := range ports {
		sp := &ports[i]
		key := portKey{sp.Namespace, sp.Name, sp.PortName, sp.Protocol}
		v := vipKey{sp.ClusterIP, sp.Port, sp.Protocol}
		np := vipKey{port: sp.NodePort, proto: sp.Protocol}
		if _, dup := seen.keys[key]; dup {
			skipped = append(skipped, fmt.Sprintf("%s/%s: port %q/%s is declared twice", sp.Namespace, sp.Name, sp.PortName, sp.Protocol))
			continue
		}
		if j, dup := seen.vips[v]; dup {
			skipped = append(skipped, fmt.Sprintf("%s/%s: %s:%d/%s is also %s/%s's", sp.Namespace, sp.Name, sp.ClusterIP, sp.Port, sp.Protocol, out[j].Namespace, out[j].Name))
			continue
		}
		if j, dup := seen.nodePorts[np]; dup && sp.NodePort != 0 {
			skipped = append(skipped, fmt.Sprintf("%s/%s: node port %d/%s is also %s/%s's", sp.Namespace, sp.Name, sp.NodePort, sp.Protocol, out[j].Namespace, out[j].Name))
			continue
		}
		seen.keys[key] = struct{}{}
		seen.vips[v] = len(out)
		if sp.NodePort != 0 {
			seen.nodePorts[np] = len(out)
		}
		out = append(out, *sp)
	}
	if len(out) == 0 {
		out = nil
	}
	return out, skipped
}

// conflictIndex is dropConflicts' memory of the ports it kept.
type conflictIndex struct {
	keys      map[portKey]struct{}
	vips      map[vipKey]int // -> index in the output
	nodePorts map[vipKey]int
}

type portKey struct {
	ns, name, port string
	proto          corev1.Protocol
}

type vipKey struct {
	addr  netip.Addr
	port  uint16
	proto corev1.Protocol
}

func (c *conflictIndex) reset(n int) {
	if c.keys == nil {
		c.keys, c.vips, c.nodePorts = make(map[portKey]struct{}, n), make(map[vipKey]int, n), map[vipKey]int{}
		return
	}
	clear(c.keys)
	clear(c.vips)
	clear(c.nodePorts)
}

// servicePorts computes the ports of svc with its ready endpoints among
// candidates (which may hold pods svc does not select: they are checked).
func servicePorts(svc *corev1.Service, candidates []*corev1.Pod) []ServicePort {
	vip, ok := clusterIP(svc)
	if !ok {
		return nil
	}
	var affinity time.Duration
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		secs := int32(corev1.DefaultClientIPServiceAffinitySeconds)
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil && *c.ClientIP.TimeoutSeconds > 0 {
			secs = *c.ClientIP.TimeoutSeconds
		}
		affinity = time.Duration(secs) * time.Second
	}
	// The ready endpoints, with their addresses parsed once.
	type member struct {
		pod *corev1.Pod
		ip  netip.Addr
	}
	var ready []member
	for _, p := range candidates {
		if isEP, ok := kube.Endpoint(svc, p); !isEP || !ok {
			continue
		}
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || !ip.Is4() {
			continue // the table is IPv4 (family ip)
		}
		ready = append(ready, member{pod: p, ip: ip})
	}
	nodePorts := svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer
	out := make([]ServicePort, 0, len(svc.Spec.Ports))
	for _, sp := range svc.Spec.Ports {
		proto := cmp.Or(sp.Protocol, corev1.ProtocolTCP)
		if proto != corev1.ProtocolTCP && proto != corev1.ProtocolUDP || !validPort(sp.Port) {
			continue
		}
		port := ServicePort{
			Namespace: svc.Namespace, Name: svc.Name, PortName: sp.Name, Protocol: proto,
			ClusterIP: vip, Port: uint16(sp.Port), AffinityTimeout: affinity,
		}
		if nodePorts && validPort(sp.NodePort) {
			port.NodePort = uint16(sp.NodePort)
		}
		// Groups by track: their endpoints and the smallest weight their
		// pods give.
		byName := map[string]*Group{}
		for _, m := range ready {
			target, ok := kube.EndpointPort(sp, m.pod)
			if !ok {
				continue // a named target port this pod does not declare
			}
			name, w := kube.EndpointGroup(m.pod)
			g := byName[name]
			if g == nil {
				g = &Group{Name: name, Weight: w}
				byName[name] = g
			}
			g.Weight = min(g.Weight, w)
			g.Endpoints = append(g.Endpoints, Endpoint{IP: m.ip, Port: target})
		}
		// The same address and port twice (a pod listed under two keys for
		// a moment) is one endpoint, in the first group by name.
		var seen map[Endpoint]bool
		if len(byName) > 1 {
			seen = map[Endpoint]bool{}
		}
		for _, name := range slices.Sorted(maps.Keys(byName)) {
			g := byName[name]
			slices.SortFunc(g.Endpoints, compareEndpoints)
			g.Endpoints = slices.Compact(g.Endpoints)
			if seen != nil {
				g.Endpoints = slices.DeleteFunc(g.Endpoints, func(e Endpoint) bool { return seen[e] })
				for _, e := range g.Endpoints {
					seen[e] = true
				}
			}
			if len(g.Endpoints) > 0 {
				g.Endpoints = slices.Clip(g.Endpoints)
				port.Groups = append(port.Groups, *g)
			}
		}
		out = append(out, port)
	}
	return slices.Clip(out)
}

// clusterIP returns the Service's virtual IP when it has one: an IPv4
// address, not "" (not allocated yet) and not None (headless).
func clusterIP(svc *corev1.Service) (netip.Addr, bool) {
	ip := svc.Spec.ClusterIP
	if ip == "" || ip == corev1.ClusterIPNone {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}

func validPort(p int32) bool { return p > 0 && p <= 65535 }

// PortsBuilder produces successive results of Ports from successive
// snapshots of the store, recomputing only the Services whose inputs
// changed: the Service itself, or a pod it selects or selected (added,
// removed, changed, or relabelled into or out of it). The ports of every
// other Service are shared with the previous result. Its result always
// equals Ports of the same input, which a property test checks after every
// step of random changes.
//
// Pods are told apart by pointer: the store's cache publishes a pod
// changed in any way as a new *corev1.Pod and never modifies one it
// published, so the same pointer is the same pod (the common case, the
// same pods in the same order as last time, costs one comparison per pod).
// A caller that modifies a pod it passed must pass a new pointer instead.
//
// A PortsBuilder is not safe for concurrent use: it belongs to the
// goroutine that follows the store. The ServicePorts it returns are shared
// with later results and must not be modified.
type PortsBuilder struct {
	gen     uint64
	pods    map[*corev1.Pod]*portsPod
	order   []*corev1.Pod // the previous input's pods, in its order
	scratch []*corev1.Pod
	byLabel map[labelPair]map[*portsPod]struct{}

	services   map[svcKey]*portsService
	svcInput   []corev1.Service // the previous input (shared, not modified)
	svcOrder   []*portsService  // the previous result's Services, in input order
	bySelector map[labelPair][]*portsService

	out []ServicePort
	// claims counts the service ports (before conflicts are dropped) that
	// claim each key, virtual IP and port, and node port; conflicts counts
	// those claimed more than once. Without any, dropConflicts has nothing
	// to do and is skipped.
	claims    map[claim]int
	conflicts int
	seen      conflictIndex
	stats     PortsStats // of the previous result: Services, Ports, Endpoints, Skipped
	full      bool       // nothing computed yet
}

type portsPod struct {
	pod *corev1.Pod
	gen uint64
}

type svcKey struct{ ns, name string }

type labelPair struct{ ns, k, v string }

type portsService struct {
	svc   *corev1.Service
	ports []ServicePort
	gen   uint64
}

// NewPortsBuilder returns a PortsBuilder whose first Update computes
// everything.
func NewPortsBuilder() *PortsBuilder {
	b := &PortsBuilder{}
	b.Reset()
	return b
}

// Reset forgets everything, so that the next Update computes every port
// again.
func (b *PortsBuilder) Reset() {
	b.pods = map[*corev1.Pod]*portsPod{}
	b.order, b.scratch = nil, nil
	b.byLabel = map[labelPair]map[*portsPod]struct{}{}
	b.services = map[svcKey]*portsService{}
	b.svcInput, b.svcOrder = nil, nil
	b.bySelector = map[labelPair][]*portsService{}
	b.out, b.stats, b.full = nil, PortsStats{}, true
	b.claims, b.conflicts = map[claim]int{}, 0
}

// claim is what two service ports must not share: a key (kind 0), a
// virtual IP and port (1), a node port (2), with the protocol.
type claim struct {
	kind uint8
	key  portKey
	vip  vipKey
}

// claim adds (delta +1) or removes (-1) the claims of ports.
func (b *PortsBuilder) claim(ports []ServicePort, delta int) {
	for i := range ports {
		sp := &ports[i]
		cs := [3]claim{
			{kind: 0, key: portKey{sp.Namespace, sp.Name, sp.PortName, sp.Protocol}},
			{kind: 1, vip: vipKey{sp.ClusterIP, sp.Port, sp.Protocol}},
			{kind: 2, vip: vipKey{port: sp.NodePort, proto: sp.Protocol}},
		}
		n := len(cs)
		if sp.NodePort == 0 {
			n--
		}
		for _, c := range cs[:n] {
			before := b.claims[c]
			after := before + delta
			if after == 0 {
				delete(b.claims, c)
			} else {
				b.claims[c] = after
			}
			switch {
			case before <= 1 && after > 1:
				b.conflicts++
			case before > 1 && after <= 1:
				b.conflicts--
			}
		}
	}
}

// Update returns the service ports of services (the store's, which name
// each Service once) and their ready endpoints among pods, as Ports does
// (stats.Skipped holds what Ports also returns):
//
//   - Only Services with a ClusterIP (an IPv4 address, not "" and not
//     None) have ports, one per spec.ports entry of protocol TCP or UDP, in
//     the order of services and then of their ports.
//   - Endpoints are the pods kube.Endpoint calls ready, with an IPv4
//     address, at the port kube.EndpointPort resolves; a pod that does not
//     declare a named target port is left out of that port only. The same
//     address and port twice counts once.
//   - Endpoints are grouped by the pod label bosun.dev/track (absent: the
//     group ""), groups sorted by name, endpoints by address and port (an
//     endpoint in two groups, which only a pod listed twice with different
//     labels could give, is in the first only). A
//     group's Weight is its pods' annotation bosun.dev/weight (absent, or
//     not a non-negative integer: 0); when its pods disagree (in the middle
//     of a rollout that changes it), the smallest weight counts, so a group
//     never takes more traffic than every one of its pods asks for.
//   - NodePort is the port's nodePort for Services of type NodePort;
//     AffinityTimeout is set for sessionAffinity ClientIP, from
//     sessionAffinityConfig.clientIP.timeoutSeconds or 10800 s (Kubernetes'
//     default).
//   - A service port whose name, virtual IP and port, or node port repeats
//     an earlier one's (in the order above) is left out and named in
//     stats.Skipped.
func (b *PortsBuilder) Update(services []corev1.Service, pods []*corev1.Pod) ([]ServicePort, PortsStats) {
	b.gen++
	stats := PortsStats{Full: b.full}
	changed := b.diffPods(pods)
	stats.PodsChanged = len(changed)

	dirty := map[*portsService]bool{}
	if !sameInput(services, b.svcInput) {
		b.diffServices(services, dirty, &stats)
	}
	for _, p := range changed {
		for k, v := range p.Labels {
			for _, s := range b.bySelector[labelPair{p.Namespace, k, v}] {
				if !dirty[s] && kube.Selects(s.svc.Spec.Selector, p.Labels) {
					dirty[s] = true
				}
			}
		}
	}
	stats.Recomputed = len(dirty)
	for s := range dirty {
		ports := servicePorts(s.svc, b.candidates(s.svc))
		if slices.EqualFunc(ports, s.ports, func(x, y ServicePort) bool { return equalPorts(&x, &y) }) {
			continue // a pod changed in a way the rules do not see
		}
		stats.Changed++
		if !stats.Full {
			stats.Which = append(stats.Which, s.svc.Namespace+"/"+s.svc.Name)
		}
		b.claim(s.ports, -1)
		s.ports = ports
		b.claim(s.ports, +1)
	}
	if b.full || stats.Changed > 0 || stats.Removed > 0 {
		b.out = make([]ServicePort, 0, len(b.out)+len(dirty))
		b.stats = PortsStats{}
		for _, s := range b.svcOrder {
			if len(s.ports) > 0 {
				b.stats.Services++
			}
			b.out = append(b.out, s.ports...)
		}
		if b.conflicts > 0 {
			// Rare: which ports go depends on the order of all of them.
			b.out, b.stats.Skipped = dropConflicts(b.out, &b.seen)
		} else if len(b.out) == 0 {
			b.out = nil
		}
		for i := range b.out {
			for _, g := range b.out[i].Groups {
				b.stats.Endpoints += len(g.Endpoints)
			}
		}
		b.stats.Ports = len(b.out)
	}
	b.full = false
	stats.Services, stats.Ports, stats.Endpoints, stats.Skipped = b.stats.Services, b.stats.Ports, b.stats.Endpoints, b.stats.Skipped
	return b.out, stats
}

// sameInput reports whether a and b are the same slice (the cache hands
// out the same list of Services until one changes).
func sameInput(a, b []corev1.Service) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// diffServices brings the Services to services: new and changed ones are
// marked dirty, removed ones dropped; the selector index is rebuilt when
// anything moved.
func (b *PortsBuilder) diffServices(services []corev1.Service, dirty map[*portsService]bool, stats *PortsStats) {
	moved := false
	order := make([]*portsService, 0, len(services))
	for i := range services {
		svc := &services[i]
		k := svcKey{svc.Namespace, svc.Name}
		s := b.services[k]
		switch {
		case s == nil:
			s = &portsService{svc: svc}
			b.services[k] = s
			dirty[s], moved = true, true
		case !sameService(s.svc, svc):
			if !maps.Equal(s.svc.Spec.Selector, svc.Spec.Selector) {
				moved = true
			}
			s.svc = svc
			dirty[s] = true
		default:
			s.svc = svc // the same for the proxy; keep the newest
		}
		s.gen = b.gen
		order = append(order, s)
	}
	if len(b.services) > len(order) {
		for k, s := range b.services {
			if s.gen != b.gen {
				delete(b.services, k)
				b.claim(s.ports, -1)
				stats.Removed++
				if !stats.Full {
					stats.Which = append(stats.Which, k.ns+"/"+k.name)
				}
				moved = true
			}
		}
	}
	b.svcInput, b.svcOrder = services, order
	if moved || stats.Full {
		clear(b.bySelector)
		for _, s := range order {
			for k, v := range s.svc.Spec.Selector {
				lp := labelPair{s.svc.Namespace, k, v}
				b.bySelector[lp] = append(b.bySelector[lp], s)
			}
		}
	}
}

// sameService reports whether a and b, the same Service, have the same
// ports given the same pods: everything servicePorts and kube.Endpoint
// read of a Service.
func sameService(a, b *corev1.Service) bool {
	if a == b {
		return true
	}
	as, bs := &a.Spec, &b.Spec
	return as.ClusterIP == bs.ClusterIP && as.Type == bs.Type &&
		as.PublishNotReadyAddresses == bs.PublishNotReadyAddresses &&
		as.SessionAffinity == bs.SessionAffinity && affinitySeconds(as) == affinitySeconds(bs) &&
		maps.Equal(as.Selector, bs.Selector) &&
		slices.EqualFunc(as.Ports, bs.Ports, func(x, y corev1.ServicePort) bool {
			return x.Name == y.Name && x.Protocol == y.Protocol && x.Port == y.Port &&
				x.TargetPort == y.TargetPort && x.NodePort == y.NodePort
		})
}

func affinitySeconds(s *corev1.ServiceSpec) int32 {
	if c := s.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
		return *c.ClientIP.TimeoutSeconds
	}
	return -1
}

// candidates returns the pods carrying the rarest label pair of svc's
// selector (servicePorts checks the whole selector).
func (b *PortsBuilder) candidates(svc *corev1.Service) []*corev1.Pod {
	var best map[*portsPod]struct{}
	first := true
	for k, v := range svc.Spec.Selector {
		if s := b.byLabel[labelPair{svc.Namespace, k, v}]; first || len(s) < len(best) {
			best, first = s, false
		}
	}
	out := make([]*corev1.Pod, 0, len(best))
	for st := range best {
		out = append(out, st.pod)
	}
	return out
}

// diffPods brings the pod index to pods and returns the pods that came or
// went (a changed pod is a new pointer: its old version went, its new one
// came). The common case, the same pods in the same order as last time but
// a few, compares pointers in two arrays and touches no map but for those
// few.
func (b *PortsBuilder) diffPods(pods []*corev1.Pod) []*corev1.Pod {
	var changed, gone []*corev1.Pod // gone: previous pods not at their place
	inPlace := len(pods) == len(b.order)
	next := b.order
	if !inPlace {
		next = b.scratch[:0]
	}
	for i, p := range pods {
		if i < len(b.order) {
			if o := b.order[i]; o == p {
				if !inPlace {
					next = append(next, p)
				}
				continue
			} else {
				gone = append(gone, o)
			}
		}
		st := b.pods[p]
		if st == nil {
			st = &portsPod{pod: p}
			b.pods[p] = st
			b.index(st)
			changed = append(changed, p)
		}
		st.gen = b.gen // seen away from its place: not gone
		if inPlace {
			next[i] = p
		} else {
			next = append(next, p)
		}
	}
	if len(b.order) > len(pods) {
		gone = append(gone, b.order[len(pods):]...)
	}
	for _, p := range gone {
		// A pod at its place is not in gone; one seen elsewhere has this
		// Update's gen.
		if st := b.pods[p]; st != nil && st.gen != b.gen {
			delete(b.pods, p)
			b.unindex(st)
			changed = append(changed, p)
		}
	}
	if !inPlace {
		b.order, b.scratch = next, b.order
		clear(b.scratch) // drop pointers to pods no longer present
	}
	return changed
}

func (b *PortsBuilder) index(st *portsPod) {
	for k, v := range st.pod.Labels {
		lp := labelPair{st.pod.Namespace, k, v}
		s := b.byLabel[lp]
		if s == nil {
			s = map[*portsPod]struct{}{}
			b.byLabel[lp] = s
		}
		s[st] = struct{}{}
	}
}

func (b *PortsBuilder) unindex(st *portsPod) {
	for k, v := range st.pod.Labels {
		lp := labelPair{st.pod.Namespace, k, v}
		if s := b.byLabel[lp]; s != nil {
			delete(s, st)
			if len(s) == 0 {
				delete(b.byLabel, lp)
			}
		}
	}
}
