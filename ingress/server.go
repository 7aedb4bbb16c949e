package ingress

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Server. The zero value serves nothing until given
// listeners (Serve) or addresses (Run).
type Config struct {
	// Listen is the plain-HTTP address (--ingress-listen), TLSListen the
	// HTTPS one (--ingress-tls-listen); "" leaves one off. Run needs at
	// least one.
	Listen, TLSListen string
	// H2C also serves HTTP/2 without TLS (prior knowledge, no Upgrade) on
	// the plain-HTTP listener. HTTP/2 over TLS is always on (ALPN).
	H2C bool
	// AccessLog receives one JSON line per request (see accessLog); nil
	// writes none.
	AccessLog io.Writer
	// ReadHeaderTimeout bounds the reading of a request's headers; default
	// 10 s. There is no overall read or write timeout: long requests and
	// WebSockets live as long as their peers keep them.
	ReadHeaderTimeout time.Duration
	// StallTimeout cuts a request whose client makes no progress for that
	// long: sends no byte of a body it has not finished (nginx's
	// client_body_timeout), or takes no byte of the answer being written to
	// it (nginx's send_timeout). Every byte renews it, so a long upload or
	// a long stream that moves is never cut; an upgraded connection
	// (WebSocket) has none. Default 60 s.
	StallTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections; default 2 min.
	IdleTimeout time.Duration
	// DialTimeout bounds a connection to a backend; default 5 s.
	DialTimeout time.Duration
	// ShutdownTimeout is how long a stopping server lets requests in
	// progress finish before it cuts them (and upgraded connections);
	// default 10 s.
	ShutdownTimeout time.Duration
	// Registerer receives the metrics (bosun_ingress_*); nil registers
	// none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Server is the ingress proxy: it routes requests by the current route
// table (SetTable swaps it atomically; requests in progress keep the
// table they started with, and no connection is closed by a swap) to the
// ready endpoints of the backend Services, through httputil.ReverseProxy.
type Server struct {
	cfg         Config
	log         *slog.Logger
	cursors     Cursors      // round robin and canary counters, across tables
	routed      atomic.Bool  // a table was set: until then every request is 503
	access      *slog.Logger // nil: no access log
	m           *metrics
	table       atomic.Pointer[Table]
	proxy       *httputil.ReverseProxy
	transport   *http.Transport
	defaultCert *tls.Certificate
	handlers    sync.WaitGroup // requests being served
}

// New returns a Server without a route table: it answers every request
// 503 (with Retry-After) until the first SetTable.
func New(cfg Config) (*Server, error) {
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 60 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 2 * time.Minute
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	lg = lg.With("component", "ingress")
	cert, err := SelfSigned(time.Now())
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: lg, m: newMetrics(cfg.Registerer), defaultCert: cert}
	if cfg.AccessLog != nil {
		s.access = slog.New(slog.NewJSONHandler(cfg.AccessLog, nil))
	}
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	s.transport = &http.Transport{
		DialContext:           dialer.DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Backends are spoken to in HTTP/1.1 (pods serve plain HTTP; a
		// WebSocket upgrade needs HTTP/1.1).
		ForceAttemptHTTP2: false,
	}
	s.proxy = &httputil.ReverseProxy{
		Rewrite:      s.rewrite,
		Transport:    s.transport,
		ErrorHandler: s.proxyError,
		ErrorLog:     log.New(logWriter{lg}, "", 0),
		BufferPool:   &bufferPool{},
	}
	s.table.Store(Build(Input{}, nil))
	return s, nil
}

// SetTable swaps the route table in; requests that already matched keep
// their backend.
func (s *Server) SetTable(t *Table) {
	s.table.Store(t)
	s.routed.Store(true)
	s.cursors.Keep(t)
	s.m.routes.Set(float64(t.Routes))
	s.m.ingresses.Set(float64(t.Ingresses))
	s.m.certificates.Set(float64(t.certs.count))
}

// Table returns the route table in use.
func (s *Server) Table() *Table { return s.table.Load() }

// TLSConfig is the HTTPS listener's configuration: the certificate is
// chosen by the client's server name (SNI) from the route table's; HTTP/2
// and HTTP/1.1 are offered (ALPN).
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := s.table.Load().Certificate(hello.ServerName); c != nil {
				return c, nil
			}
			return s.defaultCert, nil
		},
	}
}

type targetKey struct{}

