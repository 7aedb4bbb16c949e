package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/api"
)

const authPod = `apiVersion: v1
kind: Pod
metadata:
  name: hello
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: localhost/bosun-hello:v1
`

// mintToken runs `bosun token create` and returns the token and its line.
func mintToken(t *testing.T, role, name string) (token, line string) {
	t.Helper()
	out, err := exec.Command(bosun(t), "token", "create", "--role", role, "--name", name, "-o", "json").Output()
	if err != nil {
		t.Fatalf("bosun token create: %v", err)
	}
	var got struct{ Token, Line string }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	return got.Token, got.Line
}

// routePath turns a route pattern into a request.
func routePath(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	path = strings.ReplaceAll(path, "{$}", "") // GET /{$}: the dashboard
	path = strings.ReplaceAll(path, "{kind}", "pods")
	path = regexp.MustCompile(`\{[a-z]+\}`).ReplaceAllString(path, "x")
	return method, path
}

// auditLines are the log's JSON records with audit=true.
func auditLines(log string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(log, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["audit"] == true {
			out = append(out, rec)
		}
	}
	return out
}

// TestAPIAuth_rolesTokensAuditAndRateLimit runs a stack with a tokens file
// of two tokens minted by `bosun token create`: an admin one (deployer)
// and a read-only one (ci). Without a token every route but the public
// ones answers 401; the read-only token reads (status, get, history,
// logs, plan) but cannot sync (403); the admin token syncs, and the log
// says who did; webhooks are audited with their delivery id; a wrong
// token tried again and again gets 429; no token reaches the log.
func TestAPIAuth_rolesTokensAuditAndRateLimit(t *testing.T) {
	t.Parallel()
	adminTok, adminLine := mintToken(t, "admin", "deployer")
	readTok, readLine := mintToken(t, "read-only", "ci")
	wrongTok, _ := mintToken(t, "admin", "nobody") // never in the file
	tokensFile := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokensFile, []byte("# e2e\n"+adminLine+"\n"+readLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(t.TempDir(), "webhook-secret")
	if err := os.WriteFile(secretFile, []byte(webhookSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	repo := newGitRepo(t)
	repo.write("pod.yaml", authPod)
	repo.commit("a pod")
	s := startStack(t, repo, "--tokens-file", tokensFile, "--webhook-secret-file", secretFile)
	s.token = adminTok
	if _, err := os.Stat(filepath.Join(s.home, ".config", "bosun", "token")); err == nil {
		t.Error("with --tokens-file the server still generated a token")
	}
	s.waitFor("the pod to run", 60*time.Second, func() error {
		for _, p := range s.pods() {
			if p.Name == "hello" && p.Status.Phase == corev1.PodRunning {
				return nil
			}
		}
		return errors.New("not running")
	})
	var outputs []string // everything a token could leak into

	t.Run("no token: 401 on every route but the public ones", func(t *testing.T) {
		anon := s.tlsClient()
		for _, rt := range api.Routes() {
			method, path := routePath(rt.Pattern)
			req, _ := http.NewRequest(method, s.url(path), strings.NewReader(`{"ref":"main"}`))
			resp, err := anon.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", rt.Pattern, err)
			}
			resp.Body.Close()
			challenged := resp.StatusCode == 401 && strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer")
			if (rt.Access != api.Public) != challenged {
				t.Errorf("%s (%s) without a token: %s, WWW-Authenticate %q", rt.Pattern, rt.Access, resp.Status, resp.Header.Get("WWW-Authenticate"))
			}
		}
		for _, path := range []string{"/healthz", "/readyz"} {
			if resp, err := anon.Get(s.url(path)); err != nil || resp.StatusCode != 200 {
				t.Errorf("GET %s without a token: %v %v", path, resp, err)
			} else {
				resp.Body.Close()
			}
		}
		// The CLI without a token says where one goes.
		cmd := s.cliCmd("status")
		cmd.Env = append(cmd.Env, "BOSUN_TOKEN=")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "401 Unauthorized: give a valid token with --token, BOSUN_TOKEN or ~/.config/bosun/token") {
			t.Errorf("bosun status without a token: %v\n%s", err, out)
		}
	})

	t.Run("read-only token reads, cannot sync", func(t *testing.T) {
		ro := func(args ...string) (string, error) {
			cmd := s.cliCmd(args...)
			cmd.Env = append(cmd.Env, "BOSUN_TOKEN="+readTok)
			out, err := cmd.CombinedOutput()
			outputs = append(outputs, string(out))
			return string(out), err
		}
		for _, args := range [][]string{{"status"}, {"get", "pods"}, {"history"}, {"logs", "hello"}, {"canary"}, {"get", "endpoints"}} {
			if out, err := ro(args...); err != nil {
				t.Errorf("read-only bosun %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		// plan exits 0 (no change) or 2 (changes); 1 is an error.
		if out, err := ro("plan", "--ref", "main"); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Errorf("read-only bosun plan: %v\n%s", err, out)
			}
		}
		out, err := ro("sync")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, `token "ci" is read-only; POST /api/v1/sync needs an admin token (403 Forbidden)`) {
			t.Errorf("read-only bosun sync: %v\n%s", err, out)
		}
	})

	t.Run("admin token syncs, audited with its name", func(t *testing.T) {
		out, err := s.cli("sync")
		outputs = append(outputs, out)
		if err != nil || !strings.Contains(out, "sync requested") {
			t.Fatalf("admin bosun sync: %v\n%s", err, out)
		}
		s.waitFor("the audit lines of both syncs", 10*time.Second, func() error {
			var got []string
			for _, a := range auditLines(s.logTail(100000)) {
				if a["event"] == "api.sync" && strings.HasPrefix(fmt.Sprint(a["remote"]), "127.0.0.1:") {
					got = append(got, fmt.Sprintf("%v/%v/%v", a["actor"], a["result"], a["status"]))
				}
			}
			if strings.Join(got, " ") != "ci/forbidden/403 deployer/done/202" {
				return fmt.Errorf("sync audit lines: %v", got)
			}
			return nil
		})
	})

	t.Run("webhooks are audited with source and delivery id", func(t *testing.T) {
		body := []byte(`{"ref":"refs/heads/main","after":"` + repo.git("rev-parse", "HEAD") + `"}`)
		send := func(delivery, secret string) int {
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write(body)
			req, _ := http.NewRequest("POST", s.url("/api/v1/webhooks/git"), strings.NewReader(string(body)))
			req.Header.Set("X-GitHub-Event", "push")
			req.Header.Set("X-GitHub-Delivery", delivery)
			req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
			resp, err := s.tlsClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := send("e2e-delivery-accepted", webhookSecret); code != http.StatusAccepted {
			t.Errorf("signed webhook: %d", code)
		}
		if code := send("e2e-delivery-refused", "not the secret"); code != http.StatusUnauthorized {
			t.Errorf("badly signed webhook: %d", code)
		}
		want := map[string]string{"e2e-delivery-accepted": "webhook.accepted/triggered", "e2e-delivery-refused": "webhook.refused/unauthorized"}
		s.waitFor("the webhooks' audit lines", 10*time.Second, func() error {
			for _, a := range auditLines(s.logTail(100000)) {
				d := fmt.Sprint(a["delivery"])
				if want[d] == fmt.Sprintf("%v/%v", a["event"], a["result"]) && a["actor"] == "webhook:github" && strings.HasPrefix(fmt.Sprint(a["remote"]), "127.0.0.1:") {
					delete(want, d)
				}
			}
			if len(want) > 0 {
				return fmt.Errorf("no audit line for %v", want)
			}
			return nil
		})
	})

	t.Run("a wrong token again and again: 429", func(t *testing.T) {
		wrong := &http.Client{Transport: bearer{wrongTok, s.tlsClient().Transport}, Timeout: 10 * time.Second}
		var codes []int
		var retry string
		for range 12 {
			resp, err := wrong.Get(s.url("/api/v1/status"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			codes = append(codes, resp.StatusCode)
			retry = resp.Header.Get("Retry-After")
		}
		if fmt.Sprint(codes) != "[401 401 401 401 401 401 401 401 401 401 429 429]" {
			t.Errorf("codes of 12 wrong tokens: %v", codes)
		}
		if n, err := strconv.Atoi(retry); err != nil || n < 1 || n > 6 {
			t.Errorf("Retry-After %q", retry)
		}
		// Blocked means the right token too, from that address.
		out, err := s.cli("status")
		outputs = append(outputs, out)
		if err == nil || !strings.Contains(out, "429 Too Many Requests") {
			t.Errorf("bosun status while blocked: %v\n%s", err, out)
		}
		s.waitFor("the block to lift", 15*time.Second, func() error {
			_, err := s.status()
			return err
		})
		metrics, err := s.getText("/metrics")
		if err != nil {
			t.Fatal(err)
		}
		for _, reason := range []string{"invalid_token", "rate_limited", "forbidden", "missing_token"} {
			if !regexp.MustCompile(`bosun_api_auth_failures_total\{reason="` + reason + `"\} [1-9]`).MatchString(metrics) {
				t.Errorf("no bosun_api_auth_failures_total{reason=%q} in /metrics", reason)
			}
		}
	})

	for name, tok := range map[string]string{"admin": adminTok, "read-only": readTok, "wrong": wrongTok} {
		if strings.Contains(s.logTail(1000000), tok) {
			t.Errorf("the server's log holds the %s token", name)
		}
		for _, out := range outputs {
			if name != "admin" && strings.Contains(out, tok) {
				t.Errorf("CLI output holds the %s token:\n%s", name, out)
			}
		}
	}
}

// TestAPIAuth_generatedTokenAndCertificatePinning: without --tokens-file
// the first start generates an admin token (printed once, saved for the
// local CLI, only its hash in the data directory) and a self-signed
// certificate whose fingerprint the server logs; a later start reuses
// both and prints nothing. The CLI pins the certificate on first use, and
// refuses the server once it comes back on the same address with another
// certificate, unless told to verify it with --ca-file.
func TestAPIAuth_generatedTokenAndCertificatePinning(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("svc.yaml", webService)
	repo.commit("one service")
	s := startControlPlane(t, repo.dir)

	token := s.apiToken()
	conf := filepath.Join(s.home, ".config", "bosun")
	for path, mode := range map[string]os.FileMode{filepath.Join(conf, "token"): 0o600, conf: 0o700, filepath.Join(s.dataDir, "api", "tokens"): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, want mode %v", path, err, mode)
		}
	}
	stored, _ := os.ReadFile(filepath.Join(s.dataDir, "api", "tokens"))
	if strings.Contains(string(stored), token) || !strings.Contains(string(stored), api.Token{Role: api.RoleAdmin, Name: "admin", Hash: api.HashToken(token)}.Line()) {
		t.Errorf("data dir tokens file:\n%s", stored)
	}
	log := s.logTail(100000)
	if n := strings.Count(log, token); n != 1 {
		t.Errorf("the first start printed the token %d times, want once", n)
	}
	for _, rec := range strings.Split(log, "\n") {
		if strings.HasPrefix(rec, "{") && strings.Contains(rec, token) {
			t.Errorf("a log record holds the token: %s", rec)
		}
	}
	certPEM, _ := os.ReadFile(s.certFile())
	fp := fingerprintOf(t, certPEM)
	if !strings.Contains(log, `"fingerprint":"`+fp+`"`) {
		t.Errorf("the server does not log its fingerprint %s", fp)
	}

	// A user's own CLI: the token by environment, nothing pinned yet.
	home := t.TempDir()
	userCLI := func(args ...string) (string, string, error) {
		cmd := exec.Command(bosun(t), args...)
		cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME=", "BOSUN_SERVER="+s.url(""), "BOSUN_TOKEN="+token)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	_, errOut, err := userCLI("status")
	if err != nil || !strings.Contains(errOut, "trusting "+s.apiAddr+" on first use: certificate fingerprint "+fp) {
		t.Fatalf("first use: %v\n%s", err, errOut)
	}
	if _, errOut, err := userCLI("status"); err != nil || errOut != "" {
		t.Errorf("second use: %v, stderr %q", err, errOut)
	}

	// A restart reuses the token and the certificate, and prints nothing.
	s.stop(syscall.SIGTERM)
	s.start()
	if strings.Contains(s.logTail(100000), token) || !strings.Contains(s.logTail(100000), fp) {
		t.Errorf("second start printed the token, or has another fingerprint:\n%s", s.logTail(30))
	}
	if _, errOut, err := userCLI("status"); err != nil || errOut != "" {
		t.Errorf("after a restart: %v, stderr %q", err, errOut)
	}

	// Back on the same address with another certificate: refused.
	other, err := api.GeneratedCertificate(t.TempDir(), api.CertificateHosts(s.apiAddr, ""), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(filepath.Dir(other.CertFile), api.GeneratedKeyFile)
	s.stop(syscall.SIGTERM)
	s.args = append(s.args, "--tls-cert", other.CertFile, "--tls-key", keyFile)
	s.start()
	out, errOut, err := userCLI("status")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(errOut, "has CHANGED") ||
		!strings.Contains(errOut, "delete line 1 of "+filepath.Join(home, ".config", "bosun", "known_servers")) || out != "" {
		t.Errorf("changed certificate: %v\nstdout %q\nstderr %s", err, out, errOut)
	}
	// --ca-file verifies it instead.
	if _, errOut, err := userCLI("status", "--ca-file", other.CertFile); err != nil {
		t.Errorf("--ca-file: %v\n%s", err, errOut)
	}
}

func fingerprintOf(t *testing.T, certPEM []byte) string {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("no certificate")
	}
	return api.Fingerprint(block.Bytes)
}
