package api

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/store"
)

// request sends a request with the given cookie token ("" for none) and
// extra headers, over "TLS" (so that cookies are Secure).
func (f *authFixture) request(method, target, cookie string, body string, hdr map[string]string) *httptest.ResponseRecorder {
	var req *http.Request
	if body != "" {
		req = httptest.NewRequest(method, target, strings.NewReader(body))
	} else {
		req = httptest.NewRequest(method, target, nil)
	}
	req.RemoteAddr = "192.0.2.7:1000"
	req.Host = "bosun.example:7070"
	req.TLS = &tls.ConnectionState{}
	if cookie != "" {
		// cookie is the token a session logged in with: the browser holds
		// the session's id.
		req.AddCookie(&http.Cookie{Name: CookieName, Value: f.srv.sessions.create(cookie, f.srv.now())})
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func sessionOf(t *testing.T, rec *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	for _, c := range rec.Result().Cookies() {
		if c.Name == CookieName {
			return c
		}
	}
	return nil
}

func TestDashboard_tokenLinkSetsCookieAndRedirectsTokenOutOfURL(t *testing.T) {
	f := newAuthFixture(t, seed(t))
	rec := f.request("GET", "/?token="+url.QueryEscape(plantedReader), "", "", nil)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/" {
		t.Fatalf("GET /?token=: %d Location %q; want 303 to /", rec.Code, rec.Header().Get("Location"))
	}
	c := sessionOf(t, rec)
	if c == nil || len(c.Value) != 43 || strings.Contains(c.Value, plantedReader) || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Fatalf("session cookie = %+v; want a session id (never the token), HttpOnly, Secure, SameSite=Strict, Path=/", c)
	}
	if tok, ok := f.srv.sessions.token(c.Value, f.srv.now()); !ok || tok != plantedReader {
		t.Fatalf("the session of the cookie stands for %q, %v", tok, ok)
	}
	if rec.Header().Get("Referrer-Policy") != "no-referrer" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("redirect headers: %v", rec.Header())
	}
	// The cookie authenticates reads as the bearer header does.
	if rec := f.request("GET", "/api/v1/status", plantedReader, "", nil); rec.Code != 200 {
		t.Errorf("status with the cookie: %d %s", rec.Code, rec.Body)
	}
	// A bad link: 401 without a Bearer challenge (no browser dialog), the
	// cookie cleared, and counted as a failure.
	rec = f.request("GET", "/?token="+plantedWrongOne, "", "", nil)
	if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != "" {
		t.Errorf("bad token link: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	if c := sessionOf(t, rec); c == nil || c.MaxAge >= 0 {
		t.Errorf("bad token link: cookie %+v, want cleared", c)
	}
	if got := testutil.ToFloat64(f.srv.authFailures.WithLabelValues(failInvalid)); got != 1 {
		t.Errorf("invalid_token failures = %v, want 1", got)
	}
	assertNoToken(t, "log", f.logs.String())
	assertNoToken(t, "answer", rec.Body.String())

	// Another site's image, frame or script naming /?token= is refused
	// before the token is looked at: no failure counted (it could lock the
	// client's address out of the API), no cookie set or cleared. A bad
	// link followed from another site does not log out either.
	for _, dest := range []string{"image", "iframe", "script"} {
		rec := f.request("GET", "/?token="+plantedWrongOne, "", "", map[string]string{
			"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": dest})
		if rec.Code != 403 || sessionOf(t, rec) != nil {
			t.Errorf("cross-site %s /?token=: %d, cookie %+v; want 403 and no cookie", dest, rec.Code, sessionOf(t, rec))
		}
	}
	rec = f.request("GET", "/?token="+plantedWrongOne, "", "", map[string]string{
		"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"})
	if rec.Code != 401 || sessionOf(t, rec) != nil {
		t.Errorf("bad link from another site: %d, cookie %+v; want 401 and the session kept", rec.Code, sessionOf(t, rec))
	}
	if got := testutil.ToFloat64(f.srv.authFailures.WithLabelValues(failInvalid)); got != 2 {
		t.Errorf("invalid_token failures = %v, want 2 (the embedded requests are not counted)", got)
	}
}