// target is the endpoint a request goes to, as host:port (made once a
// request: the URL and the access log share it).
type target struct{ addr string }

// ServeHTTP routes one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.m.inflight.Inc()
	defer s.m.inflight.Dec()
	rec := &recorder{ResponseWriter: w, stall: s.cfg.StallTimeout}
	rec.rc = http.NewResponseController(w)
	if r.Body != nil && r.Body != http.NoBody {
		rec.body = &stallReader{ReadCloser: r.Body, rc: rec.rc, stall: s.cfg.StallTimeout}
		r.Body = rec.body
	}
	var b *Backend
	if s.routed.Load() {
		b = s.table.Load().Match(r.Host, r.URL.Path)
	}
	var ns, ing, upstream string
	switch {
	case !s.routed.Load():
		// The first route table is not built yet (the cache has not
		// listed the store): a 404 would say the route does not exist.
		rec.Header().Set("Retry-After", "1")
		http.Error(rec, "no routes yet: the ingress proxy is starting", http.StatusServiceUnavailable)
	case b == nil:
		http.NotFound(rec, r)
	default:
		ns, ing = b.Namespace, b.Ingress
		ep, ok := s.cursors.Pick(b)
		if !ok {
			s.m.upstreamErrors.WithLabelValues(ns, ing, b.Reason).Inc()
			// The detail names objects of the cluster: the debug log has
			// it, the client gets a generic answer.
			s.log.Debug("no endpoint to send a request to", "backend", b.String(), "reason", b.Reason, "problem", b.Problem)
			http.Error(rec, "503 service unavailable", http.StatusServiceUnavailable)
			break
		}
		upstream = ep.String()
		s.proxy.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), targetKey{}, target{upstream})))
		if rec.upstreamError != "" {
			s.m.upstreamErrors.WithLabelValues(ns, ing, rec.upstreamError).Inc()
		}
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK
		if rec.hijacked {
			status = http.StatusSwitchingProtocols
		}
	}
	rec.renew() // net/http writes what is buffered once the handler returns
	took := time.Since(start)
	code := strconv.Itoa(status)
	s.m.requests.WithLabelValues(ns, ing, code).Inc()
	s.m.duration.WithLabelValues(ns, ing).Observe(took.Seconds())
	if s.access != nil {
		// Never headers or the query: either may hold a secret.
		s.access.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method), slog.String("host", r.Host), slog.String("path", r.URL.Path),
			slog.String("proto", r.Proto), slog.Bool("tls", r.TLS != nil),
			slog.Int("status", status), slog.Int64("bytes", rec.bytes), slog.Float64("duration", took.Seconds()),
			slog.String("upstream", upstream), slog.String("namespace", ns), slog.String("ingress", ing),
			slog.String("remote", remoteIP(r.RemoteAddr)))
	}
}

func remoteIP(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// rewrite sends the request to the endpoint ServeHTTP picked, keeping the
// client's Host header (as Kubernetes' ingress controllers do) and setting
// X-Forwarded-For, -Host and -Proto.
func (s *Server) rewrite(pr *httputil.ProxyRequest) {
	tg, _ := pr.In.Context().Value(targetKey{}).(target)
	pr.SetURL(&url.URL{Scheme: "http", Host: tg.addr})
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
	forwardedHeaders(pr)
}

// proxyError answers a request whose backend failed: 502, counted. The
// error itself is logged at debug level without the request's URL.
func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if rec, ok := w.(*recorder); ok && rec.body != nil && rec.body.stalled.Load() {
		// The client stopped sending its body: not the backend's fault.
		s.log.Debug("client stalled sending a request body: cut", "after", s.cfg.StallTimeout)
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestTimeout)
		return
	}
	if r.Context().Err() != nil {
		// The client went away: nothing to answer, no upstream error.
		w.WriteHeader(499)
		return
	}
	reason := "response"
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		reason = "connect"
	}
	tg, _ := r.Context().Value(targetKey{}).(target)
	if rec, ok := w.(*recorder); ok {
		rec.upstreamError = reason
	}
	s.log.Debug("backend failed", "upstream", tg.addr, "reason", reason, "err", safeError(err))
	w.WriteHeader(http.StatusBadGateway)
}

// safeError is an error's text when it cannot hold a URL (a network
// error), else only its type.
func safeError(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Error()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return err.Error()
	}
	return fmt.Sprintf("%T", err)
}

