package proxy

import (
	"cmp"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The model: what bosun's table holds, as plain Go values. Build computes
// it from the service ports without I/O; the applier (nft.go) turns it
// into netlink messages and the golden files under testdata show it.

// DefaultMasqueradeMark is the packet mark (bit 14, as kube-proxy's) that
// asks the nat postrouting chain to masquerade a packet.
const DefaultMasqueradeMark = 0x4000

// Names of the table's fixed chains, maps and sets.
const (
	chainFilterInput    = "filter-input"
	chainFilterForward  = "filter-forward"
	chainFilterOutput   = "filter-output"
	chainNATPrerouting  = "nat-prerouting"
	chainNATOutput      = "nat-output"
	chainNATPostrouting = "nat-postrouting"
	chainServices       = "services"
	chainNotDNATed      = "not-dnated"
	chainMasquerading   = "masquerading"
	chainReject         = "reject-chain"

	mapServiceIPs       = "service-ips"
	mapServiceNodePorts = "service-nodeports"
	setServiceIPs       = "all-service-ips"
	setServiceNodePorts = "all-service-nodeports"
	setHairpin          = "hairpin"

	prefixService  = "service-"
	prefixBackends = "backends-"
	prefixEndpoint = "endpoint-"
	prefixAffinity = "affinity-"
	prefixSlots    = "slots-"
)

// Priorities of the base chains. Filtering runs after DNAT (kube-proxy's
// runs before): it refuses a new connection to a service port that the
// nat chain did not DNAT, which it can only know once the nat chain has
// run. In output this order matters (the nat and filter chains share the
// hook); input and forward come after prerouting's DNAT anyway.
const (
	priorityDNAT   = -100
	prioritySNAT   = 100
	priorityFilter = priorityDNAT + 10
)

// Ruleset is the whole content of the table.
type Ruleset struct {
	Table  string  `json:"table"`
	Sets   []Set   `json:"sets"`
	Chains []Chain `json:"chains"`
}

// KeyType is the type of a set's or map's key, in nft's words. In this
// closed vocabulary a key type also says what a rule looks up: the
// packet's fields named after each type.
type KeyType string

// The key types bosun's sets use.
const (
	// KeyAddrProtoPort: ip daddr . meta l4proto . th dport.
	KeyAddrProtoPort KeyType = "ipv4_addr . inet_proto . inet_service"
	// KeyProtoPort: meta l4proto . th dport.
	KeyProtoPort KeyType = "inet_proto . inet_service"
	// KeyAddr: ip saddr.
	KeyAddr KeyType = "ipv4_addr"
	// KeyAddrAddr: ip saddr . ip daddr.
	KeyAddrAddr KeyType = "ipv4_addr . ipv4_addr"
	// KeySlot is a numgen value, converted to network order (interval
	// maps compare their keys as big-endian bytes).
	KeySlot KeyType = "integer"
)

// DataType is what a map's keys map to.
type DataType string

// The data types bosun's maps use.
const (
	// DataVerdict: a jump or goto (a verdict map).
	DataVerdict DataType = "verdict"
	// DataAddrPort: the address and port a connection is DNATed to.
	DataAddrPort DataType = "ipv4_addr . inet_service"
)

// Set is a named set, or a map when Data is set.
type Set struct {
	Name string   `json:"name"`
	Key  KeyType  `json:"key"`
	Data DataType `json:"data,omitempty"`
	// Timeout, when not 0, makes a dynamic set (filled by the data path)
	// whose entries expire this long after they were last updated.
	Timeout  time.Duration `json:"timeout,omitempty"`
	Elements []Element     `json:"elements,omitempty"`
	// Slots are the elements of a numgen map (Key KeySlot), an interval
	// map: each slot is a range of numgen values.
	Interval bool   `json:"interval,omitempty"`
	Slots    []Slot `json:"slots,omitempty"`
}

// Element is one entry of a set or map: the key's parts that its KeyType
// has and, in a verdict map, the verdict.
type Element struct {
	Addr netip.Addr `json:"addr,omitzero"`
	// Addr2 is the second address of a KeyAddrAddr key.
	Addr2   netip.Addr `json:"addr2,omitzero"`
	Proto   Proto      `json:"proto,omitempty"`
	Port    uint16     `json:"port,omitempty"`
	Verdict Verdict    `json:"verdict,omitzero"`
}

// Proto is an IP protocol number (6 TCP, 17 UDP).
type Proto uint8

// Protocols bosun serves.
const (
	ProtoTCP Proto = 6
	ProtoUDP Proto = 17
)

func (p Proto) String() string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	}
	return strconv.Itoa(int(p))
}

