package ingress

// Helpers of the ingress load test (bench_test.go): the load generator, the
// proxies under test (bosun's Server re-executed in a child process of the
// test binary, and Debian's nginx started with a generated configuration),
// and the reading of their CPU time.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// benchRoute is one route of the benchmark's table and the backend that
// must answer it.
type benchRoute struct{ host, path, want string }

// benchRoutes are the routes the load goes through (worker i uses route
// i % 3): two hosts, and on the second a path to another Service.
var benchRoutes = []benchRoute{
	{"a.bench.example", "/", "web"},
	{"b.bench.example", "/", "web"},
	{"b.bench.example", "/api/users", "api"},
}

// benchIngress is the Ingress both proxies serve: a.bench.example/ and
// b.bench.example/ to web, b.bench.example/api (Prefix) to api, with TLS
// for both hosts from the Secret "tls".
func benchIngress() networkingv1.Ingress {
	in := ing("bench", "bench", "a.bench.example / P web:80", "b.bench.example / P web:80", "b.bench.example /api P api:80")
	in.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"a.bench.example", "b.bench.example"}, SecretName: "tls"}}
	return in
}

// benchTable is the route table of benchIngress with web and api served at
// 127.0.0.1:webPort and :apiPort, built as Follow builds it.
func benchTable(webPort, apiPort int, tlsSecret corev1.Secret) *Table {
	webSvc, webPod := endpointsFor("web", webPort)
	apiSvc, apiPod := endpointsFor("api", apiPort)
	for _, s := range []*corev1.Service{&webSvc, &apiSvc} {
		s.Namespace = "bench"
	}
	for _, p := range []*corev1.Pod{webPod, apiPod} {
		p.Namespace = "bench"
	}
	tlsSecret.Namespace, tlsSecret.Name = "bench", "tls"
	return Build(Input{Ingresses: []networkingv1.Ingress{benchIngress()}, Services: []corev1.Service{webSvc, apiSvc},
		Pods: []*corev1.Pod{webPod, apiPod}, Secrets: []corev1.Secret{tlsSecret}}, NewCertCache())
}

// loadResult is what one load run measured.
type loadResult struct {
	requests int
	rps      float64
	p50, p99 time.Duration
	// proxyCPU is the CPU time (user+system) the proxy process used
	// during the run, selfCPU that of the test process (load generator
	// and backends).
	proxyCPU, selfCPU time.Duration
}

// loadTarget is where a load run sends its requests.
type loadTarget struct {
	name string
	// addr is host:port; https says whether to speak TLS (with roots and
	// the route's host as server name).
	addr  string
	https bool
	roots *x509.CertPool
	// direct sends each route to its backend (web or api) instead.
	direct map[string]string
	// cpu reads the proxy's CPU time so far (nil: no proxy).
	cpu func() (time.Duration, error)
}

// load runs workers goroutines for d, each on its own kept-alive
// connection, sending GET requests of route i % len(benchRoutes), and
// measures every request's latency (from before the request is written to
// after the body is read). Any error or unexpected answer ends the run
// with an error.
func load(tg loadTarget, workers int, d time.Duration) (loadResult, error) {
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	selfBefore := selfCPU()
	var proxyBefore time.Duration
	if tg.cpu != nil {
		var err error
		if proxyBefore, err = tg.cpu(); err != nil {
			return loadResult{}, err
		}
	}
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range workers {
		rt := benchRoutes[i%len(benchRoutes)]
		addr, scheme := tg.addr, "http"
		if tg.direct != nil {
			addr = tg.direct[rt.want]
		}
		tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true}
		if tg.https {
			scheme = "https"
			tr.TLSClientConfig = &tls.Config{RootCAs: tg.roots, ServerName: rt.host}
		}
		url := scheme + "://" + addr + rt.path
		wg.Go(func() {
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			mine := make([]time.Duration, 0, 4096)
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest("GET", url, nil)
				req.Host = rt.host
				t0 := time.Now()
				err := fetch(c, req, rt.want)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("%s %s%s: %w", tg.name, rt.host, rt.path, err)
					}
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	took := time.Since(start)
	if firstErr != nil {
		return loadResult{}, firstErr
	}
	if len(lat) == 0 {
		return loadResult{}, fmt.Errorf("%s: no request finished", tg.name)
	}
	slices.Sort(lat)
	r := loadResult{requests: len(lat), rps: float64(len(lat)) / took.Seconds(), p50: lat[len(lat)/2], p99: lat[len(lat)*99/100],
		selfCPU: selfCPU() - selfBefore}
	if tg.cpu != nil {
		after, err := tg.cpu()
		if err != nil {
			return loadResult{}, err
		}
		r.proxyCPU = after - proxyBefore
	}
	return r, nil
}

// fetch sends req and checks that the backend named want answered 200.
func fetch(c *http.Client, req *http.Request, want string) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), want+" ") {
		return fmt.Errorf("status %d, body %.60q; want 200 from %s", resp.StatusCode, body, want)
	}
	return nil
}

