package dns

import (
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"

	"bosun/kube"
)

// DefaultTTL is the TTL of every record when no other is configured.
const DefaultTTL uint32 = 5

// WeightedTTL is the TTL of the address records of a headless Service whose
// answers are weighted (see BuildIndex), whatever the configured TTL: each
// answer names one endpoint group picked at random, so resolvers should
// ask again soon for the shares to hold across a client's connections.
const WeightedTTL uint32 = 1

// srvWeightScale is the sum of the SRV weights of a weighted Service's
// port (give or take rounding): each endpoint gets its group's share of it,
// divided among the group's endpoints.
const srvWeightScale = 10000

// soaSerial is fixed: the zone is never transferred, so nothing compares
// serials, and a fixed value keeps BuildIndex a pure function of its input.
const soaSerial = 1

// Index is the immutable, precomputed answer table for the cluster domain.
// It is built from a snapshot by BuildIndex and never changes afterwards, so
// any number of goroutines may call Answer while a new Index is being built.
//
// Every owner name the domain knows (records or empty non-terminals) is a key
// of names, lowercased and fully qualified; Answer is a map lookup and a copy
// of slice headers.
type Index struct {
	domain string // lowercased, fully qualified, e.g. "cluster.local."
	soa    []mdns.RR
	names  shards

	// Skipped lists objects left out because their names cannot form DNS
	// labels ("ns/name: reason"); the server logs them.
	Skipped []string
}

// entry holds the records of one owner name. Slices are clipped
// (len == cap) so that an append by a reader always reallocates and can
// never write into the shared backing array.
type entry struct {
	a, aaaa []mdns.RR
	srv     []mdns.RR
	srvXtra []mdns.RR // A/AAAA records of the SRV targets
	// wa and waaaa, when not nil, answer A and AAAA queries in place of a
	// and aaaa: the records of one endpoint group, picked at random by
	// weight for each query.
	wa, waaaa *weighted
}

// weighted is the address records of a headless Service's name split by
// endpoint group (kube.EndpointGroup), the groups of weight 0 left out: an
// answer names the records of one group, picked with a probability
// proportional to its weight. Each group's records are those of the name
// (shared with entry.a or entry.aaaa), in the same order.
type weighted struct {
	total  uint64          // sum of the groups' weights, > 0
	groups []weightedGroup // with weight > 0, by group name
}

type weightedGroup struct {
	upto uint64 // the weights of this group and those before it
	rrs  []mdns.RR
}

// pick returns the records of the group that n, in [0, total), falls in.
func (w *weighted) pick(n uint64) []mdns.RR {
	for i := range w.groups {
		if n < w.groups[i].upto {
			return w.groups[i].rrs
		}
	}
	return w.groups[len(w.groups)-1].rrs
}

// IndexOption adjusts BuildIndex.
type IndexOption func(*indexConfig)

type indexConfig struct{ ttl uint32 }

// WithTTL sets the TTL of every record and of negative answers (the SOA
// minimum). The default is DefaultTTL.
func WithTTL(ttl uint32) IndexOption { return func(c *indexConfig) { c.ttl = ttl } }