// MarshalText shows the protocol by name in the golden files.
func (p Proto) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// VerdictKind is what a verdict does.
type VerdictKind string

// Verdicts bosun's rules use.
const (
	VerdictJump   VerdictKind = "jump"
	VerdictGoto   VerdictKind = "goto"
	VerdictReturn VerdictKind = "return"
)

// Verdict ends a rule: jump or goto a chain, or return.
type Verdict struct {
	Kind  VerdictKind `json:"kind"`
	Chain string      `json:"chain,omitempty"`
}

// Chain is a chain and its rules; Base is set for chains hooked into
// netfilter.
type Chain struct {
	Name  string     `json:"name"`
	Base  *BaseChain `json:"base,omitempty"`
	Rules []Rule     `json:"rules"`
}

// BaseChain hooks a chain: Type filter or nat, Hook prerouting, input,
// forward, output or postrouting.
type BaseChain struct {
	Type     string `json:"type"`
	Hook     string `json:"hook"`
	Priority int32  `json:"priority"`
}

// Rule is one rule of bosun's table: matches (all must hold, in field
// order) and one action. It is a closed vocabulary: the applier knows how
// to encode every field and refuses a rule with none or two actions.
type Rule struct {
	// Matches.
	CTStateNew    bool       `json:"ctStateNew,omitempty"`    // ct state new
	CTStatusDNAT  bool       `json:"ctStatusDNAT,omitempty"`  // ct status dnat
	CTNotDNAT     bool       `json:"ctNotDNAT,omitempty"`     // ct status ! dnat
	FibDaddrLocal bool       `json:"fibDaddrLocal,omitempty"` // fib daddr type local, ip daddr != 127.0.0.0/8
	L4Proto       Proto      `json:"l4proto,omitempty"`       // meta l4proto
	DaddrIsNot    netip.Addr `json:"daddrIsNot,omitzero"`     // ip daddr !=
	InSet         *Lookup    `json:"inSet,omitempty"`         // KEY @set
	MarkClear     uint32     `json:"markClear,omitempty"`     // meta mark & MarkClear == 0

	// Actions.
	Verdict    *Verdict       `json:"verdict,omitempty"`
	VMap       *Lookup        `json:"vmap,omitempty"`       // KEY vmap @map
	Numgen     *Numgen        `json:"numgen,omitempty"`     // numgen random mod N vmap @map
	NumgenDNAT *Numgen        `json:"numgenDNAT,omitempty"` // dnat ip to numgen random mod N map @map
	MarkOr     uint32         `json:"markOr,omitempty"`     // meta mark set meta mark | MarkOr
	MarkXor    uint32         `json:"markXor,omitempty"`    // meta mark set meta mark ^ MarkXor
	Masquerade bool           `json:"masquerade,omitempty"` // masquerade fully-random
	Reject     RejectKind     `json:"reject,omitempty"`
	UpdateSet  string         `json:"updateSet,omitempty"` // update @set { ip saddr }
	DNAT       netip.AddrPort `json:"dnat,omitzero"`       // dnat to addr:port
}

// Lookup looks the packet's Key (the fields its KeyType names) up in the
// set or map Set.
type Lookup struct {
	Key KeyType `json:"key"`
	Set string  `json:"set"`
}

// Numgen draws a number in [0, Modulus) and looks it up in the numgen map
// Map: the slot [From, To] holding it names the chain to go to (a verdict
// map) or the endpoint to DNAT to.
type Numgen struct {
	Modulus uint32 `json:"modulus"`
	Map     string `json:"map"`
}

// Slot is a range of numgen values and the chain they go to or the
// endpoint they are DNATed to.
type Slot struct {
	From uint32         `json:"from"`
	To   uint32         `json:"to"`
	Goto string         `json:"goto,omitempty"`
	DNAT netip.AddrPort `json:"dnat,omitzero"`
}

// RejectKind is how a rejected packet is answered.
type RejectKind string