// recorder notes the status and size of an answer. Unwrap lets
// http.ResponseController (which ReverseProxy uses to flush and to hijack
// a connection for a WebSocket) reach the server's own writer.
type recorder struct {
	http.ResponseWriter
	rc            *http.ResponseController // of the server's writer
	body          *stallReader             // the request's body, nil if none
	stall         time.Duration
	status        int
	bytes         int64
	hijacked      bool
	upstreamError string
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.renew()
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) Flush() {
	r.renew()
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil {
		r.hijacked = true
		// An upgraded connection lives as long as its peers keep it.
		_ = c.SetDeadline(time.Time{})
	}
	return c, brw, err
}

// bufferPool lends ReverseProxy the buffers it copies bodies through.
// Without one it makes (and zeroes) a 32 KiB buffer per request, which at
// thousands of requests a second is most of what the proxy allocates and
// makes the garbage collector run every few hundred requests.
type bufferPool struct{ p sync.Pool }

const copyBufferSize = 32 << 10 // what ReverseProxy uses without a pool

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, copyBufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == copyBufferSize {
		buf = buf[:copyBufferSize]
		b.p.Put(&buf)
	}
}

// logWriter turns net/http's and ReverseProxy's own log lines into debug
// lines of the component's logger (they name addresses, never URLs).
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Debug(string(trimNewline(p)))
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && p[len(p)-1] == '\n' {
		p = p[:len(p)-1]
	}
	return p
}

// Serve serves HTTP on httpLn and HTTPS on tlsLn (either may be nil) until
// ctx ends; then it stops accepting, lets requests in progress finish for
// up to ShutdownTimeout, cuts the rest (upgraded connections included),
// and returns once every request handler has returned. It closes the
// listeners.
func (s *Server) Serve(ctx context.Context, httpLn, tlsLn net.Listener) error {
	base, cutAll := context.WithCancel(context.WithoutCancel(ctx))
	defer cutAll()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.handlers.Add(1)
		defer s.handlers.Done()
		s.ServeHTTP(w, r)
	})
	newServer := func() *http.Server {
		return &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
			IdleTimeout:       s.cfg.IdleTimeout,
			BaseContext:       func(net.Listener) context.Context { return base },
			ErrorLog:          log.New(logWriter{s.log}, "", 0),
		}
	}
	var servers []*http.Server
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	if httpLn != nil {
		srv := newServer()
		if s.cfg.H2C {
			srv.Protocols = new(http.Protocols)
			srv.Protocols.SetHTTP1(true)
			srv.Protocols.SetUnencryptedHTTP2(true)
		}
		servers = append(servers, srv)
		s.log.Info("serving Ingresses over HTTP", "listen", httpLn.Addr().String())
		wg.Go(func() {
			if err := srv.Serve(httpLn); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve http: %w", err)
			}
		})
	}
	if tlsLn != nil {
		srv := newServer()
		srv.TLSConfig = s.TLSConfig()
		servers = append(servers, srv)
		s.log.Info("serving Ingresses over HTTPS", "listen", tlsLn.Addr().String())
		wg.Go(func() {
			if err := srv.ServeTLS(tlsLn, "", ""); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve https: %w", err)
			}
		})
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if e := srv.Shutdown(sctx); e != nil {
			s.log.Warn("requests still in progress at shutdown were cut", "err", e)
		}
	}
	cutAll() // upgraded connections and requests past the timeout
	for _, srv := range servers {
		srv.Close()
	}
	wg.Wait()
	s.handlers.Wait()
	s.transport.CloseIdleConnections()
	return err
}

// Listen opens the configured addresses (nil for one left off).
func (s *Server) Listen() (httpLn, tlsLn net.Listener, err error) {
	if s.cfg.Listen == "" && s.cfg.TLSListen == "" {
		return nil, nil, errors.New("ingress: neither an HTTP nor an HTTPS address to listen on")
	}
	if s.cfg.Listen != "" {
		if httpLn, err = net.Listen("tcp", s.cfg.Listen); err != nil {
			return nil, nil, fmt.Errorf("ingress: listen %s: %w", s.cfg.Listen, err)
		}
	}
	if s.cfg.TLSListen != "" {
		if tlsLn, err = net.Listen("tcp", s.cfg.TLSListen); err != nil {
			if httpLn != nil {
				httpLn.Close()
			}
			return nil, nil, fmt.Errorf("ingress: listen %s: %w", s.cfg.TLSListen, err)
		}
	}
	return httpLn, tlsLn, nil
}
