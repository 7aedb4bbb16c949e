package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"

	"bosun/audit"
)

// WebhookConfig configures the receiver of Git push webhooks
// (POST /api/v1/webhooks/git). The zero value of every optional field works.
type WebhookConfig struct {
	// SecretFile holds the shared secret (trailing newlines are trimmed).
	// Required. It is re-read whenever the file changes (mtime, size or
	// inode), so a rotated secret needs no restart. While the file is
	// missing or empty every request is refused with 401; that state is
	// logged once at warn level. The secret itself is never logged.
	SecretFile string
	// Branch is the tracked branch; pushes to other branches are accepted
	// (202) but trigger nothing, unless Follows says otherwise. Default
	// "main".
	Branch string
	// Follows, if set, says whether bosun follows branch besides Branch
	// (canary branches); a push to such a branch triggers like a push to
	// Branch, with the branch named in the reason. It is called once per
	// push, from the request's goroutine, and must not block long. Default:
	// no other branch is followed.
	Follows func(branch string) bool
	// Registerer, if set, receives the counter
	// bosun_webhook_requests_total{provider,result}. Default: no metrics.
	Registerer prometheus.Registerer
	// Logger receives the receiver's logs, tagged component=webhook.
	// Default: discard.
	Logger *slog.Logger
}

// maxWebhookBody bounds a webhook body; GitHub caps payloads at 25 MB but
// push payloads of a manifest repository are a few KiB.
const maxWebhookBody = 1 << 20

// secretRecheck is how long after a secret file's mtime its cached content
// is still re-read on every request: filesystems stamp mtimes coarsely, so a
// rewrite within the same tick (same size, same inode) would otherwise go
// unseen (Git's "racily clean" problem).
const secretRecheck = 2 * time.Second

// webhook is the handler built by NewWebhookHandler.
type webhook struct {
	branch  string
	follows func(branch string) bool // nil: only branch
	log     *slog.Logger
	secret  *secretFile
	trigger func(ctx context.Context, reason string) error
	count   *prometheus.CounterVec // nil without a Registerer
}