// Rejects bosun uses.
const (
	RejectTCPReset        RejectKind = "tcp-reset"
	RejectPortUnreachable RejectKind = "icmp-port-unreachable"
)

// modelConfig is what the model depends on besides the ports.
type modelConfig struct {
	Table string
	Mark  uint32
}

// Build returns the ruleset of table for ports (validated and normalized
// first): the model Sync programs.
func Build(table string, mark uint32, ports []ServicePort) (*Ruleset, error) {
	norm, err := normalize(ports, nil)
	if err != nil {
		return nil, err
	}
	return build(modelConfig{Table: table, Mark: mark}, norm.ports), nil
}

func build(cfg modelConfig, ports []*ServicePort) *Ruleset {
	rs, _ := buildCounting(cfg, ports)
	return rs
}

// buildCounting is build that also counts, per address in the hairpin
// set, the ports that send traffic to it.
func buildCounting(cfg modelConfig, ports []*ServicePort) (*Ruleset, map[netip.Addr]int) {
	rs := skeleton(cfg)
	fixed := map[string]*Set{}
	for i := range rs.Sets {
		fixed[rs.Sets[i].Name] = &rs.Sets[i]
	}
	var own []Set
	hairpin := map[netip.Addr]int{}
	for _, sp := range ports {
		f := fragmentOf(cfg, sp)
		rs.Chains = append(rs.Chains, f.Chains...)
		own = append(own, f.Sets...)
		for _, e := range f.Elements {
			fixed[e.Map].Elements = append(fixed[e.Map].Elements, e.Element)
		}
		for _, a := range f.Hairpin {
			hairpin[a]++
		}
	}
	addrs := make([]netip.Addr, 0, len(hairpin))
	for a := range hairpin {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	hp := fixed[setHairpin]
	hp.Elements = make([]Element, len(addrs))
	for i, a := range addrs {
		hp.Elements[i] = hairpinElement(a)
	}
	rs.Sets = append(rs.Sets, own...)
	return rs, hairpin
}

func hairpinElement(a netip.Addr) Element { return Element{Addr: a, Addr2: a} }

// skeleton is the part of the table that does not depend on the ports.
func skeleton(cfg modelConfig) *Ruleset {
	jump := func(chain string) *Verdict { return &Verdict{Kind: VerdictJump, Chain: chain} }
	reject := &Verdict{Kind: VerdictGoto, Chain: chainReject}
	base := func(name, typ, hook string, prio int32, rules ...Rule) Chain {
		return Chain{Name: name, Base: &BaseChain{Type: typ, Hook: hook, Priority: prio}, Rules: rules}
	}
	// A new connection the nat chain did not DNAT: refused if it was
	// for a service port.
	check := Rule{CTStateNew: true, CTNotDNAT: true, Verdict: jump(chainNotDNATed)}
	return &Ruleset{
		Table: cfg.Table,
		Sets: []Set{
			{Name: setHairpin, Key: KeyAddrAddr},
			{Name: setServiceIPs, Key: KeyAddrProtoPort},
			{Name: setServiceNodePorts, Key: KeyProtoPort},
			{Name: mapServiceIPs, Key: KeyAddrProtoPort, Data: DataVerdict},
			{Name: mapServiceNodePorts, Key: KeyProtoPort, Data: DataVerdict},
		},
		Chains: []Chain{
			base(chainFilterInput, "filter", "input", priorityFilter, check),
			base(chainFilterForward, "filter", "forward", priorityFilter, check),
			base(chainFilterOutput, "filter", "output", priorityFilter, check),
			base(chainNATPrerouting, "nat", "prerouting", priorityDNAT, Rule{Verdict: jump(chainServices)}),
			base(chainNATOutput, "nat", "output", priorityDNAT, Rule{Verdict: jump(chainServices)}),
			base(chainNATPostrouting, "nat", "postrouting", prioritySNAT, Rule{Verdict: jump(chainMasquerading)}),
			{Name: chainNotDNATed, Rules: []Rule{
				{InSet: &Lookup{Key: KeyAddrProtoPort, Set: setServiceIPs}, Verdict: reject},
				{FibDaddrLocal: true, InSet: &Lookup{Key: KeyProtoPort, Set: setServiceNodePorts}, Verdict: reject},
			}},
			{Name: chainServices, Rules: []Rule{
				{VMap: &Lookup{Key: KeyAddrProtoPort, Set: mapServiceIPs}},
				{FibDaddrLocal: true, VMap: &Lookup{Key: KeyProtoPort, Set: mapServiceNodePorts}},
			}},
			{Name: chainMasquerading, Rules: []Rule{
				// Hairpin: a pod sent to itself through its Service is
				// masqueraded, or it would answer itself directly and
				// see a reply from an address it never called.
				{CTStatusDNAT: true, InSet: &Lookup{Key: KeyAddrAddr, Set: setHairpin}, Masquerade: true},
				{MarkClear: cfg.Mark, Verdict: &Verdict{Kind: VerdictReturn}},
				{MarkXor: cfg.Mark},
				{Masquerade: true},
			}},
			{Name: chainReject, Rules: []Rule{
				{L4Proto: ProtoTCP, Reject: RejectTCPReset},
				{Reject: RejectPortUnreachable},
			}},
		},
	}
}

// fragment is the part of the table one service port owns: its chains
// (service chain first, then endpoint chains), its sets and maps, its
// elements of the fixed maps and sets, and the endpoint addresses it
// needs in the hairpin set (shared with other ports).
type fragment struct {
	Chains   []Chain
	Sets     []Set
	Elements []mapElement
	Hairpin  []netip.Addr
}

type mapElement struct {
	Map string
	Element
}

// fragmentOf computes a service port's fragment. Its chains and its
// elements of the fixed maps and sets depend only on the port's identity,
// address, node port and affinity, not on its endpoints: without affinity
// the endpoints are only elements of the port's backends map (and of the
// hairpin set), none of them a verdict.
func fragmentOf(cfg modelConfig, sp *ServicePort) fragment {
	var f fragment
	proto := protoOf(sp.Protocol)
	shares := split(sp.Groups)
	names := namesOf(sp)
	to := Verdict{Kind: VerdictGoto, Chain: names.service}
	f.Elements = append(f.Elements, mapElement{mapServiceIPs, Element{Addr: sp.ClusterIP, Proto: proto, Port: sp.Port, Verdict: to}})
	if sp.NodePort != 0 {
		f.Elements = append(f.Elements, mapElement{mapServiceNodePorts, Element{Proto: proto, Port: sp.NodePort, Verdict: to}})
	}
	// Whether or not it has endpoints: the filter chains refuse a new
	// connection to it that the service chain did not DNAT (it found no
	// backend in the rules it saw).
	f.Elements = append(f.Elements, mapElement{setServiceIPs, Element{Addr: sp.ClusterIP, Proto: proto, Port: sp.Port}})
	if sp.NodePort != 0 {
		f.Elements = append(f.Elements, mapElement{setServiceNodePorts, Element{Proto: proto, Port: sp.NodePort}})
	}
	f.Hairpin = hairpinAddrs(shares)

	svc := Chain{Name: names.service}
	if sp.NodePort != 0 {
		// Only node port traffic reaches this chain with another
		// destination than the ClusterIP: it is masqueraded so that
		// replies come back through this node.
		svc.Rules = append(svc.Rules, Rule{DaddrIsNot: sp.ClusterIP, MarkOr: cfg.Mark})
	}
	if sp.AffinityTimeout == 0 {
		backends := Set{Name: names.backends(), Key: KeySlot, Data: DataAddrPort, Interval: true}
		var from uint32
		for _, sh := range shares {
			backends.Slots = append(backends.Slots, Slot{From: from, To: from + sh.Slots - 1, DNAT: netip.AddrPortFrom(sh.Endpoint.IP, sh.Endpoint.Port)})
			from += sh.Slots
		}
		svc.Rules = append(svc.Rules, Rule{L4Proto: proto, NumgenDNAT: &Numgen{Modulus: Modulus, Map: backends.Name}})
		f.Sets = append(f.Sets, backends)
		f.Chains = append(f.Chains, svc)
		return f
	}

	// sessionAffinity: ClientIP, as kube-proxy: a chain per endpoint that
	// records the client in the endpoint's affinity set, and a rule per
	// endpoint in the service chain that sends a known client back.
	slots := Set{Name: names.slots(), Key: KeySlot, Data: DataVerdict, Interval: true}
	var eps []Chain
	var from uint32
	for _, sh := range shares {
		ep, set := names.endpoint(sh.Endpoint), names.affinity(sh.Endpoint)
		f.Sets = append(f.Sets, Set{Name: set, Key: KeyAddr, Timeout: sp.AffinityTimeout})
		svc.Rules = append(svc.Rules, Rule{InSet: &Lookup{Key: KeyAddr, Set: set}, Verdict: &Verdict{Kind: VerdictGoto, Chain: ep}})
		slots.Slots = append(slots.Slots, Slot{From: from, To: from + sh.Slots - 1, Goto: ep})
		from += sh.Slots
		eps = append(eps, Chain{Name: ep, Rules: []Rule{
			{UpdateSet: set},
			{L4Proto: proto, DNAT: netip.AddrPortFrom(sh.Endpoint.IP, sh.Endpoint.Port)},
		}})
	}
	svc.Rules = append(svc.Rules, Rule{Numgen: &Numgen{Modulus: Modulus, Map: slots.Name}})
	f.Sets = append(f.Sets, slots)
	f.Chains = append(append(f.Chains, svc), eps...)
	return f
}

// hairpinAddrs are the addresses of the endpoints with a share, sorted,
// each once.
func hairpinAddrs(shares []share) []netip.Addr {
	out := make([]netip.Addr, len(shares))
	for i, sh := range shares {
		out[i] = sh.Endpoint.IP
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func protoOf(p corev1.Protocol) Proto {
	if p == corev1.ProtocolUDP {
		return ProtoUDP
	}
	return ProtoTCP
}

// portNames names a service port's chains and sets after what they serve,
// prefixed with a hash of that name so that names stay unique and visibly
// different when they must be cut to nftables' limit.
type portNames struct {
	base    string // namespace/name/protocol/port
	service string
}

// maxNameLen is nftables' limit on chain and set names (NFT_NAME_MAXLEN
// 256, with the terminating NUL).
const maxNameLen = 255

func namesOf(sp *ServicePort) portNames {
	base := sp.Namespace + "/" + sp.Name + "/" + strings.ToLower(string(sp.Protocol)) + "/" + sp.PortName
	return portNames{base: base, service: hashedName(prefixService, base)}
}

func (n portNames) endpoint(ep Endpoint) string {
	return hashedName(prefixEndpoint, n.base+"__"+ep.IP.String()+"/"+strconv.Itoa(int(ep.Port)))
}

func (n portNames) slots() string { return hashedName(prefixSlots, n.base) }

func (n portNames) backends() string { return hashedName(prefixBackends, n.base) }

func (n portNames) affinity(ep Endpoint) string {
	return hashedName(prefixAffinity, n.base+"__"+ep.IP.String()+"/"+strconv.Itoa(int(ep.Port)))
}

func hashedName(prefix, name string) string {
	sum := sha256.Sum256([]byte(name))
	s := prefix + base32.StdEncoding.EncodeToString(sum[:5]) + "-" + name
	if len(s) > maxNameLen {
		s = s[:maxNameLen-3] + "..."
	}
	return s
}

// spKey identifies a service port as ServicePort.Key does, without
// building a string.
type spKey struct {
	namespace, name, port string
	protocol              corev1.Protocol
}

func keyOf(sp *ServicePort) spKey {
	return spKey{sp.Namespace, sp.Name, sp.PortName, sp.Protocol}
}

func compareSPKeys(a, b spKey) int {
	return cmp.Or(strings.Compare(a.namespace, b.namespace), strings.Compare(a.name, b.name),
		strings.Compare(a.port, b.port), strings.Compare(string(a.protocol), string(b.protocol)))
}

// portSet is a normalized set of service ports: in the caller's order,
// sorted by key, and by key.
type portSet struct {
	order []*ServicePort
	ports []*ServicePort
	byKey map[spKey]*ServicePort
}

// normalize validates ports and returns them sorted by key, each with its
// groups sorted by name and their endpoints by address, so that equal
// states compare equal whatever order the caller used. A port equal to
// the one prev holds under its key is returned as prev's (no copy, and no
// second validation); the others are deep copies, so the caller's slices
// are never kept.
func normalize(ports []ServicePort, prev map[spKey]*ServicePort) (*portSet, error) {
	out := make([]*ServicePort, len(ports))
	byKey := make(map[spKey]*ServicePort, len(ports))
	// Service addresses and node ports, packed, to the index of the port
	// that has them.
	vips := make(map[uint64]int, len(ports))
	var nodePorts map[uint32]int
	where := func(i int) string { return fmt.Sprintf("service port %d (%s)", i, ports[i].Key()) }
	for i := range ports {
		sp := &ports[i]
		key := keyOf(sp)
		old, ok := prev[key]
		unchanged := ok && equalPorts(old, sp) // old is in normal order: so is sp
		if !unchanged {
			if err := validatePort(sp); err != nil {
				return nil, fmt.Errorf("%s: %w", where(i), err)
			}
			old = normalCopy(sp)
		}
		if byKey[key] = old; len(byKey) == i {
			j := slices.IndexFunc(ports[:i], func(p ServicePort) bool { return keyOf(&p) == key })
			return nil, fmt.Errorf("%s: same service port as service port %d", where(i), j)
		}
		proto := protoOf(sp.Protocol)
		a := sp.ClusterIP.As4()
		vip := uint64(binary.BigEndian.Uint32(a[:]))<<24 | uint64(proto)<<16 | uint64(sp.Port)
		if vips[vip] = i; len(vips) == i {
			j := slices.IndexFunc(ports[:i], func(p ServicePort) bool {
				return p.ClusterIP == sp.ClusterIP && p.Port == sp.Port && protoOf(p.Protocol) == proto
			})
			return nil, fmt.Errorf("%s: %v:%d/%v is also service port %d", where(i), sp.ClusterIP, sp.Port, proto, j)
		}
		if sp.NodePort != 0 {
			np := uint32(proto)<<16 | uint32(sp.NodePort)
			if j, dup := nodePorts[np]; dup {
				return nil, fmt.Errorf("%s: node port %d/%v is also service port %d", where(i), sp.NodePort, proto, j)
			}
			if nodePorts == nil {
				nodePorts = map[uint32]int{}
			}
			nodePorts[np] = i
		}
		out[i] = old
	}
	ps := &portSet{order: out, ports: out, byKey: byKey}
	if !slices.IsSortedFunc(out, keyOrder) {
		ps.ports = slices.Clone(out)
		slices.SortFunc(ps.ports, keyOrder)
	}
	return ps, nil
}

// keyOrder orders normalized ports by key.
func keyOrder(a, b *ServicePort) int { return compareSPKeys(keyOf(a), keyOf(b)) }

// delta is one service port's change: old is nil for an added port, new
// for a removed one.
type delta struct{ old, new *ServicePort }

// sameKeys is normalize for the common incremental Sync: the caller lists
// the same service ports as last time (order, the normalized ports of the
// last Sync in the caller's order), in the same order, and none changed
// its address, port or node port. Then no key or address can clash, so
// only the ports that changed are validated and copied, without a map.
// It returns the changes (sorted by key) and the new order; ok is false
// when the case does not apply.
func sameKeys(ports []ServicePort, order []*ServicePort) (ds []delta, next []*ServicePort, ok bool, err error) {
	if len(ports) != len(order) {
		return nil, nil, false, nil
	}
	for i := range ports {
		sp, old := &ports[i], order[i]
		if keyOf(sp) != keyOf(old) || sp.ClusterIP != old.ClusterIP || sp.Port != old.Port || sp.NodePort != old.NodePort {
			return nil, nil, false, nil
		}
		if equalPorts(old, sp) { // old is in normal order: so is sp
			continue
		}
		if err := validatePort(sp); err != nil {
			return nil, nil, false, fmt.Errorf("service port %d (%s): %w", i, sp.Key(), err)
		}
		cp := normalCopy(sp)
		if equalPorts(old, cp) { // listed in another order
			continue
		}
		if next == nil {
			next = slices.Clone(order)
		}
		next[i] = cp
		ds = append(ds, delta{old: old, new: cp})
	}
	if next == nil {
		return nil, order, true, nil
	}
	slices.SortFunc(ds, func(a, b delta) int { return keyOrder(a.new, b.new) })
	return ds, next, true, nil
}

// normalCopy is a deep copy of sp in normal order: groups by name,
// endpoints by address.
func normalCopy(sp *ServicePort) *ServicePort {
	cp := *sp
	cp.Groups = slices.Clone(sp.Groups)
	for g := range cp.Groups {
		cp.Groups[g].Endpoints = slices.Clone(cp.Groups[g].Endpoints)
		slices.SortFunc(cp.Groups[g].Endpoints, compareEndpoints)
	}
	slices.SortStableFunc(cp.Groups, func(a, b Group) int { return cmp.Compare(a.Name, b.Name) })
	return &cp
}

// changes lists what turns prev into ps: added and changed ports in key
// order, then removed ones in key order.
func changes(prev map[spKey]*ServicePort, ps *portSet) []delta {
	var ds []delta
	for _, sp := range ps.ports {
		switch old, ok := prev[keyOf(sp)]; {
		case old == sp: // unchanged, shared by normalize
		case !ok:
			ds = append(ds, delta{new: sp})
		case !equalPorts(old, sp):
			ds = append(ds, delta{old: old, new: sp})
		}
	}
	// Every port kept is in both; the others of prev are removed.
	if len(prev) > len(ps.ports)-countAdded(ds) {
		var removed []delta
		for k, old := range prev {
			if _, ok := ps.byKey[k]; !ok {
				removed = append(removed, delta{old: old})
			}
		}
		slices.SortFunc(removed, func(a, b delta) int { return keyOrder(a.old, b.old) })
		ds = append(ds, removed...)
	}
	return ds
}

func countAdded(ds []delta) int {
	n := 0
	for _, d := range ds {
		if d.old == nil {
			n++
		}
	}
	return n
}

func validatePort(sp *ServicePort) error {
	if sp.Namespace == "" || sp.Name == "" {
		return errors.New("namespace and name must be set")
	}
	if sp.Protocol != corev1.ProtocolTCP && sp.Protocol != corev1.ProtocolUDP {
		return fmt.Errorf("protocol %q: only TCP and UDP are served", sp.Protocol)
	}
	if !sp.ClusterIP.Is4() {
		return fmt.Errorf("clusterIP %v: must be an IPv4 address", sp.ClusterIP)
	}
	if sp.Port == 0 {
		return errors.New("port must not be 0")
	}
	if sp.AffinityTimeout < 0 || (sp.AffinityTimeout > 0 && sp.AffinityTimeout < time.Millisecond) {
		return fmt.Errorf("affinity timeout %v: must be 0 or at least 1ms", sp.AffinityTimeout)
	}
	var seen map[Endpoint]bool
	for _, g := range sp.Groups {
		if g.Weight < 0 {
			return fmt.Errorf("group %q: weight %d must not be negative", g.Name, g.Weight)
		}
		for _, ep := range g.Endpoints {
			if !ep.IP.Is4() || ep.Port == 0 {
				return fmt.Errorf("group %q: endpoint %v:%d: need an IPv4 address and a port", g.Name, ep.IP, ep.Port)
			}
		}
		if len(sp.Groups) > 1 || !slices.IsSortedFunc(g.Endpoints, compareEndpoints) {
			if seen == nil {
				seen = map[Endpoint]bool{}
			}
			for _, ep := range g.Endpoints {
				if seen[ep] {
					return fmt.Errorf("endpoint %v:%d appears twice", ep.IP, ep.Port)
				}
				seen[ep] = true
			}
			continue
		}
		for i := 1; i < len(g.Endpoints); i++ { // sorted: duplicates are neighbours
			if g.Endpoints[i] == g.Endpoints[i-1] {
				return fmt.Errorf("endpoint %v:%d appears twice", g.Endpoints[i].IP, g.Endpoints[i].Port)
			}
		}
	}
	return nil
}

func compareEndpoints(a, b Endpoint) int {
	return cmp.Or(a.IP.Compare(b.IP), cmp.Compare(a.Port, b.Port))
}

// equalPorts reports whether two normalized service ports program the
// same rules.
func equalPorts(a, b *ServicePort) bool {
	if a.Namespace != b.Namespace || a.Name != b.Name || a.PortName != b.PortName ||
		a.Protocol != b.Protocol || a.ClusterIP != b.ClusterIP || a.Port != b.Port ||
		a.NodePort != b.NodePort || a.AffinityTimeout != b.AffinityTimeout || len(a.Groups) != len(b.Groups) {
		return false
	}
	for i := range a.Groups {
		ga, gb := &a.Groups[i], &b.Groups[i]
		if ga.Name != gb.Name || ga.Weight != gb.Weight || !slices.Equal(ga.Endpoints, gb.Endpoints) {
			return false
		}
	}
	return true
}
