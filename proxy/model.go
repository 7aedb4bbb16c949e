package proxy

import (
	"cmp"
	"crypto/sha256"
	"encoding/base32"
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

// Names of the table's fixed chains and maps.
const (
	chainFilterInput    = "filter-input"
	chainFilterForward  = "filter-forward"
	chainFilterOutput   = "filter-output"
	chainNATPrerouting  = "nat-prerouting"
	chainNATOutput      = "nat-output"
	chainNATPostrouting = "nat-postrouting"
	chainServices       = "services"
	chainEndpointsCheck = "endpoints-check"
	chainMasquerading   = "masquerading"
	chainReject         = "reject-chain"

	mapServiceIPs         = "service-ips"
	mapServiceNodePorts   = "service-nodeports"
	mapNoEndpointServices = "no-endpoint-services"
	mapNoEndpointNodePort = "no-endpoint-nodeports"

	prefixService  = "service-"
	prefixEndpoint = "endpoint-"
	prefixAffinity = "affinity-"
	prefixSlots    = "slots-"
)

// Priorities of the base chains: filtering runs before DNAT (it must see
// the ClusterIP, not an endpoint), as in kube-proxy.
const (
	priorityDNAT   = -100
	prioritySNAT   = 100
	priorityFilter = priorityDNAT - 10
)

// Ruleset is the whole content of the table.
type Ruleset struct {
	Table  string  `json:"table"`
	Sets   []Set   `json:"sets"`
	Chains []Chain `json:"chains"`
}

// KeyType is the type of a set's or map's key, in nft's words.
type KeyType string

// The key types bosun's sets use.
const (
	KeyAddrProtoPort KeyType = "ipv4_addr . inet_proto . inet_service"
	KeyProtoPort     KeyType = "inet_proto . inet_service"
	KeyAddr          KeyType = "ipv4_addr"
	// KeySlot is a numgen value, converted to network order (interval
	// maps compare their keys as big-endian bytes).
	KeySlot KeyType = "integer"
)

// Set is a named set, or a verdict map when Map is set.
type Set struct {
	Name string  `json:"name"`
	Key  KeyType `json:"key"`
	Map  bool    `json:"map,omitempty"`
	// Timeout, when not 0, makes a dynamic set (filled by the data path)
	// whose entries expire this long after they were last updated.
	Timeout  time.Duration `json:"timeout,omitempty"`
	Elements []Element     `json:"elements,omitempty"`
	// Slots are the elements of a numgen map (Key KeySlot); Interval is
	// set when a slot spans several values.
	Interval bool   `json:"interval,omitempty"`
	Slots    []Slot `json:"slots,omitempty"`
}

// Element is one entry of a verdict map: the key's parts that its KeyType
// has, and the verdict.
type Element struct {
	Addr    netip.Addr `json:"addr,omitzero"`
	Proto   Proto      `json:"proto"`
	Port    uint16     `json:"port"`
	Verdict Verdict    `json:"verdict"`
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
	FibDaddrLocal bool       `json:"fibDaddrLocal,omitempty"` // fib daddr type local, ip daddr != 127.0.0.0/8
	L4Proto       Proto      `json:"l4proto,omitempty"`       // meta l4proto
	SaddrIs       netip.Addr `json:"saddrIs,omitzero"`        // ip saddr ==
	DaddrIsNot    netip.Addr `json:"daddrIsNot,omitzero"`     // ip daddr !=
	SaddrInSet    string     `json:"saddrInSet,omitempty"`    // ip saddr @set
	MarkClear     uint32     `json:"markClear,omitempty"`     // meta mark & MarkClear == 0

	// Actions.
	Verdict    *Verdict       `json:"verdict,omitempty"`
	VMap       *VMap          `json:"vmap,omitempty"`       // KEY vmap @map
	Numgen     *Numgen        `json:"numgen,omitempty"`     // numgen random mod N vmap @map
	MarkOr     uint32         `json:"markOr,omitempty"`     // meta mark set meta mark | MarkOr
	MarkXor    uint32         `json:"markXor,omitempty"`    // meta mark set meta mark ^ MarkXor
	Masquerade bool           `json:"masquerade,omitempty"` // masquerade fully-random
	Reject     RejectKind     `json:"reject,omitempty"`
	UpdateSet  string         `json:"updateSet,omitempty"` // update @set { ip saddr }
	DNAT       netip.AddrPort `json:"dnat,omitzero"`       // dnat to addr:port
}

// VMap looks the packet's Key up in the verdict map Map.
type VMap struct {
	Key KeyType `json:"key"`
	Map string  `json:"map"`
}

// Numgen picks a chain at random: a number in [0, Modulus) is looked up in
// the slot map Map, whose slot [From, To] holding it names the chain.
type Numgen struct {
	Modulus uint32 `json:"modulus"`
	Map     string `json:"map"`
}

// Slot is a range of numgen values and the chain they go to.
type Slot struct {
	From uint32 `json:"from"`
	To   uint32 `json:"to"`
	Goto string `json:"goto"`
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
	return build(modelConfig{Table: table, Mark: mark}, norm), nil
}

func build(cfg modelConfig, ports []*ServicePort) *Ruleset {
	rs := skeleton(cfg)
	maps := map[string]*Set{}
	for i := range rs.Sets {
		maps[rs.Sets[i].Name] = &rs.Sets[i]
	}
	var affinity []Set
	for _, sp := range ports {
		f := fragmentOf(cfg, sp)
		rs.Chains = append(rs.Chains, f.Chains...)
		affinity = append(affinity, f.Sets...)
		for _, e := range f.Elements {
			m := maps[e.Map]
			m.Elements = append(m.Elements, e.Element)
		}
	}
	rs.Sets = append(rs.Sets, affinity...)
	return rs
}

// skeleton is the part of the table that does not depend on the ports.
func skeleton(cfg modelConfig) *Ruleset {
	jump := func(chain string) *Verdict { return &Verdict{Kind: VerdictJump, Chain: chain} }
	base := func(name, typ, hook string, prio int32, rules ...Rule) Chain {
		return Chain{Name: name, Base: &BaseChain{Type: typ, Hook: hook, Priority: prio}, Rules: rules}
	}
	check := Rule{CTStateNew: true, Verdict: jump(chainEndpointsCheck)}
	return &Ruleset{
		Table: cfg.Table,
		Sets: []Set{
			{Name: mapNoEndpointNodePort, Key: KeyProtoPort, Map: true},
			{Name: mapNoEndpointServices, Key: KeyAddrProtoPort, Map: true},
			{Name: mapServiceIPs, Key: KeyAddrProtoPort, Map: true},
			{Name: mapServiceNodePorts, Key: KeyProtoPort, Map: true},
		},
		Chains: []Chain{
			base(chainFilterInput, "filter", "input", priorityFilter, check),
			base(chainFilterForward, "filter", "forward", priorityFilter, check),
			base(chainFilterOutput, "filter", "output", priorityFilter, check),
			base(chainNATPrerouting, "nat", "prerouting", priorityDNAT, Rule{Verdict: jump(chainServices)}),
			base(chainNATOutput, "nat", "output", priorityDNAT, Rule{Verdict: jump(chainServices)}),
			base(chainNATPostrouting, "nat", "postrouting", prioritySNAT, Rule{Verdict: jump(chainMasquerading)}),
			{Name: chainEndpointsCheck, Rules: []Rule{
				{VMap: &VMap{Key: KeyAddrProtoPort, Map: mapNoEndpointServices}},
				{FibDaddrLocal: true, VMap: &VMap{Key: KeyProtoPort, Map: mapNoEndpointNodePort}},
			}},
			{Name: chainServices, Rules: []Rule{
				{VMap: &VMap{Key: KeyAddrProtoPort, Map: mapServiceIPs}},
				{FibDaddrLocal: true, VMap: &VMap{Key: KeyProtoPort, Map: mapServiceNodePorts}},
			}},
			{Name: chainMasquerading, Rules: []Rule{
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
// (service chain first, then endpoint chains), its affinity sets and its
// elements of the fixed maps.
type fragment struct {
	Chains   []Chain
	Sets     []Set
	Elements []mapElement
}

type mapElement struct {
	Map string
	Element
}

func fragmentOf(cfg modelConfig, sp *ServicePort) fragment {
	var f fragment
	proto := protoOf(sp.Protocol)
	modulus, shares := split(sp.Groups)
	if len(shares) == 0 {
		reject := Verdict{Kind: VerdictGoto, Chain: chainReject}
		f.Elements = append(f.Elements, mapElement{mapNoEndpointServices, Element{Addr: sp.ClusterIP, Proto: proto, Port: sp.Port, Verdict: reject}})
		if sp.NodePort != 0 {
			f.Elements = append(f.Elements, mapElement{mapNoEndpointNodePort, Element{Proto: proto, Port: sp.NodePort, Verdict: reject}})
		}
		return f
	}
	names := namesOf(sp)
	to := Verdict{Kind: VerdictGoto, Chain: names.service}
	f.Elements = append(f.Elements, mapElement{mapServiceIPs, Element{Addr: sp.ClusterIP, Proto: proto, Port: sp.Port, Verdict: to}})
	if sp.NodePort != 0 {
		f.Elements = append(f.Elements, mapElement{mapServiceNodePorts, Element{Proto: proto, Port: sp.NodePort, Verdict: to}})
	}

	svc := Chain{Name: names.service}
	if sp.NodePort != 0 {
		// Only node port traffic reaches this chain with another
		// destination than the ClusterIP: it is masqueraded so that
		// replies come back through this node.
		svc.Rules = append(svc.Rules, Rule{DaddrIsNot: sp.ClusterIP, MarkOr: cfg.Mark})
	}
	affinity := sp.AffinityTimeout > 0
	slots := Set{Name: names.slots(), Key: KeySlot, Map: true}
	var eps []Chain
	var from uint32
	for _, sh := range shares {
		ep := names.endpoint(sh.Endpoint)
		if affinity {
			set := names.affinity(sh.Endpoint)
			f.Sets = append(f.Sets, Set{Name: set, Key: KeyAddr, Timeout: sp.AffinityTimeout})
			svc.Rules = append(svc.Rules, Rule{SaddrInSet: set, Verdict: &Verdict{Kind: VerdictGoto, Chain: ep}})
		}
		slots.Slots = append(slots.Slots, Slot{From: from, To: from + sh.Slots - 1, Goto: ep})
		slots.Interval = slots.Interval || sh.Slots > 1
		from += sh.Slots

		c := Chain{Name: ep, Rules: []Rule{
			// Hairpin: a pod reaching its own Service is masqueraded, or
			// it would answer itself directly and the client would see a
			// reply from an address it never called.
			{SaddrIs: sh.Endpoint.IP, MarkOr: cfg.Mark},
		}}
		if affinity {
			c.Rules = append(c.Rules, Rule{UpdateSet: names.affinity(sh.Endpoint)})
		}
		c.Rules = append(c.Rules, Rule{L4Proto: proto, DNAT: netip.AddrPortFrom(sh.Endpoint.IP, sh.Endpoint.Port)})
		eps = append(eps, c)
	}
	svc.Rules = append(svc.Rules, Rule{Numgen: &Numgen{Modulus: modulus, Map: slots.Name}})
	f.Sets = append(f.Sets, slots)
	f.Chains = append(append(f.Chains, svc), eps...)
	return f
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

// normalize validates ports and returns them sorted by key, each with its
// groups sorted by name and their endpoints by address, so that equal
// states compare equal whatever order the caller used. A port equal to
// the one prev holds under its key is returned as prev's (no copy); the
// others are deep copies, so the caller's slices are never kept.
func normalize(ports []ServicePort, prev map[string]*ServicePort) ([]*ServicePort, error) {
	out := make([]*ServicePort, len(ports))
	keys := make(map[string]int, len(ports))
	vips := make(map[Element]int, len(ports))
	nodePorts := map[Element]int{}
	for i := range ports {
		sp := &ports[i]
		key := sp.Key()
		where := fmt.Sprintf("service port %d (%s)", i, key)
		if err := validatePort(sp, where); err != nil {
			return nil, err
		}
		if j, dup := keys[key]; dup {
			return nil, fmt.Errorf("%s: same service port as service port %d", where, j)
		}
		keys[key] = i
		proto := protoOf(sp.Protocol)
		vip := Element{Addr: sp.ClusterIP, Proto: proto, Port: sp.Port}
		if j, dup := vips[vip]; dup {
			return nil, fmt.Errorf("%s: %v:%d/%v is also service port %d", where, sp.ClusterIP, sp.Port, proto, j)
		}
		vips[vip] = i
		if sp.NodePort != 0 {
			np := Element{Proto: proto, Port: sp.NodePort}
			if j, dup := nodePorts[np]; dup {
				return nil, fmt.Errorf("%s: node port %d/%v is also service port %d", where, sp.NodePort, proto, j)
			}
			nodePorts[np] = i
		}
		if old, ok := prev[key]; ok && sorted(sp) && equalPorts(old, sp) {
			out[i] = old
			continue
		}
		cp := *sp
		cp.Groups = slices.Clone(sp.Groups)
		for g := range cp.Groups {
			cp.Groups[g].Endpoints = slices.Clone(cp.Groups[g].Endpoints)
			slices.SortFunc(cp.Groups[g].Endpoints, compareEndpoints)
		}
		slices.SortStableFunc(cp.Groups, func(a, b Group) int { return cmp.Compare(a.Name, b.Name) })
		out[i] = &cp
	}
	slices.SortFunc(out, func(a, b *ServicePort) int { return cmp.Compare(a.Key(), b.Key()) })
	return out, nil
}

func validatePort(sp *ServicePort, where string) error {
	if sp.Namespace == "" || sp.Name == "" {
		return fmt.Errorf("%s: namespace and name must be set", where)
	}
	if sp.Protocol != corev1.ProtocolTCP && sp.Protocol != corev1.ProtocolUDP {
		return fmt.Errorf("%s: protocol %q: only TCP and UDP are served", where, sp.Protocol)
	}
	if !sp.ClusterIP.Is4() {
		return fmt.Errorf("%s: clusterIP %v: must be an IPv4 address", where, sp.ClusterIP)
	}
	if sp.Port == 0 {
		return fmt.Errorf("%s: port must not be 0", where)
	}
	if sp.AffinityTimeout < 0 || (sp.AffinityTimeout > 0 && sp.AffinityTimeout < time.Millisecond) {
		return fmt.Errorf("%s: affinity timeout %v: must be 0 or at least 1ms", where, sp.AffinityTimeout)
	}
	var seen map[Endpoint]bool
	for _, g := range sp.Groups {
		if g.Weight < 0 {
			return fmt.Errorf("%s: group %q: weight %d must not be negative", where, g.Name, g.Weight)
		}
		for _, ep := range g.Endpoints {
			if !ep.IP.Is4() || ep.Port == 0 {
				return fmt.Errorf("%s: group %q: endpoint %v:%d: need an IPv4 address and a port", where, g.Name, ep.IP, ep.Port)
			}
		}
		if len(sp.Groups) > 1 || !slices.IsSortedFunc(g.Endpoints, compareEndpoints) {
			if seen == nil {
				seen = map[Endpoint]bool{}
			}
			for _, ep := range g.Endpoints {
				if seen[ep] {
					return fmt.Errorf("%s: endpoint %v:%d appears twice", where, ep.IP, ep.Port)
				}
				seen[ep] = true
			}
			continue
		}
		for i := 1; i < len(g.Endpoints); i++ { // sorted: duplicates are neighbours
			if g.Endpoints[i] == g.Endpoints[i-1] {
				return fmt.Errorf("%s: endpoint %v:%d appears twice", where, g.Endpoints[i].IP, g.Endpoints[i].Port)
			}
		}
	}
	return nil
}

func compareEndpoints(a, b Endpoint) int {
	return cmp.Or(a.IP.Compare(b.IP), cmp.Compare(a.Port, b.Port))
}

// sorted reports whether sp is already in normalized order.
func sorted(sp *ServicePort) bool {
	if !slices.IsSortedFunc(sp.Groups, func(a, b Group) int { return cmp.Compare(a.Name, b.Name) }) {
		return false
	}
	for _, g := range sp.Groups {
		if !slices.IsSortedFunc(g.Endpoints, compareEndpoints) {
			return false
		}
	}
	return true
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
