package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const testSecret = "s3cr3t-webhook-value"

func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// hook is one provider's way of sending a webhook, as the real host does.
type hook struct {
	name      string
	push      string // event header value of a push
	other     string // event header value of a non-push event
	setEvent  func(h http.Header, event string)
	setSig    func(h http.Header, secret string, body []byte)
	clearSigs func(h http.Header)
}

var hooks = []hook{
	{
		name: "github", push: "push", other: "issues",
		setEvent: func(h http.Header, e string) { h.Set("X-GitHub-Event", e) },
		setSig:   func(h http.Header, s string, b []byte) { h.Set("X-Hub-Signature-256", "sha256="+sign(s, b)) },
	},
	{
		name: "gitlab", push: "Push Hook", other: "Issue Hook",
		setEvent: func(h http.Header, e string) { h.Set("X-Gitlab-Event", e) },
		setSig:   func(h http.Header, s string, _ []byte) { h.Set("X-Gitlab-Token", s) },
	},
	{
		// Gitea sends its own headers plus GitHub's and Gogs'.
		name: "gitea", push: "push", other: "issues",
		setEvent: func(h http.Header, e string) {
			h.Set("X-Gitea-Event", e)
			h.Set("X-GitHub-Event", e)
		},
		setSig: func(h http.Header, s string, b []byte) { h.Set("X-Gitea-Signature", sign(s, b)) },
	},
	{
		name: "forgejo", push: "push", other: "issues",
		setEvent: func(h http.Header, e string) {
			h.Set("X-Forgejo-Event", e)
			h.Set("X-Gitea-Event", e)
		},
		setSig: func(h http.Header, s string, b []byte) {
			h.Set("X-Forgejo-Signature", sign(s, b))
			h.Set("X-Gitea-Signature", sign(s, b))
		},
	},
	{
		name: "generic", push: "push", other: "tag",
		setEvent: func(h http.Header, e string) { h.Set("X-Bosun-Event", e) },
		setSig:   func(h http.Header, s string, b []byte) { h.Set("X-Bosun-Signature-256", "sha256="+sign(s, b)) },
	},
}

// recorder is a trigger that records its calls.
type recorder struct {
	mu      sync.Mutex
	reasons []string
	err     error
}

func (r *recorder) trigger(_ context.Context, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reasons = append(r.reasons, reason)
	return r.err
}

func (r *recorder) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reasons...)
}

// syncBuffer collects log output written from handler goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func writeSecret(t testing.TB, file, secret string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
}

type webhookFixture struct {
	h      http.Handler
	rec    *recorder
	logs   *syncBuffer
	secret string // file path
	reg    *prometheus.Registry
}

