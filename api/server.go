package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/store"
)

// Config configures the API server.
type Config struct {
	// Listen is the address, default 127.0.0.1:7070.
	Listen string
	// Registry collects /metrics; default a new registry with Go and
	// process collectors.
	Registry *prometheus.Registry
	// Webhook configures POST /api/v1/webhooks/git; without a SecretFile
	// webhooks are off (404).
	Webhook WebhookConfig
	// WebhookListen, when set, also serves the webhook receiver, and
	// nothing else, on this address (HTTPS with the same certificate):
	// expose it to the Git host while the API stays on loopback.
	WebhookListen string
	// State serves status and get: in a replica the process's store.Cache,
	// so a request reads memory, not etcd; default the store itself.
	State State
	// Tokens are the bearer tokens the API accepts (LoadTokens); nil
	// accepts none: every route but the Public ones answers 401.
	Tokens *Tokens
	// AuthLimit bounds failed authentication attempts per client address
	// (default 10, then one every 6 s).
	AuthLimit AuthLimit
	// Certificate is what the API serves HTTPS with (LoadCertificate or
	// GeneratedCertificate). Run requires it: the API serves HTTPS only.
	Certificate *tls.Certificate
	// Join serves POST /api/v1/join (machines joining the cluster with
	// their own token), a Public route; nil: not served.
	Join http.Handler
	// Routes are routes beyond the API's own (Routes), each with its
	// Access: the place for endpoints with credentials of their own.
	Routes []Route
	// Etcd is the last check of the etcd members (store.HealthChecker):
	// status shows it, /readyz fails and changes (Admin routes) are refused
	// at once while it has no quorum. nil, or a nil result: unknown.
	Etcd func() *store.ClusterHealth
	// Now is the clock of the failed-attempts limit; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// State is where status and get read the cluster from.
type State interface {
	Snapshot(ctx context.Context) (*store.Snapshot, error)
}

// Server is the HTTP API.
type Server struct {
	cfg            Config
	st             *store.Store
	backend        Backend
	mux            *http.ServeMux
	routes         map[string]Route // by pattern: what authorize enforces
	hook           http.Handler     // the webhook receiver; nil when webhooks are off
	metricsHandler http.Handler
	limiter        *failureLimiter
	sessions       *sessions // the dashboard's logins (cookie.go)
	authFailures   *prometheus.CounterVec
	watchM         *watchMetrics   // GET /api/v1/watch (watch.go)
	reqMetrics     *requestMetrics // metrics.go
	now            func() time.Time
	log            *slog.Logger
	ready          chan struct{}
	addr           string
}

// New returns an API server on the store and the backend.
func New(cfg Config, st *store.Store, backend Backend) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:7070"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.State == nil {
		cfg.State = st
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg: cfg, st: st, backend: backend, mux: http.NewServeMux(), routes: map[string]Route{},
		metricsHandler: promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}),
		limiter:        newFailureLimiter(cfg.AuthLimit),
		sessions:       newSessions(),
		now:            cfg.Now,
		log:            cfg.Logger,
		ready:          make(chan struct{}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_api_auth_failures_total",
			Help: "API requests refused by authentication or authorization, by reason (missing_token, malformed, invalid_token, forbidden, rate_limited).",
		}, []string{"reason"}),
	}
	if err := cfg.Registry.Register(s.authFailures); err != nil {
		return nil, fmt.Errorf("api metrics: %w", err)
	}
	var err error
	if s.watchM, err = newWatchMetrics(cfg.Registry); err != nil {
		return nil, fmt.Errorf("api metrics: %w", err)
	}
	if s.reqMetrics, err = newRequestMetrics(cfg.Registry); err != nil {
		return nil, fmt.Errorf("api metrics: %w", err)
	}
	if cfg.Webhook.SecretFile != "" {
		if cfg.Webhook.Logger == nil {
			cfg.Webhook.Logger = cfg.Logger
		}
		if cfg.Webhook.Registerer == nil {
			cfg.Webhook.Registerer = cfg.Registry
		}
		h, err := NewWebhookHandler(cfg.Webhook, s.st.RequestSync)
		if err != nil {
			return nil, err
		}
		s.hook = h
	}
	extra := cfg.Routes
	if cfg.Join != nil {
		// Its own token (a join token), checked by the handler.
		extra = append([]Route{{Pattern: "POST /api/v1/join", Access: Public, Handler: cfg.Join}}, extra...)
	}
	if err := s.register(extra); err != nil {
		return nil, fmt.Errorf("api routes: %w", err)
	}
	return s, nil
}

