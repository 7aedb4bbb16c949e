package dns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"bosun/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// etcd's embedded server and gRPC keep a few process-wide
		// goroutines alive after Close.
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/pkg/v3/logutil.(*MergeLogger).outputLoop"),
		goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		goleak.IgnoreAnyFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
	)
}

// startServer runs a Server for st on a free loopback port until the test
// ends, and checks that Run then returns nil.
func startServer(t *testing.T, st *store.Store, cfg Config) *Server {
	t.Helper()
	if cfg.Listen == nil {
		cfg.Listen = []string{"127.0.0.1:0"}
	}
	if cfg.Upstreams == nil {
		cfg.Upstreams = []string{"127.0.0.1:1"} // nothing listens: forwards fail fast
	}
	s, err := New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of cancel")
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server not ready within 10s")
	}
	return s
}

func put(t *testing.T, st *store.Store, key string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Client().Put(context.Background(), key, string(b)); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func putService(t *testing.T, st *store.Store, svc corev1.Service) {
	t.Helper()
	put(t, st, store.ServiceKey(svc.Namespace, svc.Name), svc)
}

// putPod writes the pod's spec under pods/ and its status the way the node
// agent does.
func putPod(t *testing.T, st *store.Store, p corev1.Pod) {
	t.Helper()
	if p.UID == "" {
		p.UID = types.UID("uid-" + p.Namespace + "-" + p.Name)
	}
	if p.Spec.NodeName == "" {
		p.Spec.NodeName = "n1" // a status counts only from the pod's own node
	}
	status := p.Status
	p.Status = corev1.PodStatus{}
	put(t, st, store.PodKey(p.Spec.NodeName, p.Namespace, p.Name), p)
	if err := st.PutPodStatus(context.Background(), p.Namespace, p.Name, store.PodStatus{UID: p.UID, Node: "n1", Status: status}); err != nil {
		t.Fatal(err)
	}
}

func exchange(t *testing.T, net, addr string, m *mdns.Msg) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: net, Timeout: 3 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s exchange %s %s: %v", net, m.Question[0].Name, mdns.TypeToString[m.Question[0].Qtype], err)
	}
	if r.Id != m.Id {
		t.Fatalf("reply id %d, want %d", r.Id, m.Id)
	}
	return r
}

// exchangeRaw sends m over UDP and returns the reply with its size on the
// wire.
func exchangeRaw(t *testing.T, addr string, m *mdns.Msg) (*mdns.Msg, int) {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 65535)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	r := new(mdns.Msg)
	if err := r.Unpack(buf[:n]); err != nil {
		t.Fatalf("unpack reply: %v", err)
	}
	return r, n
}

func aValues(r *mdns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

var webLabels = map[string]string{"app": "web"}

func TestServer_answersOverUDPAndTCP(t *testing.T) {
	st := store.NewTest(t)
	putService(t, st, service("prod", "web", webLabels, corev1.ServicePort{Name: "http", Port: 80}))
	putPod(t, st, readyPod("prod", "web-1", "10.0.0.2", webLabels))
	putPod(t, st, readyPod("prod", "web-2", "10.0.0.1", webLabels))
	s := startServer(t, st, Config{})
	addr := s.Addrs()[0]

	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, network, addr, query("web.prod.svc.cluster.local.", mdns.TypeA))
		if got, want := aValues(r), []string{"10.0.0.1", "10.0.0.2"}; r.Rcode != mdns.RcodeSuccess || !slices.Equal(got, want) {
			t.Errorf("%s: rcode %s answer %v, want NOERROR %v", network, mdns.RcodeToString[r.Rcode], got, want)
		}
		if !r.Authoritative {
			t.Errorf("%s: answer not authoritative", network)
		}
		r = exchange(t, network, addr, query("_http._tcp.web.prod.svc.cluster.local.", mdns.TypeSRV))
		if len(r.Answer) != 2 || len(r.Extra) != 2 {
			t.Errorf("%s: SRV answer %v extra %v, want 2 and 2", network, r.Answer, r.Extra)
		}
		r = exchange(t, network, addr, query("missing.prod.svc.cluster.local.", mdns.TypeA))
		if r.Rcode != mdns.RcodeNameError || len(r.Ns) != 1 {
			t.Errorf("%s: unknown name: rcode %s ns %v, want NXDOMAIN with SOA", network, mdns.RcodeToString[r.Rcode], r.Ns)
		}
	}
}

