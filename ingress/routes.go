package ingress

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"bosun/kube"
)

const (
	// ClassName is the built-in IngressClass: it exists without being
	// declared, and an Ingress without ingressClassName belongs to it.
	ClassName = "bosun"
	// Controller is the spec.controller of an IngressClass served by
	// bosun.
	Controller = "bosun.dev/ingress"
	// AnnotationDefaultClass marks the default IngressClass, as Kubernetes.
	AnnotationDefaultClass = networkingv1.AnnotationIsDefaultIngressClass
)

// Input is what a route table is built from: the Ingresses and
// IngressClasses of the desired state, and the Services, pods (with their
// statuses) and Secrets the Ingresses refer to.
type Input struct {
	Ingresses      []networkingv1.Ingress
	IngressClasses []networkingv1.IngressClass
	Services       []corev1.Service
	Pods           []*corev1.Pod
	Secrets        []corev1.Secret
}

// Backend is where matching requests go: one port of one Service, and its
// ready endpoints at the moment the table was built.
type Backend struct {
	// Namespace and Ingress name the Ingress the route comes from.
	Namespace, Ingress string
	// Service and Port name the backend as the Ingress does (Port is the
	// service port's number or name).
	Service, Port string
	// Groups are the ready endpoints by track (bosun.dev/track), with
	// their weights, as the Service proxy splits them.
	Groups []Group
	// Problem says why the backend has no endpoint to offer beyond "none
	// is ready" (no such Service, no such port); "" otherwise. It names
	// objects of the cluster: it goes to the debug log, never to clients.
	Problem string
	// Reason is Problem in one word, the reason label of
	// bosun_ingress_upstream_errors_total when the backend has no endpoint:
	// no_service, no_port, or no_endpoint (none ready).
	Reason string

	key     string   // namespace/service:port, the key of its Cursors
	total   uint64   // sum of the non-empty groups' weights over their GCD (0: none weighted)
	weights []uint64 // per group, over the GCD (0: empty or unweighted)
	count   int      // endpoints in all groups
	// seq gives the group of each of the total slots of a run, interleaved
	// as nginx's smooth weighted round robin does (90/10: a canary request
	// after every nine others, not ten in a row); rank is the slot's rank
	// among its group's slots. Both nil when total is above maxSeq: then
	// each group takes its slots in a row.
	seq  []int32
	rank []uint32
	next atomic.Uint64 // Pick's counter
}

// maxSeq bounds the interleaved run of a weighted backend (weights over
// their GCD above it take their slots in a row).
const maxSeq = 1024

// Group is a set of endpoints that share a weight: the ready pods of one
// track of the Service.
type Group struct {
	Name      string
	Weight    int32
	Endpoints []netip.AddrPort
}

// Pick returns the endpoint the next request goes to by the backend's own
// counter (see PickN), and false when the backend has none. The server
// picks through Cursors instead, whose counters outlive route tables. It
// is safe for concurrent use.
func (b *Backend) Pick() (netip.AddrPort, bool) { return b.PickN(b.next.Add(1) - 1) }

// PickN returns the endpoint of the backend's n-th request (from 0), and
// false when the backend has none. Without weights it goes round the
// endpoints; with weights (a canary's bosun.dev/weight) every run of W
// requests (W the sum of the non-empty groups' weights, divided by their
// greatest common divisor) gives each group exactly its weight,
// interleaved (smooth weighted round robin), round robin inside the group.
// It is a pure function of n and the backend.
func (b *Backend) PickN(n uint64) (netip.AddrPort, bool) {
	if b.count == 0 {
		return netip.AddrPort{}, false
	}
	if b.total == 0 {
		i := n % uint64(b.count)
		for _, g := range b.Groups {
			if i < uint64(len(g.Endpoints)) {
				return g.Endpoints[i], true
			}
			i -= uint64(len(g.Endpoints))
		}
	}
	slot, round := n%b.total, n/b.total
	if b.seq != nil {
		gi := b.seq[slot]
		eps := b.Groups[gi].Endpoints
		k := round*b.weights[gi] + uint64(b.rank[slot])
		return eps[k%uint64(len(eps))], true
	}
	for gi, w := range b.weights {
		if w == 0 {
			continue
		}
		if slot < w {
			eps := b.Groups[gi].Endpoints
			return eps[(round*w+slot)%uint64(len(eps))], true
		}
		slot -= w
	}
	return netip.AddrPort{}, false // not reached
}