// Handler returns the API's HTTP handler: every request goes through
// authorize.
func (s *Server) Handler() http.Handler { return s.instrument(http.HandlerFunc(s.authorize)) }

// Ready is closed once the server listens.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the server listens on, once Ready.
func (s *Server) Addr() string { return s.addr }

// Run serves until ctx ends: the API on Listen and, when WebhookListen is
// set, the webhook receiver alone on that address.
func (s *Server) Run(ctx context.Context) error {
	if s.cfg.Certificate == nil {
		return errors.New("api: no TLS certificate: the API serves HTTPS only")
	}
	fingerprint := ""
	if leaf, err := leafOf(s.cfg.Certificate); err == nil {
		fingerprint = Fingerprint(leaf.Raw)
	}
	l, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("api: listen %s: %w", s.cfg.Listen, err)
	}
	s.addr = l.Addr().String()
	servers := []*http.Server{s.httpServer(ctx, s.Handler())}
	listeners := []net.Listener{l}
	if s.cfg.WebhookListen != "" {
		wl, err := net.Listen("tcp", s.cfg.WebhookListen)
		if err != nil {
			l.Close()
			return fmt.Errorf("api: listen %s: %w", s.cfg.WebhookListen, err)
		}
		hooks := http.NewServeMux()
		hooks.Handle("POST /api/v1/webhooks/git", s.Handler())
		servers = append(servers, s.httpServer(ctx, hooks))
		listeners = append(listeners, wl)
		s.log.Info("webhooks listening", "addr", wl.Addr().String(), "scheme", "https")
	}
	close(s.ready)
	s.log.Info("api listening", "addr", s.addr, "scheme", "https", "fingerprint", fingerprint, "dashboard", dashboardURL(s.addr))
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.ServeTLS(listeners[i], "", "") }()
	}
	var first error
	select {
	case first = <-errc:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		srv.Shutdown(sctx)
	}
	for range len(servers) - btoi(first != nil) {
		if err := <-errc; first == nil && !errors.Is(err, http.ErrServerClosed) {
			first = err
		}
	}
	if first != nil && !errors.Is(first, http.ErrServerClosed) {
		return fmt.Errorf("api: %w", first)
	}
	return nil
}

// httpServer serves h; requests see ctx end, so a `logs -f` stream stops
// on shutdown instead of holding it up.
func (s *Server) httpServer(ctx context.Context, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{*s.cfg.Certificate}, MinVersion: tls.VersionTLS12},
		// TLS handshakes that fail (a client that does not trust the
		// certificate yet) are the client's business, not log lines; a
		// handler's panic is an error (serverErrors).
		ErrorLog: log.New(serverErrors{s.log}, "", 0),
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	snap, err := s.cfg.State.Snapshot(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	health := s.etcdHealth()
	leader := ""
	if health == nil || health.Quorum {
		if leader, err = s.st.Leader(r.Context()); err != nil {
			writeError(w, http.StatusServiceUnavailable, err)
			return
		}
	}
	st := BuildStatus(leader, snap)
	if health != nil {
		st.Etcd = &EtcdStatus{ClusterHealth: *health, Message: health.Message()}
	}
	writeJSON(w, http.StatusOK, st)
}

// removeMember removes a server's etcd member (store.RemoveMember).
func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := store.RemoveMember(r.Context(), s.st.Client(), name); err != nil {
		writeError(w, http.StatusConflict, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"result": "etcd member " + name + " removed"})
}

