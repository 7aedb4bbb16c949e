package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// call is one request a recorder received.
type call struct {
	Method, Path, RawPath string
	Header                http.Header
	Body                  []byte
}

// recorder is an HTTP server that records calls and answers with the
// statuses of answer, in turn (then 201).
type recorder struct {
	*httptest.Server
	mu     sync.Mutex
	calls  []call
	answer []func(w http.ResponseWriter)
	got    chan struct{}
}

func newRecorder(t *testing.T, answer ...func(w http.ResponseWriter)) *recorder {
	r := &recorder{answer: answer, got: make(chan struct{}, 100)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.calls = append(r.calls, call{req.Method, req.URL.Path, req.URL.RawPath, req.Header.Clone(), b})
		var a func(http.ResponseWriter)
		if len(r.answer) > 0 {
			a, r.answer = r.answer[0], r.answer[1:]
		}
		r.mu.Unlock()
		if a != nil {
			a(w)
		} else {
			w.WriteHeader(http.StatusCreated)
		}
		r.got <- struct{}{}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) wait(t *testing.T, n int) []call {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		c := append([]call(nil), r.calls...)
		r.mu.Unlock()
		if len(c) >= n {
			return c
		}
		select {
		case <-r.got:
		case <-deadline:
			t.Fatalf("got %d calls, want %d", len(c), n)
		}
	}
}

func status(code int, h ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(h); i += 2 {
			w.Header().Set(h[i], h[i+1])
		}
		w.WriteHeader(code)
	}
}

