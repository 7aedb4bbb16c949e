package ipalloc

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Error is one Service whose addresses cannot be given as asked.
type Error struct {
	Namespace, Name string
	// Field is the JSON path of the field at fault: "spec.clusterIP" or
	// "spec.ports[1].nodePort".
	Field   string
	Message string
}

func (e Error) Error() string {
	return "Service " + e.Namespace + "/" + e.Name + ": " + e.Field + ": " + e.Message
}

// HasClusterIP reports whether svc has a virtual IP set: not empty, not
// headless ("None").
func HasClusterIP(svc *corev1.Service) bool {
	return svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone
}

// Allocate gives every Service of desired that is not headless a ClusterIP
// from cfg.ServiceCIDR, and every port of a NodePort Service a node port
// from cfg.NodePorts, and returns the Services with spec.clusterIP,
// spec.clusterIPs and spec.ports[].nodePort filled (headless ones get
// clusterIPs ["None"]; other types no node ports). desired is not
// modified; the result is in desired's order. It is pure and
// deterministic: the same input gives the same output.
//
// previous is what was given before, most authoritative first (the leader
// passes the last good revision's Services, then the Services stored in
// etcd): a Service's previous values are those of the first list that
// gives it a ClusterIP. The rules, in order:
//
//  1. A Service keeps its previous ClusterIP, and each port (matched by
//     name and protocol) its previous node port, unless the manifest asks
//     for another or the value no longer fits the ranges. So an unrelated
//     change never moves an address, and neither does a restart or a
//     failover: the values are read back from etcd.
//  2. An address or node port a manifest asks for (spec.clusterIP,
//     nodePort) is given when it is in range and free. It is an Error when
//     it is out of range or reserved, or when another Service keeps it or
//     asks for it too (the first by namespace/name gets it).
//  3. Any other Service gets the first free address at or after an offset
//     hashed from namespace/name, wrapping around; a node port likewise
//     from namespace/name/port/protocol (ports of one Service with the
//     same port number and different protocols share one, as in
//     Kubernetes). An address or port of a Service that is no longer
//     desired is free again.
//
// Errors leave their Service as desired has it; the caller rejects the
// revision.
func Allocate(cfg Config, desired []corev1.Service, previous ...[]corev1.Service) ([]corev1.Service, []Error) {
	cfg = cfg.WithDefaults()
	a := &allocation{cfg: cfg, pool: newPool(cfg.ServiceCIDR), prev: map[string]prevService{},
		ipOwner: map[netip.Addr]owner{}, portOwner: map[int32]portOwner{}}
	for rank, list := range previous {
		for i := range list {
			s := &list[i]
			if k := keyOf(s); HasClusterIP(s) {
				if _, seen := a.prev[k]; !seen {
					a.prev[k] = prevService{svc: s, rank: rank}
				}
			}
		}
	}
	out := make([]corev1.Service, len(desired))
	for i := range desired {
		out[i] = desired[i]
		out[i].Spec.Ports = slices.Clone(desired[i].Spec.Ports)
	}
	a.keys = make([]string, len(out))
	order := make([]int, len(out))
	for i := range order {
		order[i] = i
		a.keys[i] = keyOf(&out[i])
	}
	slices.SortStableFunc(order, func(i, j int) int { return strings.Compare(a.keys[i], a.keys[j]) })
	a.clusterIPs(out, order)
	a.nodePorts(out, order)
	slices.SortStableFunc(a.errs, func(x, y Error) int {
		return cmp.Or(strings.Compare(x.Namespace, y.Namespace), strings.Compare(x.Name, y.Name), strings.Compare(x.Field, y.Field))
	})
	return out, a.errs
}

type prevService struct {
	svc  *corev1.Service
	rank int // index of its list in previous
}

// owner is who holds an address: a Service, and whether it kept it from
// before (rule 1) or asked for it (rule 2) or was given it (rule 3).
type owner struct {
	key  string
	kept bool
}

// portOwner is who holds a node port, and for which protocols.
type portOwner struct {
	owner
	protocols []corev1.Protocol
}

type allocation struct {
	cfg       Config
	pool      pool
	prev      map[string]prevService
	ipOwner   map[netip.Addr]owner
	portOwner map[int32]portOwner
	errs      []Error
	keys      []string // namespace/name of each Service of the result
}

func keyOf(s *corev1.Service) string { return s.Namespace + "/" + s.Name }

func (a *allocation) fail(s *corev1.Service, field, format string, args ...any) {
	a.errs = append(a.errs, Error{Namespace: s.Namespace, Name: s.Name, Field: field, Message: fmt.Sprintf(format, args...)})
}

// claim is one Service's (or port's) wish: an address (or port) kept or
// asked for, or none (give one).
type claim struct {
	i    int // index into out
	port int // index into spec.ports, for node ports
	rank int // the previous list it was kept from
	kept bool
}

