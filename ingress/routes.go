package ingress

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"path"
	"slices"
	"strings"
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
	// is ready" (no such Service, no such port); "" otherwise.
	Problem string

	total  uint64 // sum of the weights of non-empty groups (0: none weighted)
	count  int    // endpoints in all groups
	next   atomic.Uint64
	nextIn []atomic.Uint64 // per group
}

// Group is a set of endpoints that share a weight: the ready pods of one
// track of the Service.
type Group struct {
	Name      string
	Weight    int32
	Endpoints []netip.AddrPort
}

// Pick returns the endpoint the next request goes to, and false when the
// backend has none. Without weights it goes round the endpoints; with
// weights (a canary's bosun.dev/weight) every run of W requests (W the sum
// of the non-empty groups' weights) gives each group exactly its weight,
// round robin inside the group. It is safe for concurrent use.
func (b *Backend) Pick() (netip.AddrPort, bool) {
	if b.count == 0 {
		return netip.AddrPort{}, false
	}
	n := b.next.Add(1) - 1
	if b.total == 0 {
		i := n % uint64(b.count)
		for _, g := range b.Groups {
			if i < uint64(len(g.Endpoints)) {
				return g.Endpoints[i], true
			}
			i -= uint64(len(g.Endpoints))
		}
	}
	slot := n % b.total
	for gi, g := range b.Groups {
		if g.Weight <= 0 || len(g.Endpoints) == 0 {
			continue
		}
		if slot < uint64(g.Weight) {
			k := b.nextIn[gi].Add(1) - 1
			return g.Endpoints[k%uint64(len(g.Endpoints))], true
		}
		slot -= uint64(g.Weight)
	}
	return netip.AddrPort{}, false // not reached
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

// Table is a route table: immutable once built (but for the backends'
// round-robin counters), shared by every request that reads it.
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
	t := &Table{exact: map[string]*hostRoutes{}, wildcard: map[string]*hostRoutes{}, anyHost: &hostRoutes{}}
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
			return resolve(ing, b, svcs, podsByNS)
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
	b := &Backend{Namespace: ing.Namespace, Ingress: ing.Name}
	if ib.Service == nil {
		b.Problem = "the backend is not a Service"
		return b
	}
	b.Service = ib.Service.Name
	if ib.Service.Port.Name != "" {
		b.Port = ib.Service.Port.Name
	} else {
		b.Port = fmt.Sprint(ib.Service.Port.Number)
	}
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
		return b
	}
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
		if g.Weight > 0 {
			b.total += uint64(g.Weight)
		}
	}
	b.nextIn = make([]atomic.Uint64, len(b.Groups))
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
