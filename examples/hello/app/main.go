// Command bosun-hello is the example application run by bosun's demos and
// end-to-end tests. It is a tiny HTTP server configured only by environment:
//
//	PORT         listen port (default 8080)
//	POD_NAME     name reported in answers (default: the hostname)
//	FAIL_READY   "1" makes /healthz answer 500
//	CRASH_AFTER  a duration after which the process exits with status 1
//	UPSTREAM     a URL fetched by GET /upstream (a sidecar reaching its app)
//	DRAIN_FOR    a duration to keep running after SIGTERM (an app finishing its work)
//
// GET /resolve?name=N looks N up through the pod's resolv.conf.
//
// `bosun-hello -probe URL` is a probe command for exec probes (the image
// holds nothing but this binary): it GETs URL and exits 0 on a 2xx or 3xx
// answer, 1 otherwise, printing why.
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
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
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
}

func configFromEnv(getenv func(string) string) (config, error) {
	c := config{Port: getenv("PORT"), Pod: getenv("POD_NAME"), Upstream: getenv("UPSTREAM")}
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
	return c, nil
}

func newHandler(c config, client *http.Client) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s version %s\n", c.Pod, version)
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
	return mux
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
	flag.Parse()
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
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

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
