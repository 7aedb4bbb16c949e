package dns

import (
	"net"
	"testing"

	mdns "github.com/miekg/dns"
)

// recorder is the ResponseWriter of in-process tests: it keeps what the
// handler wrote.
type recorder struct {
	tcp  bool
	sent [][]byte
}

func (r *recorder) LocalAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr {
	if r.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (r *recorder) WriteMsg(m *mdns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = r.Write(b)
	return err
}
func (r *recorder) Write(b []byte) (int, error) {
	r.sent = append(r.sent, append([]byte(nil), b...))
	return len(b), nil
}
func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

// handlerForTest is a Server with testIndex loaded and no upstreams (names
// outside the domain get SERVFAIL without touching the network); it is not
// Run.
func handlerForTest(tb testing.TB) *Server {
	s, err := newServer(Config{Upstreams: []string{}}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	s.cfg.Upstreams = nil
	s.index.Store(testIndex())
	return s
}

// FuzzServeDNS feeds arbitrary packets through the path of a real UDP query
// (header checks, unpack, index lookup or forward, EDNS0, truncation,
// packing) and, when they unpack, through the TCP handler. Nothing may panic;
// every packet long enough to carry an id that is not itself a response gets
// exactly one reply, which unpacks, keeps the id and fits the UDP limit.
func FuzzServeDNS(f *testing.F) {
	for _, q := range []*mdns.Msg{
		query("web.prod.svc.cluster.local.", mdns.TypeA),
		query("_http._tcp.web.prod.svc.cluster.local.", mdns.TypeSRV),
		query("nope.cluster.local.", mdns.TypeAAAA),
		query("example.com.", mdns.TypeA),
		query("cluster.local.", mdns.TypeSOA).SetEdns0(4096, true),
		query("_http._tcp.db.prod.svc.cluster.local.", mdns.TypeSRV),
		query("db-0.db.prod.svc.cluster.local.", mdns.TypeA),
		query("10-0-1-8.db.prod.svc.cluster.local.", mdns.TypeA),
		query("dual.prod.svc.cluster.local.", mdns.TypeAAAA),
	} {
		b, err := q.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte("\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"))
	// The table tests' indexes: pods' addresses, and virtual IPs with
	// per-pod names.
	servers := []*Server{handlerForTest(f), handlerForTest(f)}
	servers[1].index.Store(vipIndex())
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for _, s := range servers {
			fuzzServe(t, s, pkt)
		}
	})
}

// fuzzServe is one packet of FuzzServeDNS through s.
func fuzzServe(t *testing.T, s *Server, pkt []byte) {
	t.Helper()
	reply, fwd := s.servePacket(pkt, nil, false)
	if fwd != nil {
		reply = s.finishAndPack(fwd, s.forward(fwd, false), false, nil)
	}
	if reply == nil {
		if len(pkt) >= 12 && pkt[2]&0x80 == 0 {
			t.Fatalf("no reply to a query packet")
		}
		return
	}
	if len(reply) > maxUDPPayload {
		t.Fatalf("UDP reply of %d bytes", len(reply))
	}
	r := new(mdns.Msg)
	if err := r.Unpack(reply); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	if id := uint16(pkt[0])<<8 | uint16(pkt[1]); r.Id != id || !r.Response {
		t.Fatalf("reply id %d response %v, want id %d and a response", r.Id, r.Response, id)
	}

	req := new(mdns.Msg)
	if req.Unpack(pkt) != nil {
		return
	}
	w := &recorder{tcp: true}
	s.ServeDNS(w, req)
	if len(w.sent) != 1 {
		t.Fatalf("TCP handler sent %d replies, want 1", len(w.sent))
	}
	if err := new(mdns.Msg).Unpack(w.sent[0]); err != nil {
		t.Fatalf("TCP reply does not unpack: %v", err)
	}
}
