package podcidr

import (
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
)

// Config is the range node subnets are cut from.
type Config struct {
	// ClusterCIDR is the cluster's pod range (--cluster-cidr), IPv4.
	ClusterCIDR netip.Prefix
	// MaskSize is the prefix length of each node's subnet
	// (--node-cidr-mask-size).
	MaskSize int
}

// maxSubnetBits bounds how many subnets a cluster CIDR is cut into (2^16),
// so that a plan stays a few kilobytes of bitmap.
const maxSubnetBits = 16

// Validate checks the configuration; its errors name the flag at fault.
func (c Config) Validate() error {
	p := c.ClusterCIDR
	if !p.IsValid() || !p.Addr().Is4() {
		return fmt.Errorf("--cluster-cidr %q: want an IPv4 prefix such as 10.88.0.0/16", p)
	}
	if p != p.Masked() {
		return fmt.Errorf("--cluster-cidr %s: host bits set (did you mean %s?)", p, p.Masked())
	}
	if c.MaskSize < p.Bits() || c.MaskSize > 30 {
		return fmt.Errorf("--node-cidr-mask-size %d: must be between the cluster CIDR's /%d and /30", c.MaskSize, p.Bits())
	}
	if c.MaskSize-p.Bits() > maxSubnetBits {
		return fmt.Errorf("--node-cidr-mask-size %d: cuts %s into more than %d subnets; use a longer --cluster-cidr prefix or a shorter mask", c.MaskSize, p, 1<<maxSubnetBits)
	}
	return nil
}

// Size is the number of node subnets in the cluster CIDR.
func (c Config) Size() int { return 1 << (c.MaskSize - c.ClusterCIDR.Bits()) }

// subnet returns the i-th node subnet of the cluster CIDR.
func (c Config) subnet(i int) netip.Prefix {
	a := c.ClusterCIDR.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(i) << (32 - c.MaskSize)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), c.MaskSize)
}

// indexRange returns the indices [lo, hi] of the node subnets p overlaps,
// and false when it overlaps none.
func (c Config) indexRange(p netip.Prefix) (lo, hi int, ok bool) {
	if !p.Overlaps(c.ClusterCIDR) {
		return 0, 0, false
	}
	if p.Bits() <= c.ClusterCIDR.Bits() {
		return 0, c.Size() - 1, true // p holds the whole cluster CIDR
	}
	off := addr32(p.Masked().Addr()) - addr32(c.ClusterCIDR.Addr())
	lo = int(off >> (32 - c.MaskSize))
	if p.Bits() >= c.MaskSize {
		return lo, lo, true
	}
	return lo, lo + (1 << (c.MaskSize - p.Bits())) - 1, true
}

func addr32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// Node is what the leader knows of one node.
type Node struct {
	Name string
	// Registered: the node's registration exists (its agent runs, or ran
	// within its lease).
	Registered bool
	// Request is the subnet the node's agent asks for (--pod-cidr, its
	// Node.Spec.PodCIDR); the zero Prefix asks for any.
	Request netip.Prefix
	// Record is the subnet recorded for the node; the zero Prefix: none.
	Record netip.Prefix
	// Refused is the refusal recorded for the node ("" if none), of the
	// request RefusedRequest.
	Refused        string
	RefusedRequest netip.Prefix
}

// Refusal says why a node's request is not granted.
type Refusal struct {
	Request netip.Prefix // what was asked (the zero Prefix: any subnet)
	// Other is the node whose subnet the request overlaps ("" when the
	// refusal is not an overlap).
	Other  string
	Reason string
}

// Result is what the leader writes.
type Result struct {
	// Assign are the new records: node -> subnet.
	Assign map[string]netip.Prefix
	// Refuse are the new refusals, by node; a node with a record keeps it.
	Refuse map[string]Refusal
	// Clear are nodes whose refusal no longer holds (their request is
	// granted, or they ask again for something else); their records are
	// rewritten without it.
	Clear []string
	// Drop are the records to delete: those of nodes not registered that
	// hold no subnet (a refusal only). A record that holds a subnet is
	// never dropped here: only a deletion of the node frees it.
	Drop []string
	// Free is how many node subnets of the cluster CIDR are left once the
	// result is written.
	Free int
}

