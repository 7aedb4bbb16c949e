package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"bosun/audit"
)

// Access is who may call a route. Every route declares one in the route
// table (routes.go); a route without one is refused to everybody.
type Access int

const (
	accessUnset Access = iota
	// Public routes need no token: /healthz, /readyz, the webhook receiver
	// (it checks its own HMAC) and endpoints with credentials of their own
	// (the cluster's join endpoint).
	Public
	// ReadOnly routes need any valid token.
	ReadOnly
	// Admin routes change something: they need an admin token, and every
	// call is audited.
	Admin
)

func (a Access) String() string {
	switch a {
	case Public:
		return "public"
	case ReadOnly:
		return "read-only"
	case Admin:
		return "admin"
	}
	return "unset"
}

// AuthLimit bounds failed authentication attempts per client address: a
// client may fail Burst times in a row, then once per Every; beyond that
// its requests get 429 with Retry-After, whatever token they carry.
type AuthLimit struct {
	// Burst default 10; Every default 6s (ten failures a minute).
	Burst int
	Every time.Duration
}

func (l AuthLimit) withDefaults() AuthLimit {
	if l.Burst <= 0 {
		l.Burst = 10
	}
	if l.Every <= 0 {
		l.Every = 6 * time.Second
	}
	return l
}

// The reasons of bosun_api_auth_failures_total (and failCSRF, cookie.go).
const (
	failMissing     = "missing_token"
	failMalformed   = "malformed"
	failInvalid     = "invalid_token"
	failForbidden   = "forbidden"
	failRateLimited = "rate_limited"
)

// failureLimiter counts failed attempts per client (an IPv4 address or an
// IPv6 /64). It does no I/O; now is passed in.
type failureLimiter struct {
	limit AuthLimit

	mu        sync.Mutex
	clients   map[netip.Prefix]*rate.Limiter
	lastSweep time.Time
}

// maxClients is how many clients the limiter tracks before it forgets
// those whose budget is whole again.
const maxClients = 4096

func newFailureLimiter(l AuthLimit) *failureLimiter {
	return &failureLimiter{limit: l.withDefaults(), clients: map[netip.Prefix]*rate.Limiter{}}
}

// clientKey is the client address of a request's RemoteAddr: the IP, or
// for IPv6 its /64 (one host usually owns a whole /64).
func clientKey(remote string) netip.Prefix {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		// Not host:port (a unix socket, a test): one shared bucket.
		return netip.Prefix{}
	}
	ip := ap.Addr().Unmap()
	bits := ip.BitLen()
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// blocked returns how long the client must wait before its next attempt
// counts, 0 when it may try now.
func (f *failureLimiter) blocked(client netip.Prefix, now time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	lim, ok := f.clients[client]
	if !ok {
		return 0
	}
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration(math.Ceil((1 - tokens) * float64(f.limit.Every)))
}

// fail records a failed attempt.
func (f *failureLimiter) fail(client netip.Prefix, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	lim, ok := f.clients[client]
	if !ok {
		if len(f.clients) >= maxClients && now.Sub(f.lastSweep) > time.Second {
			f.sweep(now)
		}
		lim = rate.NewLimiter(rate.Every(f.limit.Every), f.limit.Burst)
		f.clients[client] = lim
	}
	lim.AllowN(now, 1)
}

// sweep forgets the clients whose budget has refilled: they are as if
// never seen.
func (f *failureLimiter) sweep(now time.Time) {
	f.lastSweep = now
	for k, lim := range f.clients {
		if lim.TokensAt(now) >= float64(f.limit.Burst) {
			delete(f.clients, k)
		}
	}
}

// authorize is the API's front door: it finds the route a request goes to
// and lets it through only if the request may call it (see Access). It
// answers 401 with WWW-Authenticate: Bearer without a valid token, 403
// when the token's role does not allow the route, 429 with Retry-After
// to a client that failed too often, and audits every call of an Admin
// route. A request for no route needs a valid token too (401 before 404:
// an anonymous client learns nothing of the API).
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	_, pattern := s.mux.Handler(r)
	rt, known := s.routes[pattern]
	need := ReadOnly
	switch {
	case known:
		need = rt.Access
	case pattern != "":
		// Registered on the mux but not through the route table: refuse,
		// rather than serve a route nobody gave a role.
		writeError(w, http.StatusInternalServerError, fmt.Errorf("route %q has no access role", pattern))
		return
	}
	if need == Public {
		s.mux.ServeHTTP(w, r)
		return
	}
	tok, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok))
	if !tok.Role.allows(need) {
		s.authFailures.WithLabelValues(failForbidden).Inc()
		if need == Admin {
			s.audit(r, rt, tok, http.StatusForbidden)
		}
		writeError(w, http.StatusForbidden, fmt.Errorf("token %q is %s; %s needs an admin token", tok.Name, tok.Role, rt.Pattern))
		return
	}
	if need != Admin {
		s.mux.ServeHTTP(w, r)
		return
	}
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	if err := s.noQuorum(); err != nil {
		// Said at once, rather than after etcd's request timeout.
		writeError(sw, http.StatusServiceUnavailable, err)
	} else {
		s.mux.ServeHTTP(sw, r)
	}
	s.audit(r, rt, tok, sw.code)
}

