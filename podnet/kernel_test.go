package podnet

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

var testCluster = netip.MustParsePrefix("10.242.0.0/16")

// hostGWHosts are three hosts on one segment (a bridge in a switch
// namespace that also holds 10.241.1.254, an address outside the
// cluster).
func hostGWHosts(t *testing.T) (sw *netNS, hs []*host) {
	sw = newNetNS(t, "sw")
	sw.ip(t, "link", "add", "br0", "type", "bridge")
	sw.ip(t, "addr", "add", "10.241.1.254/24", "dev", "br0")
	sw.ip(t, "link", "set", "br0", "up")
	for i, name := range []string{"h1", "h2", "h3"} {
		h := newHost(t, name, "10.241.1."+string(rune('1'+i)), "10.242."+string(rune('1'+i))+".0/24")
		link(t, h.ns, "eth0", h.ip.String()+"/24", sw, name, "")
		sw.ip(t, "link", "set", name, "master", "br0")
		h.start(t)
		hs = append(hs, h)
	}
	return sw, hs
}

// TestSync_hostGW: each host routes every other host's pod subnet via its
// address (protocol 98, nothing else touched); pods reach each other with
// their own addresses, and the outside masqueraded; a Sync again changes
// nothing; a deleted node's route goes, a lapsed one's stays.
func TestSync_hostGW(t *testing.T) {
	sw, hs := hostGWHosts(t)
	c := Cluster{ClusterCIDR: testCluster, Backend: HostGW, Peers: peers(hs...)}
	for _, h := range hs {
		st, err := h.sync.Sync(c)
		if err != nil {
			t.Fatalf("%s: %v", h.name, err)
		}
		if st.Routes != 2 || st.Added != 2 {
			t.Errorf("%s: %+v, want 2 routes added", h.name, st)
		}
	}
	routes := hs[0].ns.ip(t, "route", "show", "proto", "98")
	for _, want := range []string{"10.242.2.0/24 via 10.241.1.2 dev eth0", "10.242.3.0/24 via 10.241.1.3 dev eth0"} {
		if !strings.Contains(routes, want) {
			t.Errorf("h1's routes:\n%s\nwant %q", routes, want)
		}
	}
	if strings.Contains(routes, "10.242.1.0") {
		t.Errorf("h1 routes its own subnet:\n%s", routes)
	}
	if st, err := hs[0].sync.Sync(c); err != nil || st.Added != 0 || st.Removed != 0 || st.Routes != 2 {
		t.Errorf("second Sync: %+v %v, want nothing changed", st, err)
	}

	listen(t, hs[1].pod, hs[1].podIP()+":8080")
	listen(t, hs[2].pod, hs[2].podIP()+":8080")
	listen(t, sw, "10.241.1.254:8080")
	for _, dst := range []*host{hs[1], hs[2]} {
		seen, err := dial(hs[0].pod, dst.podIP()+":8080")
		if err != nil || seen != hs[0].podIP() {
			t.Errorf("pod of h1 -> pod of %s: seen as %q, %v; want its own address %s", dst.name, seen, err, hs[0].podIP())
		}
	}
	if seen, err := dial(hs[0].pod, "10.241.1.254:8080"); err != nil || seen != "10.241.1.1" {
		t.Errorf("pod of h1 -> outside the cluster: seen as %q, %v; want masqueraded to 10.241.1.1", seen, err)
	}
	if f := strings.TrimSpace(sh(t, "ip", "netns", "exec", hs[0].ns.name, "cat", "/proc/sys/net/ipv4/ip_forward")); f != "1" {
		t.Errorf("ip_forward = %s", f)
	}

	// A route of another owner to a subnet is never replaced.
	hs[0].ns.ip(t, "route", "add", "10.242.9.0/24", "via", "10.241.1.254")
	c9 := c
	c9.Peers = append(peers(hs...), Peer{Name: "h9", IP: netip.MustParseAddr("10.241.1.9"), PodCIDR: netip.MustParsePrefix("10.242.9.0/24")})
	if _, err := hs[0].sync.Sync(c9); err == nil || !strings.Contains(err.Error(), "bosun did not install") {
		t.Errorf("Sync over a foreign route: %v", err)
	}
	if r := hs[0].ns.ip(t, "route", "show", "10.242.9.0/24"); !strings.Contains(r, "via 10.241.1.254") {
		t.Errorf("the foreign route changed: %s", r)
	}

	// h3's registration lapsed (no address known): its route stays. h2 is
	// deleted: its route goes.
	gone := Cluster{ClusterCIDR: testCluster, Backend: HostGW, Peers: []Peer{
		{Name: "h1", IP: hs[0].ip, PodCIDR: hs[0].cidr}, {Name: "h3", PodCIDR: hs[2].cidr}}}
	st, err := hs[0].sync.Sync(gone)
	if err != nil || st.Removed != 1 || st.Routes != 1 {
		t.Errorf("Sync after h2's deletion: %+v %v, want 1 removed, 1 kept", st, err)
	}
	routes = hs[0].ns.ip(t, "route", "show", "proto", "98")
	if strings.Contains(routes, "10.242.2.0") || !strings.Contains(routes, "10.242.3.0/24 via 10.241.1.3") {
		t.Errorf("h1's routes after h2's deletion:\n%s", routes)
	}
	if err := hs[0].sync.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if r := hs[0].ns.ip(t, "route", "show", "proto", "98"); r != "" {
		t.Errorf("routes after Cleanup:\n%s", r)
	}
	if out := sh(t, "ip", "netns", "exec", hs[0].ns.name, "nft", "list", "tables"); strings.Contains(out, TableName("bosunpn0")) {
		t.Errorf("table after Cleanup: %s", out)
	}
}