func newWebhookFixture(t testing.TB, secret string) *webhookFixture {
	t.Helper()
	f := &webhookFixture{rec: &recorder{}, logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	f.secret = filepath.Join(t.TempDir(), "webhook-secret")
	if secret != "" {
		writeSecret(t, f.secret, secret+"\n")
	}
	h, err := NewWebhookHandler(WebhookConfig{
		SecretFile: f.secret,
		Branch:     "main",
		Registerer: f.reg,
		Logger:     slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, f.rec.trigger)
	if err != nil {
		t.Fatalf("NewWebhookHandler: %v", err)
	}
	f.h = h
	return f
}

func (f *webhookFixture) do(method string, header http.Header, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/api/v1/webhooks/git", bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	return w
}

func pushBody(ref string) []byte {
	b, _ := json.Marshal(map[string]any{
		"ref":    ref,
		"after":  "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d",
		"pusher": map[string]any{"name": "alice"},
	})
	return b
}

func TestWebhook_providersTable(t *testing.T) {
	oversized := append([]byte(`{"ref":"refs/heads/main","pad":"`), bytes.Repeat([]byte("x"), maxWebhookBody)...)
	oversized = append(oversized, `"}`...)

	type request struct {
		event string // "" = the provider's push event
		body  []byte
		sig   string // secret to sign with; "" = no signature header
	}
	cases := []struct {
		name        string
		req         func(h hook) request
		wantCode    int
		wantTrigger bool
		wantResult  string // substring of the body
	}{
		{"valid push of tracked branch", func(h hook) request {
			return request{body: pushBody("refs/heads/main"), sig: testSecret}
		}, http.StatusAccepted, true, `"sync triggered"`},
		{"bad signature", func(h hook) request {
			return request{body: pushBody("refs/heads/main"), sig: "not-the-secret"}
		}, http.StatusUnauthorized, false, `"error"`},
		{"missing signature", func(h hook) request {
			return request{body: pushBody("refs/heads/main")}
		}, http.StatusUnauthorized, false, "missing"},
		{"other branch", func(h hook) request {
			return request{body: pushBody("refs/heads/feature-x"), sig: testSecret}
		}, http.StatusAccepted, false, "ignored: branch feature-x"},
		{"tag push", func(h hook) request {
			return request{body: pushBody("refs/tags/v1"), sig: testSecret}
		}, http.StatusAccepted, false, "ignored: ref refs/tags/v1"},
		{"non-push event", func(h hook) request {
			return request{event: h.other, body: []byte(`{"action":"opened"}`), sig: testSecret}
		}, http.StatusAccepted, false, "ignored: event " + "%OTHER%"},
		{"malformed JSON", func(h hook) request {
			return request{body: []byte(`{"ref":"refs/heads/main",`), sig: testSecret}
		}, http.StatusBadRequest, false, "not a JSON object"},
		{"JSON without ref", func(h hook) request {
			return request{body: []byte(`{"after":"abc"}`), sig: testSecret}
		}, http.StatusBadRequest, false, `\"ref\" missing`},
		{"oversized body", func(h hook) request {
			return request{body: oversized, sig: testSecret}
		}, http.StatusRequestEntityTooLarge, false, "larger than"},
	}
	for _, h := range hooks {
		for _, tc := range cases {
			t.Run(h.name+"/"+tc.name, func(t *testing.T) {
				f := newWebhookFixture(t, testSecret)
				rq := tc.req(h)
				header := http.Header{}
				event := rq.event
				if event == "" {
					event = h.push
				}
				h.setEvent(header, event)
				if rq.sig != "" {
					h.setSig(header, rq.sig, rq.body)
				}
				w := f.do(http.MethodPost, header, rq.body)

				if w.Code != tc.wantCode {
					t.Errorf("status = %d, want %d; body %s", w.Code, tc.wantCode, w.Body)
				}
				want := strings.ReplaceAll(tc.wantResult, "%OTHER%", h.other)
				if !strings.Contains(w.Body.String(), want) {
					t.Errorf("body = %s, want it to contain %s", w.Body, want)
				}
				calls := f.rec.calls()
				if triggered := len(calls) > 0; triggered != tc.wantTrigger {
					t.Errorf("trigger called = %v (%q), want %v", triggered, calls, tc.wantTrigger)
				}
				if tc.wantTrigger && len(calls) == 1 {
					if want := h.name + " push 1a2b3c4 by alice"; calls[0] != want {
						t.Errorf("reason = %q, want %q", calls[0], want)
					}
				}
				if ct := w.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q", ct)
				}
				assertNoSecret(t, "response", w.Body.String(), rq.body)
				assertNoSecret(t, "logs", f.logs.String(), rq.body)
			})
		}
	}
}

// assertNoSecret fails if text holds the secret or the signature the server
// expected for body.
func assertNoSecret(t *testing.T, what, text string, body []byte) {
	t.Helper()
	if strings.Contains(text, testSecret) {
		t.Errorf("%s contains the secret: %s", what, text)
	}
	if strings.Contains(text, sign(testSecret, body)) {
		t.Errorf("%s contains the expected signature: %s", what, text)
	}
}

func TestWebhook_githubPingAnswersPongAfterSignatureCheck(t *testing.T) {
	f := newWebhookFixture(t, testSecret)
	body := []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`)
	header := http.Header{"X-Github-Event": {"ping"}}

	if w := f.do(http.MethodPost, header, body); w.Code != http.StatusUnauthorized {
		t.Errorf("unsigned ping: status %d, want 401", w.Code)
	}
	header.Set("X-Hub-Signature-256", "sha256="+sign(testSecret, body))
	w := f.do(http.MethodPost, header, body)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"pong"`) {
		t.Errorf("signed ping: %d %s, want 200 pong", w.Code, w.Body)
	}
	if calls := f.rec.calls(); len(calls) != 0 {
		t.Errorf("ping triggered a sync: %q", calls)
	}
}

