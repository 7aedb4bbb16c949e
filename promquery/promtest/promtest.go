// Package promtest runs a real Prometheus server for tests: Debian's
// prometheus binary with a configuration and storage of its own, on a
// loopback port, scraping every second, killed when the test ends.
//
// Without the binary a test is skipped, unless CI=true, where that is a
// failure (as containerdtest does with containerd).
//
// A test that needs Prometheus's URL before the targets exist (a server
// started with the URL as a flag, whose own API is the service discovery)
// starts Prometheus first and gives it its jobs later with Server.Scrape,
// a configuration reload (SIGHUP).
package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Config is what the test's Prometheus scrapes. The zero value scrapes
// nothing (Prometheus itself still answers queries).
type Config struct {
	// Jobs are the scrape jobs.
	Jobs []Job
	// Listen is the address to serve on; default a free 127.0.0.1 port
	// (another one is tried when it is taken before prometheus binds it).
	Listen string
	// Interval is the scrape and rule evaluation interval, default 1s.
	Interval time.Duration
	// Binary is the prometheus executable, default "prometheus" from PATH.
	Binary string
}

// Job is one scrape job: static targets, targets found by HTTP service
// discovery, or both.
type Job struct {
	// Name is the job label; required, unique.
	Name string
	// Targets are host:port addresses scraped at MetricsPath.
	Targets []string
	// HTTPSD is the URL of an HTTP service discovery endpoint
	// (http_sd_configs), read again every second.
	HTTPSD string
	// MetricsPath is the default path of the job's targets, default
	// /metrics (a discovered target's __metrics_path__ overrides it).
	MetricsPath string
	// Scheme is how the targets are scraped, http (default) or https;
	// TargetAuth, if set, how Prometheus authenticates to them.
	Scheme     string
	TargetAuth *Auth
	// HTTPSDAuth, if set, is how Prometheus authenticates to HTTPSD
	// (credentials of the discovery endpoint are not sent to the targets
	// it finds).
	HTTPSDAuth *Auth
}

// Auth is a bearer token and the CA of an HTTPS endpoint, as files that
// Prometheus reads.
type Auth struct {
	// BearerTokenFile holds the token sent as Authorization: Bearer.
	BearerTokenFile string
	// CAFile holds the PEM certificates that verify the endpoint.
	CAFile string
}

// config is a as Prometheus's HTTP client configuration.
func (a *Auth) config(into map[string]any) {
	if a == nil {
		return
	}
	if a.BearerTokenFile != "" {
		into["authorization"] = map[string]any{"type": "Bearer", "credentials_file": a.BearerTokenFile}
	}
	if a.CAFile != "" {
		into["tls_config"] = map[string]any{"ca_file": a.CAFile}
	}
}

// Server is a running prometheus.
type Server struct {
	// URL is the base URL, http://127.0.0.1:PORT.
	URL string

	cmd      *exec.Cmd
	conf     string
	interval time.Duration
	log      *syncBuffer
}

// Start runs prometheus with cfg until the test ends, and returns it once
// it answers /-/ready.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	bin := cfg.Binary
	if bin == "" {
		bin = "prometheus"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		msg := fmt.Sprintf("prometheus binary %q not found (apt-get install prometheus): %v", bin, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	dir := t.TempDir() // removed after the process is killed (cleanups run last in, first out)
	conf := filepath.Join(dir, "prometheus.yml")
	b, err := configFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		listen := cfg.Listen
		if listen == "" {
			listen = freeLoopback(t)
		}
		srv, err := start(t, path, conf, dir, listen)
		if err == nil {
			srv.interval = cfg.Interval
			return srv
		}
		if !errors.Is(err, errAddrInUse) || cfg.Listen != "" || attempt == 3 {
			t.Fatal(err)
		}
	}
}

var errAddrInUse = errors.New("address already in use")

