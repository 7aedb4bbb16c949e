package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// canaryDeployment is rolloutDeployment annotated to run the pod template
// of branch beside it, with 25 % of new connections.
func canaryDeployment(branch, image string, env ...string) string {
	return strings.Replace(rolloutDeployment(image, env...), "  name: web\n",
		"  name: web\n  annotations:\n    bosun.dev/canary-branch: "+branch+"\n    bosun.dev/canary-weight: \"25\"\n", 1)
}

// webhookResult delivers a GitHub push event for branch and returns the
// status and the body ("sync triggered", "ignored: ...").
func (s *stack) webhookResult(branch, after string) (int, string, error) {
	body, _ := json.Marshal(map[string]any{"ref": "refs/heads/" + branch, "after": after, "pusher": map[string]string{"name": "e2e"}})
	mac := hmac.New(sha256.New, []byte(webhookSecret))
	mac.Write(body)
	req, _ := http.NewRequest(http.MethodPost, s.url("/api/v1/webhooks/git"), bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := s.tlsClient().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// commitOnBranch commits deployment as web/deployment.yaml on branch
// (created from main when new; amended, as a force-push would, when amend
// is set) and leaves the repository on main.
func commitOnBranch(repo *gitRepo, branch, deployment, msg string, amend bool) string {
	repo.t.Helper()
	if repo.git("branch", "--list", branch) == "" {
		repo.git("checkout", "-q", "-b", branch)
	} else {
		repo.git("checkout", "-q", branch)
	}
	defer repo.git("checkout", "-q", "main")
	repo.write("web/deployment.yaml", deployment)
	repo.git("add", "-A")
	if amend {
		repo.git("commit", "-q", "--amend", "-m", msg)
	} else {
		repo.git("commit", "-q", "-m", msg)
	}
	return repo.git("rev-parse", "HEAD")
}

// trackCanaryPods returns web's pods on the canary track.
func trackCanaryPods(pods []corev1.Pod) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range withPrefix(pods, "web-") {
		if p.Labels["bosun.dev/track"] == "canary" && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func envOf(p *corev1.Pod, name string) string {
	for _, e := range p.Spec.Containers[0].Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// TestBranches_webhookBringsCanaryBranchHeads: with a one-hour poll, only
// webhooks bring commits in. A push to the canary branch that main names
// brings the branch's pod template in as canary pods, a force-push replaces
// them, and a push to a branch nobody names is ignored.
func TestBranches_webhookBringsCanaryBranchHeads(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	const branch = "canary/web-v2"
	repo := newGitRepo(t)
	repo.write("web/service.yaml", webService)
	repo.write("web/deployment.yaml", canaryDeployment(branch, "localhost/bosun-hello:v1", "TRACK=stable"))
	first := repo.commit("web, canary on " + branch)
	s := startWebhookStack(t, repo)
	s.waitFor("main applied", 60*time.Second, func() error {
		st, err := s.status()
		if err != nil || st.Sync.Applied == nil || st.Sync.Applied.Commit != first {
			return errors.New("not yet")
		}
		return nil
	})
	waitAllOn(s, "localhost/bosun-hello:v1", "v1", 90*time.Second)

	// The branch appears after bosun looked for it (and found none): only
	// the webhook can bring it in.
	head := commitOnBranch(repo, branch, canaryDeployment(branch, "localhost/bosun-hello:v2", "TRACK=canary"), "canary v2", false)
	if code, body, err := s.webhookResult("feature-x", head); err != nil || code != http.StatusAccepted || !strings.Contains(body, "ignored: branch feature-x") {
		t.Errorf("push to an unnamed branch: %d %s %v, want 202 ignored", code, body, err)
	}
	var sent time.Time
	s.waitFor("the webhook of "+branch+" to trigger", 30*time.Second, func() error {
		// The leader names the branch once its absence was recorded; a
		// real host would deliver once, later than that.
		code, body, err := s.webhookResult(branch, head)
		if err != nil || code != http.StatusAccepted || !strings.Contains(body, "sync triggered") {
			return fmt.Errorf("%d %s %v", code, body, err)
		}
		sent = time.Now()
		return nil
	})
	var readyAt time.Time
	s.waitFor("a ready canary pod of "+branch, 60*time.Second, func() error {
		pods := trackCanaryPods(s.pods())
		ready := readyPods(pods, "web-")
		if len(ready) == 0 {
			return fmt.Errorf("%d canary pods, none ready", len(pods))
		}
		if p := ready[0]; imageOf(&p) != "localhost/bosun-hello:v2" || envOf(&p, "TRACK") != "canary" {
			return fmt.Errorf("canary pod %s runs %s TRACK=%s", p.Name, imageOf(&p), envOf(&p, "TRACK"))
		}
		readyAt = time.Now()
		return nil
	})
	t.Logf("webhook of the canary branch -> canary pod ready: %s", readyAt.Sub(sent).Round(time.Millisecond))

	// Force-push: the rewritten head replaces the canary.
	rewritten := commitOnBranch(repo, branch, canaryDeployment(branch, "localhost/bosun-hello:v2", "TRACK=canary-2"), "canary v2, rewritten", true)
	if code, body, err := s.webhookResult(branch, rewritten); err != nil || code != http.StatusAccepted || !strings.Contains(body, "sync triggered") {
		t.Fatalf("force-push webhook: %d %s %v", code, body, err)
	}
	sent = time.Now()
	s.waitFor("the canary of the rewritten head", 60*time.Second, func() error {
		ready := readyPods(trackCanaryPods(s.pods()), "web-")
		for _, p := range ready {
			if envOf(&p, "TRACK") == "canary-2" {
				readyAt = time.Now()
				return nil
			}
		}
		return fmt.Errorf("%d ready canary pods, none of the rewritten head", len(ready))
	})
	t.Logf("webhook of a force-push -> new canary pod ready: %s", readyAt.Sub(sent).Round(time.Millisecond))
	if got := readyPods(withPrefix(s.pods(), "web-"), "web-"); len(got) < 4 {
		t.Errorf("stable pods during the canary: %d ready web pods, want at least 4", len(got))
	}
}