type tokenKey struct{}

// TokenFrom returns the token a request to a ReadOnly or Admin route was
// authenticated with (its role and name; never the token itself).
func TokenFrom(ctx context.Context) (Token, bool) {
	t, ok := ctx.Value(tokenKey{}).(Token)
	return t, ok
}

// authenticate returns the request's token, from the Authorization header
// or else the dashboard's session cookie (CookieName), or answers 401 or
// 429 (403 for a cookie-authenticated change without CSRF protection,
// cookie.go) and returns false. Failed attempts count against the client's limit; a
// request without any Authorization header does not (it is a client not
// configured yet, not a guess), but is refused all the same.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (Token, bool) {
	now := s.now()
	client := clientKey(r.RemoteAddr)
	if wait := s.limiter.blocked(client, now); wait > 0 {
		s.authFailures.WithLabelValues(failRateLimited).Inc()
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, http.StatusTooManyRequests, fmt.Errorf("too many failed authentication attempts from %s; retry in %d s", hostOf(r.RemoteAddr), secs))
		return Token{}, false
	}
	h := r.Header.Get("Authorization")
	fromCookie := false
	if c, err := r.Cookie(CookieName); h == "" && err == nil && c.Value != "" {
		// The dashboard's session (cookie.go): it stands for a token.
		token, ok := s.sessions.token(c.Value, now)
		if !ok {
			// Ended, expired, or of a server restarted since: not a
			// guess (ids are 256 random bits), not counted.
			s.authFailures.WithLabelValues(failMissing).Inc()
			http.SetCookie(w, sessionCookie(r, ""))
			unauthorized(w, "", errors.New("the dashboard's session ended: log in again"))
			return Token{}, false
		}
		h, fromCookie = "Bearer "+token, true
	}
	if h == "" {
		s.authFailures.WithLabelValues(failMissing).Inc()
		unauthorized(w, "", errors.New("authentication required: send Authorization: Bearer TOKEN (the CLI reads --token, BOSUN_TOKEN or ~/.config/bosun/token)"))
		return Token{}, false
	}
	scheme, cred, _ := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	if !strings.EqualFold(scheme, "Bearer") || cred == "" {
		s.authFailures.WithLabelValues(failMalformed).Inc()
		s.limiter.fail(client, now)
		s.log.Warn("api authentication failed", "remote", r.RemoteAddr, "reason", "Authorization is not Bearer TOKEN", "path", r.URL.Path)
		unauthorized(w, "invalid_request", errors.New("the Authorization header must be Bearer TOKEN"))
		return Token{}, false
	}
	tok, ok := s.cfg.Tokens.Lookup(cred, now)
	if !ok {
		s.authFailures.WithLabelValues(failInvalid).Inc()
		s.limiter.fail(client, now)
		s.log.Warn("api authentication failed", "remote", r.RemoteAddr, "reason", "unknown token", "path", r.URL.Path, "cookie", fromCookie)
		if fromCookie {
			// Revoked since the login: the dashboard asks for a token again.
			http.SetCookie(w, sessionCookie(r, ""))
		}
		unauthorized(w, "invalid_token", errors.New("the token is not valid on this server"))
		return Token{}, false
	}
	if fromCookie {
		if err := csrfError(r); err != nil {
			s.authFailures.WithLabelValues(failCSRF).Inc()
			s.log.Warn("api request refused", "remote", r.RemoteAddr, "reason", "csrf", "actor", tok.Name, "method", r.Method, "path", r.URL.Path)
			writeError(w, http.StatusForbidden, err)
			return Token{}, false
		}
	}
	return tok, true
}

// unauthorized answers 401 with the challenge of RFC 6750.
func unauthorized(w http.ResponseWriter, code string, err error) {
	challenge := `Bearer realm="bosun"`
	if code != "" {
		challenge += `, error="` + code + `"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeError(w, http.StatusUnauthorized, err)
}

// audit logs one call of an Admin route: the audit line of the call
// (audit.Log: event the route's Event, actor the token's name), with the
// client's address and the outcome.
func (s *Server) audit(r *http.Request, rt Route, tok Token, code int) {
	result := "done"
	switch {
	case code == http.StatusForbidden:
		result = "forbidden"
	case code >= 400:
		result = "failed"
	}
	audit.Log(r.Context(), s.log, rt.Event, tok.Name, slog.String("role", string(tok.Role)), slog.String("remote", r.RemoteAddr),
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", code), slog.String("result", result))
}

// statusWriter remembers the status an Admin route answered, for its
// audit line.
type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