func (a *allocation) clusterIPs(out []corev1.Service, order []int) {
	var keep, ask, give []claim
	wants := map[int]netip.Addr{}
	for _, i := range order {
		s := &out[i]
		if s.Spec.ClusterIP == corev1.ClusterIPNone {
			s.Spec.ClusterIPs = []string{corev1.ClusterIPNone}
			continue
		}
		var asked, before netip.Addr
		if s.Spec.ClusterIP != "" {
			ip, err := netip.ParseAddr(s.Spec.ClusterIP)
			if err != nil {
				a.fail(s, "spec.clusterIP", "invalid value %q: must be an IPv4 address, None, or left out", s.Spec.ClusterIP)
				continue
			}
			if why := a.cfg.check(ip); why != "" {
				a.fail(s, "spec.clusterIP", "%s", why)
				continue
			}
			asked = ip
		}
		p, had := a.prev[a.keys[i]]
		if had {
			if ip, err := netip.ParseAddr(p.svc.Spec.ClusterIP); err == nil && a.cfg.check(ip) == "" {
				before = ip
			}
		}
		switch {
		case before.IsValid() && (!asked.IsValid() || asked == before):
			keep = append(keep, claim{i: i, rank: p.rank, kept: true})
			wants[i] = before
		case asked.IsValid():
			ask = append(ask, claim{i: i})
			wants[i] = asked
		default:
			give = append(give, claim{i: i})
		}
	}
	// Rule 1 first: what was kept from the most authoritative list wins a
	// (corrupt) tie; a Service that loses one gets a new address.
	slices.SortStableFunc(keep, func(x, y claim) int { return cmp.Compare(x.rank, y.rank) })
	for _, c := range keep {
		s := &out[c.i]
		ip := wants[c.i]
		if _, taken := a.ipOwner[ip]; taken {
			if s.Spec.ClusterIP != "" {
				a.fail(s, "spec.clusterIP", "%s is taken by Service %s", ip, a.ipOwner[ip].key)
				continue
			}
			give = append(give, claim{i: c.i})
			continue
		}
		a.setIP(c.i, s, ip, true)
	}
	for _, c := range ask {
		s := &out[c.i]
		ip := wants[c.i]
		if o, taken := a.ipOwner[ip]; taken {
			a.fail(s, "spec.clusterIP", "%s is taken by Service %s%s", ip, o.key, whyTaken(o))
			continue
		}
		a.setIP(c.i, s, ip, false)
	}
	slices.SortStableFunc(give, func(x, y claim) int { return strings.Compare(a.keys[x.i], a.keys[y.i]) })
	for _, c := range give {
		s := &out[c.i]
		ip, ok := a.freeIP(a.keys[c.i])
		if !ok {
			a.fail(s, "spec.clusterIP", "no free address left in the service CIDR %s (%d in use)", a.cfg.ServiceCIDR, len(a.ipOwner))
			continue
		}
		a.setIP(c.i, s, ip, false)
	}
}

func whyTaken(o owner) string {
	if o.kept {
		return ", which keeps it"
	}
	return ", which asks for it too"
}

func (a *allocation) setIP(i int, s *corev1.Service, ip netip.Addr, kept bool) {
	a.ipOwner[ip] = owner{key: a.keys[i], kept: kept}
	s.Spec.ClusterIP = ip.String()
	s.Spec.ClusterIPs = []string{ip.String()}
}