func TestDashboard_pageAndAssetsArePublicAndHoldNoData(t *testing.T) {
	f := newAuthFixture(t, seed(t))
	rec := f.request("GET", "/", "", "", nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `<script src="/assets/app.js"`) {
		t.Fatalf("GET /: %d\n%s", rec.Code, rec.Body)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP = %q", csp)
	}
	for _, name := range []string{"app.js", "app.css"} {
		rec := f.request("GET", "/assets/"+name, "", "", nil)
		if rec.Code != 200 || rec.Header().Get("ETag") == "" {
			t.Errorf("GET /assets/%s: %d ETag %q", name, rec.Code, rec.Header().Get("ETag"))
		}
		again := f.request("GET", "/assets/"+name, "", "", map[string]string{"If-None-Match": rec.Header().Get("ETag")})
		if again.Code != http.StatusNotModified {
			t.Errorf("GET /assets/%s again: %d, want 304", name, again.Code)
		}
	}
	if rec := f.request("GET", "/assets/index.html", "", "", nil); rec.Code != 404 {
		t.Errorf("GET /assets/index.html: %d", rec.Code)
	}
	// Other paths still need a token (401 before 404).
	if rec := f.request("GET", "/secret.html", "", "", nil); rec.Code != 401 {
		t.Errorf("GET /secret.html: %d, want 401", rec.Code)
	}
}

func TestDashboard_loginFormAndLogout(t *testing.T) {
	f := newAuthFixture(t, seed(t))
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://bosun.example:7070"}
	rec := f.request("POST", "/login", "", "token="+url.QueryEscape(plantedAdmin), form)
	if rec.Code != http.StatusSeeOther || sessionOf(t, rec) == nil || sessionOf(t, rec).Value == plantedAdmin {
		t.Fatalf("POST /login: %d %v", rec.Code, rec.Header())
	}
	// From another site: refused before the token is looked at.
	cross := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"}
	if rec := f.request("POST", "/login", "", "token="+url.QueryEscape(plantedAdmin), cross); rec.Code != 403 || sessionOf(t, rec) != nil {
		t.Errorf("cross-site login: %d", rec.Code)
	}
	if rec := f.request("POST", "/login", "", "token=", form); rec.Code != 400 {
		t.Errorf("empty login: %d", rec.Code)
	}
	rec = f.request("POST", "/logout", plantedAdmin, "", map[string]string{"Origin": "https://bosun.example:7070"})
	if c := sessionOf(t, rec); rec.Code != http.StatusSeeOther || c == nil || c.MaxAge >= 0 {
		t.Errorf("logout: %d cookie %+v", rec.Code, c)
	}
	if !strings.Contains(f.logs.String(), `"actor":"ops"`) {
		t.Errorf("the login is not logged with its actor:\n%s", f.logs)
	}
	assertNoToken(t, "log", f.logs.String())

	// A session ends at logout and after sessionTTL: its cookie, replayed,
	// is refused (and cleared), not taken for the token it stood for.
	status := func(id string) int {
		req := httptest.NewRequest("GET", "/api/v1/status", nil)
		req.RemoteAddr, req.Host, req.TLS = "192.0.2.7:1000", "bosun.example:7070", &tls.ConnectionState{}
		req.AddCookie(&http.Cookie{Name: CookieName, Value: id})
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		return rec.Code
	}
	id := f.srv.sessions.create(plantedAdmin, f.srv.now())
	if code := status(id); code != 200 {
		t.Fatalf("status with a live session: %d", code)
	}
	req := httptest.NewRequest("POST", "/logout", nil)
	req.Host, req.TLS = "bosun.example:7070", &tls.ConnectionState{}
	req.Header.Set("Origin", "https://bosun.example:7070")
	req.AddCookie(&http.Cookie{Name: CookieName, Value: id})
	f.h.ServeHTTP(httptest.NewRecorder(), req)
	if code := status(id); code != 401 {
		t.Errorf("status with a logged-out session: %d, want 401", code)
	}
	expired := f.srv.sessions.create(plantedAdmin, f.srv.now().Add(-sessionTTL-time.Second))
	if code := status(expired); code != 401 {
		t.Errorf("status with an expired session: %d, want 401", code)
	}
	if code := status(plantedAdmin); code != 401 {
		t.Errorf("the raw token as the cookie: %d, want 401 (the cookie holds a session id)", code)
	}
}

