package podnet

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// benchHost is a host namespace whose pods hang off a bridge (as the CNI
// bridge plugin lays them out), the bridge holding the gateway .1.
type benchHost struct {
	*host
	pods []*netNS
}

func newBenchHost(t testing.TB, name, ip, cidr string, pods int) *benchHost {
	t.Helper()
	h := &benchHost{host: &host{name: name, ns: newNetNS(t, name), ip: netip.MustParseAddr(ip), cidr: netip.MustParsePrefix(cidr)}}
	gw := h.cidr.Addr().Next()
	h.ns.ip(t, "link", "add", "cbr0", "type", "bridge")
	h.ns.ip(t, "addr", "add", gw.String()+"/24", "dev", "cbr0")
	h.ns.ip(t, "link", "set", "cbr0", "up")
	addr := gw
	for i := range pods {
		addr = addr.Next()
		p := newNetNS(t, name+"p")
		link(t, h.ns, "veth"+string(rune('0'+i)), "", p, "eth0", addr.String()+"/24")
		h.ns.ip(t, "link", "set", "veth"+string(rune('0'+i)), "master", "cbr0")
		p.ip(t, "route", "add", "default", "via", gw.String())
		h.pods = append(h.pods, p)
	}
	return h
}

func podAddr(h *benchHost, i int) string {
	a := h.cidr.Addr().Next()
	for range i + 1 {
		a = a.Next()
	}
	return a.String()
}

// serveBench listens in ns: each connection is either drained (first byte
// 'd') or echoed byte by byte (first byte 'e').
func serveBench(b *testing.B, ns *netNS, addr string) {
	var l net.Listener
	if err := inNS(ns.h, func() (err error) { l, err = net.Listen("tcp4", addr); return err }); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				mode := make([]byte, 1)
				if _, err := io.ReadFull(c, mode); err != nil {
					return
				}
				if mode[0] == 'd' {
					io.Copy(io.Discard, c)
					c.Write([]byte{1})
					return
				}
				io.Copy(c, c)
			}()
		}
	}()
}

func dialBench(b *testing.B, ns *netNS, addr string, mode byte) net.Conn {
	var c net.Conn
	err := inNS(ns.h, func() (err error) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, err = net.DialTimeout("tcp4", addr, time.Second)
			if err == nil || time.Now().After(deadline) {
				return err
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Write([]byte{mode}); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkPodToPod measures TCP between two pods on one node (through
// the node's bridge) and on two nodes (host-gw routes; vxlan), each
// "node" a network namespace and the hosts joined by a bridge:
// throughput (1 MiB writes, MB/s) and latency (a 1-byte round trip).
//
//	go test -run '^$' -bench PodToPod -benchtime 2s ./podnet
func BenchmarkPodToPod(b *testing.B) {
	needRoot(b)
	for _, mode := range []string{"same-node", HostGW, VXLAN} {
		b.Run(mode, func(b *testing.B) {
			sw := newNetNS(b, "sw")
			sw.ip(b, "link", "add", "br0", "type", "bridge")
			sw.ip(b, "link", "set", "br0", "up")
			h1 := newBenchHost(b, "h1", "10.241.2.1", "10.242.21.0/24", 2)
			h2 := newBenchHost(b, "h2", "10.241.2.2", "10.242.22.0/24", 1)
			for _, h := range []*benchHost{h1, h2} {
				link(b, h.ns, "eth0", h.ip.String()+"/24", sw, h.name, "")
				sw.ip(b, "link", "set", h.name, "master", "br0")
				h.start(b)
			}
			backend := mode
			if mode == "same-node" {
				backend = HostGW
			}
			c := Cluster{ClusterCIDR: testCluster, Backend: backend, Peers: peers(h1.host, h2.host)}
			for _, h := range []*benchHost{h1, h2} {
				if _, err := h.sync.Sync(c); err != nil {
					b.Fatal(err)
				}
			}
			srvNS, srvAddr := h2.pods[0], podAddr(h2, 0)
			if mode == "same-node" {
				srvNS, srvAddr = h1.pods[1], podAddr(h1, 1)
			}
			serveBench(b, srvNS, srvAddr+":9000")

			b.Run("throughput", func(b *testing.B) {
				buf := make([]byte, 1<<20)
				c := dialBench(b, h1.pods[0], srvAddr+":9000", 'd')
				b.SetBytes(int64(len(buf)))
				b.ResetTimer()
				for range b.N {
					if _, err := c.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				c.(*net.TCPConn).CloseWrite()
				io.ReadFull(c, buf[:1]) // the server has read everything
				b.StopTimer()
				c.Close()
			})
			b.Run("latency", func(b *testing.B) {
				c := dialBench(b, h1.pods[0], srvAddr+":9000", 'e')
				defer c.Close()
				c.(*net.TCPConn).SetNoDelay(true)
				one := []byte{'x'}
				b.ResetTimer()
				for range b.N {
					if _, err := c.Write(one); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(c, one); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
