package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
)

// Real traffic through the rules: a "node" namespace with a Linux bridge
// (as the CNI bridge plugin sets up) and "pod" namespaces on veths, each
// pod running Go listeners that answer with the pod's name. Connections
// go to the Service's virtual IP from pods, from the node itself, and
// from a pod to its own Service.

const (
	labGateway = "10.244.0.1"
	labNodeIP  = "10.123.0.1" // the node's own address, for node ports
	labSvcCIDR = "10.96.0.0/16"
	tcpPort    = 8080
	udpPort    = 8125
)

type lab struct {
	t    *testing.T
	node netns.NsHandle
	tbl  *Table
	pods []*labPod
}

type labPod struct {
	name string
	ns   netns.NsHandle
	ip   netip.Addr
}

func (p *labPod) ep(port uint16) Endpoint { return Endpoint{IP: p.ip, Port: port} }

// newLab builds the node and n pods, each answering on TCP 8080 and UDP
// 8125, and opens the rule engine on the node.
func newLab(t *testing.T, n int) *lab {
	t.Helper()
	l := &lab{t: t, node: newNS(t)}
	nh, err := netlink.NewHandleAt(l.node)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "cni0"}}
	l.must(nh.LinkAdd(br))
	l.must(nh.AddrAdd(br, mustAddr(labGateway+"/24")))
	l.must(nh.LinkSetUp(br))
	// The node's own address, and a route for the service CIDR: a
	// ClusterIP is no local address and must be routable (the default
	// route does that on a real node).
	// (The kernel here has no dummy device: a veth pair with a loose end
	// stands for the node's uplink.)
	dummy := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "node0"}, PeerName: "node0-peer"}
	l.must(nh.LinkAdd(dummy))
	peer, err := nh.LinkByName("node0-peer")
	l.must(err)
	l.must(nh.LinkSetUp(peer))
	l.must(nh.AddrAdd(dummy, mustAddr(labNodeIP+"/32")))
	l.must(nh.LinkSetUp(dummy))
	_, cidr, _ := net.ParseCIDR(labSvcCIDR)
	l.must(nh.RouteAdd(&netlink.Route{LinkIndex: dummy.Attrs().Index, Dst: cidr}))
	l.must(inNS(t, l.node, func() error {
		return errors.Join(
			os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0),
			os.WriteFile("/proc/sys/net/bridge/bridge-nf-call-iptables", []byte("1"), 0))
	}))
	for i := range n {
		l.pods = append(l.pods, l.addPod(nh, br, i))
	}
	// A device that just got its carrier drops what it sends until the
	// kernel's link watcher activates it (up to a second later): wait for
	// every veth end to be operationally up.
	waitUp(t, l.node)
	for _, p := range l.pods {
		waitUp(t, p.ns)
	}
	l.tbl = openIn(t, l.node)
	return l
}

func waitUp(t *testing.T, ns netns.NsHandle) {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		links, err := h.LinkList()
		if err != nil {
			t.Fatal(err)
		}
		down := ""
		for _, l := range links {
			if _, veth := l.(*netlink.Veth); veth && l.Attrs().OperState != netlink.OperUp {
				down = l.Attrs().Name
			}
		}
		if down == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not up after 5s", down)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (l *lab) must(err error) {
	l.t.Helper()
	if err != nil {
		l.t.Fatal(err)
	}
}

func mustAddr(s string) *netlink.Addr {
	a, err := netlink.ParseAddr(s)
	if err != nil {
		panic(err)
	}
	return a
}

func (l *lab) addPod(nh *netlink.Handle, br *netlink.Bridge, i int) *labPod {
	t := l.t
	p := &labPod{name: fmt.Sprintf("pod-%d", i), ns: newNS(t), ip: netip.MustParseAddr(fmt.Sprintf("10.244.0.%d", i+2))}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: fmt.Sprintf("veth%d", i), MasterIndex: br.Attrs().Index},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(int(p.ns)),
	}
	l.must(nh.LinkAdd(veth))
	// As bosun's CNI bridge configuration (hairpinMode): a pod's packet to
	// its own Service comes back out of the port it came in by.
	l.must(nh.LinkSetHairpin(veth, true))
	l.must(nh.LinkSetUp(veth))
	ph, err := netlink.NewHandleAt(p.ns)
	l.must(err)
	defer ph.Close()
	eth, err := ph.LinkByName("eth0")
	l.must(err)
	l.must(ph.AddrAdd(eth, mustAddr(p.ip.String()+"/24")))
	l.must(ph.LinkSetUp(eth))
	l.must(ph.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: net.ParseIP(labGateway)}))
	l.serve(p)
	return p
}