// benchBackend serves "<name> <path>" padded to 256 bytes: the backends
// web and api run in the test process, on loopback.
func benchBackend(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 0, 256)
		b = append(b, name...)
		b = append(b, ' ')
		b = append(b, r.URL.Path...)
		for len(b) < 255 {
			b = append(b, '.')
		}
		b = append(b, '\n')
		w.Header().Set("Content-Type", "text/plain")
		w.Write(b)
	})
}

// selfCPU is the test process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the CPU time (utime+stime, all threads) of the running
// process pid, from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (in parentheses, which may hold
	// spaces): state is field 3, utime 14 and stime 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(ut+st) * tick, nil
}

// treeCPU is the CPU time of pid and of its children (nginx's master and
// workers), read from /proc.
func treeCPU(pid int) (time.Duration, error) {
	total, err := procCPU(pid)
	if err != nil {
		return 0, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			c, err := procCPU(child)
			if err == nil {
				total += c
			}
		}
	}
	return total, nil
}

// benchChildEnv names the environment the test binary re-executed as the
// bosun proxy reads (TestIngressBenchChild).
const (
	// The child's own names start with BOSUN_BENCH_INGRESS_CHILD, apart
	// from the test's knobs (BOSUN_BENCH_INGRESS_ACCESS_LOG=0 must not
	// reach the child as a file name).
	envChild      = "BOSUN_BENCH_INGRESS_CHILD"
	envWebPort    = "BOSUN_BENCH_INGRESS_CHILD_WEB"
	envAPIPort    = "BOSUN_BENCH_INGRESS_CHILD_API"
	envCert       = "BOSUN_BENCH_INGRESS_CHILD_CERT"
	envKey        = "BOSUN_BENCH_INGRESS_CHILD_KEY"
	envAccessLog  = "BOSUN_BENCH_INGRESS_CHILD_ACCESS_LOG"
	envCPUProfile = "BOSUN_BENCH_INGRESS_CPUPROFILE"
)

// TestIngressBenchChild is the bosun proxy of the load test, run in a
// child process (the test binary re-executed with BOSUN_BENCH_INGRESS_CHILD
// set) so that its CPU time is its own: the production Server with the
// benchmark's route table, HTTP and HTTPS on loopback, access log and
// metrics on as in production. It prints its addresses, serves until its
// standard input closes or it gets SIGTERM, then shuts down.
func TestIngressBenchChild(t *testing.T) {
	if os.Getenv(envChild) == "" {
		t.Skip("the bosun proxy of TestIngressLoad, run in its own process")
	}
	webPort, _ := strconv.Atoi(os.Getenv(envWebPort))
	apiPort, _ := strconv.Atoi(os.Getenv(envAPIPort))
	crt, err1 := os.ReadFile(os.Getenv(envCert))
	key, err2 := os.ReadFile(os.Getenv(envKey))
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Registerer: prometheus.NewRegistry()}
	if p := os.Getenv(envAccessLog); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cfg.AccessLog = f
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetTable(benchTable(webPort, apiPort, corev1.Secret{Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}}))
	if len(srv.Table().Warnings) > 0 {
		t.Fatal(srv.Table().Warnings)
	}
	httpLn, err1 := net.Listen("tcp", "127.0.0.1:0")
	tlsLn, err2 := net.Listen("tcp", "127.0.0.1:0")
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if p := os.Getenv(envCPUProfile); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	fmt.Printf("bosun-ingress http=%s https=%s\n", httpLn.Addr(), tlsLn.Addr())
	if err := srv.Serve(ctx, httpLn, tlsLn); err != nil {
		t.Fatal(err)
	}
}

// proxyProcess is a proxy under test running as a child process.
type proxyProcess struct {
	cmd         *exec.Cmd
	http, https string // loopback addresses
	cpu         func() (time.Duration, error)
	stop        func() error
}

// startBosun runs TestIngressBenchChild of the test binary bin (os.Args[0],
// or one built from another commit with go test -c) with GOMAXPROCS procs,
// writing its access log to accessLog ("": none).
func startBosun(t *testing.T, bin string, procs, webPort, apiPort int, certFile, keyFile, accessLog string) *proxyProcess {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^TestIngressBenchChild$", "-test.count=1", "-test.v=false")
	cmd.Env = append(os.Environ(), envChild+"=1", "GOMAXPROCS="+strconv.Itoa(procs),
		envWebPort+"="+strconv.Itoa(webPort), envAPIPort+"="+strconv.Itoa(apiPort), envCert+"="+certFile, envKey+"="+keyFile)
	cmd.Env = append(cmd.Env, envAccessLog+"="+accessLog)
	if bin != os.Args[0] {
		cmd.Env = append(cmd.Env, envCPUProfile+"=") // profile only the bosun under test
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proxyProcess{cmd: cmd}
	var once sync.Once
	var waitErr error
	p.stop = func() error {
		once.Do(func() {
			stdin.Close()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case waitErr = <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				waitErr = errors.Join(errors.New("bosun proxy did not stop in 30 s"), <-done)
			}
		})
		return waitErr
	}
	t.Cleanup(func() { p.stop() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "bosun-ingress "); ok {
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "http":
					p.http = v
				case "https":
					p.https = v
				}
			}
			break
		}
	}
	if p.http == "" {
		t.Fatalf("bosun proxy child did not start: %v", p.stop())
	}
	go io.Copy(io.Discard, out) // the test framework's own lines
	pid := cmd.Process.Pid
	p.cpu = func() (time.Duration, error) { return procCPU(pid) }
	return p
}

