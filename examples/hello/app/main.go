// Command bosun-hello is the example application run by bosun's demos and
// end-to-end tests. It is a tiny HTTP server configured only by environment:
//
//	PORT         listen port (default 8080)
//	POD_NAME     name reported in answers (default: the hostname)
//	FAIL_READY   "1" makes /healthz answer 500
//	CRASH_AFTER  a duration after which the process exits with status 1
//	UPSTREAM     a URL fetched by GET /upstream (a sidecar reaching its app)
//	DRAIN_FOR    a duration to keep running after SIGTERM (an app finishing its work)
//	GRPC_PORT    also serve the gRPC health service (grpc.health.v1) on this port
//	FAIL_GRPC    "1" makes the gRPC health service answer NOT_SERVING
//	UDP_PORT     also answer every UDP datagram on this port with the pod's name
//	REQUIRE_AT_START  a URL fetched once at start; the process exits 1 if it
//	             does not answer 2xx (an app that needs its sidecar up first)
//	ERROR_RATE   a share (0 to 1, default 0) of requests to / answered 500
//	             "injected error", at random: 0.5 fails about half (a bad
//	             canary for metric gates)
//
// GET /metrics serves Prometheus metrics in the text format:
// hello_http_requests_total{code="200"|"500"|...} counts every request the
// app serves on PORT, by status code (both codes start at 0), except the
// scrapes of /metrics themselves, which promhttp_metric_handler_requests_total
// counts (a scraper must not dilute the error rate it measures).
//
// GET /resolve?name=N looks N up through the pod's resolv.conf. Endpoints
// that show what the pod was given (the image has no shell to look with):
//
//	GET  /env                 the environment, KEY=value lines, sorted
//	GET  /file?path=P         the file's content (404 when it does not exist)
//	GET  /stat?path=P         "mode 0400 uid 0 gid 2000 size 5" (permissions in octal)
//	GET  /self                Uid, Gid, Groups, Cap*, NoNewPrivs and Seccomp of /proc/self/status
//	GET  /sysctl?name=N       the value of /proc/sys/N (dots for slashes)
//	POST /write?path=P        writes the body to P; 500 with the error when it cannot
//	GET  /fetch?url=U         GETs U from inside the pod and relays the answer
//	GET  /udp?addr=H:P        sends one UDP datagram from the pod and relays the answer
//	GET  /ws                  a WebSocket that echoes every message, prefixed "<pod>: "
//
// `bosun-hello -probe URL` is a probe command for exec probes (the image
// holds nothing but this binary): it GETs URL and exits 0 on a 2xx or 3xx
// answer, 1 otherwise, printing why.
//
// A task mode runs instead of the server when any of these flags is given,
// in this order: -write PATH=CONTENT (repeatable), -print TEXT (to stdout),
// -sleep DURATION, -exit CODE. It is what init containers, hooks and Jobs
// of the examples and tests run.
// GET / answers "hello from <pod> version <v>\n"; the version is set at build
// time with -ldflags "-X main.version=v1". SIGTERM shuts the server down
// gracefully.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// version is overridden at build time with -ldflags "-X main.version=...".
var version = "dev"

// config is the application's configuration, read from the environment.
type config struct {
	Port       string
	Pod        string
	FailReady  bool
	CrashAfter time.Duration
	// DrainFor delays the exit after SIGTERM, as an app that finishes its
	// work before it stops.
	DrainFor time.Duration
	Upstream string
	// GRPCPort, when set, serves the gRPC health service; FailGRPC makes
	// it answer NOT_SERVING.
	GRPCPort string
	// UDPPort, when set, answers every UDP datagram on it with the pod's
	// name (statsd-like traffic, for Service tests).
	UDPPort  string
	FailGRPC bool
	// RequireAtStart is fetched once at start; the process exits 1 when it
	// does not answer 2xx.
	RequireAtStart string
	// ErrorRate is the share of requests to / answered 500, 0 to 1.
	ErrorRate float64
}

func configFromEnv(getenv func(string) string) (config, error) {
	c := config{Port: getenv("PORT"), Pod: getenv("POD_NAME"), Upstream: getenv("UPSTREAM"),
		GRPCPort: getenv("GRPC_PORT"), UDPPort: getenv("UDP_PORT"), FailGRPC: getenv("FAIL_GRPC") == "1", RequireAtStart: getenv("REQUIRE_AT_START")}
	if c.Port == "" {
		c.Port = "8080"
	}
	if c.Pod == "" {
		h, err := os.Hostname()
		if err != nil {
			h = "unknown"
		}
		c.Pod = h
	}
	c.FailReady = getenv("FAIL_READY") == "1"
	if s := getenv("CRASH_AFTER"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return c, fmt.Errorf("CRASH_AFTER=%q: %w", s, err)
		}
		c.CrashAfter = d
	}
	if s := getenv("DRAIN_FOR"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return c, fmt.Errorf("DRAIN_FOR=%q: %w", s, err)
		}
		c.DrainFor = d
	}
	if s := getenv("ERROR_RATE"); s != "" {
		r, err := strconv.ParseFloat(s, 64)
		if err != nil || !(r >= 0 && r <= 1) {
			return c, fmt.Errorf("ERROR_RATE=%q: want a number from 0 to 1", s)
		}
		c.ErrorRate = r
	}
	return c, nil
}