// TestDashboard_cookieChangesNeedCSRFHeaderAndSameOrigin: a change
// authenticated by the cookie is refused without the header (a form of
// another site cannot set it) and from another origin; with the header
// from the page's origin it goes through, audited like a bearer call. A
// bearer token needs no header (the CLI).
func TestDashboard_cookieChangesNeedCSRFHeaderAndSameOrigin(t *testing.T) {
	f := newAuthFixture(t, seed(t))
	if rec := f.request("POST", "/api/v1/sync", plantedAdmin, "", nil); rec.Code != 403 || !strings.Contains(rec.Body.String(), CSRFHeader) {
		t.Errorf("cookie sync without the header: %d %s", rec.Code, rec.Body)
	}
	if rec := f.request("POST", "/api/v1/sync", plantedAdmin, "", map[string]string{CSRFHeader: "1", "Origin": "https://evil.example"}); rec.Code != 403 {
		t.Errorf("cookie sync from another origin: %d %s", rec.Code, rec.Body)
	}
	if got := testutil.ToFloat64(f.srv.authFailures.WithLabelValues(failCSRF)); got != 2 {
		t.Errorf("csrf failures = %v, want 2", got)
	}
	if rec := f.request("POST", "/api/v1/sync", plantedAdmin, "", map[string]string{CSRFHeader: "1", "Origin": "https://bosun.example:7070"}); rec.Code != http.StatusAccepted {
		t.Errorf("cookie sync with the header: %d %s", rec.Code, rec.Body)
	}
	// A read-only cookie still may not sync.
	if rec := f.request("POST", "/api/v1/sync", plantedReader, "", map[string]string{CSRFHeader: "1"}); rec.Code != 403 || !strings.Contains(rec.Body.String(), "admin") {
		t.Errorf("read-only cookie sync: %d %s", rec.Code, rec.Body)
	}
	// Reads need no header.
	if rec := f.request("GET", "/api/v1/history", plantedReader, "", nil); rec.Code != 200 {
		t.Errorf("cookie read: %d", rec.Code)
	}
	if rec := f.do("POST", "/api/v1/sync", "Bearer "+plantedAdmin, "192.0.2.1:1000"); rec.Code != http.StatusAccepted {
		t.Errorf("bearer sync: %d %s", rec.Code, rec.Body)
	}
	if !strings.Contains(f.logs.String(), `"event":"api.sync"`) {
		t.Errorf("no audit line:\n%s", f.logs)
	}
	// A revoked (unknown) cookie: 401, and the cookie is cleared.
	rec := f.request("GET", "/api/v1/status", plantedWrongOne, "", nil)
	if c := sessionOf(t, rec); rec.Code != 401 || c == nil || c.MaxAge >= 0 {
		t.Errorf("unknown cookie: %d %+v", rec.Code, c)
	}
	assertNoToken(t, "log", f.logs.String())
}

func TestPodRowsAndNodeRows(t *testing.T) {
	cpu := resource.MustParse("250m")
	mem := resource.MustParse("64Mi")
	req := corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: mem}
	pod := func(name, node string, phase corev1.PodPhase) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"bosun.dev/track": "canary"}},
			Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{Requests: req}}}},
			Status: corev1.PodStatus{Phase: phase, PodIP: "10.0.0.1", Conditions: []corev1.PodCondition{
				{Type: probesCondition, Status: corev1.ConditionFalse, Message: "readiness: GET /healthz: 503"}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "app", RestartCount: 2, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
		}
	}
	snap := &store.Snapshot{
		Pods: []*corev1.Pod{pod("web-b", "n1", corev1.PodRunning), pod("web-a", "n1", corev1.PodRunning), pod("done", "n1", corev1.PodSucceeded)},
		Nodes: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi"), corev1.ResourcePods: resource.MustParse("110")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}},
	}
	rows := PodRows(snap)
	if len(rows) != 3 || rows[1].Name != "web-a" || rows[0].Name != "done" {
		t.Fatalf("rows not sorted: %+v", rows)
	}
	a := rows[1]
	if a.Status != "Running" || a.Restarts != 2 || a.Ready != 0 || a.Total != 1 || a.Probes != "readiness: GET /healthz: 503" || a.Track != "canary" || a.Containers[0] != "app" {
		t.Errorf("row = %+v", a)
	}
	nodes := NodeRows(snap)
	if len(nodes) != 1 {
		t.Fatalf("nodes = %+v", nodes)
	}
	n := nodes[0]
	// Two running pods count; the one that finished does not.
	if n.RequestedMilliCPU != 500 || n.RequestedMemory != 128<<20 || n.Pods != 2 || n.MilliCPU != 2000 || n.Memory != 1<<30 || n.MaxPods != 110 || !n.Ready {
		t.Errorf("node row = %+v", n)
	}
}