// nginxBinary finds Debian's nginx (in /usr/sbin, which a user's PATH may
// lack).
func nginxBinary() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", errors.New("nginx is not installed: run `bash scripts/install-deps.sh bench` (Debian's nginx)")
}

// nginxConf is an nginx configuration that serves the same routes as
// benchIngress, as ingress-nginx would: one server per host, Prefix "/api"
// as "location = /api" plus "location /api/", upstreams with kept-alive
// connections, the client's Host and X-Forwarded-* headers passed on, and
// a default server that answers 404.
func nginxConf(dir string, workers, httpPort, httpsPort, webPort, apiPort int, certFile, keyFile string, accessLog bool) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	if os.Geteuid() == 0 {
		// Workers run as the user of the test, so that they can reach
		// the temporary directory (0700).
		w("user root;")
	}
	w("worker_processes %d;", workers)
	w("pid %s;", filepath.Join(dir, "nginx.pid"))
	w("error_log %s warn;", filepath.Join(dir, "error.log"))
	w("events { worker_connections 4096; }")
	w("http {")
	if accessLog {
		w("  access_log %s;", filepath.Join(dir, "nginx-access.log"))
	} else {
		w("  access_log off;")
	}
	for _, tp := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		w("  %s_temp_path %s;", tp, filepath.Join(dir, tp+"_temp"))
	}
	w("  keepalive_requests 1000000;")
	w("  upstream web { server 127.0.0.1:%d; keepalive 256; }", webPort)
	w("  upstream api { server 127.0.0.1:%d; keepalive 256; }", apiPort)
	w("  proxy_http_version 1.1;")
	w(`  proxy_set_header Connection "";`)
	w("  proxy_set_header Host $http_host;")
	w("  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;")
	w("  proxy_set_header X-Forwarded-Host $http_host;")
	w("  proxy_set_header X-Forwarded-Proto $scheme;")
	w("  ssl_certificate %s;", certFile)
	w("  ssl_certificate_key %s;", keyFile)
	listen := func() {
		w("    listen 127.0.0.1:%d;", httpPort)
		w("    listen 127.0.0.1:%d ssl;", httpsPort)
	}
	w("  server {")
	w("    listen 127.0.0.1:%d default_server;", httpPort)
	w("    listen 127.0.0.1:%d ssl default_server;", httpsPort)
	w("    return 404;")
	w("  }")
	w("  server {")
	listen()
	w("    server_name a.bench.example;")
	w("    location / { proxy_pass http://web; }")
	w("  }")
	w("  server {")
	listen()
	w("    server_name b.bench.example;")
	w("    location / { proxy_pass http://web; }")
	w("    location = /api { proxy_pass http://api; }")
	w("    location /api/ { proxy_pass http://api; }")
	w("  }")
	w("}")
	return b.String()
}

// startNginx starts nginx in the foreground (daemon off) with nginxConf
// in dir, on two free loopback ports.
func startNginx(t *testing.T, bin, dir string, workers, webPort, apiPort int, certFile, keyFile string, accessLog bool) *proxyProcess {
	t.Helper()
	httpPort, httpsPort := freePort(t), freePort(t)
	conf := nginxConf(dir, workers, httpPort, httpsPort, webPort, apiPort, certFile, keyFile, accessLog)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", "nginx.conf", "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proxyProcess{cmd: cmd, http: fmt.Sprintf("127.0.0.1:%d", httpPort), https: fmt.Sprintf("127.0.0.1:%d", httpsPort)}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var once sync.Once
	var waitErr error
	p.stop = func() error {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGQUIT) // graceful shutdown
			select {
			case waitErr = <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				waitErr = errors.Join(errors.New("nginx did not stop in 30 s"), <-done)
			}
		})
		return waitErr
	}
	t.Cleanup(func() { p.stop() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", p.https, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %v\n%s\n%s", err, log, conf)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not listen on %s", p.https)
		}
		time.Sleep(50 * time.Millisecond)
	}
	pid := cmd.Process.Pid
	p.cpu = func() (time.Duration, error) { return treeCPU(pid) }
	return p
}

// freePort is a loopback TCP port free at the time of the call.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// median is the middle value of xs (the lower one of an even count).
func median[T int | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}