func TestWebhook_onlyPOST(t *testing.T) {
	f := newWebhookFixture(t, testSecret)
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		w := f.do(m, nil, nil)
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
			t.Errorf("%s: status %d Allow %q, want 405 POST", m, w.Code, w.Header().Get("Allow"))
		}
	}
}

func TestWebhook_triggerErrorIs503(t *testing.T) {
	f := newWebhookFixture(t, testSecret)
	f.rec.err = errors.New("this replica is not the leader")
	body := pushBody("refs/heads/main")
	header := http.Header{"X-Github-Event": {"push"}, "X-Hub-Signature-256": {"sha256=" + sign(testSecret, body)}}
	w := f.do(http.MethodPost, header, body)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "not the leader") {
		t.Errorf("status %d body %s, want 503 naming the cause", w.Code, w.Body)
	}
}

func TestWebhook_bodyAtTheLimitIsAccepted(t *testing.T) {
	f := newWebhookFixture(t, testSecret)
	prefix := `{"ref":"refs/heads/main","pad":"`
	body := []byte(prefix + strings.Repeat("x", maxWebhookBody-len(prefix)-2) + `"}`)
	if len(body) != maxWebhookBody {
		t.Fatalf("body is %d bytes", len(body))
	}
	header := http.Header{"X-Bosun-Signature-256": {"sha256=" + sign(testSecret, body)}}
	if w := f.do(http.MethodPost, header, body); w.Code != http.StatusAccepted || len(f.rec.calls()) != 1 {
		t.Errorf("1 MiB body: status %d, calls %d; want 202 and a trigger", w.Code, len(f.rec.calls()))
	}
}

func TestWebhook_secretRotation(t *testing.T) {
	f := newWebhookFixture(t, "old-secret")
	body := pushBody("refs/heads/main")
	send := func(secret string) int {
		return f.do(http.MethodPost, http.Header{"X-Gitea-Signature": {sign(secret, body)}, "X-Gitea-Event": {"push"}}, body).Code
	}
	if code := send("old-secret"); code != http.StatusAccepted {
		t.Fatalf("old secret before rotation: %d", code)
	}
	// Same length, rewritten in place right away: mtime may not move.
	writeSecret(t, f.secret, "new-secret\n")
	if code := send("new-secret"); code != http.StatusAccepted {
		t.Errorf("new secret after rotation: %d, want 202", code)
	}
	if code := send("old-secret"); code != http.StatusUnauthorized {
		t.Errorf("old secret after rotation: %d, want 401", code)
	}

	// Replaced by rename, as secret managers do.
	tmp := f.secret + ".tmp"
	writeSecret(t, tmp, "third-secret-value")
	if err := os.Rename(tmp, f.secret); err != nil {
		t.Fatal(err)
	}
	if code := send("third-secret-value"); code != http.StatusAccepted {
		t.Errorf("secret replaced by rename: %d, want 202", code)
	}
	if code := send("new-secret"); code != http.StatusUnauthorized {
		t.Errorf("previous secret after rename: %d, want 401", code)
	}
	if n := len(f.rec.calls()); n != 3 {
		t.Errorf("trigger calls = %d, want 3", n)
	}
	for _, s := range []string{"old-secret", "new-secret", "third-secret-value"} {
		if strings.Contains(f.logs.String(), s) {
			t.Errorf("logs contain secret %q:\n%s", s, f.logs)
		}
	}
}