// NewWebhookHandler returns the handler of POST /api/v1/webhooks/git.
//
// The provider is detected by its headers, in this order:
//
//	Forgejo  X-Forgejo-Signature: <hex HMAC-SHA256(secret, body)>, X-Forgejo-Event: push
//	Gitea    X-Gitea-Signature: <hex HMAC-SHA256>,                 X-Gitea-Event: push
//	GitLab   X-Gitlab-Token: <secret>,                              X-Gitlab-Event: Push Hook
//	GitHub   X-Hub-Signature-256: sha256=<hex HMAC-SHA256>,         X-GitHub-Event: push (ping answers "pong")
//	generic  X-Bosun-Signature-256: sha256=<hex HMAC-SHA256>,       X-Bosun-Event: push (or absent)
//
// (Forgejo and Gitea also send GitHub's headers, hence the order.) Answers:
// 405 for methods other than POST; 413 for a body over 1 MiB; 401 for a
// missing or wrong signature (or no secret configured); 202 "ignored: ..."
// for other events, tags and branches neither tracked nor followed (see
// WebhookConfig.Follows); 400 for a push whose body is not JSON or has no
// "ref"; 202 {"result":"sync triggered"} once trigger returned nil for a
// push of the tracked branch or a followed one, 503 if it failed. trigger is
// called with the request's context and a reason such as
// "github push 1a2b3c4 by alice" ("github push 1a2b3c4 to canary/web-v2 by
// alice" for a followed branch); it must not block long.
func NewWebhookHandler(cfg WebhookConfig, trigger func(ctx context.Context, reason string) error) (http.Handler, error) {
	var errs []error
	if cfg.SecretFile == "" {
		errs = append(errs, errors.New("secret_file: required"))
	}
	if cfg.Branch == "" {
		cfg.Branch = "main"
	}
	if strings.HasPrefix(cfg.Branch, "refs/") {
		errs = append(errs, fmt.Errorf("branch: %q: give the branch name, not a ref", cfg.Branch))
	}
	if trigger == nil {
		errs = append(errs, errors.New("trigger: required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("webhook config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger.With("component", "webhook")
	h := &webhook{
		branch:  cfg.Branch,
		follows: cfg.Follows,
		log:     log,
		secret:  &secretFile{path: cfg.SecretFile, log: log},
		trigger: trigger,
	}
	if cfg.Registerer != nil {
		h.count = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_webhook_requests_total",
			Help: "Git webhook requests by provider and result (triggered, ignored, pong, unauthorized, bad_request, too_large, method_not_allowed, trigger_failed).",
		}, []string{"provider", "result"})
		if err := cfg.Registerer.Register(h.count); err != nil {
			return nil, fmt.Errorf("webhook metrics: %w", err)
		}
	}
	h.secret.get(time.Now()) // log a missing secret at start, not at the first push
	return h, nil
}

// provider describes how one Git host signs and names its webhooks.
type provider struct {
	name        string
	eventHeader string
	pushEvent   string // value of eventHeader for a push
	pingEvent   string // value answered with "pong"; empty if none
	sigHeader   string
	sigPrefix   string // before the hex HMAC; empty for Gitea/Forgejo
	token       bool   // sigHeader carries the secret itself (GitLab)
}

var providers = []provider{
	{name: "forgejo", eventHeader: "X-Forgejo-Event", pushEvent: "push", sigHeader: "X-Forgejo-Signature"},
	{name: "gitea", eventHeader: "X-Gitea-Event", pushEvent: "push", sigHeader: "X-Gitea-Signature"},
	{name: "gitlab", eventHeader: "X-Gitlab-Event", pushEvent: "Push Hook", sigHeader: "X-Gitlab-Token", token: true},
	{name: "github", eventHeader: "X-GitHub-Event", pushEvent: "push", pingEvent: "ping", sigHeader: "X-Hub-Signature-256", sigPrefix: "sha256="},
	{name: "generic", eventHeader: "X-Bosun-Event", pushEvent: "push", sigHeader: "X-Bosun-Signature-256", sigPrefix: "sha256="},
}

// detect picks the provider whose event or signature header is present;
// generic when none is.
func detect(h http.Header) provider {
	for _, p := range providers {
		if h.Get(p.eventHeader) != "" || h.Get(p.sigHeader) != "" {
			return p
		}
	}
	return providers[len(providers)-1]
}

// verify checks the request's signature against secret. The returned error
// is safe to show the sender: it never quotes the secret or the expected
// signature.
func (p provider) verify(h http.Header, body, secret []byte) error {
	got := h.Get(p.sigHeader)
	if got == "" {
		return fmt.Errorf("missing %s header", p.sigHeader)
	}
	if p.token {
		// Hash both sides so the comparison takes the same time whatever
		// the length of the guess.
		a, b := sha256.Sum256([]byte(got)), sha256.Sum256(secret)
		if !hmac.Equal(a[:], b[:]) {
			return fmt.Errorf("%s does not match the secret", p.sigHeader)
		}
		return nil
	}
	hexSig, ok := strings.CutPrefix(got, p.sigPrefix)
	if !ok {
		return fmt.Errorf("%s must have the form %s<hex HMAC-SHA256 of the body>", p.sigHeader, p.sigPrefix)
	}
	sig, err := hex.DecodeString(hexSig)
	if err != nil {
		return fmt.Errorf("%s is not hex", p.sigHeader)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return fmt.Errorf("%s does not match the body (wrong secret?)", p.sigHeader)
	}
	return nil
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := detect(r.Header)
	delivery := deliveryID(r.Header)
	detail := "" // what the audit line says beyond the result
	answer := func(code int, result string, body any) {
		if h.count != nil {
			h.count.WithLabelValues(p.name, result).Inc()
		}
		h.audit(r, p, delivery, code, result, detail)
		writeJSON(w, code, body)
	}
	fail := func(code int, result, msg string) {
		detail = msg
		answer(code, result, Error{Error: msg})
	}

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(http.StatusMethodNotAllowed, "method_not_allowed", "method "+r.Method+" not allowed; webhooks are POSTed")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			fail(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body larger than %d bytes", mbe.Limit))
			return
		}
		fail(http.StatusBadRequest, "bad_request", "read body: "+err.Error())
		return
	}

	secret, ok := h.secret.get(time.Now())
	if !ok {
		fail(http.StatusUnauthorized, "unauthorized", "webhook secret is not configured on this server")
		return
	}
	if err := p.verify(r.Header, body, secret); err != nil {
		fail(http.StatusUnauthorized, "unauthorized", err.Error())
		return
	}

	event := r.Header.Get(p.eventHeader)
	switch {
	case p.pingEvent != "" && event == p.pingEvent:
		answer(http.StatusOK, "pong", result{Result: "pong"})
		return
	case event != p.pushEvent && !(p.name == "generic" && event == ""):
		if event == "" {
			event = "(none)"
		}
		detail = "event " + printable(event, 64)
		answer(http.StatusAccepted, "ignored", result{Result: "ignored: " + detail})
		return
	}

	push, err := parsePush(body)
	if err != nil {
		fail(http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	branch, isBranch := strings.CutPrefix(push.ref, "refs/heads/")
	switch {
	case !isBranch:
		detail = "ref " + printable(push.ref, 200)
		answer(http.StatusAccepted, "ignored", result{Result: "ignored: " + detail})
		return
	case branch != h.branch && (h.follows == nil || !h.follows(branch)):
		detail = "branch " + printable(branch, 200)
		answer(http.StatusAccepted, "ignored", result{Result: "ignored: " + detail})
		return
	}

	to := "" // the tracked branch goes unnamed, as before followed branches
	if branch != h.branch {
		to = branch
	}
	reason := push.reason(p.name, to)
	if err := h.trigger(r.Context(), reason); err != nil {
		fail(http.StatusServiceUnavailable, "trigger_failed", "sync not triggered ("+reason+"): "+err.Error())
		return
	}
	detail = reason
	answer(http.StatusAccepted, "triggered", result{Result: "sync triggered"})
}

// deliveryHeaders carry the id Git hosts give each delivery, the one
// their webhook settings show: the audit line names it.
var deliveryHeaders = []string{"X-GitHub-Delivery", "X-Gitea-Delivery", "X-Forgejo-Delivery", "X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID", "X-Bosun-Delivery"}

// deliveryID is the request's delivery id, "" when it has none.
func deliveryID(h http.Header) string {
	for _, name := range deliveryHeaders {
		if v := h.Get(name); v != "" {
			return printable(v, 100)
		}
	}
	return ""
}

// audit logs the audit line of one webhook, accepted or refused
// (audit.Log: event webhook.accepted or webhook.refused, actor
// webhook:<provider>): where it came from (the source address and the Git
// host's delivery id) and what became of it.
func (h *webhook) audit(r *http.Request, p provider, delivery string, code int, result, detail string) {
	event := "webhook.accepted"
	if code >= 400 {
		event = "webhook.refused"
	}
	audit.Log(r.Context(), h.log, event, "webhook:"+p.name, slog.String("remote", r.RemoteAddr), slog.String("delivery", delivery),
		slog.Int("status", code), slog.String("result", result), slog.String("detail", detail))
}

type result struct {
	Result string `json:"result"`
}

// push is what bosun reads of a push payload.
type push struct {
	ref    string
	after  string // new head commit, if the payload says
	pusher string
}

// parsePush reads a push payload leniently: fields are looked up where
// GitHub, GitLab, Gitea and Forgejo put them, wrong types are skipped; only
// invalid JSON and a missing "ref" are errors.
func parsePush(body []byte) (push, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&m); err != nil {
		return push{}, fmt.Errorf("push payload is not a JSON object: %v", err)
	}
	if dec.More() {
		return push{}, errors.New("push payload: trailing data after the JSON object")
	}
	var p push
	p.ref, _ = m["ref"].(string)
	if p.ref == "" {
		return push{}, errors.New(`push payload: "ref" missing or not a string`)
	}
	p.after = firstString(m, "after", "checkout_sha")
	p.pusher = firstString(m, "pusher.login", "pusher.username", "pusher.name", "user_username", "user_name", "sender.login", "sender.username")
	return p, nil
}

// firstString returns the first non-empty string at one of the dotted paths.
func firstString(m map[string]any, paths ...string) string {
	for _, path := range paths {
		var v any = m
		for _, k := range strings.Split(path, ".") {
			obj, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = obj[k]
		}
		if s, ok := v.(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// reason is the trigger's reason: "github push 1a2b3c4 by alice", or with
// branch set "github push 1a2b3c4 to canary/web-v2 by alice".
func (p push) reason(provider, branch string) string {
	var b strings.Builder
	b.WriteString(provider + " push")
	if c := printable(p.after, 40); c != "" && strings.Trim(c, "0") != "" {
		if len(c) > 7 {
			c = c[:7]
		}
		b.WriteString(" " + c)
	}
	if branch != "" {
		b.WriteString(" to " + printable(branch, 200))
	}
	if u := printable(p.pusher, 64); u != "" {
		b.WriteString(" by " + u)
	}
	return b.String()
}

// printable returns s cut to max runes with control characters dropped:
// payload strings end up in logs and responses.
func printable(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("...")
			break
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
			n++
		}
	}
	return b.String()
}

// secretFile is the webhook secret, re-read when its file changes.
type secretFile struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	fi      os.FileInfo // stat of the file the secret was read from; nil if none
	readAt  time.Time
	secret  []byte
	problem string // why there is no secret; logged when it changes
}

// get returns the current secret, re-reading the file if it changed. ok is
// false while the file is missing, unreadable or empty.
func (f *secretFile) get(now time.Time) (secret []byte, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi, err := os.Stat(f.path)
	if err != nil {
		return f.unavailable(err.Error()) // names the path, never content
	}
	if f.fi != nil && os.SameFile(f.fi, fi) && fi.ModTime().Equal(f.fi.ModTime()) && fi.Size() == f.fi.Size() &&
		f.readAt.Sub(fi.ModTime()) > secretRecheck {
		return f.secret, true
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return f.unavailable(err.Error())
	}
	s := bytes.TrimRight(b, "\r\n")
	if len(s) == 0 {
		return f.unavailable(f.path + ": empty")
	}
	if !bytes.Equal(s, f.secret) {
		f.log.Info("webhook secret loaded", "file", f.path)
	}
	f.fi, f.readAt, f.secret, f.problem = fi, now, s, ""
	return f.secret, true
}

func (f *secretFile) unavailable(problem string) ([]byte, bool) {
	if problem != f.problem {
		f.log.Warn("webhook secret unavailable; refusing every webhook", "file", f.path, "err", problem)
	}
	f.fi, f.secret, f.problem = nil, nil, problem
	return nil, false
}
