package podnet

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// Kernel tests build "hosts" from network namespaces they create (named
// bosunpn<pid>-<role>, so `ip netns exec` reaches them), addresses in
// 10.241.0.0/16 for the hosts and 10.242.0.0/16 for the pods, and delete
// them at the end; nothing touches the test machine's own namespace.

func needRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("kernel test (-short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("kernel test needs root")
	}
}

var nsSeq atomic.Int32

// netNS is a named network namespace of a test.
type netNS struct {
	name string
	h    netns.NsHandle
}

func newNetNS(t testing.TB, role string) *netNS {
	t.Helper()
	needRoot(t)
	name := fmt.Sprintf("bosunpn%d-%d%s", os.Getpid()%100000, nsSeq.Add(1), role)
	sh(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	n := &netNS{name: name, h: h}
	n.ip(t, "link", "set", "lo", "up")
	return n
}

func sh(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (n *netNS) ip(t testing.TB, args ...string) string {
	t.Helper()
	return sh(t, append([]string{"ip", "-n", n.name}, args...)...)
}

func (n *netNS) sysctl(t testing.TB, key, v string) {
	t.Helper()
	sh(t, "ip", "netns", "exec", n.name, "sysctl", "-qw", key+"="+v)
}

// link joins a and b with a veth pair (ifA in a, ifB in b) and gives the
// ends their addresses ("" for none).
func link(t testing.TB, a *netNS, ifA, addrA string, b *netNS, ifB, addrB string) {
	t.Helper()
	tmp := fmt.Sprintf("bpn%d", nsSeq.Add(1))
	sh(t, "ip", "link", "add", tmp+"a", "netns", a.name, "type", "veth", "peer", "name", tmp+"b", "netns", b.name)
	a.ip(t, "link", "set", tmp+"a", "name", ifA)
	b.ip(t, "link", "set", tmp+"b", "name", ifB)
	for _, e := range []struct {
		ns        *netNS
		dev, addr string
	}{{a, ifA, addrA}, {b, ifB, addrB}} {
		if e.addr != "" {
			e.ns.ip(t, "addr", "add", e.addr, "dev", e.dev)
		}
		e.ns.ip(t, "link", "set", e.dev, "up")
	}
}

// inNS runs f on a thread in ns; the thread is thrown away after.
func inNS(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// listen serves TCP at addr in ns: each connection is answered with the
// address it came from, then closed.
func listen(t testing.TB, ns *netNS, addr string) {
	t.Helper()
	var l net.Listener
	if err := inNS(ns.h, func() (err error) { l, err = net.Listen("tcp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, c.RemoteAddr().(*net.TCPAddr).IP)
			c.Close()
		}
	}()
}

// dial connects from ns to addr and returns the source address the server
// saw.
func dial(ns *netNS, addr string) (string, error) {
	var seen string
	err := inNS(ns.h, func() error {
		c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		b, err := io.ReadAll(c)
		seen = strings.TrimSpace(string(b))
		return err
	})
	return seen, err
}

// host is a test node: a namespace with an address, a pod namespace behind
// a veth (the pod at .2 of the subnet, the host side at .1), and its Syncer.
type host struct {
	name    string
	ns, pod *netNS
	ip      netip.Addr
	cidr    netip.Prefix
	sync    *Syncer
}

func (h *host) podIP() string { return h.cidr.Addr().Next().Next().String() }

func newHost(t testing.TB, name string, ip, cidr string) *host {
	t.Helper()
	h := &host{name: name, ns: newNetNS(t, name), ip: netip.MustParseAddr(ip), cidr: netip.MustParsePrefix(cidr)}
	h.pod = newNetNS(t, name+"p")
	gw := h.cidr.Addr().Next()
	link(t, h.ns, "pod", gw.String()+"/24", h.pod, "eth0", h.podIP()+"/24")
	h.pod.ip(t, "route", "add", "default", "via", gw.String())
	return h
}

func (h *host) start(t testing.TB) {
	t.Helper()
	s, err := NewSyncer(Config{Node: h.name, IP: h.ip, PodCIDR: h.cidr, Bridge: "bosunpn0", NetNS: h.ns.h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	h.sync = s
}

func peers(hs ...*host) []Peer {
	var out []Peer
	for _, h := range hs {
		out = append(out, Peer{Name: h.name, IP: h.ip, PodCIDR: h.cidr})
	}
	return out
}