// BuildIndex computes every answer of the domain from services and pods. It is
// pure: the same input gives the same Index.
//
// A Service <svc> in namespace <ns> owns <svc>.<ns>.svc.<domain>. A Service
// with a virtual IP (spec.clusterIP(s) set to addresses) answers A (or AAAA)
// with its virtual IPs, and every named port adds
// _<port>._<proto>.<svc>.<ns>.svc.<domain>, one SRV with the service port
// whose target is the Service's own name, as Kubernetes does; its pods do
// not matter. A headless Service (clusterIP None), and a Service whose
// virtual IP is not allocated yet (clusterIP empty), answers with the
// addresses of its ready endpoints (kube.Endpoint decides), and names each
// endpoint: <ip-with-dashes>.<svc>.<ns>.svc.<domain>, and
// <hostname>.<svc>.<ns>.svc.<domain> for a pod whose spec.hostname is set
// and whose spec.subdomain is <svc> (kube.EndpointHostname). Its SRV names
// hold one SRV per endpoint whose port resolves (kube.EndpointPort), with
// the endpoint port and the endpoint's name as target: its hostname name
// when it has one, else its dashed name.
//
// A headless Service's ready endpoints fall into groups by their pods'
// label bosun.dev/track, each group weighted by the smallest of its pods'
// annotations bosun.dev/weight (kube.EndpointGroup, the rule of the
// Service proxy). When the endpoints of one address family fall into more
// than one group and one of them has a weight above 0, its name's answers
// of that family are weighted: each answer holds the records of one group,
// picked at random in proportion to the weights (a group of weight 0 is
// never picked), with TTL WeightedTTL. In the SRV records of such a
// Service, the weight of each endpoint is its group's share of
// srvWeightScale divided among the group's endpoints of that port (at
// least 1 for a group of weight above 0; 0 for a group of weight 0), so
// that clients weighting by RFC 2782 reach each group in proportion; the
// records stay complete. One group, or weights all 0, keep the answers of
// every endpoint. A name shared by Services whose names differ only in
// case, or with a Service that has a virtual IP, is not weighted.
func BuildIndex(domain string, services []corev1.Service, pods []*corev1.Pod, opts ...IndexOption) *Index {
	cfg := indexConfig{ttl: DefaultTTL}
	for _, o := range opts {
		o(&cfg)
	}
	domain = mdns.CanonicalName(domain)
	ix := &Index{domain: domain, soa: soaRecords(domain, cfg.ttl)}
	names := nameSet{domain: {}}

	// Pods by namespace and label, so that a Service's candidates are the
	// pods carrying the rarest pair of its selector, not its whole
	// namespace: 500 Services over 30,000 pods stay cheap. Only the
	// namespaces of Services answering with their endpoints need them.
	byLabel := make(map[string]map[string][]*corev1.Pod)
	for i := range services {
		if svc := &services[i]; !hasClusterIP(svc) && len(svc.Spec.Selector) > 0 && byLabel[svc.Namespace] == nil {
			byLabel[svc.Namespace] = make(map[string][]*corev1.Pod)
		}
	}
	for _, p := range pods {
		m := byLabel[p.Namespace]
		if m == nil {
			continue
		}
		for k, v := range p.Labels {
			m[k+"="+v] = append(m[k+"="+v], p)
		}
	}
	candidates := func(svc *corev1.Service) []*corev1.Pod {
		var best []*corev1.Pod
		first := true
		for k, v := range svc.Spec.Selector {
			if l := byLabel[svc.Namespace][k+"="+v]; first || len(l) < len(best) {
				best, first = l, false
			}
		}
		return best
	}

	for i := range services {
		svc := &services[i]
		svcName, ok := serviceName(svc, domain)
		if !ok {
			ix.Skipped = append(ix.Skipped, svc.Namespace+"/"+svc.Name+": name or namespace is not a DNS label")
			continue
		}
		ix.Skipped = serviceSkips(svc, ix.Skipped)
		var eps []endpoint
		if !hasClusterIP(svc) {
			eps = endpoints(svc, candidates(svc))
		}
		names.addService(svcName, svc, eps, cfg.ttl)
	}

	// Ancestors of every name exist (empty non-terminals answer NODATA, not
	// NXDOMAIN, RFC 8020); clip every slice so readers cannot share appends.
	owners := make([]string, 0, len(names))
	for name := range names {
		owners = append(owners, name)
	}
	for _, name := range owners {
		for n := name; n != domain; {
			n = n[strings.IndexByte(n, '.')+1:]
			names.add(n)
		}
	}
	names.clip()
	for i := range ix.names {
		ix.names[i] = make(nameSet, len(names)/nameShards+1)
	}
	for name, e := range names {
		ix.names[shardOf(name, len(domain))][name] = e
	}
	return ix
}

// nameShards is the number of maps an Index's names are spread over, by the
// Service they belong to (see shardOf): an update by a Builder copies the
// maps of the Services it recomputes, not every name of the domain.
const nameShards = 256

// shards holds the names of an Index; shards[shardOf(name)] has name.
type shards [nameShards]nameSet

