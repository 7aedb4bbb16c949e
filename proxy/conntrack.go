package proxy

import (
	"fmt"
	"net"
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// conntrack deletes the UDP flows of removed endpoints. UDP has no end of
// connection: a client that keeps sending from the same port (statsd, DNS
// forwarders) would keep its conntrack entry, and so its DNAT to the
// removed endpoint, for as long as it keeps sending.
type conntrack struct {
	h *netlink.Handle
}

func openConntrack(ns netns.NsHandle) (*conntrack, error) {
	var h *netlink.Handle
	var err error
	if ns > 0 {
		h, err = netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_NETFILTER)
	}
	if err != nil {
		return nil, fmt.Errorf("proxy: conntrack socket: %w", err)
	}
	return &conntrack{h: h}, nil
}

func (c *conntrack) close() error {
	c.h.Close()
	return nil
}

// staleFlow is one removed UDP endpoint of one service port.
type staleFlow struct {
	vip      netip.Addr
	port     uint16
	nodePort uint16
	endpoint netip.Addr
}

// staleUDP lists the UDP endpoints (by address) that the changes ds no
// longer send a service port's traffic to, including every endpoint of a
// port that is gone or whose address or ports changed.
func staleUDP(ds []delta) []staleFlow {
	var out []staleFlow
	for _, c := range ds {
		old := c.old
		if old == nil || old.Protocol != corev1.ProtocolUDP {
			continue
		}
		keep := map[netip.Addr]bool{}
		if sp := c.new; sp != nil && sp.ClusterIP == old.ClusterIP && sp.Port == old.Port && sp.NodePort == old.NodePort {
			for _, s := range split(sp.Groups) {
				keep[s.Endpoint.IP] = true
			}
		}
		for _, s := range split(old.Groups) {
			if !keep[s.Endpoint.IP] {
				keep[s.Endpoint.IP] = true // once per address
				out = append(out, staleFlow{vip: old.ClusterIP, port: old.Port, nodePort: old.NodePort, endpoint: s.Endpoint.IP})
			}
		}
	}
	return out
}

// flushConntrack deletes the UDP flows to removed endpoints: those whose
// original destination is the ClusterIP:port (or the node port on any
// address) and whose reply comes from the endpoint. It logs failures: the
// rules are in place and a later flow gets a new endpoint either way.
func (t *Table) flushConntrack(ds []delta) int {
	stale := staleUDP(ds)
	if len(stale) == 0 {
		return 0
	}
	var filters []netlink.CustomConntrackFilter
	for _, s := range stale {
		f := &netlink.ConntrackFilter{}
		_ = f.AddProtocol(unix.IPPROTO_UDP)
		_ = f.AddIP(netlink.ConntrackOrigDstIP, net.IP(s.vip.AsSlice()))
		_ = f.AddPort(netlink.ConntrackOrigDstPort, s.port)
		_ = f.AddIP(netlink.ConntrackReplySrcIP, net.IP(s.endpoint.AsSlice()))
		filters = append(filters, f)
		if s.nodePort != 0 {
			f := &netlink.ConntrackFilter{}
			_ = f.AddProtocol(unix.IPPROTO_UDP)
			_ = f.AddPort(netlink.ConntrackOrigDstPort, s.nodePort)
			_ = f.AddIP(netlink.ConntrackReplySrcIP, net.IP(s.endpoint.AsSlice()))
			filters = append(filters, f)
		}
	}
	n, err := t.ct.h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filters...)
	if err != nil {
		t.log.Warn("flush conntrack entries of removed UDP endpoints", "endpoints", len(stale), "err", err)
	}
	return int(n)
}