func TestWebhook_cachedSecretIsReusedOnceTheFileIsOld(t *testing.T) {
	file := filepath.Join(t.TempDir(), "secret")
	writeSecret(t, file, "one")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(file, old, old); err != nil {
		t.Fatal(err)
	}
	sf := &secretFile{path: file, log: slog.New(slog.DiscardHandler)}
	if s, ok := sf.get(time.Now()); !ok || string(s) != "one" {
		t.Fatalf("get = %q %v", s, ok)
	}
	// Rewrite the content but keep size and mtime: not re-read (the stat
	// says nothing changed and the file is not racily new).
	writeSecret(t, file, "two")
	if err := os.Chtimes(file, old, old); err != nil {
		t.Fatal(err)
	}
	if s, _ := sf.get(time.Now()); string(s) != "one" {
		t.Errorf("unchanged stat: got %q, want the cached %q", s, "one")
	}
	// A new mtime is noticed.
	if err := os.Chtimes(file, time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if s, _ := sf.get(time.Now()); string(s) != "two" {
		t.Errorf("after mtime change: got %q, want %q", s, "two")
	}
}

func TestWebhook_missingOrEmptySecretRefusesEverythingAndWarnsOnce(t *testing.T) {
	f := newWebhookFixture(t, "") // file does not exist
	body := pushBody("refs/heads/main")
	for _, secret := range []string{"", testSecret} {
		header := http.Header{"X-Hub-Signature-256": {"sha256=" + sign(secret, body)}, "X-Github-Event": {"push"}}
		for range 3 {
			if w := f.do(http.MethodPost, header, body); w.Code != http.StatusUnauthorized {
				t.Errorf("no secret file: status %d, want 401", w.Code)
			}
		}
	}
	if n := strings.Count(f.logs.String(), "webhook secret unavailable"); n != 1 {
		t.Errorf("missing secret logged %d times, want once:\n%s", n, f.logs)
	}

	writeSecret(t, f.secret, "\n")
	header := http.Header{"X-Gitlab-Token": {""}, "X-Gitlab-Event": {"Push Hook"}}
	if w := f.do(http.MethodPost, header, body); w.Code != http.StatusUnauthorized {
		t.Errorf("empty secret file: status %d, want 401", w.Code)
	}
	if len(f.rec.calls()) != 0 {
		t.Errorf("triggered without a secret: %q", f.rec.calls())
	}

	writeSecret(t, f.secret, testSecret+"\n")
	header = http.Header{"X-Gitlab-Token": {testSecret}, "X-Gitlab-Event": {"Push Hook"}}
	if w := f.do(http.MethodPost, header, body); w.Code != http.StatusAccepted {
		t.Errorf("after the secret appeared: status %d, want 202", w.Code)
	}
	assertNoSecret(t, "logs", f.logs.String(), body)
}

func TestWebhook_countsOutcomes(t *testing.T) {
	f := newWebhookFixture(t, testSecret)
	body := pushBody("refs/heads/main")
	f.do(http.MethodPost, http.Header{"X-Gitlab-Token": {testSecret}, "X-Gitlab-Event": {"Push Hook"}}, body)
	f.do(http.MethodPost, http.Header{"X-Gitlab-Token": {"wrong"}, "X-Gitlab-Event": {"Push Hook"}}, body)
	f.do(http.MethodPost, http.Header{"X-Gitlab-Token": {"wrong"}, "X-Gitlab-Event": {"Push Hook"}}, body)
	got := map[string]float64{}
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "bosun_webhook_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			got[strings.Join(labels, ",")] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"provider=gitlab,result=triggered": 1, "provider=gitlab,result=unauthorized": 2}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bosun_webhook_requests_total = %v, want %v", got, want)
	}
}