// shardOf returns the shard of name, a lowercased name of the domain whose
// length is domainLen: the hash of its three labels above the domain
// (<svc>.<ns>.svc), so that the names of one Service share a shard; names
// with fewer labels (the domain, svc.<domain>, <ns>.svc.<domain>) are in
// shard 0.
func shardOf(name string, domainLen int) int {
	rest := name[:len(name)-domainLen]
	dots := 0
	key := ""
	for j := len(rest) - 1; j >= 0; j-- {
		if rest[j] == '.' {
			if dots++; dots == 4 {
				key = rest[j+1:]
				break
			}
		}
	}
	switch {
	case dots < 3:
		return 0
	case dots == 3:
		key = rest
	}
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % nameShards)
}

func (ix *Index) lookup(name string) (*entry, bool) {
	e, ok := ix.names[shardOf(name, len(ix.domain))][name]
	return e, ok
}

func soaRecords(domain string, ttl uint32) []mdns.RR {
	return []mdns.RR{&mdns.SOA{
		Hdr:     mdns.RR_Header{Name: domain, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: ttl},
		Ns:      "ns.dns." + domain,
		Mbox:    "hostmaster." + domain,
		Serial:  soaSerial,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  ttl,
	}}
}

// serviceName is the owner name of svc, lowercased; ok is false when its
// name or namespace cannot be a DNS label.
func serviceName(svc *corev1.Service, domain string) (string, bool) {
	if !isLabel(svc.Name) || !isLabel(svc.Namespace) {
		return "", false
	}
	return strings.ToLower(svc.Name) + "." + strings.ToLower(svc.Namespace) + ".svc." + domain, true
}

// hasClusterIP reports whether svc answers with a virtual IP: its
// spec.clusterIP (or, when empty, the first of spec.clusterIPs) is set and
// is not "None". A Service without one is headless, or waits for the leader
// to allocate its address; either way DNS answers its ready endpoints, so
// that nothing changes for clients until the address exists.
func hasClusterIP(svc *corev1.Service) bool {
	ip := svc.Spec.ClusterIP
	if ip == "" && len(svc.Spec.ClusterIPs) > 0 {
		ip = svc.Spec.ClusterIPs[0]
	}
	return ip != "" && ip != corev1.ClusterIPNone
}

// clusterIPs returns the virtual IPs of svc, a Service with hasClusterIP:
// spec.clusterIPs, or spec.clusterIP when that is empty, without
// duplicates and without the entries that are not addresses
// (serviceSkips reports those).
func clusterIPs(svc *corev1.Service) []netip.Addr {
	list := svc.Spec.ClusterIPs
	if len(list) == 0 {
		list = []string{svc.Spec.ClusterIP}
	}
	var ips []netip.Addr
	for _, s := range list {
		if !isAddr(s) {
			continue
		}
		if ip := netip.MustParseAddr(s).Unmap(); !slices.Contains(ips, ip) {
			ips = append(ips, ip)
		}
	}
	return ips
}

// isAddr reports whether s is an IP address without a zone.
func isAddr(s string) bool {
	ip, err := netip.ParseAddr(s)
	return err == nil && ip.Zone() == ""
}

// serviceSkips appends to skipped what of svc has no DNS name ("ns/name:
// reason"): named ports that are not DNS labels and virtual IPs that are
// not addresses, in that order.
func serviceSkips(svc *corev1.Service, skipped []string) []string {
	for _, port := range svc.Spec.Ports {
		if port.Name != "" && !isLabel(port.Name) {
			skipped = append(skipped, svc.Namespace+"/"+svc.Name+": port "+port.Name+": not a DNS label")
		}
	}
	if hasClusterIP(svc) {
		list := svc.Spec.ClusterIPs
		if len(list) == 0 {
			list = []string{svc.Spec.ClusterIP}
		}
		for _, s := range list {
			if !isAddr(s) {
				skipped = append(skipped, svc.Namespace+"/"+svc.Name+": clusterIP "+strconv.Quote(s)+": not an IP address")
			}
		}
	}
	return skipped
}

