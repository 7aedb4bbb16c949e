package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"bosun/store"
)

// Tokens planted by the tests of this file: none may appear in a log line
// or an answer.
const (
	plantedAdmin    = "bosun_planted-admin-7f3a9c"
	plantedReader   = "bosun_planted-reader-51d2e8"
	plantedWrongOne = "bosun_planted-wrong-0be4a1"
)

// authFixture is an API server with an admin token ("ops") and a
// read-only one ("ci"), a clock the test moves, and its log.
type authFixture struct {
	t    *testing.T
	srv  *Server
	h    http.Handler
	reg  *prometheus.Registry
	logs *syncBuffer
	now  time.Time
	mu   sync.Mutex
}

func newAuthFixture(t *testing.T, st *store.Store) *authFixture {
	t.Helper()
	f := &authFixture{t: t, reg: prometheus.NewRegistry(), logs: &syncBuffer{}, now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	tokens := StaticTokens(
		Token{Role: RoleAdmin, Name: "ops", Hash: HashToken(plantedAdmin)},
		Token{Role: RoleReadOnly, Name: "ci", Hash: HashToken(plantedReader)},
	)
	srv, err := New(Config{
		Tokens: tokens, Registry: f.reg, Now: f.clock,
		Logger: slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, st, errBackend{})
	if err != nil {
		t.Fatal(err)
	}
	f.srv, f.h = srv, srv.Handler()
	return f
}

func (f *authFixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *authFixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// do sends a request from remote with the Authorization header auth
// ("" for none).
func (f *authFixture) do(method, path, auth, remote string) *httptest.ResponseRecorder {
	var body io.Reader
	if method == http.MethodPost && path == "/api/v1/plan" {
		body = strings.NewReader(`{"ref":"main"}`)
	}
	req := httptest.NewRequest(method, path, body)
	if path == "/api/v1/watch" {
		// A stream: it would answer until the client goes.
		ctx, cancel := context.WithTimeout(req.Context(), 200*time.Millisecond)
		defer cancel()
		req = req.WithContext(ctx)
	}
	req.RemoteAddr = remote
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

// errBackend answers every plan and log request with ErrNotFound: these
// tests look at who gets through, not at what the backend does.
type errBackend struct{}

func (errBackend) Plan(context.Context, PlanRequest) (*PlanResult, error) {
	return nil, fmt.Errorf("ref: %w", ErrNotFound)
}

func (errBackend) Logs(context.Context, LogRequest, io.Writer) error {
	return fmt.Errorf("pod: %w", ErrNotFound)
}

// concrete turns a route pattern into a request path.
func concrete(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	path = strings.ReplaceAll(path, "{$}", "")
	path = regexp.MustCompile(`\{kind\}`).ReplaceAllString(path, "pods")
	path = regexp.MustCompile(`\{[a-z]+\}`).ReplaceAllString(path, "x")
	return method, path
}

func TestRoutes_everyRouteHasARole(t *testing.T) {
	routes := Routes()
	if len(routes) < 10 {
		t.Fatalf("only %d routes", len(routes))
	}
	for _, rt := range routes {
		switch rt.Access {
		case Public, ReadOnly:
		case Admin:
			if rt.Event == "" {
				t.Errorf("admin route %s has no audit event", rt.Pattern)
			}
		default:
			t.Errorf("route %s has no access role", rt.Pattern)
		}
	}
	// Exactly these are public; a new public route is a decision to
	// write down here.
	var public []string
	for _, rt := range routes {
		if rt.Access == Public {
			public = append(public, rt.Pattern)
		}
	}
	if got, want := strings.Join(public, ", "), "GET /healthz, GET /readyz, POST /api/v1/webhooks/git, GET /{$}, GET /assets/{file}, POST /login, POST /logout"; got != want {
		t.Errorf("public routes = %s, want %s", got, want)
	}
}

// TestAuthorize_eachRoleOnEveryRoute walks the mux's routes (every
// pattern New registered) and checks who gets through: nobody without a
// token but on Public routes (401 with a Bearer challenge), a read-only
// token on ReadOnly routes only (403 on Admin ones), an admin token
// everywhere.
func TestAuthorize_eachRoleOnEveryRoute(t *testing.T) {
	f := newAuthFixture(t, seed(t))
	if len(f.srv.routes) != len(Routes()) {
		t.Fatalf("the mux has %d routes, the table %d", len(f.srv.routes), len(Routes()))
	}
	for pattern, rt := range f.srv.routes {
		method, path := concrete(pattern)
		anon := f.do(method, path, "", "192.0.2.1:1000")
		reader := f.do(method, path, "Bearer "+plantedReader, "192.0.2.1:1000")
		admin := f.do(method, path, "Bearer "+plantedAdmin, "192.0.2.1:1000")
		denied := func(rec *httptest.ResponseRecorder) bool { return rec.Code == 401 || rec.Code == 403 }
		switch rt.Access {
		case Public:
			if denied(anon) {
				t.Errorf("%s (public) without a token: %d", pattern, anon.Code)
			}
		case ReadOnly:
			if anon.Code != 401 || !strings.HasPrefix(anon.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s without a token: %d, WWW-Authenticate %q; want 401 Bearer", pattern, anon.Code, anon.Header().Get("WWW-Authenticate"))
			}
			if denied(reader) || denied(admin) {
				t.Errorf("%s: read-only %d, admin %d; want both through", pattern, reader.Code, admin.Code)
			}
		case Admin:
			if anon.Code != 401 || reader.Code != 403 || denied(admin) {
				t.Errorf("%s: anonymous %d, read-only %d, admin %d; want 401, 403, through", pattern, anon.Code, reader.Code, admin.Code)
			}
		}
		for _, rec := range []*httptest.ResponseRecorder{anon, reader, admin} {
			assertNoToken(t, pattern+" answer", rec.Body.String())
		}
	}
	// A path no route serves is 401 before it is 404.
	if rec := f.do("GET", "/api/v2/nothing", "", "192.0.2.1:1000"); rec.Code != 401 {
		t.Errorf("unknown path without a token: %d, want 401", rec.Code)
	}
	if rec := f.do("GET", "/api/v2/nothing", "Bearer "+plantedReader, "192.0.2.1:1000"); rec.Code != 404 {
		t.Errorf("unknown path with a token: %d, want 404", rec.Code)
	}
	assertNoToken(t, "log", f.logs.String())
}

func TestAuthorize_routeOutsideTheTableIsRefused(t *testing.T) {
	f := newAuthFixture(t, seed(t))
	f.srv.mux.HandleFunc("GET /api/v1/sneaky", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("served")) })
	rec := f.do("GET", "/api/v1/sneaky", "Bearer "+plantedAdmin, "192.0.2.1:1000")
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "no access role") {
		t.Errorf("route outside the table: %d %s; want 500 no access role", rec.Code, rec.Body)
	}
}

func TestNew_refusesRoutesWithoutRoleOrEvent(t *testing.T) {
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, tc := range []struct {
		route Route
		want  string
	}{
		{Route{Pattern: "POST /api/v1/join", Handler: ok}, "no access"},
		{Route{Pattern: "POST /api/v1/restart", Access: Admin, Handler: ok}, "needs an Event"},
		{Route{Pattern: "GET /api/v1/status", Access: ReadOnly, Handler: ok}, "registered twice"},
		{Route{Pattern: "POST /api/v1/join", Access: Public}, "no handler"},
	} {
		_, err := New(Config{Routes: []Route{tc.route}}, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("route %+v: err %v, want %q", tc.route.Pattern, err, tc.want)
		}
	}
	// The place for the cluster's join endpoint: a Public route of its own.
	srv, err := New(Config{Routes: []Route{{Pattern: "POST /api/v1/join", Access: Public, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})}}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/api/v1/join", nil))
	if rec.Code != http.StatusTeapot {
		t.Errorf("public extra route: %d", rec.Code)
	}
}

func TestAuthenticate_failuresAreRateLimitedPerClient(t *testing.T) {
	f := newAuthFixture(t, seed(t))
	const attacker, other = "198.51.100.7:4000", "203.0.113.9:5000"
	// No header at all is refused but does not count: an unconfigured
	// client, not a guess.
	for range 20 {
		if rec := f.do("GET", "/api/v1/status", "", attacker); rec.Code != 401 {
			t.Fatalf("no token: %d", rec.Code)
		}
	}
	for i := range 10 {
		if rec := f.do("GET", "/api/v1/status", "Bearer "+plantedWrongOne, attacker); rec.Code != 401 || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("wrong token #%d: %d %q", i+1, rec.Code, rec.Header().Get("WWW-Authenticate"))
		}
	}
	rec := f.do("GET", "/api/v1/status", "Bearer "+plantedWrongOne, attacker)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "6" {
		t.Fatalf("11th wrong token: %d, Retry-After %q; want 429, 6", rec.Code, rec.Header().Get("Retry-After"))
	}
	// Blocked means blocked: a right token is not even looked at, or the
	// limit would not limit guessing.
	if rec := f.do("GET", "/api/v1/status", "Bearer "+plantedAdmin, attacker); rec.Code != http.StatusTooManyRequests {
		t.Errorf("right token while blocked: %d, want 429", rec.Code)
	}
	// Other clients are not affected.
	if rec := f.do("GET", "/api/v1/status", "Bearer "+plantedReader, other); rec.Code != 200 {
		t.Errorf("another client: %d", rec.Code)
	}
	f.advance(3 * time.Second)
	if rec := f.do("GET", "/api/v1/status", "Bearer "+plantedAdmin, attacker); rec.Code != 429 || rec.Header().Get("Retry-After") != "3" {
		t.Errorf("after 3 s: %d, Retry-After %q; want 429, 3", rec.Code, rec.Header().Get("Retry-After"))
	}
	f.advance(3 * time.Second)
	if rec := f.do("GET", "/api/v1/status", "Bearer "+plantedAdmin, attacker); rec.Code != 200 {
		t.Errorf("after 6 s with the right token: %d", rec.Code)
	}
	// One more failure spends the one attempt the 6 s gave back.
	f.do("GET", "/api/v1/status", "Bearer "+plantedWrongOne, attacker)
	if rec := f.do("GET", "/api/v1/status", "Bearer "+plantedAdmin, attacker); rec.Code != 429 {
		t.Errorf("after one more failure: %d, want 429", rec.Code)
	}
	for reason, want := range map[string]float64{failMissing: 20, failInvalid: 11, failRateLimited: 4} {
		if got := testutil.ToFloat64(f.srv.authFailures.WithLabelValues(reason)); got != want {
			t.Errorf("bosun_api_auth_failures_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	assertNoToken(t, "log", f.logs.String())
}

func TestAuthenticate_malformedHeaders(t *testing.T) {
	f := newAuthFixture(t, seed(t))
	for _, h := range []string{"Basic " + plantedAdmin, "Bearer", "Bearer   ", plantedAdmin, "bearer " + plantedAdmin + "x"} {
		rec := f.do("GET", "/api/v1/status", h, "192.0.2.1:1")
		if rec.Code != 401 {
			t.Errorf("Authorization %q: %d, want 401", h, rec.Code)
		}
		assertNoToken(t, "answer", rec.Body.String())
	}
	// The scheme is case-insensitive (RFC 7235).
	if rec := f.do("GET", "/api/v1/status", "bearer "+plantedAdmin, "192.0.2.2:1"); rec.Code != 200 {
		t.Errorf("lowercase bearer: %d", rec.Code)
	}
	assertNoToken(t, "log", f.logs.String())
}

// TestAudit_adminCallsNameTheirActor: a sync logs one audit line with the
// token's name and the client's address; a read-only token's attempt is
// audited as forbidden; reads are not audited.
func TestAudit_adminCallsNameTheirActor(t *testing.T) {
	st := seed(t)
	f := newAuthFixture(t, st)
	if rec := f.do("POST", "/api/v1/sync", "Bearer "+plantedAdmin, "192.0.2.10:4242"); rec.Code != http.StatusAccepted {
		t.Fatalf("admin sync: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do("POST", "/api/v1/sync", "Bearer "+plantedReader, "192.0.2.11:4343"); rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "admin") {
		t.Fatalf("read-only sync: %d %s", rec.Code, rec.Body)
	}
	f.do("GET", "/api/v1/status", "Bearer "+plantedAdmin, "192.0.2.10:4242")

	var audits []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["audit"] == true {
			audits = append(audits, rec)
		}
	}
	if len(audits) != 2 {
		t.Fatalf("%d audit lines, want 2:\n%s", len(audits), f.logs)
	}
	want := []map[string]any{
		{"event": "api.sync", "actor": "ops", "role": "admin", "remote": "192.0.2.10:4242", "result": "done", "status": float64(202)},
		{"event": "api.sync", "actor": "ci", "role": "read-only", "remote": "192.0.2.11:4343", "result": "forbidden", "status": float64(403)},
	}
	for i, w := range want {
		for k, v := range w {
			if audits[i][k] != v {
				t.Errorf("audit line %d: %s = %v, want %v", i, k, audits[i][k], v)
			}
		}
	}
	assertNoToken(t, "log", f.logs.String())
}

func assertNoToken(t *testing.T, where, s string) {
	t.Helper()
	for _, tok := range []string{plantedAdmin, plantedReader, plantedWrongOne} {
		if strings.Contains(s, tok) {
			t.Errorf("%s contains the token %s:\n%s", where, tok, s)
		}
	}
}

func TestClientKey(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.1:80":                 "192.0.2.1/32",
		"[2001:db8:1:2:3:4:5:6]:443":   "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:1":     "2001:db8:1:2::/64",
		"[::ffff:192.0.2.1]:80":        "192.0.2.1/32",
		"@":                            "invalid Prefix",
		"[fe80::1%eth0]:22":            "fe80::/64",
		"not an address at all, truly": "invalid Prefix",
	} {
		if got := clientKey(remote).String(); got != want {
			t.Errorf("clientKey(%q) = %s, want %s", remote, got, want)
		}
	}
}

func TestFailureLimiter_forgetsRefilledClients(t *testing.T) {
	l := newFailureLimiter(AuthLimit{Burst: 2, Every: time.Second})
	now := time.Unix(1000, 0)
	for i := range maxClients {
		l.fail(clientKey(fmt.Sprintf("10.0.%d.%d:1", i/256, i%256)), now)
	}
	if len(l.clients) != maxClients {
		t.Fatalf("%d clients", len(l.clients))
	}
	// Two seconds later every budget is whole again: the next new client
	// sweeps them all away.
	l.fail(clientKey("192.0.2.1:1"), now.Add(2*time.Second))
	if len(l.clients) != 1 {
		t.Errorf("%d clients after the sweep, want 1", len(l.clients))
	}
}