func writeFile(t *testing.T, name, content string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const sha = "0123456789abcdef0123456789abcdef01234567"

func event(typ string) Event {
	return Event{ID: "7-" + typ, Type: typ, Commit: sha, Branch: "main", Subject: "deploy web v2",
		Message: "rollout failed", Reason: "deploy/web.yaml:14: spec.replicas: must be >= 0", Time: time.Unix(1700000000, 0).UTC()}
}

// run starts n and stops it at the test's end.
func run(t *testing.T, n *Notifier) {
	ctx, cancel := context.WithCancel(context.Background())
	wait := n.Start(ctx)
	t.Cleanup(func() { cancel(); wait() })
}

func TestSinks_requestShape(t *testing.T) {
	rec := newRecorder(t)
	token := writeFile(t, "token", "tok-123")
	key := writeFile(t, "key", "hmac-key")
	slackURL := writeFile(t, "slack", rec.URL+"/services/T0/B0/sekret")
	c := &Config{Cluster: "prod", TargetURL: "https://bosun.example.com/?commit={commit}", Delivery: Delivery{}.withDefaults(), Sinks: []SinkConfig{
		{Name: "gh", Type: TypeGitHub, URL: rec.URL + "/api/v3/", Repo: "acme/deploy", TokenFile: token},
		{Name: "gl", Type: TypeGitLab, URL: rec.URL + "/api/v4", Repo: "platform/deploy", TokenFile: token},
		{Name: "gt", Type: TypeGitea, URL: rec.URL + "/api/v1", Repo: "acme/deploy", TokenFile: token, Context: "ci/bosun"},
		{Name: "hook", Type: TypeWebhook, URL: rec.URL + "/hook", SecretFile: key},
		{Name: "slack", Type: TypeSlack, URLFile: slackURL},
	}}
	for _, typ := range []string{RolloutFailed} {
		for _, s := range c.Sinks {
			req, _, err := c.request(context.Background(), s, event(typ))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	calls := rec.wait(t, 5)
	byPath := map[string]call{}
	for _, c := range calls {
		if c.Method != http.MethodPost {
			t.Errorf("%s %s", c.Method, c.Path)
		}
		byPath[c.Path] = c
	}
	decode := func(c call) map[string]any {
		var m map[string]any
		if err := json.Unmarshal(c.Body, &m); err != nil {
			t.Fatalf("%s: %v: %s", c.Path, err, c.Body)
		}
		return m
	}
	want := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	desc := "rollout failed: deploy/web.yaml:14: spec.replicas: must be >= 0"
	link := "https://bosun.example.com/?commit=" + sha

	gh := byPath["/api/v3/repos/acme/deploy/statuses/"+sha]
	want("github Authorization", gh.Header.Get("Authorization"), "Bearer tok-123")
	want("github Accept", gh.Header.Get("Accept"), "application/vnd.github+json")
	m := decode(gh)
	want("github body", m, map[string]any{"state": "failure", "context": "bosun/prod", "description": desc, "target_url": link})

	gl := byPath["/api/v4/projects/platform/deploy/statuses/"+sha]
	want("gitlab raw path", gl.RawPath, "/api/v4/projects/platform%2Fdeploy/statuses/"+sha)
	want("gitlab PRIVATE-TOKEN", gl.Header.Get("PRIVATE-TOKEN"), "tok-123")
	want("gitlab body", decode(gl), map[string]any{"state": "failed", "ref": "main", "name": "bosun/prod", "description": desc, "target_url": link})

	gt := byPath["/api/v1/repos/acme/deploy/statuses/"+sha]
	want("gitea Authorization", gt.Header.Get("Authorization"), "token tok-123")
	want("gitea body", decode(gt), map[string]any{"state": "failure", "context": "ci/bosun", "description": desc, "target_url": link})

	hook := byPath["/hook"]
	want("webhook signature", hook.Header.Get("X-Bosun-Signature-256"), Sign([]byte("hmac-key"), hook.Body))
	want("webhook event header", hook.Header.Get("X-Bosun-Event"), RolloutFailed)
	want("webhook delivery header", hook.Header.Get("X-Bosun-Delivery"), "7-"+RolloutFailed)
	m = decode(hook)
	for k, v := range map[string]any{"type": RolloutFailed, "commit": sha, "branch": "main", "state": "failure", "cluster": "prod",
		"reason": "deploy/web.yaml:14: spec.replicas: must be >= 0", "message": "rollout failed", "targetURL": link} {
		want("webhook "+k, m[k], v)
	}

	sl := decode(byPath["/services/T0/B0/sekret"])
	text, _ := sl["text"].(string)
	for _, w := range []string{":x:", "*prod*", "rollout failed", "<" + link + "|0123456789ab>", "on main", "> deploy/web.yaml:14"} {
		if !strings.Contains(text, w) {
			t.Errorf("slack text %q lacks %q", text, w)
		}
	}
}

func TestStateOf_everyType(t *testing.T) {
	want := map[string][2]string{ // state, GitLab state
		RevisionApplied: {"pending", "running"}, RevisionHeld: {"pending", "pending"}, RevisionRejected: {"failure", "failed"},
		RevisionSuperseded: {"error", "canceled"}, RolloutComplete: {"success", "success"}, RolloutFailed: {"failure", "failed"},
		CanaryStarted: {"pending", "running"}, CanaryStepped: {"pending", "running"}, CanaryPromoted: {"success", "success"},
		CanaryAborted: {"failure", "failed"}, CanaryFailed: {"failure", "failed"}, CanaryEnded: {"success", "success"},
	}
	for _, typ := range Types {
		if got := [2]string{string(StateOf(typ)), gitlabState(typ)}; got != want[typ] {
			t.Errorf("%s: %v, want %v", typ, got, want[typ])
		}
	}
}

func TestDescription_truncatedTo140(t *testing.T) {
	e := event(RevisionRejected)
	e.Reason = strings.Repeat("é", 300)
	if d := description(e); len([]rune(d)) != 140 || !strings.HasSuffix(d, "…") {
		t.Errorf("%d runes: %q", len([]rune(d)), d)
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{1, 0.5, 500 * time.Millisecond}, {2, 0.5, time.Second}, {3, 0.99, 3960 * time.Millisecond},
		{10, 0.5, 30 * time.Second}, {10, 0, 6 * time.Second}, {1, 0, 100 * time.Millisecond},
	} {
		if got := Backoff(tc.attempt, time.Second, time.Minute, tc.r); got != tc.want {
			t.Errorf("Backoff(%d, r=%v) = %v, want %v", tc.attempt, tc.r, got, tc.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"": 0, "3": 3 * time.Second, "-1": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := RetryAfter(h, now); got != want {
			t.Errorf("RetryAfter(%q) = %v, want %v", h, got, want)
		}
	}
}

// testNotifier is a notifier of sinks with fast retries, logging to log.
func testNotifier(t *testing.T, log io.Writer, d Delivery, sinks ...SinkConfig) (*Notifier, *prometheus.Registry) {
	if d.InitialBackoff == 0 {
		d.InitialBackoff, d.MaxBackoff = 10*time.Millisecond, 40*time.Millisecond
	}
	c := &Config{Cluster: "test", Sinks: sinks, Delivery: d.withDefaults()}
	n := New(c, Options{Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})), Rand: func() float64 { return 0.5 }})
	reg := prometheus.NewRegistry()
	if err := n.Register(reg); err != nil {
		t.Fatal(err)
	}
	return n, reg
}

func TestDeliver_retriesHonourRetryAfterThenSucceed(t *testing.T) {
	rec := newRecorder(t, status(503), status(429, "Retry-After", "1"), status(502))
	var log bytes.Buffer
	n, _ := testNotifier(t, &log, Delivery{}, SinkConfig{Name: "hook", Type: TypeWebhook, URL: rec.URL})
	run(t, n)
	start := time.Now()
	n.Notify(event(RolloutComplete))
	calls := rec.wait(t, 4)
	if el := time.Since(start); el < time.Second {
		t.Errorf("delivered after %v: Retry-After 1 not honoured", el)
	}
	waitMetric(t, n.m.sent.WithLabelValues("hook"), 1)
	if got := testutil.ToFloat64(n.m.retries.WithLabelValues("hook")); got != 3 {
		t.Errorf("retries = %v, want 3", got)
	}
	for _, c := range calls {
		if c.Header.Get("X-Bosun-Delivery") != calls[0].Header.Get("X-Bosun-Delivery") {
			t.Errorf("a retry changed the delivery ID")
		}
	}
}

func TestDeliver_permanentErrorAndBoundedAttempts(t *testing.T) {
	rec := newRecorder(t, status(404), status(500), status(500), status(500))
	var log bytes.Buffer
	n, _ := testNotifier(t, &log, Delivery{MaxAttempts: 3}, SinkConfig{Name: "hook", Type: TypeWebhook, URL: rec.URL})
	run(t, n)
	n.Notify(event(RolloutComplete)) // 404: no retry
	n.Notify(event(RolloutFailed))   // 500 three times: given up
	rec.wait(t, 4)
	waitMetric(t, n.m.failed.WithLabelValues("hook"), 2)
	time.Sleep(100 * time.Millisecond)
	if got := len(rec.wait(t, 4)); got != 4 {
		t.Errorf("%d calls, want 4 (1 + 3 attempts)", got)
	}
}

func TestNotify_fullQueueDropsOldestAndNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		var e Event
		_ = json.NewDecoder(r.Body).Decode(&e)
		mu.Lock()
		got = append(got, e.ID)
		mu.Unlock()
	}))
	defer srv.Close()
	var log bytes.Buffer
	n, _ := testNotifier(t, &lockedWriter{w: &log}, Delivery{QueueSize: 2}, SinkConfig{Name: "hook", Type: TypeWebhook, URL: srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	wait := n.Start(ctx)
	e := event(RolloutComplete)
	e.ID = "first"
	n.Notify(e) // taken by the worker, blocked in the server
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	for i := range 5 {
		e.ID = fmt.Sprint(i)
		n.Notify(e)
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Errorf("Notify blocked for %v", el)
	}
	if got := testutil.ToFloat64(n.m.dropped.WithLabelValues("hook")); got != 3 {
		t.Errorf("dropped = %v, want 3", got)
	}
	close(release)
	waitMetric(t, n.m.sent.WithLabelValues("hook"), 3)
	mu.Lock()
	if fmt.Sprint(got) != "[first 3 4]" {
		t.Errorf("delivered %v, want the newest two after the first", got)
	}
	mu.Unlock()
	cancel()
	wait()
	if !strings.Contains(log.String(), "dropped the oldest notification") {
		t.Errorf("no log line of the drop:\n%s", log.String())
	}
}

func TestRun_stopsOnCtxAndDropsWhatIsLeft(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	var log bytes.Buffer
	n, _ := testNotifier(t, &lockedWriter{w: &log}, Delivery{}, SinkConfig{Name: "hook", Type: TypeWebhook, URL: srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	time.Sleep(50 * time.Millisecond)
	n.Notify(event(RolloutComplete))
	n.Notify(event(RolloutFailed))
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop on ctx")
	}
	if got := testutil.ToFloat64(n.m.dropped.WithLabelValues("hook")); got != 2 {
		t.Errorf("dropped = %v, want 2 (one in flight, one queued)", got)
	}
	n.Notify(event(RolloutFailed)) // not running: ignored
	if got := testutil.ToFloat64(n.m.queue.WithLabelValues("hook")); got != 0 {
		t.Errorf("queue = %v after stop", got)
	}
}

func TestNotify_filtersAndStatusOnly(t *testing.T) {
	rec := newRecorder(t)
	token := writeFile(t, "token", "t")
	var log bytes.Buffer
	n, _ := testNotifier(t, &log, Delivery{},
		SinkConfig{Name: "failures", Type: TypeWebhook, URL: rec.URL + "/failures", Events: []string{RevisionRejected, "Rollout*"}},
		SinkConfig{Name: "gh", Type: TypeGitHub, URL: rec.URL, Repo: "a/b", TokenFile: token})
	run(t, n)
	n.Notify(event(RevisionApplied))     // gh only
	n.Notify(event(RolloutFailed))       // both
	n.NotifyStatus(event(RolloutFailed)) // gh only
	calls := rec.wait(t, 4)
	time.Sleep(100 * time.Millisecond)
	calls = rec.wait(t, len(calls))
	var hooks int
	for _, c := range calls {
		if c.Path == "/failures" {
			hooks++
		}
	}
	if len(calls) != 4 || hooks != 1 {
		t.Errorf("%d calls, %d to the webhook; want 4 and 1", len(calls), hooks)
	}
}

// TestSecrets_neverInLogsErrorsOrMetrics plants a token, an HMAC key and
// a Slack URL, makes every sink fail in every way, and greps all output.
func TestSecrets_neverInLogsErrorsOrMetrics(t *testing.T) {
	const token, key, hookPath = "ghp_PLANTEDTOKEN1234", "PLANTEDHMACKEY5678", "/services/T00/B00/PLANTEDSLACK9"
	// A server that echoes what it got, Authorization included, in its
	// error answers.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "bad request %s %s %s %s", r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("PRIVATE-TOKEN"), r.Header.Get("X-Bosun-Signature-256"))
	}))
	defer echo.Close()
	tokenFile := writeFile(t, "token", token)
	keyFile := writeFile(t, "key", key)
	var log bytes.Buffer
	lw := &lockedWriter{w: &log}
	sinks := []SinkConfig{
		{Name: "gh", Type: TypeGitHub, URL: echo.URL, Repo: "a/b", TokenFile: tokenFile},
		{Name: "gl", Type: TypeGitLab, URL: echo.URL, Repo: "a/b", TokenFile: tokenFile},
		{Name: "gt", Type: TypeGitea, URL: echo.URL, Repo: "a/b", TokenFile: tokenFile},
		{Name: "hook", Type: TypeWebhook, URLFile: writeFile(t, "hookurl", echo.URL+hookPath), SecretFile: keyFile},
		{Name: "slack", Type: TypeSlack, URLFile: writeFile(t, "slackurl", echo.URL+hookPath)},
		// Unreachable: the client's error quotes the URL.
		{Name: "down", Type: TypeSlack, URLFile: writeFile(t, "downurl", "http://127.0.0.1:1"+hookPath)},
	}
	n, reg := testNotifier(t, lw, Delivery{MaxAttempts: 2}, sinks...)
	run(t, n)
	n.Notify(event(RolloutFailed))
	waitMetricSum(t, n, 6)
	var exp bytes.Buffer
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		fmt.Fprintln(&exp, mf.String())
	}
	out := lw.String() + exp.String()
	for _, secret := range []string{token, key, "PLANTEDSLACK9", hookPath} {
		if strings.Contains(out, secret) {
			t.Errorf("secret %q leaked:\n%s", secret, out)
		}
	}
	if testing.Verbose() {
		t.Log(out)
	}
	if !strings.Contains(out, "sink gh answered 400") || !strings.Contains(out, "[redacted]") {
		t.Errorf("the failures are not logged:\n%s", out)
	}
}

func waitMetric(t *testing.T, c prometheus.Collector, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(c) < want {
		if time.Now().After(deadline) {
			t.Fatalf("metric = %v, want %v", testutil.ToFloat64(c), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitMetricSum waits until want notifications were sent or failed.
func waitMetricSum(t *testing.T, n *Notifier, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var sum float64
		for _, s := range n.sinks {
			sum += testutil.ToFloat64(n.m.sent.WithLabelValues(s.conf.Name)) + testutil.ToFloat64(n.m.failed.WithLabelValues(s.conf.Name))
		}
		if sum >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v notifications done, want %v", sum, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