func (s *Server) etcdHealth() *store.ClusterHealth {
	if s.cfg.Etcd == nil {
		return nil
	}
	return s.cfg.Etcd()
}

// noQuorum is the error of a request that needs etcd to make changes while
// it has none; nil while it has one (or nothing is known).
func (s *Server) noQuorum() error {
	if h := s.etcdHealth(); h != nil && !h.Quorum {
		return fmt.Errorf("%w: %s", store.ErrNoQuorum, strings.TrimPrefix(h.Message(), store.ErrNoQuorum.Error()+": "))
	}
	return nil
}

// list answers GET /api/v1/{kind}[/{name}] with a Kubernetes List.
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	kind := r.PathValue("kind")
	name := r.PathValue("name")
	ns := r.URL.Query().Get("namespace")
	snap, err := s.cfg.State.Snapshot(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	match := func(m metav1.Object) bool {
		return (name == "" || m.GetName() == name) && (ns == "" || m.GetNamespace() == ns || m.GetNamespace() == "")
	}
	k, ok := kindNamed(kind)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("unknown kind %q (known: %s)", kind, strings.Join(kindNames(), ", ")))
		return
	}
	items := k.items(snap, match)
	if name != "" && len(items) == 0 {
		writeError(w, http.StatusNotFound, fmt.Errorf("%s %q not found", strings.TrimSuffix(kind, "s"), name))
		return
	}
	list := List{APIVersion: "v1", Kind: "List", Items: items}
	if list.Items == nil {
		list.Items = []any{}
	}
	writeJSON(w, http.StatusOK, list)
}

// List is a Kubernetes v1 List.
type List struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Items      []any  `json:"items"`
}

func (s *Server) sync(w http.ResponseWriter, r *http.Request) {
	reason := "bosun sync from " + r.RemoteAddr
	if tok, ok := TokenFrom(r.Context()); ok {
		reason = "bosun sync by " + tok.Name + " from " + r.RemoteAddr
	}
	if err := s.st.RequestSyncSpec(r.Context(), manualSync(r, reason)); err != nil { // syncwindow.go
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"result": "sync requested"})
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	s.metricsHandler.ServeHTTP(w, r)
}

// webhook serves the Git webhook receiver, 404 when webhooks are off.
func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	if s.hook == nil {
		writeError(w, http.StatusNotFound, errors.New("webhooks are off: start the server with --webhook-secret-file"))
		return
	}
	s.hook.ServeHTTP(w, r)
}

// readyz answers 200 once this replica serves current state: etcd answers
// and, when the State has one, its first list is in.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.noQuorum(); err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	if st, ok := s.cfg.State.(interface{ Synced() <-chan struct{} }); ok {
		select {
		case <-st.Synced():
		default:
			writeError(w, http.StatusServiceUnavailable, errors.New("the cluster state is not loaded yet"))
			return
		}
	}
	s.healthz(w, r)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.st.Leader(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	w.Write([]byte("ok\n"))
}

// Error is the JSON body of every error answer.
type Error struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, Error{Error: err.Error()})
}

// writeJSON answers v as compact JSON, as the Kubernetes API server does:
// indenting a list of 30,000 pods took most of its 2.3 s. The CLI indents
// what it prints.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// serverErrors logs net/http's own error lines: a handler's panic (with
// its stack) as an error, a failing listener as a warning, and the rest
// (failed TLS handshakes, clients that reset their connection) at debug
// level.
type serverErrors struct{ log *slog.Logger }

func (e serverErrors) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	switch {
	case strings.Contains(msg, "panic"):
		e.log.Error("http server", "err", msg)
	case strings.Contains(msg, "Accept error"):
		e.log.Warn("http server", "err", msg)
	default: // TLS handshakes, clients gone: the client's business
		e.log.Debug("http server", "err", msg)
	}
	return len(p), nil
}
