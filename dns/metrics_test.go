package dns

import (
	"net"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/store"
)

func TestServer_countsQueriesAndUpstreamExchanges(t *testing.T) {
	st := store.NewTest(t)
	putService(t, st, corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10", Selector: webLabels}})
	up := startUpstream(t, "udp")
	reg := prometheus.NewPedanticRegistry()
	// The dead upstream refuses at once (closed UDP port), the next answers.
	s := startServer(t, st, Config{Upstreams: []string{"127.0.0.1:1", up}, Registerer: reg})
	addr := s.Addrs()[0]

	waitFor(t, "the Service in the index", func() bool {
		return exchange(t, "udp", addr, query("web.default.svc.cluster.local.", mdns.TypeA)).Rcode == mdns.RcodeSuccess
	})
	before := testutil.ToFloat64(s.q.queries.WithLabelValues("A", "NOERROR"))
	exchange(t, "udp", addr, query("web.default.svc.cluster.local.", mdns.TypeA))
	exchange(t, "tcp", addr, query("nope.default.svc.cluster.local.", mdns.TypeAAAA))
	exchange(t, "udp", addr, query("_http._tcp.web.default.svc.cluster.local.", mdns.TypeSRV))
	exchange(t, "udp", addr, query("example.com.", mdns.TypeA))
	exchange(t, "udp", addr, query("web.default.svc.cluster.local.", mdns.TypeNAPTR))

	// A packet whose question does not unpack is FORMERR.
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	bad := []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff}
	if _, err := conn.Write(bad); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Read(make([]byte, 512)); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		qtype, rcode string
		want         float64
	}{
		{"A", "NOERROR", before + 2}, // the Service, example.com forwarded
		{"AAAA", "NXDOMAIN", 1},
		{"SRV", "NXDOMAIN", 1}, // the Service has no named port
		{"other", "NOERROR", 1},
		{"none", "FORMERR", 1},
	} {
		if got := testutil.ToFloat64(s.q.queries.WithLabelValues(c.qtype, c.rcode)); got != c.want {
			t.Errorf("bosun_dns_queries_total{qtype=%s,rcode=%s} = %v, want %v", c.qtype, c.rcode, got, c.want)
		}
	}
	if got := testutil.ToFloat64(s.q.upstreamFailures); got != 1 {
		t.Errorf("bosun_dns_upstream_failures_total = %v, want 1 (the dead upstream)", got)
	}
	if got := testutil.CollectAndCount(s.q.upstreamTime); got != 1 {
		t.Errorf("upstream duration: %d series", got)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