// srvName is the owner name of the SRV records of port of the Service
// owning owner: _<port>._<proto>.<owner>; ok is false for an unnamed port
// or one whose name is not a DNS label (serviceSkips reports those).
func srvName(port corev1.ServicePort, owner string) (name string, ok bool) {
	if port.Name == "" || !isLabel(port.Name) {
		return "", false
	}
	proto := strings.ToLower(string(port.Protocol))
	if proto == "" {
		proto = "tcp"
	}
	return "_" + strings.ToLower(port.Name) + "._" + proto + "." + owner, true
}

// addService adds the names of svc, owner of the name owner: with a virtual
// IP, the address records and an SRV per named port pointing at owner;
// otherwise (headless, or not allocated yet) the records of its ready
// endpoints eps, a name per endpoint and an SRV per endpoint and named port
// (see BuildIndex). Names already present (another Service whose name
// differs only in case) get the records appended, as BuildIndex has always
// done.
func (names nameSet) addService(owner string, svc *corev1.Service, eps []endpoint, ttl uint32) {
	e := names.add(owner)
	if hasClusterIP(svc) {
		ips := clusterIPs(svc)
		if len(ips) > 0 {
			e.unweigh(ttl) // records of two Services: not one model of groups
		}
		vips := make([]mdns.RR, len(ips))
		for i, ip := range ips {
			vips[i] = addrRR(owner, ip, ttl)
			e.addAddr(vips[i])
		}
		for _, port := range svc.Spec.Ports {
			name, ok := srvName(port, owner)
			if !ok || !validPort(port.Port) {
				continue
			}
			se := names.add(name)
			se.srv = append(se.srv, &mdns.SRV{
				Hdr:      mdns.RR_Header{Name: name, Rrtype: mdns.TypeSRV, Class: mdns.ClassINET, Ttl: ttl},
				Priority: 0,
				Weight:   100,
				Port:     uint16(port.Port),
				Target:   owner,
			})
			se.srvXtra = append(se.srvXtra, vips...)
		}
		return
	}

	// Every endpoint has its dashed name; one whose pod names this Service
	// as its subdomain also has its hostname name, which is then the
	// endpoint's SRV target.
	targets := make([]mdns.RR, len(eps)) // the address record of each endpoint's SRV target
	shared := len(e.a)+len(e.aaaa) > 0
	wa, waaaa := weightedFamilies(eps)
	if shared && len(eps) > 0 {
		e.unweigh(ttl) // records of two Services: not one model of groups
	}
	var byGroup map[string][]mdns.RR // the owner's records by group, when weighted
	if !shared && (wa || waaaa) {
		byGroup = make(map[string][]mdns.RR)
	}
	for i, ep := range eps {
		rr := addrRR(owner, ep.ip, ttl)
		if weighted := ep.ip.Is4() && wa || !ep.ip.Is4() && waaaa; weighted && byGroup != nil {
			rr.Header().Ttl = WeightedTTL
			byGroup[ep.group] = append(byGroup[ep.group], rr)
		}
		e.addAddr(rr)
		dn := dashed(ep.ip) + "." + owner
		targets[i] = names.add(dn).addAddrOnce(addrRR(dn, ep.ip, ttl))
		if h := kube.EndpointHostname(svc, ep.pod); h != "" && isLabel(h) {
			hn := lower(h) + "." + owner
			targets[i] = names.add(hn).addAddrOnce(addrRR(hn, ep.ip, ttl))
		}
	}
	if byGroup != nil {
		if wa {
			e.wa = newWeighted(eps, byGroup, true)
		}
		if waaaa {
			e.waaaa = newWeighted(eps, byGroup, false)
		}
	}
	ports := make([]uint16, len(eps))
	var srvWeights []uint16 // when groups may weigh the SRV records
	if !oneGroup(eps) {
		srvWeights = make([]uint16, len(eps))
	}
	for _, port := range svc.Spec.Ports {
		name, ok := srvName(port, owner)
		if !ok {
			continue
		}
		se := names.add(name)
		n := 0
		for i, ep := range eps {
			if p, ok := kube.EndpointPort(port, ep.pod); ok {
				ports[i] = p
				n++
			} else {
				ports[i] = 0
			}
		}
		weight := uint16(100)
		if n > 1 {
			weight = uint16(max(1, 100/n))
		}
		weighted := srvWeights != nil && srvGroupWeights(eps, ports, srvWeights)
		for i := range eps {
			if ports[i] == 0 {
				continue
			}
			w := weight
			if weighted {
				w = srvWeights[i]
			}
			se.srv = append(se.srv, &mdns.SRV{
				Hdr:      mdns.RR_Header{Name: name, Rrtype: mdns.TypeSRV, Class: mdns.ClassINET, Ttl: ttl},
				Priority: 0,
				Weight:   w,
				Port:     ports[i],
				Target:   targets[i].Header().Name,
			})
			se.srvXtra = append(se.srvXtra, targets[i])
		}
	}
}