// instrument counts the requests h serves in hello_http_requests_total by
// status code and serves /metrics beside h, from a registry of its own.
func instrument(h http.Handler) http.Handler {
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hello_http_requests_total",
		Help: "HTTP requests served, by status code (scrapes of /metrics excepted).",
	}, []string{"code"})
	// Both series exist from the start, so a rate over the first failures
	// is not lost to a series that appears late.
	requests.WithLabelValues("200")
	requests.WithLabelValues("500")
	reg.MustRegister(requests)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	mux.Handle("/", promhttp.InstrumentHandlerCounter(requests, h))
	return mux
}

// newHandler serves the app's endpoints with their metrics; a request to /
// fails with the probability c.ErrorRate.
func newHandler(c config, client *http.Client) http.Handler {
	return instrument(routes(c, client, func() bool { return c.ErrorRate > 0 && rand.Float64() < c.ErrorRate }))
}

// routes are the app's endpoints; fail decides whether a request to /
// answers 500 "injected error".
func routes(c config, client *http.Client, fail func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if fail() {
			http.Error(w, "injected error", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "hello from %s version %s\n", c.Pod, version)
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}).Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade has answered
		}
		defer conn.Close()
		for {
			mt, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if err := conn.WriteMessage(mt, append([]byte(c.Pod+": "), msg...)); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if c.FailReady {
			http.Error(w, "not ready", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /upstream", func(w http.ResponseWriter, r *http.Request) {
		if c.Upstream == "" {
			http.Error(w, "UPSTREAM not set", http.StatusNotFound)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, c.Upstream, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, fmt.Sprintf("fetch upstream: %v", err), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	// /fetch?url=URL GETs any URL from inside the pod and relays the answer,
	// to show what the pod reaches (a Service's virtual IP, itself).
	mux.HandleFunc("GET /fetch", func(w http.ResponseWriter, r *http.Request) {
		target := r.URL.Query().Get("url")
		if target == "" {
			http.Error(w, "url is required", http.StatusBadRequest)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, target, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, fmt.Sprintf("fetch %s: %v", target, err), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	// /udp?addr=HOST:PORT sends one datagram from inside the pod and relays
	// the first answer (empty: none within 2 s).
	mux.HandleFunc("GET /udp", func(w http.ResponseWriter, r *http.Request) {
		conn, err := net.Dial("udp", r.URL.Query().Get("addr"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Write([]byte("ping")); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		buf := make([]byte, 512)
		n, err := conn.Read(buf)
		if err != nil {
			http.Error(w, err.Error(), http.StatusGatewayTimeout)
			return
		}
		w.Write(buf[:n])
	})
	// /resolve?name=web looks a name up with the pod's resolv.conf, to show
	// that cluster names resolve inside pods.
	mux.HandleFunc("GET /resolve", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if name == "" {
			http.Error(w, "name is required", http.StatusBadRequest)
			return
		}
		addrs, err := net.DefaultResolver.LookupHost(r.Context(), name)
		if err != nil {
			http.Error(w, fmt.Sprintf("resolve %s: %v", name, err), http.StatusBadGateway)
			return
		}
		sort.Strings(addrs)
		io.WriteString(w, strings.Join(addrs, "\n")+"\n")
	})
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, r *http.Request) {
		env := os.Environ()
		sort.Strings(env)
		io.WriteString(w, strings.Join(env, "\n")+"\n")
	})
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			fileError(w, err)
			return
		}
		w.Write(b)
	})
	mux.HandleFunc("GET /stat", func(w http.ResponseWriter, r *http.Request) {
		fi, err := os.Stat(r.URL.Query().Get("path"))
		if err != nil {
			fileError(w, err)
			return
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		var uid, gid uint32
		if st != nil {
			uid, gid = st.Uid, st.Gid
		}
		fmt.Fprintf(w, "mode %04o uid %d gid %d size %d\n", fi.Mode().Perm(), uid, gid, fi.Size())
	})
	mux.HandleFunc("GET /self", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			fileError(w, err)
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			key, _, _ := strings.Cut(line, ":")
			switch key {
			case "Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp":
				io.WriteString(w, line+"\n")
			}
		}
	})
	mux.HandleFunc("GET /sysctl", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if name == "" || strings.Contains(name, "/") {
			http.Error(w, "name is required, with dots for slashes", http.StatusBadRequest)
			return
		}
		b, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/")))
		if err != nil {
			fileError(w, err)
			return
		}
		w.Write(b)
	})
	mux.HandleFunc("POST /write", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err == nil {
			err = os.WriteFile(r.URL.Query().Get("path"), body, 0o644)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "written\n")
	})
	return mux
}