// sseEvent reads the next event of a stream (comments skipped unless
// wantComments).
func sseEvent(t *testing.T, r *bufio.Reader) (name, data string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read stream: %v (event %q so far)", err, name)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && (name != "" || data != ""):
			return name, data
		case strings.HasPrefix(line, ":"):
			if line == ": heartbeat" {
				return "heartbeat", ""
			}
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// TestWatch_sendsReadyThenChangedKindsAndHeartbeats runs GET
// /api/v1/watch on a real server over a real cache: "ready" first, then
// a change of a pod's status names "pods", a history entry "history";
// heartbeats come; the stream ends when the client goes and no goroutine
// stays (TestMain's goleak).
func TestWatch_sendsReadyThenChangedKindsAndHeartbeats(t *testing.T) {
	st := seed(t)
	cache := store.NewCache(st, store.CacheConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cacheDone := make(chan struct{})
	go func() { cache.Run(ctx); close(cacheDone) }()
	defer func() { cancel(); <-cacheDone }()
	f := newAuthFixture(t, st)
	srv, err := New(Config{Tokens: f.srv.cfg.Tokens, State: cache}, st, errBackend{})
	if err != nil {
		t.Fatal(err)
	}
	oldHB := WatchHeartbeat
	WatchHeartbeat = 300 * time.Millisecond
	defer func() { WatchHeartbeat = oldHB }()
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	rctx, rcancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(rctx, "GET", ts.URL+"/api/v1/watch", nil)
	req.AddCookie(&http.Cookie{Name: CookieName, Value: srv.sessions.create(plantedReader, time.Now())})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("watch: %s %v", resp.Status, resp.Header)
	}
	r := bufio.NewReader(resp.Body)
	if name, data := sseEvent(t, r); name != "ready" || !strings.Contains(data, `"history"`) {
		t.Fatalf("first event %q %s, want ready", name, data)
	}
	nextChange := func(want string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case <-deadline:
				t.Fatalf("no change of %s", want)
			default:
			}
			name, data := sseEvent(t, r)
			if name != "changed" {
				continue
			}
			var ev WatchEvent
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatal(err)
			}
			for _, k := range ev.Kinds {
				if k == want {
					return
				}
			}
		}
	}
	// A pod's status, written as an agent does.
	p := readyPod("web-a", "10.88.0.3", map[string]string{"app": "web"}, false)
	if err := st.PutPodStatus(context.Background(), p.Namespace, p.Name, store.PodStatus{UID: p.UID, Node: "n1", Status: p.Status}); err != nil {
		t.Fatal(err)
	}
	nextChange("pods")
	// A history entry, as the leader writes one (the test holds no
	// leadership: written to etcd directly).
	if _, err := st.Client().Put(context.Background(), store.Prefix+"history/00000000000000000099", `{"commit":"abc","result":"applied"}`); err != nil {
		t.Fatal(err)
	}
	nextChange("history")
	for {
		if name, _ := sseEvent(t, r); name == "heartbeat" {
			break
		}
	}
	if got := testutil.ToFloat64(srv.watchM.streams); got != 1 {
		t.Errorf("bosun_api_watch_streams = %v, want 1", got)
	}
	rcancel()
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(srv.watchM.streams) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stream did not end when the client went")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := testutil.ToFloat64(srv.watchM.events.WithLabelValues("pods")); got < 1 {
		t.Errorf("events{pods} = %v", got)
	}
}
