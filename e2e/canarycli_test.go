package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"bosun/api"
	"bosun/canary"
)

// canaryCLIWeb is main's web: two replicas asking for a 25% canary of
// branch canary/web-v2, with image (v1 or v2) and LOG_LEVEL's value.
func canaryCLIWeb(image, logLevel string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    bosun.dev/canary-branch: canary/web-v2
    bosun.dev/canary-weight: "25"
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: localhost/bosun-hello:` + image + `
        env:
        - {name: LOG_LEVEL, value: ` + logLevel + `}
        ports:
        - {name: http, containerPort: 8080}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
          failureThreshold: 1
`
}

// TestCanaryCLI: on the real stack, what the CLI shows of a canary. Main
// names canary/web-v2 before it exists: `bosun plan --ref` says it would
// not run and why (exit 1) and status shows it failed; once the branch is
// pushed the canary runs, and `bosun canary` (table, details, -o json),
// `bosun status`, `bosun history` and `bosun plan --ref canary/web-v2`
// show it, never the template's env values.
func TestCanaryCLI(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("web.yaml", canaryCLIWeb("v1", "info"))
	repo.commit("web v1, canary of canary/web-v2")
	s := startStack(t, repo)
	s.waitFor("the stable pods", 90*time.Second, func() error {
		if n := len(readyPods(s.pods(), "web-")); n != 2 {
			return fmt.Errorf("%d ready", n)
		}
		return nil
	})

	t.Run("a branch that does not exist", func(t *testing.T) {
		out, code := s.plan("--ref", "canary/web-v2")
		if code != 1 || !strings.Contains(out, "would not run: Failed: branch canary/web-v2 does not exist") {
			t.Errorf("plan: exit %d:\n%s", code, out)
		}
		s.waitFor("the failed canary in status", 30*time.Second, func() error {
			out, err := s.cli("status")
			if err != nil || !strings.Contains(out, "default/web  canary/web-v2") || !strings.Contains(out, "Failed") {
				return fmt.Errorf("%v:\n%s", err, out)
			}
			return nil
		})
	})

	repo.git("checkout", "-q", "-b", "canary/web-v2")
	repo.write("web.yaml", canaryCLIWeb("v2", "debug-value-from-git"))
	commit := repo.commit("web v2")
	repo.git("checkout", "-q", "main")
	var c api.CanaryStatus
	s.waitFor("the canary's pod ready", 90*time.Second, func() error {
		if err := s.getJSON("/api/v1/canaries/default/web", &c); err != nil {
			return err
		}
		if c.State.Phase != canary.Progressing || c.State.Commit != commit || len(c.Pods) != 1 || !c.Pods[0].Ready {
			return fmt.Errorf("phase %s at %s, pods %+v", c.State.Phase, c.State.Commit, c.Pods)
		}
		return nil
	})
	if c.Weight != 25 || c.StableWeight != 75 || c.Desired != 1 || c.Stable != 2 || c.StableReady != 2 || c.Pods[0].IP == "" {
		t.Errorf("canary = %+v", c)
	}

	short := commit[:10]
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"canary"}, []string{"CANARY", "default/web  canary/web-v2@" + short + "  Progressing  25%     1/1   1/1"}},
		{[]string{"canary", "web"}, []string{"Branch:    canary/web-v2 at " + short + ` "web v2"`,
			"Phase:     Progressing, step 1 of 1: canary 25%, stable 75% of new connections", "Pods:      canary 1/1 ready, stable 2/2 ready (2 desired)",
			c.Pods[0].Name + "  true"}},
		{[]string{"canary", "default/web", "-o", "json"}, []string{`"phase": "Progressing"`, `"weight": 25`}},
		{[]string{"status"}, []string{"CANARY", "default/web  canary/web-v2@" + short + "  Progressing  25%"}},
		{[]string{"history"}, []string{"canary started", "canary default/web  canary/web-v2@" + short + " started: "}},
	} {
		out, err := s.cli(tc.args...)
		if err != nil {
			t.Errorf("bosun %q: %v\n%s", tc.args, err, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("bosun %q lacks %q:\n%s", tc.args, w, out)
			}
		}
		if strings.Contains(out, "debug-value-from-git") {
			t.Errorf("bosun %q shows an env value of the canary's template:\n%s", tc.args, out)
		}
	}

	out, code := s.plan("--ref", "canary/web-v2")
	for _, w := range []string{
		"Canary of Deployment default/web from branch canary/web-v2@" + short,
		"now:      Progressing at " + commit[:12] + ", step 1, 25%",
		"runs:     1 canary pod of template",
		"container app: image localhost/bosun-hello:v1 -> localhost/bosun-hello:v2",
		"container app: env ~LOG_LEVEL",
		"If canary/web-v2 were merged into main:",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("plan lacks %q:\n%s", w, out)
		}
	}
	if code != 2 {
		t.Errorf("plan: exit %d, want 2 (merging changes web)", code)
	}
	var e error
	if out, e = s.cli("canary", "nope"); e == nil || !strings.Contains(out, "no canary for deployment nope: no such Deployment") {
		t.Errorf("bosun canary nope: %v\n%s", e, out)
	}
}
