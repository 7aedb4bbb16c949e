package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// probePods: one pod whose liveness probe fails (it must be restarted),
// and one whose startup probe keeps failing, which must hold off the same
// failing liveness probe.
const probePods = `apiVersion: v1
kind: Pod
metadata:
  name: live-fail
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: localhost/bosun-hello:v1
    livenessProbe:
      httpGet: {path: /nope, port: 8080}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: slow-start
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: localhost/bosun-hello:v1
    startupProbe:
      exec:
        command: ["/bosun-hello", "-probe", "http://127.0.0.1:9999/"]
      periodSeconds: 1
      failureThreshold: 60
    livenessProbe:
      httpGet: {path: /nope, port: 8080}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: not-ready
spec:
  containers:
  - name: app
    image: localhost/bosun-hello:v1
    env:
    - {name: FAIL_READY, value: "1"}
    readinessProbe:
      httpGet: {path: /healthz, port: 8080}
      periodSeconds: 1
`

// TestProbesAndLogs: probes drive restarts and readiness on the real
// stack; probe results show in `bosun get pods -o wide`; `bosun logs`
// reads and follows a container's log across a restart.
func TestProbesAndLogs(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("pods.yaml", probePods)
	repo.commit("probe pods")
	s := startStack(t, repo)

	pod := func(name string) *corev1.Pod {
		for _, p := range s.pods() {
			if p.Name == name {
				return &p
			}
		}
		return nil
	}
	t.Run("a failing liveness probe restarts the container", func(t *testing.T) {
		s.waitFor("a liveness restart", 30*time.Second, func() error {
			p := pod("live-fail")
			if p == nil || len(p.Status.ContainerStatuses) != 1 {
				return fmt.Errorf("no status yet")
			}
			cs := p.Status.ContainerStatuses[0]
			if cs.RestartCount < 1 || cs.LastTerminationState.Terminated == nil ||
				cs.LastTerminationState.Terminated.Reason != "LivenessProbeFailed" {
				return fmt.Errorf("restarts %d, last state %+v", cs.RestartCount, cs.LastTerminationState)
			}
			return nil
		})
	})

	t.Run("a startup probe holds liveness off", func(t *testing.T) {
		s.waitFor("slow-start running", 30*time.Second, func() error {
			if p := pod("slow-start"); p == nil || p.Status.Phase != corev1.PodRunning {
				return fmt.Errorf("not running")
			}
			return nil
		})
		time.Sleep(4 * time.Second) // liveness would have killed it four times
		p := pod("slow-start")
		cs := p.Status.ContainerStatuses[0]
		if cs.RestartCount != 0 || cs.Started == nil || *cs.Started || cs.Ready {
			t.Errorf("slow-start: restarts %d, started %v, ready %v; want 0, false, false", cs.RestartCount, cs.Started, cs.Ready)
		}
	})

	t.Run("probe results show in get pods -o wide and in status", func(t *testing.T) {
		s.waitFor("not-ready to report its probe", 30*time.Second, func() error {
			out, err := s.cli("get", "pods", "not-ready", "-o", "wide")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			if !strings.Contains(out, "statuscode: 500") {
				return fmt.Errorf("no probe failure in:\n%s", out)
			}
			return nil
		})
		st, err := s.status()
		if err != nil {
			t.Fatal(err)
		}
		for _, svc := range st.Services {
			t.Errorf("unexpected service %v", svc)
		}
		out, _ := s.cli("status")
		if !strings.Contains(out, "not-ready") || !strings.Contains(out, "statuscode: 500") {
			t.Errorf("bosun status does not show the failing probe:\n%s", out)
		}
	})

	t.Run("logs, and following them across a restart", func(t *testing.T) {
		out, err := s.cli("logs", "not-ready")
		if err != nil || !strings.Contains(out, "listening") {
			t.Fatalf("bosun logs not-ready: %v\n%s", err, out)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cmd := exec.CommandContext(ctx, bosun(t), "logs", "-f", "not-ready")
		cmd.Env = s.cliCmd().Env
		var mu sync.Mutex
		var buf strings.Builder
		cmd.Stdout = writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return buf.Write(p)
		})
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Wait()
		lines := func() int {
			mu.Lock()
			defer mu.Unlock()
			return strings.Count(buf.String(), "listening")
		}
		s.waitFor("the first run's log", 10*time.Second, func() error {
			if lines() < 1 {
				return fmt.Errorf("nothing yet")
			}
			return nil
		})
		killContainer(t, s.containerd, "not-ready", "app")
		s.waitFor("the next run's log on the same stream", 30*time.Second, func() error {
			if n := lines(); n < 2 {
				return fmt.Errorf("%d start lines", n)
			}
			return nil
		})
		cmd.Process.Signal(syscall.SIGINT)
		out, err = s.cli("logs", "--previous", "not-ready")
		if err != nil || !strings.Contains(out, "listening") {
			t.Errorf("bosun logs --previous: %v\n%s", err, out)
		}
		if out, err := s.cli("logs", "nope"); err == nil || !strings.Contains(out, "not found") {
			t.Errorf("bosun logs of a missing pod: %v\n%s", err, out)
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
