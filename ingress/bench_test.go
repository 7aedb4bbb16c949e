package ingress

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// TestIngressLoad measures, in one run, requests per second, p50 and p99
// latency, and the proxy's CPU time: straight to the backends, through
// bosun's ingress proxy (the production Server with the route table of
// benchIngress, in a child process), and through Debian's nginx configured
// for the same routes, over HTTP and (both proxies terminating TLS) HTTPS.
// The targets are measured in interleaved rounds (the order rotating each
// round) and the median of the rounds is reported, so that the machine's
// noise hits all alike. Figures in BENCHMARKS.md.
//
// It runs only with BOSUN_BENCH_INGRESS=1 (make bench) and then fails
// when nginx is missing (scripts/install-deps.sh bench). Knobs:
// BOSUN_BENCH_INGRESS_WORKERS (connections, 32), _SECONDS (per run, 5),
// _ROUNDS (3), _PROCS (nginx worker_processes and bosun's GOMAXPROCS, 1),
// _ACCESS_LOG (0 turns both access logs off), _CPUPROFILE (a file for the
// bosun proxy's CPU profile), _BASELINE (a test binary of this package
// built at another commit with go test -c: its proxy is measured too, in
// the same rounds, to compare a change before and after).
func TestIngressLoad(t *testing.T) {
	if os.Getenv("BOSUN_BENCH_INGRESS") == "" {
		t.Skip("set BOSUN_BENCH_INGRESS=1 (make bench)")
	}
	nginx, err := nginxBinary()
	if err != nil {
		t.Fatal(err)
	}
	knob := func(name string, def int) int {
		if v := os.Getenv("BOSUN_BENCH_INGRESS_" + name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				t.Fatalf("BOSUN_BENCH_INGRESS_%s=%q: not a count", name, v)
			}
			return n
		}
		return def
	}
	workers, rounds, procs := knob("WORKERS", 32), knob("ROUNDS", 3), knob("PROCS", 1)
	d := time.Duration(knob("SECONDS", 5)) * time.Second
	accessLog := knob("ACCESS_LOG", 1) != 0

	web := httptest.NewServer(benchBackend("web"))
	defer web.Close()
	api := httptest.NewServer(benchBackend("api"))
	defer api.Close()
	webPort, apiPort := web.Listener.Addr().(*net.TCPAddr).Port, api.Listener.Addr().(*net.TCPAddr).Port

	dir := t.TempDir()
	ca := newTestCA(t)
	sec := ca.secret(t, "bench", "tls", "a.bench.example", "b.bench.example")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := errors.Join(os.WriteFile(certFile, sec.Data["tls.crt"], 0o600), os.WriteFile(keyFile, sec.Data["tls.key"], 0o600)); err != nil {
		t.Fatal(err)
	}
	logFile := func(name string) string {
		if !accessLog {
			return ""
		}
		return filepath.Join(dir, name)
	}
	bosun := startBosun(t, os.Args[0], procs, webPort, apiPort, certFile, keyFile, logFile("bosun-access.log"))
	ngx := startNginx(t, nginx, dir, procs, webPort, apiPort, certFile, keyFile, accessLog)

	direct := map[string]string{"web": web.Listener.Addr().String(), "api": api.Listener.Addr().String()}
	targets := []loadTarget{
		{name: "direct to the backend", direct: direct},
		{name: "bosun ingress, HTTP", addr: bosun.http, cpu: bosun.cpu},
		{name: "nginx, HTTP", addr: ngx.http, cpu: ngx.cpu},
		{name: "bosun ingress, HTTPS", addr: bosun.https, https: true, roots: ca.pool, cpu: bosun.cpu},
		{name: "nginx, HTTPS", addr: ngx.https, https: true, roots: ca.pool, cpu: ngx.cpu},
	}
	stops := []func() error{bosun.stop, ngx.stop}
	if bin := os.Getenv("BOSUN_BENCH_INGRESS_BASELINE"); bin != "" {
		base := startBosun(t, bin, procs, webPort, apiPort, certFile, keyFile, logFile("baseline-access.log"))
		targets = append(targets,
			loadTarget{name: "baseline bosun, HTTP", addr: base.http, cpu: base.cpu},
			loadTarget{name: "baseline bosun, HTTPS", addr: base.https, https: true, roots: ca.pool, cpu: base.cpu})
		stops = append(stops, base.stop)
	}
	// Both proxies route alike: the three routes, "/apix" is not under
	// the Prefix "/api", an unknown host is 404.
	for _, tg := range targets[1:] {
		scheme := "http"
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: "b.bench.example"}}}
		if tg.https {
			scheme = "https"
		}
		for _, rt := range append(slices.Clone(benchRoutes), benchRoute{"b.bench.example", "/apix", "web"}, benchRoute{"b.bench.example", "/api", "api"}) {
			req, _ := http.NewRequest("GET", scheme+"://"+tg.addr+rt.path, nil)
			req.Host = rt.host
			if err := fetch(c, req, rt.want); err != nil {
				t.Fatalf("%s: %s%s: %v", tg.name, rt.host, rt.path, err)
			}
		}
		req, _ := http.NewRequest("GET", scheme+"://"+tg.addr+"/", nil)
		req.Host = "c.bench.example"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("%s: unknown host: status %d, want 404", tg.name, resp.StatusCode)
		}
		c.CloseIdleConnections()
	}
	for _, tg := range targets { // warm up: connections, TLS sessions, caches
		if _, err := load(tg, workers, d/5); err != nil {
			t.Fatal(err)
		}
	}
	results := make([][]loadResult, len(targets))
	for r := range rounds {
		for k := range targets {
			i := (k + r) % len(targets)
			res, err := load(targets[i], workers, d)
			if err != nil {
				t.Fatal(err)
			}
			results[i] = append(results[i], res)
			t.Logf("round %d  %-22s %8.0f req/s  p50 %-10v p99 %-10v proxy CPU %v  test process CPU %v", r+1, targets[i].name,
				res.rps, res.p50.Round(time.Microsecond), res.p99.Round(time.Microsecond), res.proxyCPU, res.selfCPU)
		}
	}
	for _, stop := range stops {
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "median of %d rounds of %v, %d connections, proxies with %d worker(s)/GOMAXPROCS, access logs %v:\n", rounds, d, workers, procs, accessLog)
	fmt.Fprintf(&b, "| path | requests/s | p50 | p99 | proxy CPU per request | proxy CPU use |\n|---|---|---|---|---|---|\n")
	for i, tg := range targets {
		var rps []float64
		var p50, p99, perReq, use []time.Duration
		for _, r := range results[i] {
			rps = append(rps, r.rps)
			p50 = append(p50, r.p50)
			p99 = append(p99, r.p99)
			perReq = append(perReq, r.proxyCPU/time.Duration(r.requests))
			use = append(use, r.proxyCPU)
		}
		cpu := "| |"
		if tg.cpu != nil {
			cpu = fmt.Sprintf("| %.1f µs | %.0f %% |", float64(median(perReq))/1e3, 100*median(use).Seconds()/d.Seconds())
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.2f ms | %.2f ms %s\n", tg.name, median(rps), ms(median(p50)), ms(median(p99)), cpu)
	}
	t.Log("\n" + b.String())
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// BenchmarkMatch is the route table's lookup alone.
func BenchmarkMatch(b *testing.B) {
	var rules []string
	for i := range 100 {
		rules = append(rules, fmt.Sprintf("h%d.example / P s:80", i), fmt.Sprintf("h%d.example /api/v%d P s:80", i, i))
	}
	tab := Build(Input{Ingresses: []networkingv1.Ingress{ing("ns", "i", rules...)}}, nil)
	b.ReportAllocs()
	for b.Loop() {
		if tab.Match("h57.example:443", "/api/v57/users") == nil {
			b.Fatal("no match")
		}
	}
}

// BenchmarkServeHTTP is one proxied request in process (the Server's
// handler, its ReverseProxy and kept-alive connection to a loopback
// backend, metrics on, no access log). The backend runs in the same
// process, so B/op and allocs/op count its side of the request too.
func BenchmarkServeHTTP(b *testing.B) {
	web := httptest.NewServer(benchBackend("web"))
	defer web.Close()
	api := httptest.NewServer(benchBackend("api"))
	defer api.Close()
	srv, err := New(Config{Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.transport.CloseIdleConnections()
	srv.SetTable(benchTable(web.Listener.Addr().(*net.TCPAddr).Port, api.Listener.Addr().(*net.TCPAddr).Port, corev1.Secret{}))
	req := httptest.NewRequest("GET", "http://b.bench.example/api/users", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
}