// weigh computes the backend's run: the groups' weights over their GCD
// and, when the run is short enough, its interleaved order.
func (b *Backend) weigh() {
	b.weights = make([]uint64, len(b.Groups))
	var gcd uint64
	for i, g := range b.Groups {
		if g.Weight > 0 && len(g.Endpoints) > 0 {
			b.weights[i] = uint64(g.Weight)
			gcd = gcdOf(gcd, uint64(g.Weight))
		}
	}
	if gcd == 0 {
		return
	}
	for i := range b.weights {
		b.weights[i] /= gcd
		b.total += b.weights[i]
	}
	if b.total > maxSeq {
		return
	}
	b.seq, b.rank = make([]int32, b.total), make([]uint32, b.total)
	cur := make([]int64, len(b.weights))
	seen := make([]uint32, len(b.weights))
	for s := range b.total {
		best := -1
		for i, w := range b.weights {
			if w == 0 {
				continue
			}
			cur[i] += int64(w)
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= int64(b.total)
		b.seq[s], b.rank[s] = int32(best), seen[best]
		seen[best]++
	}
}

func gcdOf(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Cursors are the backends' request counters, kept between route tables
// by the backend's namespace/service:port: a table rebuilt for a pod change
// (the cache changes often) continues each backend's round robin and
// canary split where the previous table left it, instead of starting it
// again (which would give the first group the first requests of every
// table). It is safe for concurrent use; the zero value is ready.
type Cursors struct{ m sync.Map } // key -> *atomic.Uint64

// Pick returns the endpoint of b's next request (b.PickN of its counter),
// and false when b has none.
func (c *Cursors) Pick(b *Backend) (netip.AddrPort, bool) {
	if b.count == 0 {
		return netip.AddrPort{}, false
	}
	v, ok := c.m.Load(b.key)
	if !ok {
		v, _ = c.m.LoadOrStore(b.key, new(atomic.Uint64))
	}
	return b.PickN(v.(*atomic.Uint64).Add(1) - 1)
}

// Keep forgets the counters of backends that t does not have.
func (c *Cursors) Keep(t *Table) {
	c.m.Range(func(k, _ any) bool {
		if !t.backends[k.(string)] {
			c.m.Delete(k)
		}
		return true
	})
}

// Endpoints returns every endpoint of the backend, in group order.
func (b *Backend) Endpoints() []netip.AddrPort {
	var out []netip.AddrPort
	for _, g := range b.Groups {
		out = append(out, g.Endpoints...)
	}
	return out
}

// String names the backend as namespace/service:port.
func (b *Backend) String() string { return b.Namespace + "/" + b.Service + ":" + b.Port }

// route is one path of one host.
type route struct {
	path    string // normalized: no trailing slash but "/"
	exact   bool
	backend *Backend
}

type hostRoutes struct{ routes []route }

// Table is a route table: immutable once built (but for Backend.Pick's
// counters), shared by every request that reads it.
type Table struct {
	exact    map[string]*hostRoutes // lower-case host
	wildcard map[string]*hostRoutes // the host's suffix after "*."
	anyHost  *hostRoutes            // rules without host
	fallback *Backend               // spec.defaultBackend
	certs    certIndex
	// Warnings say what was left out and why (conflicts, Ingresses of
	// another class), sorted.
	Warnings []string
	// Ingresses counts the Ingresses served, Routes the paths.
	Ingresses, Routes int
	backends          map[string]bool // the backends' keys
}

// Served reports whether bosun serves an Ingress of class name (nil or
// "": the default class) given the declared classes: the built-in class
// "bosun", and any IngressClass whose controller is bosun.dev/ingress. An
// Ingress without class belongs to the default class: bosun's unless a
// class of another controller is marked default.
func Served(className *string, classes []networkingv1.IngressClass) bool {
	name := ""
	if className != nil {
		name = *className
	}
	if name == "" {
		for _, c := range classes {
			if c.Annotations[AnnotationDefaultClass] == "true" && c.Spec.Controller != Controller {
				return false
			}
		}
		return true
	}
	for _, c := range classes {
		if c.Name == name {
			return c.Spec.Controller == Controller
		}
	}
	return name == ClassName
}

// Build computes the route table of in. It is a pure function of in (and
// of certs, a cache of parsed key pairs that may be nil or shared between
// calls of one goroutine).
func Build(in Input, certs *CertCache) *Table {
	t := &Table{exact: map[string]*hostRoutes{}, wildcard: map[string]*hostRoutes{}, anyHost: &hostRoutes{}, backends: map[string]bool{}}
	ings := make([]*networkingv1.Ingress, 0, len(in.Ingresses))
	for i := range in.Ingresses {
		ings = append(ings, &in.Ingresses[i])
	}
	slices.SortFunc(ings, func(a, b *networkingv1.Ingress) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	svcs := map[string]*corev1.Service{}
	for i := range in.Services {
		s := &in.Services[i]
		svcs[s.Namespace+"/"+s.Name] = s
	}
	podsByNS := map[string][]*corev1.Pod{}
	for _, p := range in.Pods {
		podsByNS[p.Namespace] = append(podsByNS[p.Namespace], p)
	}
	secrets := map[string]*corev1.Secret{}
	for i := range in.Secrets {
		s := &in.Secrets[i]
		secrets[s.Namespace+"/"+s.Name] = s
	}
	var warn []string
	type seenKey struct {
		host, path string
		exact      bool
	}
	seen := map[seenKey]string{}
	for _, ing := range ings {
		id := ing.Namespace + "/" + ing.Name
		if !Served(ing.Spec.IngressClassName, in.IngressClasses) {
			continue
		}
		t.Ingresses++
		backend := func(b *networkingv1.IngressBackend) *Backend {
			r := resolve(ing, b, svcs, podsByNS)
			t.backends[r.key] = true
			return r
		}
		if ing.Spec.DefaultBackend != nil {
			if t.fallback == nil {
				t.fallback = backend(ing.Spec.DefaultBackend)
			} else {
				warn = append(warn, fmt.Sprintf("ingress %s: defaultBackend: ingress %s/%s already gives one", id, t.fallback.Namespace, t.fallback.Ingress))
			}
		}
		for _, rule := range ing.Spec.Rules {
			host := strings.ToLower(strings.TrimSuffix(rule.Host, "."))
			var hr *hostRoutes
			switch {
			case host == "":
				hr = t.anyHost
			case strings.HasPrefix(host, "*."):
				hr = getHost(t.wildcard, host[2:])
			default:
				hr = getHost(t.exact, host)
			}
			if rule.HTTP == nil {
				continue
			}
			for _, p := range rule.HTTP.Paths {
				exact := p.PathType != nil && *p.PathType == networkingv1.PathTypeExact
				norm := normalizePrefix(p.Path)
				if exact {
					norm = cmp.Or(p.Path, "/")
				}
				k := seenKey{host, norm, exact}
				if other, dup := seen[k]; dup {
					warn = append(warn, fmt.Sprintf("ingress %s: host %q path %q: ingress %s already routes it", id, rule.Host, p.Path, other))
					continue
				}
				seen[k] = id
				hr.routes = append(hr.routes, route{path: norm, exact: exact, backend: backend(&p.Backend)})
				t.Routes++
			}
		}
		for _, tl := range ing.Spec.TLS {
			t.certs.add(ing, tl, secrets, certs, &warn)
		}
	}
	for _, hr := range append(append(mapValues(t.exact), mapValues(t.wildcard)...), t.anyHost) {
		slices.SortStableFunc(hr.routes, func(a, b route) int {
			if c := cmp.Compare(len(b.path), len(a.path)); c != 0 {
				return c // longest first
			}
			if a.exact != b.exact {
				if a.exact {
					return -1
				}
				return 1
			}
			return 0
		})
	}
	slices.Sort(warn)
	t.Warnings = warn
	if certs != nil {
		certs.sweep()
	}
	return t
}

func mapValues(m map[string]*hostRoutes) []*hostRoutes {
	out := make([]*hostRoutes, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func getHost(m map[string]*hostRoutes, host string) *hostRoutes {
	hr := m[host]
	if hr == nil {
		hr = &hostRoutes{}
		m[host] = hr
	}
	return hr
}

// normalizePrefix is a Prefix path without its trailing slash ("/" stays):
// Kubernetes matches Prefix paths element by element, so "/foo/" and
// "/foo" are the same prefix.
func normalizePrefix(p string) string {
	p = strings.TrimRight(p, "/")
	if p == "" {
		return "/"
	}
	return p
}

// resolve finds an Ingress backend's Service port and its ready endpoints.
func resolve(ing *networkingv1.Ingress, ib *networkingv1.IngressBackend, svcs map[string]*corev1.Service, pods map[string][]*corev1.Pod) *Backend {
	b := &Backend{Namespace: ing.Namespace, Ingress: ing.Name, Reason: "no_service"}
	if ib.Service == nil {
		b.Problem = "the backend is not a Service"
		b.key = ing.Namespace + "/" + ing.Name + ":resource"
		return b
	}
	b.Service = ib.Service.Name
	if ib.Service.Port.Name != "" {
		b.Port = ib.Service.Port.Name
	} else {
		b.Port = fmt.Sprint(ib.Service.Port.Number)
	}
	b.key = b.String()
	svc := svcs[ing.Namespace+"/"+ib.Service.Name]
	if svc == nil {
		b.Problem = "no Service " + ing.Namespace + "/" + ib.Service.Name
		return b
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if cmp.Or(p.Protocol, corev1.ProtocolTCP) != corev1.ProtocolTCP {
			continue
		}
		if ib.Service.Port.Name != "" && p.Name == ib.Service.Port.Name || ib.Service.Port.Name == "" && p.Port == ib.Service.Port.Number {
			sp = p
			break
		}
	}
	if sp == nil {
		b.Problem = "Service " + ing.Namespace + "/" + ib.Service.Name + " has no TCP port " + b.Port
		b.Reason = "no_port"
		return b
	}
	b.Reason = "no_endpoint"
	byName := map[string]*Group{}
	var names []string
	for _, p := range pods[ing.Namespace] {
		if isEP, ready := kube.Endpoint(svc, p); !isEP || !ready {
			continue
		}
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil {
			continue
		}
		port, ok := kube.EndpointPort(*sp, p)
		if !ok {
			continue
		}
		name, w := kube.EndpointGroup(p)
		g := byName[name]
		if g == nil {
			g = &Group{Name: name, Weight: w}
			byName[name] = g
			names = append(names, name)
		}
		g.Weight = min(g.Weight, w)
		g.Endpoints = append(g.Endpoints, netip.AddrPortFrom(ip, port))
	}
	slices.Sort(names)
	for _, n := range names {
		g := byName[n]
		slices.SortFunc(g.Endpoints, func(a, b netip.AddrPort) int { return a.Compare(b) })
		g.Endpoints = slices.Compact(g.Endpoints)
		b.Groups = append(b.Groups, *g)
		b.count += len(g.Endpoints)
	}
	b.weigh()
	return b
}

// Match returns the backend of a request for host (as the Host header or
// the URL's host: a port and a trailing dot are ignored, case too) and
// path (the URL's path), or nil when no rule and no default backend
// matches (the server answers 404). Rules of the exact host are tried
// first, then those of a wildcard host (which matches exactly one label:
// "*.example.com" matches "a.example.com", neither "example.com" nor
// "a.b.example.com"), then the rules without host, then the default
// backend. Within a host the longest matching path wins, and an Exact
// path beats a Prefix one of the same length; a Prefix path matches by
// path elements ("/foo" matches "/foo", "/foo/" and "/foo/bar", not
// "/foobar"); ImplementationSpecific is Prefix. The path is matched after
// resolving "." and ".." elements (as the backend will), so that
// "/public/../admin" is routed as "/admin".
func (t *Table) Match(host, urlPath string) *Backend {
	host = NormalizeHost(host)
	p := cleanPath(urlPath)
	if hr := t.exact[host]; hr != nil {
		if b := hr.match(p); b != nil {
			return b
		}
	}
	if _, rest, ok := strings.Cut(host, "."); ok && rest != "" {
		if hr := t.wildcard[rest]; hr != nil {
			if b := hr.match(p); b != nil {
				return b
			}
		}
	}
	if b := t.anyHost.match(p); b != nil {
		return b
	}
	return t.fallback
}

func (hr *hostRoutes) match(p string) *Backend {
	for _, r := range hr.routes {
		if r.exact {
			if p == r.path {
				return r.backend
			}
			continue
		}
		if r.path == "/" || p == r.path || strings.HasPrefix(p, r.path) && p[len(r.path)] == '/' {
			return r.backend
		}
	}
	return nil
}

// NormalizeHost strips a port and a trailing dot from a Host header and
// lowers its case.
func NormalizeHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	return strings.ToLower(host)
}

// cleanPath resolves "." and ".." and repeated slashes, and keeps a
// trailing slash.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	c := path.Clean(p)
	if c != "/" && strings.HasSuffix(p, "/") {
		c += "/"
	}
	return c
}