// serve starts the pod's listeners: TCP answers each connection with the
// pod's name, UDP each datagram.
func (l *lab) serve(p *labPod) {
	t := l.t
	var tl net.Listener
	var ul net.PacketConn
	l.must(inNS(t, p.ns, func() error {
		var err error
		if tl, err = net.Listen("tcp4", fmt.Sprintf(":%d", tcpPort)); err != nil {
			return err
		}
		ul, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", udpPort))
		return err
	}))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(p.name + "\n"))
			_ = c.Close()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 64)
		for {
			_, from, err := ul.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = ul.WriteTo([]byte(p.name+"\n"), from)
		}
	}()
	t.Cleanup(func() {
		tl.Close()
		ul.Close()
		wg.Wait()
	})
}

// dial connects from ns; the socket belongs to ns for its life.
func dialIn(t *testing.T, ns netns.NsHandle, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNS(t, ns, func() error {
		var err error
		c, err = net.DialTimeout(network, addr, 2*time.Second)
		return err
	})
	return c, err
}

// ask connects over TCP from ns to addr and returns the name the pod
// answered with.
func ask(t *testing.T, ns netns.NsHandle, addr string) (string, error) {
	c, err := dialIn(t, ns, "tcp4", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// askUDP sends one datagram on c and returns the answer.
func askUDP(c net.Conn) (string, error) {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("who\n")); err != nil {
		return "", err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	return strings.TrimSpace(string(buf[:n])), err
}

// count asks n times and counts the answers per pod.
func (l *lab) count(from netns.NsHandle, addr string, n int) map[string]int {
	l.t.Helper()
	got := map[string]int{}
	for range n {
		name, err := ask(l.t, from, addr)
		if err != nil {
			l.t.Fatalf("connection to %s: %v", addr, err)
		}
		got[name]++
	}
	return got
}

func (l *lab) sync(ports ...ServicePort) SyncStats {
	l.t.Helper()
	return mustSync(l.t, l.tbl, ports)
}

func tcpService(name, vip string, groups ...Group) ServicePort {
	return port("default", name, "", corev1.ProtocolTCP, vip, 80, groups...)
}

func group(weight int32, pods ...*labPod) Group {
	g := Group{Weight: weight}
	for _, p := range pods {
		g.Endpoints = append(g.Endpoints, p.ep(tcpPort))
	}
	return g
}

func TestTraffic_spreadsOverAllEndpoints(t *testing.T) {
	l := newLab(t, 4)
	web, client := l.pods[:3], l.pods[3]
	l.sync(tcpService("web", "10.96.0.10", group(0, web...)))

	const n = 300
	got := l.count(client.ns, "10.96.0.10:80", n)
	for _, p := range web {
		// Expected 100 each (sd 8.2): 60 is ~5 sd away.
		if got[p.name] < n/5 {
			t.Errorf("from a pod: %s got %d of %d connections (%v), want at least 20%%", p.name, got[p.name], n, got)
		}
	}
	if len(got) != 3 {
		t.Errorf("answers from %v, want exactly the 3 endpoints", got)
	}
	got = l.count(l.node, "10.96.0.10:80", 90)
	for _, p := range web {
		if got[p.name] == 0 {
			t.Errorf("from the node: %s got none of 90 connections (%v)", p.name, got)
		}
	}
}

func TestTraffic_weights90to10(t *testing.T) {
	l := newLab(t, 3)
	stable, canary, client := l.pods[0], l.pods[1], l.pods[2]
	l.sync(tcpService("shop", "10.96.0.13", group(90, stable), group(10, canary)))
	const n = 1000
	got := l.count(client.ns, "10.96.0.13:80", n)
	// Expected 100 canary connections, sd 9.5: 50..150 is over 5 sd.
	if c := got[canary.name]; c < 50 || c > 150 || got[stable.name]+c != n {
		t.Errorf("canary got %d of %d connections (%v), want 100 ± 50", c, n, got)
	}
	t.Logf("90/10 over %d connections: %v", n, got)
}

func TestTraffic_noEndpointsRefusesAtOnce(t *testing.T) {
	l := newLab(t, 1)
	client := l.pods[0]
	down := tcpService("down", "10.96.0.15")
	down.NodePort = 30015
	downUDP := port("default", "down", "dns", corev1.ProtocolUDP, "10.96.0.15", 53)
	l.sync(down, downUDP)
	for _, c := range []struct {
		from netns.NsHandle
		what string
		addr string
	}{
		{client.ns, "from a pod", "10.96.0.15:80"},
		{l.node, "from the node", "10.96.0.15:80"},
		{client.ns, "node port from a pod", labNodeIP + ":30015"},
		{l.node, "node port from the node", labNodeIP + ":30015"},
	} {
		start := time.Now()
		_, err := ask(t, c.from, c.addr)
		if took := time.Since(start); !errors.Is(err, syscall.ECONNREFUSED) || took > 100*time.Millisecond {
			t.Errorf("%s: TCP to %s: %v after %v, want connection refused within 100ms", c.what, c.addr, err, took)
		}
	}
	c, err := dialIn(t, client.ns, "udp4", "10.96.0.15:53")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, err = askUDP(c)
	if took := time.Since(start); !errors.Is(err, syscall.ECONNREFUSED) || took > 100*time.Millisecond {
		t.Errorf("UDP: %v after %v, want port unreachable (connection refused) within 100ms", err, took)
	}
}

func TestTraffic_udpMovesToNewEndpointAfterRemoval(t *testing.T) {
	l := newLab(t, 3)
	a, b, client := l.pods[0], l.pods[1], l.pods[2]
	svc := func(p *labPod) ServicePort {
		return port("default", "stats", "", corev1.ProtocolUDP, "10.96.0.11", 53, Group{Endpoints: []Endpoint{p.ep(udpPort)}})
	}
	l.sync(svc(a))
	// One socket, one source port, as a statsd client: one conntrack flow.
	c, err := dialIn(t, client.ns, "udp4", "10.96.0.11:53")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 {
		if got, err := askUDP(c); err != nil || got != a.name {
			t.Fatalf("before: answer %q, %v; want %s", got, err, a.name)
		}
	}
	st := l.sync(svc(b))
	if st.ConntrackFlushed < 1 {
		t.Errorf("Sync removing %s flushed %d conntrack entries, want at least 1", a.name, st.ConntrackFlushed)
	}
	// a still listens: without the flush the flow would keep going there.
	if got, err := askUDP(c); err != nil || got != b.name {
		t.Fatalf("after the endpoint moved: answer %q, %v; want %s", got, err, b.name)
	}
}

func TestTraffic_hairpinPodReachesOwnService(t *testing.T) {
	l := newLab(t, 2)
	a, b := l.pods[0], l.pods[1]
	l.sync(tcpService("self", "10.96.0.20", group(0, a)), tcpService("both", "10.96.0.21", group(0, a, b)))
	if got, err := ask(t, a.ns, "10.96.0.20:80"); err != nil || got != a.name {
		t.Fatalf("pod to its own Service: %q, %v", got, err)
	}
	got := l.count(a.ns, "10.96.0.21:80", 40)
	if got[a.name] == 0 || got[b.name] == 0 {
		t.Errorf("pod to a Service it is one of two endpoints of: %v, want both", got)
	}
}

func TestTraffic_nodePort(t *testing.T) {
	l := newLab(t, 2)
	web, client := l.pods[0], l.pods[1]
	svc := tcpService("web", "10.96.0.17", group(0, web))
	svc.NodePort = 30080
	l.sync(svc)
	for _, from := range []struct {
		what string
		ns   netns.NsHandle
	}{{"a pod", client.ns}, {"the node", l.node}, {"the endpoint itself", web.ns}} {
		if got, err := ask(t, from.ns, labNodeIP+":30080"); err != nil || got != web.name {
			t.Errorf("node port from %s: %q, %v", from.what, got, err)
		}
	}
	// The ClusterIP still answers, and 127.0.0.1 is no node address.
	if got, err := ask(t, client.ns, "10.96.0.17:80"); err != nil || got != web.name {
		t.Errorf("ClusterIP: %q, %v", got, err)
	}
	if _, err := ask(t, l.node, "127.0.0.1:30080"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("127.0.0.1:30080 from the node: %v, want refused (no node port on loopback)", err)
	}
}

func TestTraffic_clientIPAffinity(t *testing.T) {
	l := newLab(t, 4)
	web, client := l.pods[:3], l.pods[3]
	svc := tcpService("sticky", "10.96.0.14", group(0, web...))
	svc.AffinityTimeout = time.Minute
	l.sync(svc)
	got := l.count(client.ns, "10.96.0.14:80", 30)
	if len(got) != 1 {
		t.Fatalf("30 connections from one client went to %v, want one endpoint", got)
	}
	// Another client (the node) is balanced on its own.
	got = l.count(l.node, "10.96.0.14:80", 10)
	if len(got) != 1 {
		t.Errorf("node's connections went to %v, want one endpoint", got)
	}
}