func fileError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	if errors.Is(err, os.ErrNotExist) {
		code = http.StatusNotFound
	}
	http.Error(w, err.Error(), code)
}

// task is the task mode: what -write, -print, -sleep and -exit ask for.
type task struct {
	writes []string // PATH=CONTENT
	print  string
	sleep  time.Duration
	exit   int
}

func (t *task) given() bool {
	return len(t.writes) > 0 || t.print != "" || t.sleep > 0 || t.exit != 0
}

// run does the task and returns the exit code.
func (t *task) run(stdout io.Writer) int {
	for _, wr := range t.writes {
		path, content, ok := strings.Cut(wr, "=")
		if !ok || path == "" {
			fmt.Fprintf(os.Stderr, "-write %q: want PATH=CONTENT\n", wr)
			return 2
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			return 1
		}
	}
	if t.print != "" {
		fmt.Fprintln(stdout, t.print)
	}
	time.Sleep(t.sleep)
	return t.exit
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// serveGRPCHealth serves grpc.health.v1 on port until ctx ends: SERVING, or
// NOT_SERVING when fail is set, for the empty service name and "hello".
func serveGRPCHealth(ctx context.Context, port string, fail bool) error {
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	status := healthpb.HealthCheckResponse_SERVING
	if fail {
		status = healthpb.HealthCheckResponse_NOT_SERVING
	}
	hs.SetServingStatus("", status)
	hs.SetServingStatus("hello", status)
	healthpb.RegisterHealthServer(srv, hs)
	go func() {
		<-ctx.Done()
		srv.Stop()
	}()
	log.Printf("gRPC health on %s: %s", ln.Addr(), status)
	return srv.Serve(ln)
}

// requireAtStart fetches url once, as an app that cannot start without
// another container of its pod.
func requireAtStart(client *http.Client, url string) error {
	if err := probe(client, url); err != nil {
		return fmt.Errorf("REQUIRE_AT_START: %w", err)
	}
	return nil
}

// probe GETs url and reports whether it answered 2xx or 3xx.
func probe(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return nil
}

func main() {
	probeURL := flag.String("probe", "", "GET this URL, exit 0 on 2xx/3xx and 1 otherwise (an exec probe), instead of serving")
	var t task
	flag.Var((*listFlag)(&t.writes), "write", "task mode: write CONTENT to PATH (PATH=CONTENT; repeatable)")
	flag.StringVar(&t.print, "print", "", "task mode: print this line to stdout")
	flag.DurationVar(&t.sleep, "sleep", 0, "task mode: sleep this long")
	flag.IntVar(&t.exit, "exit", 0, "task mode: exit with this code")
	flag.Parse()
	if t.given() {
		os.Exit(t.run(os.Stdout))
	}
	if *probeURL != "" {
		client := &http.Client{
			Timeout:       5 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		if err := probe(client, *probeURL); err != nil {
			fmt.Fprintln(os.Stderr, "probe:", err)
			os.Exit(1)
		}
		return
	}
	c, err := configFromEnv(os.Getenv)
	if err != nil {
		log.Fatal(err)
	}
	if c.RequireAtStart != "" {
		if err := requireAtStart(&http.Client{Timeout: 5 * time.Second}, c.RequireAtStart); err != nil {
			log.Fatal(err)
		}
		log.Printf("%s answered at start", c.RequireAtStart)
	}
	ln, err := net.Listen("tcp", ":"+c.Port)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("bosun-hello %s pod %s listening on %s", version, c.Pod, ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	srv := &http.Server{
		Handler:           newHandler(c, &http.Client{Timeout: 5 * time.Second}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if c.GRPCPort != "" {
		go func() {
			if err := serveGRPCHealth(ctx, c.GRPCPort, c.FailGRPC); err != nil {
				errc <- fmt.Errorf("gRPC health: %w", err)
			}
		}()
	}

	if c.UDPPort != "" {
		go func() { errc <- serveUDP(ctx, c.UDPPort, c.Pod) }()
	}

	var crash <-chan time.Time
	if c.CrashAfter > 0 {
		crash = time.After(c.CrashAfter)
	}
	select {
	case <-crash:
		log.Printf("crashing after %s as asked by CRASH_AFTER", c.CrashAfter)
		os.Exit(1)
	case err := <-errc:
		log.Fatal(err)
	case <-ctx.Done():
	}
	log.Printf("shutting down")
	if c.DrainFor > 0 {
		log.Printf("draining for %s as asked by DRAIN_FOR", c.DrainFor)
		time.Sleep(c.DrainFor)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// serveUDP answers every datagram on port with the pod's name and a newline.
func serveUDP(ctx context.Context, port, pod string) error {
	conn, err := net.ListenPacket("udp", ":"+port)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	log.Printf("answering UDP on %s", conn.LocalAddr())
	buf := make([]byte, 512)
	for {
		_, from, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("UDP: %w", err)
		}
		conn.WriteTo([]byte(pod+"\n"), from)
	}
}