// freeIP probes from the hash of key.
func (a *allocation) freeIP(key string) (netip.Addr, bool) {
	n := a.pool.n
	if uint64(len(a.ipOwner)) >= uint64(n) {
		return netip.Addr{}, false
	}
	start := uint32(hash(key) % uint64(n))
	for j := uint32(0); j < n; j++ {
		ip := a.pool.addr((start + j) % n)
		if _, taken := a.ipOwner[ip]; !taken {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// hash is FNV-1a (64 bits) of s.
func hash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func portField(j int) string { return "spec.ports[" + strconv.Itoa(j) + "].nodePort" }

func (a *allocation) nodePorts(out []corev1.Service, order []int) {
	var keep, ask, give []claim
	wants := map[[2]int]int32{}
	for _, i := range order {
		s := &out[i]
		if s.Spec.Type != corev1.ServiceTypeNodePort {
			for j := range s.Spec.Ports {
				s.Spec.Ports[j].NodePort = 0
			}
			continue
		}
		p, had := a.prev[a.keys[i]]
		for j := range s.Spec.Ports {
			sp := &s.Spec.Ports[j]
			asked, before := sp.NodePort, int32(0)
			if asked != 0 && !a.cfg.NodePorts.Contains(asked) {
				a.fail(s, portField(j), "%d is outside the node port range %s (--node-port-range)", asked, a.cfg.NodePorts)
				continue
			}
			if had && p.svc.Spec.Type == corev1.ServiceTypeNodePort {
				for _, pp := range p.svc.Spec.Ports {
					if pp.Name == sp.Name && pp.Protocol == sp.Protocol && a.cfg.NodePorts.Contains(pp.NodePort) {
						before = pp.NodePort
					}
				}
			}
			switch {
			case before != 0 && (asked == 0 || asked == before):
				keep = append(keep, claim{i: i, port: j, rank: p.rank, kept: true})
				wants[[2]int{i, j}] = before
			case asked != 0:
				ask = append(ask, claim{i: i, port: j})
				wants[[2]int{i, j}] = asked
			default:
				give = append(give, claim{i: i, port: j})
			}
		}
	}
	slices.SortStableFunc(keep, func(x, y claim) int { return cmp.Compare(x.rank, y.rank) })
	for _, c := range keep {
		s := &out[c.i]
		np := wants[[2]int{c.i, c.port}]
		if !a.takePort(c.i, s, c.port, np, true) {
			if s.Spec.Ports[c.port].NodePort != 0 {
				a.fail(s, portField(c.port), "node port %d is taken by Service %s", np, a.portOwner[np].key)
				continue
			}
			give = append(give, claim{i: c.i, port: c.port})
		}
	}
	for _, c := range ask {
		s := &out[c.i]
		np := wants[[2]int{c.i, c.port}]
		if !a.takePort(c.i, s, c.port, np, false) {
			o := a.portOwner[np]
			if o.key == a.keys[c.i] {
				a.fail(s, portField(c.port), "node port %d is given twice for %s", np, s.Spec.Ports[c.port].Protocol)
				continue
			}
			a.fail(s, portField(c.port), "node port %d is taken by Service %s%s", np, o.key, whyTaken(o.owner))
		}
	}
	slices.SortStableFunc(give, func(x, y claim) int {
		return cmp.Or(strings.Compare(a.keys[x.i], a.keys[y.i]), cmp.Compare(x.port, y.port))
	})
	for _, c := range give {
		s := &out[c.i]
		sp := &s.Spec.Ports[c.port]
		if a.sharePort(c.i, s, c.port) {
			continue
		}
		np, ok := a.freePort(a.keys[c.i] + "/" + sp.Name + "/" + string(sp.Protocol))
		if !ok {
			a.fail(s, portField(c.port), "no free node port left in the range %s (%d in use)", a.cfg.NodePorts, len(a.portOwner))
			continue
		}
		a.takePort(c.i, s, c.port, np, false)
	}
}

// takePort gives np to port j of s when np is free, or held by s itself
// for other protocols.
func (a *allocation) takePort(i int, s *corev1.Service, j int, np int32, kept bool) bool {
	proto := s.Spec.Ports[j].Protocol
	o, taken := a.portOwner[np]
	if taken && (o.key != a.keys[i] || slices.Contains(o.protocols, proto)) {
		return false
	}
	if !taken {
		o = portOwner{owner: owner{key: a.keys[i], kept: kept}}
	}
	o.protocols = append(o.protocols, proto)
	a.portOwner[np] = o
	s.Spec.Ports[j].NodePort = np
	return true
}

// sharePort gives port j of s the node port of another of its ports with
// the same port number and another protocol, as Kubernetes does.
func (a *allocation) sharePort(i int, s *corev1.Service, j int) bool {
	sp := s.Spec.Ports[j]
	for k, other := range s.Spec.Ports {
		if k != j && other.NodePort != 0 && other.Port == sp.Port && other.Protocol != sp.Protocol &&
			a.takePort(i, s, j, other.NodePort, false) {
			return true
		}
	}
	return false
}

func (a *allocation) freePort(key string) (int32, bool) {
	n := a.cfg.NodePorts.size()
	if len(a.portOwner) >= n {
		return 0, false
	}
	start := int(hash(key) % uint64(n))
	for j := range n {
		np := a.cfg.NodePorts.First + int32((start+j)%n)
		if _, taken := a.portOwner[np]; !taken {
			return np, true
		}
	}
	return 0, false
}

// Complete reports whether every Service of list that is not headless has
// its ClusterIP, and every port of a NodePort Service its node port.
func Complete(list []corev1.Service) bool {
	for i := range list {
		s := &list[i]
		if s.Spec.ClusterIP == corev1.ClusterIPNone {
			continue
		}
		if s.Spec.ClusterIP == "" {
			return false
		}
		if s.Spec.Type == corev1.ServiceTypeNodePort {
			for _, p := range s.Spec.Ports {
				if p.NodePort == 0 {
					return false
				}
			}
		}
	}
	return true
}