func TestServer_truncatesLargeUDPAnswersAndServesThemOverTCP(t *testing.T) {
	st := store.NewTest(t)
	putService(t, st, service("prod", "big", webLabels))
	var pods []corev1.Pod
	for i := range 200 {
		pods = append(pods, readyPod("prod", fmt.Sprintf("web-%03d", i), fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), webLabels))
	}
	// Write the pods in one transaction-free burst; the index rebuild
	// coalesces the notifications.
	for _, p := range pods {
		putPod(t, st, p)
	}
	s := startServer(t, st, Config{})
	addr := s.Addrs()[0]
	name := "big.prod.svc.cluster.local."

	r, size := exchangeRaw(t, addr, query(name, mdns.TypeA))
	if !r.Truncated || len(r.Answer) >= 200 {
		t.Errorf("plain UDP: TC=%v with %d answers, want TC and fewer than 200", r.Truncated, len(r.Answer))
	}
	if size > mdns.MinMsgSize {
		t.Errorf("plain UDP reply is %d bytes, want <= 512", size)
	}

	q := query(name, mdns.TypeA)
	q.SetEdns0(4096, false)
	r, size = exchangeRaw(t, addr, q)
	if r.IsEdns0() == nil {
		t.Error("EDNS0 query got a reply without OPT")
	}
	if !r.Truncated || size > maxUDPPayload || size < 1000 {
		t.Errorf("EDNS0 UDP: TC=%v %d bytes, want TC and 1000..%d bytes", r.Truncated, size, maxUDPPayload)
	}

	r = exchange(t, "tcp", addr, query(name, mdns.TypeA))
	if r.Truncated || len(r.Answer) != 200 {
		t.Errorf("TCP: TC=%v with %d answers, want all 200", r.Truncated, len(r.Answer))
	}
}

func TestServer_answersBadEDNSVersionWithBADVERS(t *testing.T) {
	st := store.NewTest(t)
	s := startServer(t, st, Config{})
	q := query("cluster.local.", mdns.TypeSOA)
	q.SetEdns0(1232, false)
	q.IsEdns0().SetVersion(1)
	r := exchange(t, "udp", s.Addrs()[0], q)
	if r.Rcode != mdns.RcodeBadVers || r.IsEdns0() == nil {
		t.Errorf("rcode %s opt %v, want BADVERS with OPT", mdns.RcodeToString[r.Rcode], r.IsEdns0())
	}
}

// startUpstream runs a miekg/dns server answering every A query with
// 192.0.2.1 and returns its address.
func startUpstream(t *testing.T, network string) string {
	t.Helper()
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Answer = []mdns.RR{&mdns.A{
			Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60},
			A:   net.IPv4(192, 0, 2, 1),
		}}
		w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &mdns.Server{Handler: h, NotifyStartedFunc: func() { close(started) }}
	var addr string
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv.PacketConn, addr = pc, pc.LocalAddr().String()
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener, addr = ln, ln.Addr().String()
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { srv.Shutdown(); <-done })
	return addr
}

func TestServer_forwardsOutsideDomainToFirstWorkingUpstream(t *testing.T) {
	st := store.NewTest(t)
	up := startUpstream(t, "udp")
	upTCP := startUpstream(t, "tcp")
	// The dead upstream refuses at once (closed UDP port: ICMP unreachable).
	s := startServer(t, st, Config{Upstreams: []string{"127.0.0.1:1", up}})
	sTCP := startServer(t, st, Config{Upstreams: []string{upTCP}})

	q := query("Example.COM.", mdns.TypeA)
	q.Id = 31337
	r := exchange(t, "udp", s.Addrs()[0], q)
	if got := aValues(r); r.Rcode != mdns.RcodeSuccess || !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("forwarded: rcode %s answer %v, want 192.0.2.1", mdns.RcodeToString[r.Rcode], got)
	}
	r = exchange(t, "tcp", sTCP.Addrs()[0], query("example.org.", mdns.TypeA))
	if got := aValues(r); !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("forwarded over TCP: answer %v, want 192.0.2.1", got)
	}
}