// twoSegments are two hosts on two segments joined by a router namespace
// (10.241.10.0/24 and 10.241.20.0/24).
func twoSegments(t *testing.T) []*host {
	r := newNetNS(t, "r")
	r.sysctl(t, "net.ipv4.ip_forward", "1")
	h1 := newHost(t, "a1", "10.241.10.2", "10.242.11.0/24")
	h2 := newHost(t, "a2", "10.241.20.2", "10.242.12.0/24")
	link(t, h1.ns, "eth0", "10.241.10.2/24", r, "ra", "10.241.10.1/24")
	link(t, h2.ns, "eth0", "10.241.20.2/24", r, "rb", "10.241.20.1/24")
	h1.ns.ip(t, "route", "add", "default", "via", "10.241.10.1")
	h2.ns.ip(t, "route", "add", "default", "via", "10.241.20.1")
	h1.start(t)
	h2.start(t)
	return []*host{h1, h2}
}

// TestSync_vxlanAcrossARouter: host-gw cannot route to a node behind a
// router and says so, naming the node and --backend vxlan; VXLAN can: a
// device (VNI 1, port 8472, local address, no learning) with, per remote
// node, an onlink route via its VTEP address, a permanent neighbour and an
// FDB entry, and pods reach each other. Back to host-gw, the device goes.
func TestSync_vxlanAcrossARouter(t *testing.T) {
	hs := twoSegments(t)
	c := Cluster{ClusterCIDR: testCluster, Backend: HostGW, Peers: peers(hs...)}
	_, err := hs[0].sync.Sync(c)
	if err == nil || !strings.Contains(err.Error(), "node a2") || !strings.Contains(err.Error(), "--backend vxlan") {
		t.Fatalf("host-gw across a router: %v; want an error naming node a2 and --backend vxlan", err)
	}

	c.Backend = VXLAN
	for _, h := range hs {
		if _, err := h.sync.Sync(c); err != nil {
			t.Fatalf("%s: %v", h.name, err)
		}
	}
	dev := hs[0].ns.ip(t, "-d", "link", "show", DefaultVXLANDevice)
	for _, want := range []string{"vxlan id 1 ", "local 10.241.10.2", "dstport 8472", "nolearning", "0e:b0:0a:f1:0a:02"} {
		if !strings.Contains(dev, want) {
			t.Errorf("vxlan device:\n%s\nwant %q", dev, want)
		}
	}
	if r := hs[0].ns.ip(t, "route", "show", "proto", "98"); !strings.Contains(r, "10.242.12.0/24 via 10.242.12.0 dev "+DefaultVXLANDevice) || !strings.Contains(r, "onlink") {
		t.Errorf("route:\n%s", r)
	}
	if n := hs[0].ns.ip(t, "neigh", "show", "dev", DefaultVXLANDevice); !strings.Contains(n, "10.242.12.0 lladdr 0e:b0:0a:f1:14:02 PERMANENT") {
		t.Errorf("neighbours:\n%s", n)
	}
	if f := sh(t, "bridge", "-n", hs[0].ns.name, "fdb", "show", "dev", DefaultVXLANDevice); !strings.Contains(f, "0e:b0:0a:f1:14:02 dst 10.241.20.2 self permanent") {
		t.Errorf("fdb:\n%s", f)
	}
	listen(t, hs[1].pod, hs[1].podIP()+":8080")
	deadline := time.Now().Add(5 * time.Second)
	for {
		seen, err := dial(hs[0].pod, hs[1].podIP()+":8080")
		if err == nil && seen == hs[0].podIP() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod of a1 -> pod of a2 over vxlan: seen as %q, %v", seen, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st, err := hs[0].sync.Sync(c); err != nil || st.Added != 0 {
		t.Errorf("second Sync: %+v %v", st, err)
	}
	// a2 deleted: its route, neighbour and fdb entry go.
	alone := Cluster{ClusterCIDR: testCluster, Backend: VXLAN, Peers: peers(hs[0])}
	if st, err := hs[0].sync.Sync(alone); err != nil || st.Removed != 1 {
		t.Errorf("Sync without a2: %+v %v", st, err)
	}
	if n := hs[0].ns.ip(t, "neigh", "show", "dev", DefaultVXLANDevice); strings.Contains(n, "10.242.12.0") {
		t.Errorf("neighbour left: %s", n)
	}
	if f := sh(t, "bridge", "-n", hs[0].ns.name, "fdb", "show", "dev", DefaultVXLANDevice); strings.Contains(f, "dst 10.241.20.2") {
		t.Errorf("fdb left: %s", f)
	}
	alone.Backend = HostGW
	if _, err := hs[0].sync.Sync(alone); err != nil {
		t.Fatal(err)
	}
	if out := hs[0].ns.ip(t, "link", "show"); strings.Contains(out, DefaultVXLANDevice) {
		t.Errorf("vxlan device left under host-gw:\n%s", out)
	}
}
