package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/promquery"
	"bosun/promquery/promtest"
)

// startPrometheus runs Debian's prometheus (see promtest) scraping the
// stack every second (rules evaluated every second) until the test ends,
// and returns its base URL (http://127.0.0.1:PORT). Without the binary the
// test is skipped, or fails when CI=true. See scrapeStacks for the jobs.
func startPrometheus(t testing.TB, s *stack) string {
	t.Helper()
	p := newPrometheus(t)
	scrapeStacks(t, p, s)
	return p.URL
}

// newPrometheus starts Prometheus with nothing to scrape, for a test that
// gives its URL to a stack it has yet to start:
//
//	p := newPrometheus(t)
//	s := startStack(t, repo, "--prometheus-url", p.URL)
//	scrapeStacks(t, p, s)
func newPrometheus(t testing.TB) *promtest.Server {
	t.Helper()
	return promtest.Start(t, promtest.Config{Listen: freePort(t)})
}

// scrapeStacks points p at the stacks (replicas of one cluster) and
// returns once it has loaded the jobs: "bosun-pods" finds the pods
// annotated prometheus.io/scrape: "true" through the first stack's
// GET /api/v1/prometheus/targets (http_sd_configs, refreshed every
// second), with the labels namespace, pod, node, deployment, track and
// label_<pod label>; "bosun" scrapes every stack's own /metrics. Both
// reach the API over HTTPS with the stacks' token and certificates (the
// stacks must share a token: one job has one).
func scrapeStacks(t testing.TB, p *promtest.Server, stacks ...*stack) {
	t.Helper()
	apis := make([]string, 0, len(stacks))
	var certs []byte
	for _, s := range stacks {
		apis = append(apis, s.apiAddr)
		if s.apiToken() != stacks[0].apiToken() {
			t.Fatal("scrapeStacks: the stacks have different API tokens; give them one --tokens-file")
		}
		b, err := os.ReadFile(s.certFile())
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, b...)
	}
	dir := t.TempDir()
	auth := &promtest.Auth{BearerTokenFile: filepath.Join(dir, "token"), CAFile: filepath.Join(dir, "ca.pem")}
	if err := os.WriteFile(auth.BearerTokenFile, []byte(stacks[0].apiToken()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(auth.CAFile, certs, 0o600); err != nil {
		t.Fatal(err)
	}
	p.Scrape(t,
		promtest.Job{Name: "bosun-pods", HTTPSD: stacks[0].url("/api/v1/prometheus/targets"), HTTPSDAuth: auth},
		promtest.Job{Name: "bosun", Targets: apis, Scheme: "https", TargetAuth: auth},
	)
}

// promQuery returns a promquery client of the Prometheus at url.
func promQuery(t testing.TB, url string) *promquery.Client {
	t.Helper()
	c, err := promquery.New(url, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitForQuery polls expr every 200 ms until ok accepts its value, and
// returns that value; it fails the test with the last value or error after
// timeout.
func waitForQuery(t testing.TB, c *promquery.Client, expr string, timeout time.Duration, ok func(float64) bool) float64 {
	t.Helper()
	var v float64
	promtest.Wait(t, expr, timeout, func(ctx context.Context) error {
		var err error
		if v, err = c.Scalar(ctx, expr, time.Time{}); err != nil {
			return err
		}
		if !ok(v) {
			return fmt.Errorf("value %v", v)
		}
		return nil
	})
	return v
}

// TestPrometheus_scrapesPodsFoundThroughBosun runs the monitoring example:
// a real Prometheus finds the annotated pods through bosun's HTTP service
// discovery, scrapes them with their labels, and promquery reads request
// counts and an injected error share.
func TestPrometheus_scrapesPodsFoundThroughBosun(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.copyDir("../examples/monitoring/web")
	repo.commit("monitoring: web and flaky, scraped")
	// Prometheus first, as a canary test that gives its URL to the server.
	begin := time.Now()
	prom := newPrometheus(t)
	t.Logf("prometheus ready in %v at %s", time.Since(begin), prom.URL)
	s := startStack(t, repo)
	t.Logf("stack started in %v", time.Since(begin))
	reload := time.Now()
	scrapeStacks(t, prom, s)
	t.Logf("jobs reloaded in %v", time.Since(reload))
	q := promQuery(t, prom.URL)

	var web, flaky []corev1.Pod
	s.waitFor("2 web pods and 1 flaky pod running", 90*time.Second, func() error {
		pods := s.pods()
		web, flaky = readyPods(pods, "web-"), readyPods(pods, "flaky-")
		if len(web) != 2 || len(flaky) != 1 {
			return fmt.Errorf("%d web, %d flaky ready", len(web), len(flaky))
		}
		return nil
	})
	t.Logf("start -> 3 pods running: %v", time.Since(begin))

	t.Run("discovered with their labels, and bosun itself", func(t *testing.T) {
		found := time.Now()
		waitForQuery(t, q, `count(up{job="bosun-pods"} == 1)`, 30*time.Second, func(v float64) bool { return v == 3 })
		t.Logf("pods ready -> 3 targets up: %v", time.Since(found))
		for _, p := range web {
			expr := fmt.Sprintf(`count(up{job="bosun-pods",instance=%q,namespace="default",pod=%q,node="e2e-node",deployment="web",label_app="web"} == 1)`,
				p.Status.PodIP+":8080", p.Name)
			waitForQuery(t, q, expr, 10*time.Second, func(v float64) bool { return v == 1 })
		}
		waitForQuery(t, q, `sum(up{job="bosun"})`, 10*time.Second, func(v float64) bool { return v == 1 })
		waitForQuery(t, q, `sum(bosun_reconcile_passes_total)`, 10*time.Second, func(v float64) bool { return v > 0 })
	})

	t.Run("an injected error share near 0.5", func(t *testing.T) {
		// Only the flaky pod serves traffic here: the brief's whole-cluster
		// ratio is its share. Requests run until the ratio has 10 s of them.
		const expr = `sum(rate(hello_http_requests_total{code="500"}[10s])) / sum(rate(hello_http_requests_total[10s]))`
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		type counts struct{ sent, failed int }
		done := make(chan counts, 1)
		go func() {
			var c counts
			defer func() { done <- c }()
			client := &http.Client{Timeout: 2 * time.Second}
			for ctx.Err() == nil {
				if resp, err := client.Get("http://" + flaky[0].Status.PodIP + ":8080/"); err == nil {
					resp.Body.Close()
					c.sent++
					if resp.StatusCode == http.StatusInternalServerError {
						c.failed++
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		time.Sleep(12 * time.Second) // a full 10 s window of traffic, plus a scrape
		share, err := q.Scalar(context.Background(), expr, time.Time{})
		cancel()
		c := <-done
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		t.Logf("%d requests, %d failed (%.3f); Prometheus's share over 10 s: %.3f", c.sent, c.failed, float64(c.failed)/float64(c.sent), share)
		if c.sent < 200 {
			t.Fatalf("only %d requests answered in 12 s", c.sent)
		}
		if math.Abs(share-0.5) > 0.15 {
			t.Errorf("error share %.3f, want 0.5 ± 0.15", share)
		}
	})

	t.Run("request counts grow with requests", func(t *testing.T) {
		const expr = `sum(hello_http_requests_total{deployment="web"})`
		before, err := q.Scalar(context.Background(), expr, time.Time{})
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		for _, p := range web {
			for range 20 {
				if body, err := httpGet("http://" + p.Status.PodIP + ":8080/"); err != nil || !strings.HasPrefix(body, "hello from "+p.Name) {
					t.Fatalf("GET %s: %q, %v", p.Name, body, err)
				}
			}
		}
		sent := time.Now()
		after := waitForQuery(t, q, expr, 15*time.Second, func(v float64) bool { return v >= before+40 })
		t.Logf("%s: %v -> %v, seen %v after the last request", expr, before, after, time.Since(sent))
		if after != before+40 {
			t.Errorf("grew by %v, want 40 (scrapes are not counted)", after-before)
		}
	})
}