func TestServer_forwardFailureIsSERVFAIL(t *testing.T) {
	st := store.NewTest(t)
	s := startServer(t, st, Config{Upstreams: []string{"127.0.0.1:1", "127.0.0.1:2"}})
	q := query("example.com.", mdns.TypeA)
	q.Id = 777
	r := exchange(t, "udp", s.Addrs()[0], q)
	if r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
}

func TestServer_survivesMalformedPackets(t *testing.T) {
	st := store.NewTest(t)
	putService(t, st, service("prod", "web", webLabels))
	putPod(t, st, readyPod("prod", "web-1", "10.0.0.1", webLabels))
	s := startServer(t, st, Config{})
	addr := s.Addrs()[0]

	valid, _ := query("web.prod.svc.cluster.local.", mdns.TypeA).Pack()
	garbage := [][]byte{
		{},
		{0x00},
		[]byte("definitely not dns"),
		valid[:12],           // header promising a question that is not there
		valid[:len(valid)-3], // question cut short
		append(valid[:2:2], 0x80, 0x00, 0, 1, 0, 0, 0, 0, 0, 0),  // a response, not a query
		append(slices.Clone(valid[:12]), 0xc0, 0x0c, 0, 1, 0, 1), // compression pointer loop
		slices.Repeat([]byte{0xff}, 600),
	}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, g := range garbage {
		if _, err := conn.Write(g); err != nil {
			t.Fatal(err)
		}
	}
	tc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc.Write([]byte{0x00, 0x05, 1, 2, 3, 4, 5, 0xff, 0xff, 9})
	tc.Close()

	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, network, addr, query("web.prod.svc.cluster.local.", mdns.TypeA))
		if got := aValues(r); !slices.Equal(got, []string{"10.0.0.1"}) {
			t.Errorf("%s after garbage: answer %v, want 10.0.0.1", network, got)
		}
	}
}

// waitAnswer polls until the A answer for name equals want (nil: NODATA),
// or fails after 5s.
func waitAnswer(t *testing.T, addr, name string, wantRcode int, want []string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := exchange(t, "udp", addr, query(name, mdns.TypeA))
		got := aValues(r)
		if r.Rcode == wantRcode && slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: rcode %s answer %v, want %s %v", name, mdns.RcodeToString[r.Rcode], got, mdns.RcodeToString[wantRcode], want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServer_followsStoreChanges(t *testing.T) {
	st := store.NewTest(t)
	reg := prometheus.NewRegistry()
	s := startServer(t, st, Config{Registerer: reg})
	defer func() {
		// The first load is full, every change after it incremental.
		if got := testutil.ToFloat64(s.m.updates.WithLabelValues("full")); got != 1 {
			t.Errorf("bosun_dns_index_updates_total{mode=full} = %v, want 1", got)
		}
		if got := testutil.ToFloat64(s.m.updates.WithLabelValues("incremental")); got < 4 {
			t.Errorf("bosun_dns_index_updates_total{mode=incremental} = %v, want one per change at least", got)
		}
		if n, err := testutil.GatherAndCount(reg, "bosun_dns_index_update_seconds", "bosun_dns_index_names"); err != nil || n != 2 {
			t.Errorf("index metrics: %d, %v", n, err)
		}
	}()
	addr := s.Addrs()[0]
	name := "web.prod.svc.cluster.local."
	ctx := context.Background()

	waitAnswer(t, addr, name, mdns.RcodeNameError, nil)

	putService(t, st, service("prod", "web", webLabels))
	waitAnswer(t, addr, name, mdns.RcodeSuccess, nil) // NODATA: no endpoints yet

	p := readyPod("prod", "web-1", "10.0.0.1", webLabels)
	p.UID, p.Spec.NodeName = "uid-1", "n1"
	putPod(t, st, notReady(p))
	waitAnswer(t, addr, name, mdns.RcodeSuccess, nil) // not ready: still NODATA

	if err := st.PutPodStatus(ctx, "prod", "web-1", store.PodStatus{UID: p.UID, Node: "n1", Status: p.Status}); err != nil {
		t.Fatal(err)
	}
	waitAnswer(t, addr, name, mdns.RcodeSuccess, []string{"10.0.0.1"})

	putPod(t, st, readyPod("prod", "web-2", "10.0.0.2", webLabels))
	waitAnswer(t, addr, name, mdns.RcodeSuccess, []string{"10.0.0.1", "10.0.0.2"})

	// A status left over from an earlier pod of the same name (other UID)
	// does not count.
	p.UID = "uid-1-recreated"
	p.Status = corev1.PodStatus{}
	put(t, st, store.PodKey(p.Spec.NodeName, "prod", "web-1"), p)
	waitAnswer(t, addr, name, mdns.RcodeSuccess, []string{"10.0.0.2"})

	if _, err := st.Client().Delete(ctx, store.ServiceKey("prod", "web")); err != nil {
		t.Fatal(err)
	}
	waitAnswer(t, addr, name, mdns.RcodeNameError, nil)
}

