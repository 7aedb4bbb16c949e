package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"bosun/notify"
)

// notifyRecorder stands in for GitHub, GitLab, Gitea, a webhook receiver
// and Slack: it records every call and answers 201.
type notifyRecorder struct {
	*httptest.Server
	mu    sync.Mutex
	calls []notifyCall
}

type notifyCall struct {
	Path   string
	Header http.Header
	Body   map[string]any
}

func newNotifyRecorder(t *testing.T) *notifyRecorder {
	r := &notifyRecorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		c := notifyCall{Path: req.URL.Path, Header: req.Header.Clone()}
		if err := json.Unmarshal(b, &c.Body); err != nil {
			t.Errorf("%s: body is not JSON: %s", req.URL.Path, b)
		}
		if req.Method != http.MethodPost {
			t.Errorf("%s %s", req.Method, req.URL.Path)
		}
		if sig := req.Header.Get("X-Bosun-Signature-256"); strings.HasPrefix(req.URL.Path, "/hook") && sig != notify.Sign([]byte(notifyHMACKey), b) {
			t.Errorf("webhook signature %q does not match the body", sig)
		}
		r.mu.Lock()
		r.calls = append(r.calls, c)
		r.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(r.Close)
	return r
}

// find returns the calls to path whose body's key has value.
func (r *notifyRecorder) find(path, key, value string) []notifyCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []notifyCall
	for _, c := range r.calls {
		if c.Path == path && fmt.Sprint(c.Body[key]) == value {
			out = append(out, c)
		}
	}
	return out
}

// Planted secrets: none may appear in bosun's log or /metrics.
const (
	notifyToken   = "ghp_E2EPLANTEDTOKEN0000"
	notifyHMACKey = "E2EPLANTEDHMACKEY1111"
	notifySlack   = "/services/T000/B000/E2EPLANTEDSLACK2222"
	// notifySecretValue is a Secret's value in Git (not base64).
	notifySecretValue = "PLANTEDSECRETVALUE!!"
)

const notifyDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  progressDeadlineSeconds: 8
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: localhost/bosun-hello:%s
        env:
        - {name: PORT, value: "8080"}
        - {name: FAIL_READY, value: "%s"}
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 1
          failureThreshold: 1
`

// TestNotify commits to a repository and watches a local recorder acting
// as every sink: statuses for v1 (pending, then success with its SHA), a
// rejected commit with its file:line, a rollout that never gets ready.
func TestNotify(t *testing.T) {
	t.Parallel()
	rec := newNotifyRecorder(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	token := write("token", notifyToken+"\n")
	conf := write("notify.yaml", fmt.Sprintf(`cluster: e2e
