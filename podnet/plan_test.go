package podnet

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	ip, pfx := netip.MustParseAddr, netip.MustParsePrefix
	self := pfx("10.88.1.0/24")
	local := func(a netip.Addr) bool { return a == ip("192.0.2.1") || a.IsLoopback() }
	all := []Peer{
		{Name: "me", IP: ip("192.0.2.1"), PodCIDR: self},
		{Name: "b", IP: ip("192.0.2.2"), PodCIDR: pfx("10.88.2.0/24")},
		{Name: "c", PodCIDR: pfx("10.88.3.0/24")},                         // lapsed: address unknown
		{Name: "d", IP: ip("127.0.0.1"), PodCIDR: pfx("10.77.0.0/24")},    // on this machine
		{Name: "e", IP: ip("192.0.2.5"), PodCIDR: pfx("10.88.1.128/25")},  // overlaps mine
		{Name: "f", IP: ip("2001:db8::1"), PodCIDR: pfx("10.88.6.0/24")},  // IPv6
		{Name: "g", IP: ip("192.0.2.7"), PodCIDR: pfx("192.168.50.0/24")}, // hand-given, outside
		{Name: "h", IP: ip("192.0.2.8")},                                  // no subnet yet
	}
	for _, tc := range []struct {
		backend string
		routes  string
	}{
		{HostGW, "b 10.88.2.0/24 via 192.0.2.2 -; g 192.168.50.0/24 via 192.0.2.7 -; "},
		{VXLAN, "b 10.88.2.0/24 via 10.88.2.0 0e:b0:c0:00:02:02@192.0.2.2; g 192.168.50.0/24 via 192.168.50.0 0e:b0:c0:00:02:07@192.0.2.7; "},
	} {
		p, errs := Decide("me", self, Cluster{ClusterCIDR: pfx("10.88.0.0/16"), Backend: tc.backend, Peers: all}, local)
		var got strings.Builder
		for _, r := range p.Routes {
			mac := "-"
			if r.MAC != nil {
				mac = fmt.Sprintf("%s@%s", r.MAC, r.Remote)
			}
			fmt.Fprintf(&got, "%s %s via %s %s; ", r.Node, r.Dst, r.Via, mac)
		}
		if got.String() != tc.routes {
			t.Errorf("%s routes:\n got %s\nwant %s", tc.backend, got.String(), tc.routes)
		}
		if fmt.Sprint(p.Keep) != "[10.88.3.0/24]" || fmt.Sprint(p.Local) != "[d]" {
			t.Errorf("keep %v local %v", p.Keep, p.Local)
		}
		if fmt.Sprint(p.NoMasquerade) != "[10.77.0.0/24 10.88.0.0/16 192.168.50.0/24]" {
			t.Errorf("no masquerade to %v", p.NoMasquerade)
		}
		if len(errs) != 2 || !strings.Contains(errs[0].Error(), "node e: pod subnet 10.88.1.128/25 overlaps this node's") ||
			!strings.Contains(errs[1].Error(), "node f: address 2001:db8::1: only IPv4") {
			t.Errorf("errors %v", errs)
		}
	}
}