func TestWebhook_pushToAFollowedBranchTriggers(t *testing.T) {
	rec := &recorder{}
	var logs syncBuffer
	file := filepath.Join(t.TempDir(), "webhook-secret")
	writeSecret(t, file, testSecret)
	var asked []string
	var mu sync.Mutex
	h, err := NewWebhookHandler(WebhookConfig{
		SecretFile: file,
		Follows: func(branch string) bool {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, branch)
			return branch == "canary/web-v2"
		},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	}, rec.trigger)
	if err != nil {
		t.Fatal(err)
	}
	f := &webhookFixture{h: h, rec: rec, logs: &logs}
	for _, h := range hooks {
		for _, tc := range []struct {
			ref, wantResult, wantReason string
		}{
			{"refs/heads/canary/web-v2", `"sync triggered"`, h.name + " push 1a2b3c4 to canary/web-v2 by alice"},
			{"refs/heads/main", `"sync triggered"`, h.name + " push 1a2b3c4 by alice"},
			{"refs/heads/canary/other", "ignored: branch canary/other", ""},
			{"refs/tags/canary/web-v2", "ignored: ref refs/tags/canary/web-v2", ""},
		} {
			before := len(rec.calls())
			body := pushBody(tc.ref)
			header := http.Header{}
			h.setEvent(header, h.push)
			h.setSig(header, testSecret, body)
			w := f.do(http.MethodPost, header, body)
			if w.Code != http.StatusAccepted || !strings.Contains(w.Body.String(), tc.wantResult) {
				t.Errorf("%s %s: %d %s, want 202 %s", h.name, tc.ref, w.Code, w.Body, tc.wantResult)
			}
			calls := rec.calls()[before:]
			switch {
			case tc.wantReason == "" && len(calls) != 0:
				t.Errorf("%s %s triggered %q", h.name, tc.ref, calls)
			case tc.wantReason != "" && (len(calls) != 1 || calls[0] != tc.wantReason):
				t.Errorf("%s %s: trigger calls %q, want one with reason %q", h.name, tc.ref, calls, tc.wantReason)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, b := range asked {
		if b == "main" {
			t.Errorf("Follows asked about the tracked branch")
		}
	}
	if !strings.Contains(logs.String(), "to canary/web-v2") {
		t.Errorf("logs do not name the followed branch:\n%s", logs.String())
	}
}

func TestNewWebhookHandler_validatesConfig(t *testing.T) {
	_, err := NewWebhookHandler(WebhookConfig{Branch: "refs/heads/main"}, nil)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"secret_file: required", "branch:", "trigger: required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestParsePush_readsEachProvidersFields(t *testing.T) {
	cases := []struct {
		name, body, provider, want string
	}{
		{"github", `{"ref":"refs/heads/main","after":"abcdef0123456789","pusher":{"name":"alice","email":"a@x"}}`, "github", "github push abcdef0 by alice"},
		{"gitlab", `{"ref":"refs/heads/main","checkout_sha":"0123456789abcdef","user_username":"bob","user_name":"Bob B"}`, "gitlab", "gitlab push 0123456 by bob"},
		{"gitea", `{"ref":"refs/heads/main","after":"fedcba9876543210","pusher":{"login":"carol","username":"carol"}}`, "gitea", "gitea push fedcba9 by carol"},
		{"branch deleted", `{"ref":"refs/heads/main","after":"0000000000000000000000000000000000000000"}`, "github", "github push"},
		{"wrong types are skipped", `{"ref":"refs/heads/main","after":42,"pusher":"dave"}`, "generic", "generic push"},
		{"control characters dropped", `{"ref":"refs/heads/main","pusher":{"name":"eve\n\u001b[31mroot"}}`, "generic", "generic push by eve[31mroot"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parsePush([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.reason(tc.provider, ""); got != tc.want {
				t.Errorf("reason = %q, want %q", got, tc.want)
			}
		})
	}
	for _, bad := range []string{``, `[]`, `"ref"`, `{"ref":1}`, `{"ref":"refs/heads/main"} {}`, `{"ref":"refs/heads/main"`} {
		if _, err := parsePush([]byte(bad)); err == nil {
			t.Errorf("parsePush(%q): want an error", bad)
		}
	}
}

// FuzzWebhook sends arbitrary bodies and headers. The handler must never
// panic, and must trigger only when the request carried a valid signature
// (which the fuzzer can only produce through the sign flag).
func FuzzWebhook(f *testing.F) {
	f.Add([]byte(`{"ref":"refs/heads/main"}`), uint8(0), "push", "", true)
	f.Add([]byte(`{"ref":"refs/heads/main","after":"abc","pusher":{"name":"x"}}`), uint8(1), "Push Hook", "", true)
	f.Add([]byte(`{"ref":"refs/heads/main"}`), uint8(2), "push", "deadbeef", false)
	f.Add([]byte(`{"ref":"refs/heads/other"}`), uint8(3), "push", "sha256=00", false)
	f.Add([]byte(`{"ref":`), uint8(4), "", "sha256=zz", true)
	f.Add([]byte(`null`), uint8(0), "ping", "", true)
	f.Add([]byte{0xff, 0xfe, 0}, uint8(5), "\x00", "sha256=", false)

	fx := newWebhookFixture(f, testSecret)
	headerNames := []string{"X-Hub-Signature-256", "X-Gitlab-Token", "X-Gitea-Signature", "X-Forgejo-Signature", "X-Bosun-Signature-256"}
	eventNames := []string{"X-GitHub-Event", "X-Gitlab-Event", "X-Gitea-Event", "X-Forgejo-Event", "X-Bosun-Event"}

	f.Fuzz(func(t *testing.T, body []byte, which uint8, event, sig string, signIt bool) {
		i := int(which) % len(headerNames)
		header := http.Header{}
		if which&0x80 == 0 { // sometimes send no event header at all
			header.Set(eventNames[i], event)
		}
		if signIt {
			switch headerNames[i] {
			case "X-Gitlab-Token":
				sig = testSecret
			case "X-Gitea-Signature", "X-Forgejo-Signature":
				sig = sign(testSecret, body)
			default:
				sig = "sha256=" + sign(testSecret, body)
			}
		}
		if sig != "" {
			header.Set(headerNames[i], sig)
		}
		if which&0x40 != 0 { // and sometimes a second, conflicting provider
			header.Set(headerNames[(i+1)%len(headerNames)], "sha256=00")
		}
		before := len(fx.rec.calls())
		w := fx.do(http.MethodPost, header, body)
		triggered := len(fx.rec.calls()) > before
		if triggered && !validSignature(header, body) {
			t.Fatalf("triggered without a valid signature: headers %v", header)
		}
		if triggered && w.Code != http.StatusAccepted {
			t.Fatalf("triggered but answered %d", w.Code)
		}
		if strings.Contains(w.Body.String(), testSecret) || strings.Contains(w.Body.String(), sign(testSecret, body)) {
			t.Fatalf("response leaks the secret or expected signature: %s", w.Body)
		}
	})
}

// validSignature reports whether some provider header carries a correct
// signature of body; computed independently of the handler.
func validSignature(h http.Header, body []byte) bool {
	good := sign(testSecret, body)
	return h.Get("X-Gitlab-Token") == testSecret ||
		h.Get("X-Hub-Signature-256") == "sha256="+good ||
		h.Get("X-Bosun-Signature-256") == "sha256="+good ||
		h.Get("X-Gitea-Signature") == good ||
		h.Get("X-Forgejo-Signature") == good
}
