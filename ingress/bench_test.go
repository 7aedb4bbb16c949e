package ingress

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// loadResult is what a load run measured.
type loadResult struct {
	rps float64
	p50 time.Duration
	p99 time.Duration
}

// load sends GET url with Host host from workers goroutines for d, each on
// its own kept-alive connection, and measures throughput and latency.
func load(url, host string, workers int, d time.Duration) (loadResult, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest("GET", url, nil)
				req.Host = host
				start := time.Now()
				resp, err := c.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr != nil {
		return loadResult{}, firstErr
	}
	slices.Sort(lat)
	return loadResult{rps: float64(len(lat)) / d.Seconds(), p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]}, nil
}

// TestIngressLoad measures requests per second and p99 latency through the
// ingress proxy and straight to the backend, in the same run (figures in
// BENCHMARKS.md). It runs only with BOSUN_BENCH_INGRESS=1 (make bench).
func TestIngressLoad(t *testing.T) {
	if os.Getenv("BOSUN_BENCH_INGRESS") == "" {
		t.Skip("set BOSUN_BENCH_INGRESS=1 (make bench)")
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from bench\n")
	}))
	defer backend.Close()
	port := backend.Listener.Addr().(*net.TCPAddr).Port
	s, po := endpointsFor("bench", port)
	srv, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetTable(Build(Input{Ingresses: []networkingv1.Ingress{ing("web", "bench", "bench.example / P bench:80")},
		Services: []corev1.Service{s}, Pods: []*corev1.Pod{po}}, nil))
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, nil) }()
	defer func() { cancel(); <-done }()
	const workers, d = 32, 5 * time.Second
	direct, err := load(backend.URL+"/", "bench.example", workers, d)
	if err != nil {
		t.Fatal(err)
	}
	through, err := load("http://"+ln.Addr().String()+"/", "bench.example", workers, d)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("direct:  %8.0f req/s  p50 %v  p99 %v", direct.rps, direct.p50, direct.p99)
	t.Logf("ingress: %8.0f req/s  p50 %v  p99 %v", through.rps, through.p50, through.p99)
}

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