func validPort(p int32) bool { return p > 0 && p <= 65535 }

// groupWeight is one endpoint group's weight (the smallest of its
// endpoints') and count of endpoints among those considered.
type groupWeight struct {
	weight int32
	n      int
}

// addTo adds ep to its group in groups.
func (ep *endpoint) addTo(groups map[string]groupWeight) {
	g, ok := groups[ep.group]
	if !ok {
		g.weight = ep.weight
	}
	g.weight = min(g.weight, ep.weight)
	g.n++
	groups[ep.group] = g
}

// isWeighted reports whether endpoints in groups split by weight: more than
// one group, and one of weight above 0.
func isWeighted(groups map[string]groupWeight) bool {
	if len(groups) < 2 {
		return false
	}
	for _, g := range groups {
		if g.weight > 0 {
			return true
		}
	}
	return false
}

// oneGroup reports whether every endpoint of eps is in one group (the
// common case, a Service without tracks, costs no map).
func oneGroup(eps []endpoint) bool {
	for i := 1; i < len(eps); i++ {
		if eps[i].group != eps[0].group {
			return false
		}
	}
	return true
}

// weightedFamilies reports whether the IPv4 and the IPv6 endpoints of eps
// are weighted (isWeighted among the endpoints of each family).
func weightedFamilies(eps []endpoint) (v4, v6 bool) {
	if oneGroup(eps) {
		return false, false
	}
	g4, g6 := map[string]groupWeight{}, map[string]groupWeight{}
	for i := range eps {
		if eps[i].ip.Is4() {
			eps[i].addTo(g4)
		} else {
			eps[i].addTo(g6)
		}
	}
	return isWeighted(g4), isWeighted(g6)
}

// newWeighted returns the weighted answers of one family (IPv4 when v4)
// of eps, whose records byGroup holds by group.
func newWeighted(eps []endpoint, byGroup map[string][]mdns.RR, v4 bool) *weighted {
	groups := map[string]groupWeight{}
	for i := range eps {
		if eps[i].ip.Is4() == v4 {
			eps[i].addTo(groups)
		}
	}
	w := &weighted{}
	for _, name := range slices.Sorted(maps.Keys(groups)) {
		g := groups[name]
		if g.weight == 0 {
			continue
		}
		var rrs []mdns.RR
		for _, rr := range byGroup[name] {
			if (rr.Header().Rrtype == mdns.TypeA) == v4 {
				rrs = append(rrs, rr)
			}
		}
		w.total += uint64(g.weight)
		w.groups = append(w.groups, weightedGroup{upto: w.total, rrs: slices.Clip(rrs)})
	}
	return w
}

// srvGroupWeights sets weights[i], for each endpoint eps[i] whose port
// ports[i] is not 0, to its SRV weight when the endpoints of the port are
// weighted (isWeighted): its group's share of srvWeightScale divided among
// the group's endpoints of the port, at least 1 when the group's weight is
// above 0, and 0 when it is 0. It reports whether they are weighted.
func srvGroupWeights(eps []endpoint, ports, weights []uint16) bool {
	groups := map[string]groupWeight{}
	for i := range eps {
		if ports[i] != 0 {
			eps[i].addTo(groups)
		}
	}
	if !isWeighted(groups) {
		return false
	}
	var total uint64
	for _, g := range groups {
		total += uint64(g.weight)
	}
	for i := range eps {
		if ports[i] == 0 {
			continue
		}
		g := groups[eps[i].group]
		weights[i] = 0
		if g.weight > 0 {
			w := uint64(g.weight) * srvWeightScale / (total * uint64(g.n))
			weights[i] = uint16(max(1, w))
		}
	}
	return true
}