func TestServer_answersDig(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("dig is not installed (dnsutils): %v", err)
		}
		t.Skip("dig not installed")
	}
	st := store.NewTest(t)
	putService(t, st, service("prod", "web", webLabels, corev1.ServicePort{Name: "http", Port: 80}))
	putPod(t, st, readyPod("prod", "web-1", "10.0.0.7", webLabels))
	s := startServer(t, st, Config{})
	host, port, _ := net.SplitHostPort(s.Addrs()[0])

	for _, tc := range []struct{ args, want string }{
		{"WEB.prod.svc.cluster.local A +short", "10.0.0.7"},
		{"_http._tcp.web.prod.svc.cluster.local SRV +short", "0 100 80 10-0-0-7.web.prod.svc.cluster.local."},
		{"web.prod.svc.cluster.local A +tcp +short", "10.0.0.7"},
		{"nope.prod.svc.cluster.local A +noall +comments", "status: NXDOMAIN"},
	} {
		args := append([]string{"@" + host, "-p", port, "+time=2", "+tries=1"}, strings.Fields(tc.args)...)
		out, err := exec.Command(dig, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %s: %v\n%s", tc.args, err, out)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("dig %s:\n%s\nwant it to contain %q", tc.args, out, tc.want)
		}
	}
}

func TestRun_failsWhenAnAddressIsTaken(t *testing.T) {
	st := store.NewTest(t)
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.LocalAddr().String()
	s, err := New(Config{Listen: []string{"127.0.0.1:0", addr}, Upstreams: []string{"127.0.0.1:1"}}, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = s.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Run = %v, want an error naming %s", err, addr)
	}
	select {
	case <-s.Ready():
		t.Error("Ready closed although Run failed")
	default:
	}
}

func TestNew_rejectsInvalidDomain(t *testing.T) {
	st := store.NewTest(t)
	for _, d := range []string{".", "bad..domain", strings.Repeat("a", 64) + ".local"} {
		if _, err := New(Config{Domain: d}, st); err == nil {
			t.Errorf("New(domain %q) succeeded, want an error", d)
		}
	}
}

func TestRun_stopsOnCancelEvenWithQueriesInFlight(t *testing.T) {
	st := store.NewTest(t)
	// A silent upstream: forwarded queries hang until Run cancels them.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{silent.LocalAddr().String()}}, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	conn, err := net.Dial("udp", s.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b, _ := query("example.com.", mdns.TypeA).Pack()
	conn.Write(b)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want nil", err)
		}
		if d := time.Since(start); d > forwardTimeout {
			t.Errorf("Run took %v to stop, want less than the forward timeout", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestServer_wildcardAddressAnswersThroughMiekgServer(t *testing.T) {
	st := store.NewTest(t)
	putService(t, st, service("prod", "web", webLabels))
	putPod(t, st, readyPod("prod", "web-1", "10.0.0.1", webLabels))
	s := startServer(t, st, Config{Listen: []string{"0.0.0.0:0"}})
	_, port, _ := net.SplitHostPort(s.Addrs()[0])
	addr := net.JoinHostPort("127.0.0.1", port)
	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, network, addr, query("web.prod.svc.cluster.local.", mdns.TypeA))
		if got := aValues(r); !slices.Equal(got, []string{"10.0.0.1"}) {
			t.Errorf("%s: answer %v, want 10.0.0.1", network, got)
		}
	}
	r, size := exchangeRaw(t, addr, query("example.com.", mdns.TypeA))
	if r.Rcode != mdns.RcodeServerFailure || size == 0 {
		t.Errorf("forward without upstream: rcode %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
}
