package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"bosun/api"
)

// planDeployment requests cpu per replica, to exercise the capacity verdict.
func planDeployment(replicas, cpu, image string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: ` + replicas + `
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: api
        image: ` + image + `
        resources:
          requests: {cpu: "` + cpu + `", memory: 16Mi}
`
}

// plan runs `bosun plan` and returns its output and exit code.
func (s *stack) plan(args ...string) (string, int) {
	s.t.Helper()
	cmd := s.cliCmd(append([]string{"plan"}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	s.t.Fatalf("bosun plan: %v", err)
	return "", -1
}

// TestPlan previews branches and directories before they are merged, on a
// control plane with one real node.
func TestPlan(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("api.yaml", planDeployment("1", "100m", "localhost/bosun-hello:v1"))
	first := repo.commit("api v1")
	s := startStack(t, repo)
	s.waitFor("the api pod", 60*time.Second, func() error {
		if n := len(readyPods(s.pods(), "api-")); n != 1 {
			return errors.New("not ready")
		}
		return nil
	})

	t.Run("main previews as no change: exit 0", func(t *testing.T) {
		out, code := s.plan("--ref", "main")
		if code != 0 || !strings.Contains(out, "No changes.") || !strings.Contains(out, first[:10]) {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})

	t.Run("a branch shows its diff, its pods and that it fits: exit 2", func(t *testing.T) {
		repo.git("checkout", "-q", "-b", "v2")
		repo.write("api.yaml", planDeployment("2", "100m", "localhost/bosun-hello:v2"))
		repo.commit("api v2, two replicas")
		repo.git("checkout", "-q", "main")
		out, code := s.plan("--ref", "v2")
		if code != 2 {
			t.Fatalf("exit %d, want 2:\n%s", code, out)
		}
		for _, want := range []string{
			"~ Deployment default/api",
			"spec.replicas",
			"spec.template.spec.containers[0].image",
			"-      - image: localhost/bosun-hello:v1",
			"+      - image: localhost/bosun-hello:v2",
			"start",
			"Rollouts:\n  rollout api:",
			"Capacity: fits",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("plan lacks %q:\n%s", want, out)
			}
		}
		// Nothing was applied.
		if st, _ := s.status(); st.Sync.Applied == nil || st.Sync.Applied.Commit != first {
			t.Errorf("plan changed the applied revision: %+v", st.Sync.Applied)
		}
	})

	t.Run("a branch that does not fit says by how much", func(t *testing.T) {
		repo.git("checkout", "-q", "-b", "huge")
		repo.write("api.yaml", planDeployment("3", "1", "localhost/bosun-hello:v1"))
		repo.commit("api: three whole CPUs")
		repo.git("checkout", "-q", "main")
		out, code := s.plan("--ref", "huge")
		if code != 2 || !strings.Contains(out, "does not fit: needs") || !strings.Contains(out, "CPU more than is free on any node") {
			t.Errorf("exit %d, want 2 and a shortfall:\n%s", code, out)
		}
		var res api.PlanResult
		out, code = s.plan("--ref", "huge", "-o", "json")
		if code != 2 || json.Unmarshal([]byte(out), &res) != nil || res.Preview == nil || res.Preview.Fits {
			t.Errorf("-o json: exit %d, fits %v:\n%s", code, res.Preview != nil && res.Preview.Fits, out)
		}
	})

	t.Run("a directory with an invalid manifest: exit 1 with file:line", func(t *testing.T) {
		dir := t.TempDir()
		r := &gitRepo{t: t, dir: dir}
		r.write("deploy/api.yaml", strings.Replace(planDeployment("1", "100m", "x:1"), "replicas: 1", "replicas: -2", 1))
		out, code := s.plan("--dir", dir)
		if code != 1 || !strings.Contains(out, "deploy/api.yaml:6: spec.replicas:") {
			t.Errorf("exit %d, want 1 with the error:\n%s", code, out)
		}
		r.write("deploy/api.yaml", planDeployment("1", "100m", "localhost/bosun-hello:v1"))
		if out, code := s.plan("--dir", dir); code != 0 {
			t.Errorf("a directory equal to main: exit %d, want 0:\n%s", code, out)
		}
	})

	t.Run("an unknown ref: exit 1", func(t *testing.T) {
		out, code := s.plan("--ref", "no-such-branch")
		if code != 1 || !strings.Contains(out, "no-such-branch") {
			t.Errorf("exit %d, want 1 naming the ref:\n%s", code, out)
		}
	})
}

// TestWebhookSecurity: only a validly signed push of the tracked branch
// brings a commit in.
func TestWebhookSecurity(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	repo := newGitRepo(t)
	repo.write("svc.yaml", webService)
	first := repo.commit("one")
	secretFile := t.TempDir() + "/secret"
	(&gitRepo{t: t, dir: ""}).write(secretFile, webhookSecret)
	hookAddr := freePort(t)
	s := startControlPlane(t, repo.dir, "--poll", "1h", "--webhook-secret-file", secretFile, "--webhook-listen", hookAddr)
	s.hookAddr = hookAddr
	// The webhook address serves webhooks and nothing else.
	if resp, err := s.client().Get("https://" + hookAddr + "/api/v1/status"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /api/v1/status on the webhook address: %v, %v; want 404", resp.Status, err)
	}
	applied := func() string {
		st, err := s.status()
		if err != nil || st.Sync.Applied == nil {
			return ""
		}
		return st.Sync.Applied.Commit
	}
	s.waitFor("the first revision", 30*time.Second, func() error {
		if applied() != first {
			return errors.New("not yet")
		}
		return nil
	})
	repo.write("svc.yaml", strings.Replace(webService, "8080", "8081", 1))
	second := repo.commit("two")

	for _, tc := range []struct {
		name   string
		branch string
		secret string
		want   int
	}{
		{"bad signature", "main", "wrong-secret", http.StatusUnauthorized},
		{"another branch", "feature", webhookSecret, http.StatusAccepted},
	} {
		code, err := s.webhook(tc.branch, second, tc.secret)
		if err != nil || code != tc.want {
			t.Errorf("%s: %d, %v; want %d", tc.name, code, err, tc.want)
		}
	}
	resp, err := s.tlsClient().Post("https://"+hookAddr+"/api/v1/webhooks/git", "application/json", strings.NewReader(`{"ref":"refs/heads/main"}`))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned webhook: %v, %v; want 401", resp.Status, err)
	}
	resp, err = s.tlsClient().Post("https://"+hookAddr+"/api/v1/webhooks/git", "application/json", bytes.NewReader(make([]byte, 2<<20)))
	if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB webhook: %v, %v; want 413", resp.Status, err)
	}
	time.Sleep(2 * time.Second)
	if got := applied(); got != first {
		t.Fatalf("a refused webhook brought %s in", got)
	}

	start := time.Now()
	if code, err := s.webhook("main", second, webhookSecret); err != nil || code != http.StatusAccepted {
		t.Fatalf("valid webhook: %d, %v", code, err)
	}
	s.waitFor("the second revision", 10*time.Second, func() error {
		if applied() != second {
			return errors.New("not yet")
		}
		return nil
	})
	t.Logf("valid webhook -> revision applied: %v", time.Since(start))
}