// nameSet maps lowercased, fully qualified owner names to their records.
type nameSet map[string]*entry

func (names nameSet) add(name string) *entry {
	e, ok := names[name]
	if !ok {
		e = &entry{}
		names[name] = e
	}
	return e
}

// clip clips every slice of every entry so readers cannot share appends.
func (names nameSet) clip() {
	for _, e := range names {
		e.a, e.aaaa, e.srv, e.srvXtra = slices.Clip(e.a), slices.Clip(e.aaaa), slices.Clip(e.srv), slices.Clip(e.srvXtra)
	}
}

// unweigh drops the weighted answers of e, whose address records get ttl
// back. It runs while the entry is built, before any reader sees it.
func (e *entry) unweigh(ttl uint32) {
	if e.wa == nil && e.waaaa == nil {
		return
	}
	for _, rr := range slices.Concat(e.a, e.aaaa) {
		rr.Header().Ttl = ttl
	}
	e.wa, e.waaaa = nil, nil
}

func (e *entry) addAddr(rr mdns.RR) {
	if rr.Header().Rrtype == mdns.TypeAAAA {
		e.aaaa = append(e.aaaa, rr)
	} else {
		e.a = append(e.a, rr)
	}
}

// addAddrOnce adds rr, an A or AAAA record of e's name, unless e has a
// record of that address already, and returns the record e holds: two
// endpoints may share a name (two pods with one hostname, or a hostname
// that reads as another pod's dashed address).
func (e *entry) addAddrOnce(rr mdns.RR) mdns.RR {
	have := e.a
	if rr.Header().Rrtype == mdns.TypeAAAA {
		have = e.aaaa
	}
	ip := addrOf(rr)
	for _, h := range have {
		if addrOf(h) == ip {
			return h
		}
	}
	e.addAddr(rr)
	return rr
}

// addrOf is the address of an A or AAAA record.
func addrOf(rr mdns.RR) netip.Addr {
	var ip netip.Addr
	switch r := rr.(type) {
	case *mdns.A:
		ip, _ = netip.AddrFromSlice(r.A.To4())
	case *mdns.AAAA:
		ip, _ = netip.AddrFromSlice(r.AAAA)
	}
	return ip
}

type endpoint struct {
	ip     netip.Addr
	pod    *corev1.Pod
	group  string // kube.EndpointGroup
	weight int32
}

// endpoints returns the ready endpoints of svc among pods (kube.Endpoint
// decides), one per address, sorted by address.
func endpoints(svc *corev1.Service, pods []*corev1.Pod) []endpoint {
	var eps []endpoint
	for _, p := range pods {
		if _, ready := kube.Endpoint(svc, p); !ready {
			continue
		}
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil {
			continue
		}
		group, weight := kube.EndpointGroup(p)
		eps = append(eps, endpoint{ip: ip.Unmap(), pod: p, group: group, weight: weight})
	}
	slices.SortFunc(eps, func(a, b endpoint) int {
		if c := a.ip.Compare(b.ip); c != 0 {
			return c
		}
		// Same address (host-network pods): keep the first by name, stably.
		return strings.Compare(a.pod.Name, b.pod.Name)
	})
	return slices.CompactFunc(eps, func(a, b endpoint) bool { return a.ip == b.ip })
}

func addrRR(name string, ip netip.Addr, ttl uint32) mdns.RR {
	if ip.Is4() {
		return &mdns.A{
			Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: ttl},
			A:   ip.AsSlice(),
		}
	}
	return &mdns.AAAA{
		Hdr:  mdns.RR_Header{Name: name, Rrtype: mdns.TypeAAAA, Class: mdns.ClassINET, Ttl: ttl},
		AAAA: ip.AsSlice(),
	}
}

// dashed turns an address into a label: 10.1.2.3 -> 10-1-2-3,
// fd00::1 -> fd00--1 (as Kubernetes names headless endpoints).
var dasher = strings.NewReplacer(".", "-", ":", "-")

