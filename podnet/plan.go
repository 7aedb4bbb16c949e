package podnet

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Backends.
const (
	HostGW = "host-gw"
	VXLAN  = "vxlan"
)

// Peer is one node of the cluster as the routes see it.
type Peer struct {
	Name string
	// IP is the node's InternalIP; the zero Addr when it is not known
	// (its registration lapsed): its route, if any, is kept as it is.
	IP netip.Addr
	// PodCIDR is the node's pod subnet (its record, given by the leader).
	PodCIDR netip.Prefix
}

// Cluster is what a Sync makes the kernel carry.
type Cluster struct {
	// ClusterCIDR is the cluster's pod range; pod traffic to an address
	// outside it and outside every node's subnet is masqueraded.
	ClusterCIDR netip.Prefix
	// Backend is HostGW (default) or VXLAN.
	Backend string
	// Peers are every node, this one included (it is skipped).
	Peers []Peer
}

// Route is a route the plan wants: to a node's pod subnet, via Via, over
// the VXLAN device when VTEP.
type Route struct {
	Node string
	Dst  netip.Prefix
	Via  netip.Addr // host-gw: the node's IP; vxlan: its VTEP address
	// VXLAN only: the remote VTEP's MAC and the node's IP the FDB entry
	// sends its frames to.
	MAC    net.HardwareAddr
	Remote netip.Addr
}

// Plan is the kernel state a Sync converges to.
type Plan struct {
	Backend string
	Routes  []Route
	// Keep are the subnets of nodes whose address is not known: an
	// installed route to them stays as it is.
	Keep []netip.Prefix
	// NoMasquerade are the destinations pod traffic keeps its source
	// address to (the cluster CIDR and every node's subnet), merged.
	NoMasquerade []netip.Prefix
	// Local are the nodes on this machine (their address is one of its
	// own): their pod subnets are on bridges here, no route is needed.
	Local []string
}

// vtepAddr is a node's VTEP address on the VXLAN device: its pod subnet's
// network address (x.y.z.0/32), as flannel does; pods never get it.
func vtepAddr(p netip.Prefix) netip.Addr { return p.Masked().Addr() }

// VTEPMAC is the MAC address of a node's VXLAN device, derived from its IP
// (locally administered, unicast): every node computes every other's, so
// nothing needs publishing and a restart keeps it.
func VTEPMAC(ip netip.Addr) net.HardwareAddr {
	b := ip.As4()
	return net.HardwareAddr{0x0e, 0xb0, b[0], b[1], b[2], b[3]}
}

// realmOf is the route realm that marks the routes of the agent whose pod
// bridge is bridge: two agents on one machine (tests run several) never
// remove each other's routes.
func realmOf(bridge string) int {
	h := fnv.New32a()
	h.Write([]byte(bridge))
	return int(h.Sum32()%0xfffe) + 1
}

// Decide computes the plan for this node (self, with its pod subnet) from
// the cluster; isLocal tells the addresses of this machine. Errors name
// the node and field at fault; a peer with an error gets no route, the
// others do.
func Decide(self string, selfCIDR netip.Prefix, c Cluster, isLocal func(netip.Addr) bool) (Plan, []error) {
	p := Plan{Backend: c.Backend}
	if p.Backend == "" {
		p.Backend = HostGW
	}
	var errs []error
	peers := slices.Clone(c.Peers)
	slices.SortFunc(peers, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	nomasq := []netip.Prefix{}
	if c.ClusterCIDR.IsValid() {
		nomasq = append(nomasq, c.ClusterCIDR.Masked())
	}
	if selfCIDR.IsValid() {
		nomasq = append(nomasq, selfCIDR.Masked())
	}
	for _, peer := range peers {
		if !peer.PodCIDR.IsValid() {
			continue
		}
		dst := peer.PodCIDR.Masked()
		nomasq = append(nomasq, dst)
		switch {
		case peer.Name == self:
			continue
		case selfCIDR.IsValid() && dst.Overlaps(selfCIDR):
			errs = append(errs, fmt.Errorf("node %s: pod subnet %s overlaps this node's %s: no route", peer.Name, dst, selfCIDR))
			continue
		case !peer.IP.IsValid():
			p.Keep = append(p.Keep, dst)
			continue
		case !peer.IP.Is4():
			errs = append(errs, fmt.Errorf("node %s: address %s: only IPv4 is routed", peer.Name, peer.IP))
			continue
		case isLocal != nil && isLocal(peer.IP):
			p.Local = append(p.Local, peer.Name)
			continue
		}
		r := Route{Node: peer.Name, Dst: dst, Via: peer.IP}
		if p.Backend == VXLAN {
			r.Via, r.MAC, r.Remote = vtepAddr(dst), VTEPMAC(peer.IP), peer.IP
		}
		p.Routes = append(p.Routes, r)
	}
	p.NoMasquerade = mergePrefixes(nomasq)
	return p, errs
}

// mergePrefixes drops the prefixes another one contains, and sorts.
func mergePrefixes(in []netip.Prefix) []netip.Prefix {
	slices.SortFunc(in, func(a, b netip.Prefix) int {
		if a.Bits() != b.Bits() {
			return a.Bits() - b.Bits()
		}
		return a.Addr().Compare(b.Addr())
	})
	var out []netip.Prefix
	for _, p := range in {
		covered := false
		for _, q := range out {
			if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}