// Plan decides the records of nodes: a registered node without a subnet
// gets the one it asks for when that overlaps no other node's, else the
// first free subnet of the cluster CIDR; a request that overlaps another
// node's subnet, or differs from the node's recorded one, is refused with
// the reason, as is a node the cluster CIDR has no room left for. Nodes are
// taken in name order, so the result depends on nothing but its input.
func Plan(cfg Config, nodes []Node) Result {
	res := Result{Assign: map[string]netip.Prefix{}, Refuse: map[string]Refusal{}}
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })

	// owners holds every recorded subnet; used marks the cluster CIDR's
	// subnets any of them overlaps.
	type owned struct {
		p    netip.Prefix
		node string
	}
	var owners []owned
	used := make([]uint64, (cfg.Size()+63)/64)
	mark := func(p netip.Prefix) {
		if lo, hi, ok := cfg.indexRange(p); ok {
			for i := lo; i <= hi; i++ {
				used[i/64] |= 1 << (i % 64)
			}
		}
	}
	for _, n := range nodes {
		if n.Record.IsValid() {
			owners = append(owners, owned{n.Record.Masked(), n.Name})
			mark(n.Record.Masked())
		}
	}
	overlap := func(p netip.Prefix, self string) string {
		for _, o := range owners {
			if o.node != self && o.p.Overlaps(p) {
				return o.node + " (" + o.p.String() + ")"
			}
		}
		return ""
	}
	next := 0 // every subnet before it is used
	nextFree := func() (netip.Prefix, bool) {
		for ; next < cfg.Size(); next++ {
			if used[next/64]&(1<<(next%64)) == 0 {
				return cfg.subnet(next), true
			}
		}
		return netip.Prefix{}, false
	}
	refuse := func(n Node, r Refusal) {
		if n.Refused != r.Reason || n.RefusedRequest != r.Request {
			res.Refuse[n.Name] = r
		}
	}
	for _, n := range nodes {
		req := n.Request
		if req.IsValid() {
			req = req.Masked()
		}
		switch {
		case !n.Registered:
			if !n.Record.IsValid() && n.Refused != "" {
				res.Drop = append(res.Drop, n.Name)
			}
			continue
		case n.Record.IsValid() && req.IsValid() && req != n.Record.Masked():
			refuse(n, Refusal{Request: req, Reason: fmt.Sprintf("node %s asks for pod subnet %s but has %s already: start it without --pod-cidr (or with --pod-cidr %s), or free its subnet first with `bosun node delete %s`",
				n.Name, req, n.Record.Masked(), n.Record.Masked(), n.Name)})
			continue
		case n.Record.IsValid():
			if n.Refused != "" {
				res.Clear = append(res.Clear, n.Name)
			}
			continue
		case req.IsValid() && (!req.Addr().Is4() || req.Bits() > 30):
			refuse(n, Refusal{Request: req, Reason: fmt.Sprintf("node %s asks for pod subnet %s: want an IPv4 prefix of at most /30", n.Name, req)})
			continue
		case req.IsValid():
			if other := overlap(req, n.Name); other != "" {
				refuse(n, Refusal{Request: req, Other: strings.Fields(other)[0],
					Reason: fmt.Sprintf("node %s asks for pod subnet %s, which overlaps the pod subnet of node %s: give it a --pod-cidr of its own, or none to get one from the cluster CIDR", n.Name, req, other)})
				continue
			}
			res.Assign[n.Name] = req
			owners = append(owners, owned{req, n.Name})
			mark(req)
		default:
			p, ok := nextFree()
			if !ok {
				refuse(n, Refusal{Reason: fmt.Sprintf("node %s: no free /%d left in the cluster CIDR %s (%d subnets, all taken): free one with `bosun node delete NAME`, or widen --cluster-cidr",
					n.Name, cfg.MaskSize, cfg.ClusterCIDR, cfg.Size())})
				continue
			}
			res.Assign[n.Name] = p
			owners = append(owners, owned{p, n.Name})
			mark(p)
		}
	}
	for _, w := range used {
		res.Free += 64 - bits.OnesCount64(w)
	}
	res.Free -= len(used)*64 - cfg.Size()
	return res
}