func dashed(ip netip.Addr) string {
	return dasher.Replace(ip.WithZone("").String())
}

// isLabel reports whether s can be used as one DNS label: 1-63 letters,
// digits or hyphens, not starting or ending with a hyphen (RFC 1123).
func isLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Domain returns the index's domain, lowercased and fully qualified.
func (ix *Index) Domain() string { return ix.domain }

// Len returns the number of owner names in the index, empty non-terminals
// included.
func (ix *Index) Len() int {
	n := 0
	for _, m := range ix.names {
		n += len(m)
	}
	return n
}

// InDomain reports whether name (any case) is the domain or below it.
func (ix *Index) InDomain(name string) bool { return inDomain(lower(name), ix.domain) }

func inDomain(lname, domain string) bool {
	if len(lname) < len(domain) {
		return false
	}
	if len(lname) == len(domain) {
		return lname == domain
	}
	return lname[len(lname)-len(domain)-1] == '.' && lname[len(lname)-len(domain):] == domain
}

// lower lowercases ASCII letters only (DNS names compare case-insensitively
// over ASCII, RFC 4343); it does not allocate for an already lowercase name.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// Answer returns the reply to q, a query for a name inside the domain. It is
// safe for concurrent use, and a function of q and the index but for the
// weighted answers of a headless Service (see BuildIndex), whose group is
// picked at random for each query.
//
// The reply carries the first question of q and the records of the index;
// the records are shared with the index and must not be modified (the slices
// holding them are the reply's own). EDNS0 and truncation are the transport's
// business and are not handled here.
func (ix *Index) Answer(q *mdns.Msg) *mdns.Msg { return ix.answer(q, rand.Uint64N) }

// answer is Answer with the random source of weighted answers: rnd(n)
// returns a number in [0, n).
func (ix *Index) answer(q *mdns.Msg, rnd func(n uint64) uint64) *mdns.Msg {
	m := new(mdns.Msg)
	m.Id = q.Id
	m.Response = true
	m.Opcode = q.Opcode
	if q.Opcode != mdns.OpcodeQuery {
		m.Rcode = mdns.RcodeNotImplemented
		return m
	}
	m.RecursionDesired = q.RecursionDesired
	m.CheckingDisabled = q.CheckingDisabled
	m.RecursionAvailable = true
	if len(q.Question) != 1 {
		m.Rcode = mdns.RcodeFormatError
		return m
	}
	m.Question = []mdns.Question{q.Question[0]}
	qu := q.Question[0]
	name := lower(qu.Name)
	if !inDomain(name, ix.domain) {
		m.Rcode = mdns.RcodeRefused
		return m
	}
	m.Authoritative = true
	if qu.Qclass != mdns.ClassINET && qu.Qclass != mdns.ClassANY {
		m.Rcode = mdns.RcodeRefused
		return m
	}
	e, ok := ix.lookup(name)
	if !ok {
		m.Rcode = mdns.RcodeNameError
		m.Ns = slices.Clone(ix.soa)
		return m
	}
	switch qu.Qtype {
	case mdns.TypeA:
		if e.wa != nil {
			m.Answer = slices.Clone(e.wa.pick(rnd(e.wa.total)))
		} else {
			m.Answer = slices.Clone(e.a)
		}
	case mdns.TypeAAAA:
		if e.waaaa != nil {
			m.Answer = slices.Clone(e.waaaa.pick(rnd(e.waaaa.total)))
		} else {
			m.Answer = slices.Clone(e.aaaa)
		}
	case mdns.TypeSRV:
		m.Answer = slices.Clone(e.srv)
		m.Extra = slices.Clone(e.srvXtra)
	case mdns.TypeSOA:
		if name == ix.domain {
			m.Answer = slices.Clone(ix.soa)
		}
	case mdns.TypeANY:
		// RFC 8482 lets a server answer ANY with a subset; the addresses
		// are what clients asking ANY want.
		m.Answer = slices.Concat(e.a, e.aaaa)
	}
	if len(m.Answer) == 0 {
		m.Ns = slices.Clone(ix.soa) // NODATA: the SOA lets resolvers cache it (RFC 2308)
	}
	return m
}