func start(t testing.TB, bin, conf, dir, listen string) (*Server, error) {
	storage, err := os.MkdirTemp(dir, "data")
	if err != nil {
		return nil, err
	}
	log := &syncBuffer{}
	cmd := exec.Command(bin,
		"--config.file="+conf,
		"--storage.tsdb.path="+storage,
		"--web.listen-address="+listen,
		"--log.level=info",
	)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start prometheus: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}
	url := "http://" + listen
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get(url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			if strings.Contains(log.String(), "address already in use") {
				return nil, fmt.Errorf("prometheus on %s: %w", listen, errAddrInUse)
			}
			return nil, fmt.Errorf("prometheus exited at start (%s); its log:\n%s", cmd.ProcessState, log.tail(40))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("prometheus on %s not ready within 60s; its log:\n%s", listen, log.tail(40))
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("prometheus log (last 40 lines):\n%s", log.tail(40))
		}
	})
	return &Server{URL: url, cmd: cmd, conf: conf, log: log}, nil
}

// Scrape replaces the server's jobs with jobs (its listen address and
// interval stay) and returns once prometheus has loaded them.
func (s *Server) Scrape(t testing.TB, jobs ...Job) {
	t.Helper()
	b, err := configFile(Config{Jobs: jobs, Interval: s.interval})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.conf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("reload prometheus: %v", err)
	}
	Wait(t, "prometheus to load its new jobs", 30*time.Second, func(ctx context.Context) error {
		return s.loaded(ctx, jobs)
	})
}

// loaded reports whether the configuration prometheus runs has exactly
// the jobs named.
func (s *Server) loaded(ctx context.Context, jobs []Job) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v1/status/config", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			YAML string `json:"yaml"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("GET /api/v1/status/config: %w", err)
	}
	if n := strings.Count(body.Data.YAML, "job_name: "); n != len(jobs) {
		return fmt.Errorf("%d jobs loaded, want %d; log:\n%s", n, len(jobs), s.log.tail(5))
	}
	for _, j := range jobs {
		if !strings.Contains(body.Data.YAML, "job_name: "+j.Name+"\n") {
			return fmt.Errorf("job %s not loaded; log:\n%s", j.Name, s.log.tail(5))
		}
	}
	return nil
}

// configFile is cfg as a prometheus.yml (JSON is YAML).
func configFile(cfg Config) ([]byte, error) {
	type m = map[string]any
	interval := cfg.Interval.String()
	jobs := []m{}
	seen := map[string]bool{}
	for _, j := range cfg.Jobs {
		if j.Name == "" || seen[j.Name] {
			return nil, fmt.Errorf("promtest: job name %q: must be set and unique", j.Name)
		}
		seen[j.Name] = true
		job := m{"job_name": j.Name, "scrape_interval": interval, "scrape_timeout": interval}
		if j.MetricsPath != "" {
			job["metrics_path"] = j.MetricsPath
		}
		if j.Scheme != "" {
			job["scheme"] = j.Scheme
		}
		j.TargetAuth.config(job)
		if len(j.Targets) > 0 {
			job["static_configs"] = []m{{"targets": j.Targets}}
		}
		if j.HTTPSD != "" {
			sd := m{"url": j.HTTPSD, "refresh_interval": interval}
			j.HTTPSDAuth.config(sd)
			job["http_sd_configs"] = []m{sd}
		}
		jobs = append(jobs, job)
	}
	return json.MarshalIndent(m{
		"global":         m{"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
		"scrape_configs": jobs,
	}, "", "  ")
}

// freeLoopback is a 127.0.0.1 address whose port was free a moment ago.
func freeLoopback(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer is prometheus's output, written by exec's copying goroutine
// and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Wait polls cond every 200 ms until it returns nil, or fails the test
// with cond's last error after timeout (scrapes and discovery run on
// Prometheus's clock: most things a test waits for take a few intervals).
func Wait(t testing.TB, what string, timeout time.Duration, cond func(context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := cond(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