targetURL: https://bosun.example.com/?commit={commit}
delivery: {initialBackoff: 100ms, maxBackoff: 1s}
sinks:
- {name: github, type: github, url: %[1]s/gh/api/v3, repo: acme/deploy, tokenFile: %[2]s}
- {name: gitlab, type: gitlab, url: %[1]s/gl/api/v4, repo: acme/deploy, tokenFile: %[2]s}
- {name: gitea, type: gitea, url: %[1]s/gt/api/v1, repo: acme/deploy, tokenFile: %[2]s}
- {name: hook, type: webhook, url: %[1]s/hook, secretFile: %[3]s}
- {name: slack, type: slack, urlFile: %[4]s, events: [RevisionRejected, "Rollout*"]}
`, rec.URL, token, write("key", notifyHMACKey), write("slack", rec.URL+notifySlack)))

	repo := newGitRepo(t)
	repo.write("web.yaml", fmt.Sprintf(notifyDeployment, "v1", "0"))
	v1 := repo.commit("web v1")

	t.Run("a bad configuration stops the start with file:line", func(t *testing.T) {
		bad := write("bad.yaml", "sinks:\n- type: github\n  repo: acme/deploy\n")
		out, err := exec.Command(bosun(t), "server", "--repo", repo.dir, "--data-dir", t.TempDir(), "--agent=false",
			"--notify-config", bad).CombinedOutput()
		if err == nil || !strings.Contains(string(out), bad+":2: sinks[0].tokenFile: required") {
			t.Errorf("bosun server with a bad --notify-config: %v\n%s", err, out)
		}
	})

	s := startStack(t, repo, "--notify-config", conf)

	ghPath := func(sha string) string { return "/gh/api/v3/repos/acme/deploy/statuses/" + sha }
	waitCall := func(what, path, key, value string) notifyCall {
		t.Helper()
		var c []notifyCall
		s.waitFor(what, 90*time.Second, func() error {
			if c = rec.find(path, key, value); len(c) == 0 {
				return fmt.Errorf("no call to %s with %s=%s", path, key, value)
			}
			return nil
		})
		return c[len(c)-1]
	}

	t.Run("v1: applied, then rollout complete, on every sink with the SHA", func(t *testing.T) {
		start := time.Now()
		pending := waitCall("GitHub status pending", ghPath(v1), "state", "pending")
		if pending.Header.Get("Authorization") != "Bearer "+notifyToken || pending.Body["context"] != "bosun/e2e" {
			t.Errorf("GitHub status: %v %v", pending.Header.Get("Authorization"), pending.Body)
		}
		ok := waitCall("GitHub status success", ghPath(v1), "state", "success")
		t.Logf("commit -> GitHub success: %v (server start included)", time.Since(start))
		if d := fmt.Sprint(ok.Body["description"]); !strings.HasPrefix(d, "rollout complete") || ok.Body["target_url"] != "https://bosun.example.com/?commit="+v1 {
			t.Errorf("GitHub success status: %v", ok.Body)
		}
		gl := waitCall("GitLab status success", "/gl/api/v4/projects/acme/deploy/statuses/"+v1, "state", "success")
		if gl.Header.Get("PRIVATE-TOKEN") != notifyToken || gl.Body["ref"] != "main" || gl.Body["name"] != "bosun/e2e" {
			t.Errorf("GitLab status: %v", gl.Body)
		}
		if len(rec.find("/gl/api/v4/projects/acme/deploy/statuses/"+v1, "state", "running")) == 0 {
			t.Errorf("GitLab got no running status")
		}
		gt := waitCall("Gitea status success", "/gt/api/v1/repos/acme/deploy/statuses/"+v1, "state", "success")
		if gt.Header.Get("Authorization") != "token "+notifyToken {
			t.Errorf("Gitea Authorization: %q", gt.Header.Get("Authorization"))
		}
		for _, typ := range []string{notify.RevisionApplied, notify.RolloutComplete} {
			h := waitCall("webhook "+typ, "/hook", "type", typ)
			if h.Body["commit"] != v1 || h.Body["branch"] != "main" || h.Body["subject"] != "web v1" || h.Header.Get("X-Bosun-Event") != typ {
				t.Errorf("webhook %s: %v", typ, h.Body)
			}
		}
		s.waitFor("Slack: rollout complete", 30*time.Second, func() error {
			if !slackSays(rec, "rollout complete", "web v1", "on main") {
				return fmt.Errorf("no Slack message of the complete rollout")
			}
			return nil
		})
	})

	t.Run("a bad commit: rejected with file:line", func(t *testing.T) {
		repo.write("web.yaml", fmt.Sprintf(notifyDeployment, "v1", "0")+"  bogusField: 1\n")
		// A Secret whose value is not base64: its error must not carry it.
		repo.write("secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\ndata:\n  password: "+notifySecretValue+"\n")
		bad := repo.commit("web with a typo")
		st := waitCall("GitHub status failure", ghPath(bad), "state", "failure")
		fileLine := regexp.MustCompile(`[a-z]+\.yaml:\d+: `)
		if d := fmt.Sprint(st.Body["description"]); !fileLine.MatchString(d) {
			t.Errorf("GitHub failure description lacks file:line: %q", d)
		}
		h := waitCall("webhook RevisionRejected", "/hook", "type", notify.RevisionRejected)
		if h.Body["commit"] != bad || !fileLine.MatchString(fmt.Sprint(h.Body["reason"])) ||
			!strings.Contains(fmt.Sprint(h.Body["errors"]), "web.yaml:25: spec.bogusField: unknown field") {
			t.Errorf("webhook rejected: %v", h.Body)
		}
		if !slackSays(rec, "revision rejected", "web.yaml:") {
			t.Errorf("Slack did not get the rejection with its file:line")
		}
		if !strings.Contains(fmt.Sprint(h.Body["errors"]), "secret.yaml:") {
			t.Errorf("the webhook's errors do not name secret.yaml: %v", h.Body["errors"])
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, c := range rec.calls {
			if strings.Contains(fmt.Sprint(c.Body), "PLANTEDSECRETVALUE") {
				t.Errorf("a Secret's value in a notification to %s: %v", c.Path, c.Body)
			}
		}
	})

	t.Run("a rollout that never gets ready: failed", func(t *testing.T) {
		repo.write("web.yaml", fmt.Sprintf(notifyDeployment, "v2", "1"))
		if err := os.Remove(filepath.Join(repo.dir, "secret.yaml")); err != nil {
			t.Fatal(err)
		}
		stuck := repo.commit("web v2 never ready")
		waitCall("GitHub status pending", ghPath(stuck), "state", "pending")
		st := waitCall("GitHub status failure", ghPath(stuck), "state", "failure")
		if d := fmt.Sprint(st.Body["description"]); !strings.HasPrefix(d, "rollout failed") {
			t.Errorf("GitHub failure description: %q", d)
		}
		h := waitCall("webhook RolloutFailed", "/hook", "type", notify.RolloutFailed)
		if h.Body["commit"] != stuck || h.Body["reason"] == "" || h.Body["state"] != "failure" {
			t.Errorf("webhook rollout failed: %v", h.Body)
		}
		waitCall("GitLab status failed", "/gl/api/v4/projects/acme/deploy/statuses/"+stuck, "state", "failed")
		if !slackSays(rec, "rollout failed", "") {
			t.Errorf("Slack did not get the failed rollout")
		}
	})

	t.Run("no planted secret in the log or the metrics", func(t *testing.T) {
		metrics, err := s.getText("/metrics")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(metrics, `bosun_notify_sent_total{sink="github"}`) {
			t.Errorf("no bosun_notify_sent_total for github in /metrics")
		}
		s.logMu.Lock()
		log := s.log.String()
		s.logMu.Unlock()
		for _, secret := range []string{notifyToken, notifyHMACKey, notifySlack, "E2EPLANTEDSLACK2222"} {
			if strings.Contains(log, secret) || strings.Contains(metrics, secret) {
				t.Errorf("secret %q in the log or the metrics", secret)
			}
		}
	})
}

// slackSays reports whether a Slack message holds every one of words.
func slackSays(rec *notifyRecorder, words ...string) bool {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, c := range rec.calls {
		text, _ := c.Body["text"].(string)
		if c.Path != notifySlack {
			continue
		}
		all := true
		for _, w := range words {
			all = all && strings.Contains(text, w)
		}
		if all {
			return true
		}
	}
	return false
}
