package server

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"bosun/api"
	"bosun/dns"
	"bosun/nodes"
	"bosun/proxy"
	"bosun/store"
)

// monitoringDir holds the Grafana dashboard, the alert rules and their
// unit tests, and the scrape config.
const monitoringDir = "../examples/monitoring"

// promtool returns Debian's promtool, skipping the test without it (a
// failure when CI=true: CI has it).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not found (apt-get install prometheus): %v", err)
		}
		t.Skip("promtool not found (apt-get install prometheus)")
	}
	return p
}

func runPromtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

func TestMonitoring_alertRulesPassPromtool(t *testing.T) {
	runPromtool(t, monitoringDir, "check", "rules", "rules.yml")
	// rules_test.yml proves that alerts fire (leader missing, revision
	// rejected, Git fetch failing, etcd quorum, node not ready) and that
	// others stay quiet.
	runPromtool(t, monitoringDir, "test", "rules", "rules_test.yml")
}

func TestMonitoring_scrapeConfigPassesPromtool(t *testing.T) {
	// The config names files of a real installation (the API token, the
	// cluster CA), which promtool checks exist: give it copies of its own.
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(monitoringDir, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, f := range []string{"/etc/prometheus/bosun-token", "/var/lib/bosun/pki/ca.crt"} {
		if !strings.Contains(cfg, f) {
			t.Fatalf("prometheus.yml no longer names %s: update this test", f)
		}
		local := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(local, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg = strings.ReplaceAll(cfg, f, local)
	}
	rules, err := os.ReadFile(filepath.Join(monitoringDir, "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, dir, "check", "config", "prometheus.yml")
}

// TestMonitoring_everyMetricUsedExists reads every bosun_* metric name of
// the Grafana dashboard and the alert rules and finds it in the registries
// of a server and an agent, so that a renamed metric breaks this test
// rather than a user's dashboard.
func TestMonitoring_everyMetricUsedExists(t *testing.T) {
	known := bosunMetricNames(t)
	if len(known) < 50 {
		t.Fatalf("only %d metric names found: the registries were not read", len(known))
	}

	b, err := os.ReadFile(filepath.Join(monitoringDir, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	rules, err := os.ReadFile(filepath.Join(monitoringDir, "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}

	// Every loop is on the dashboard.
	dashNames := metricNamesIn(strings.Join(exprs, "\n"))
	for _, prefix := range []string{"bosun_git_", "bosun_reconcile_", "bosun_plan_", "bosun_rollouts_", "bosun_scheduler_",
		"bosun_agent_", "bosun_dns_", "bosun_api_"} {
		if !slices.ContainsFunc(dashNames, func(n string) bool { return strings.HasPrefix(n, prefix) }) {
			t.Errorf("the dashboard charts no %s* metric", prefix)
		}
	}
	for file, names := range map[string][]string{"grafana-dashboard.json": dashNames, "rules.yml": metricNamesIn(string(rules))} {
		for _, n := range names {
			if !known[n] && !known[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")] {
				t.Errorf("%s uses %s, which bosun does not export", file, n)
			}
		}
	}
}

// metricNamesIn returns the bosun_* names in text, once each.
func metricNamesIn(text string) []string {
	var out []string
	for _, n := range regexp.MustCompile(`\bbosun_[a-z0-9_]+`).FindAllString(text, -1) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// bosunMetricNames are the names of the metrics a server (and its agent,
// DNS, API, cache, Service proxy) registers, read from the collectors'
// descriptions, so that metrics with no sample yet count too.
func bosunMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	st := store.NewTest(t)
	rec := &recordingRegisterer{Registerer: prometheus.NewRegistry(), names: map[string]bool{}}
	log := slog.New(slog.DiscardHandler)

	newMetrics(rec)
	cache := store.NewCache(st, store.CacheConfig{Registerer: rec, Logger: log})
	newQuorumMonitor(st.Client(), rec, log)
	newReleaser(log, rec)
	if _, err := dns.New(dns.Config{Registerer: rec, Upstreams: []string{"127.0.0.1:1"}}, cache); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes.New(nodes.Config{NodeName: "n1", StateDir: t.TempDir(), Registerer: rec, Logger: log}, st); err != nil {
		t.Fatal(err)
	}
	proxy.New(proxy.RunConfig{Registerer: rec, Logger: log}, cache)

	// The API takes a *prometheus.Registry: its names come from a scrape,
	// after requests that give each of its metrics a sample.
	apiReg := prometheus.NewRegistry()
	srv, err := api.New(api.Config{Registry: apiReg, Logger: log}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/healthz", "/api/v1/status"} { // the second without a token: an auth failure
		srv.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	}
	mfs, err := apiReg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := rec.names
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	return names
}

// recordingRegisterer notes the name of every metric registered through it.
type recordingRegisterer struct {
	prometheus.Registerer
	mu    sync.Mutex
	names map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	r.mu.Lock()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	r.mu.Unlock()
	return r.Registerer.Register(c)
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}
