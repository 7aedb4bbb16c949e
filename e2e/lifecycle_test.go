package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/api"
	"bosun/kube"
)

// brokenInit is a Deployment whose init container fails, and a Never pod
// whose init container fails; fixedInit is the Deployment repaired.
const brokenInit = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: needs-setup
spec:
  replicas: 1
  selector:
    matchLabels: {app: needs-setup}
  template:
    metadata:
      labels: {app: needs-setup}
    spec:
      terminationGracePeriodSeconds: 2
      initContainers:
      - name: setup
        image: localhost/bosun-hello:v1
        args: ["-print", "setup failed", "-exit", "1"]
      containers:
      - name: app
        image: localhost/bosun-hello:v1
---
apiVersion: v1
kind: Pod
metadata:
  name: setup-once
spec:
  restartPolicy: Never
  initContainers:
  - name: setup
    image: localhost/bosun-hello:v1
    args: ["-exit", "3"]
  containers:
  - name: app
    image: localhost/bosun-hello:v1
`

// grpcFailing is the gRPC example with its health service answering
// NOT_SERVING.
const grpcFailing = `apiVersion: v1
kind: Pod
metadata:
  name: grpc-failing
spec:
  containers:
  - name: app
    image: localhost/bosun-hello:v1
    env:
    - {name: GRPC_PORT, value: "9000"}
    - {name: FAIL_GRPC, value: "1"}
    readinessProbe:
      grpc: {port: 9000}
      periodSeconds: 1
`

// TestLifecycle runs examples/lifecycle on the real stack (init containers,
// one writing into an emptyDir the app serves, a sidecar, a Never pod with a
// sidecar, postStart, gRPC probes), then a failing init container that is
// fixed in Git.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.copyDir("../examples/lifecycle")
	repo.write("grpc-failing.yaml", grpcFailing)
	repo.commit("lifecycle examples")
	s := startStack(t, repo)

	pod := func(prefix string) *corev1.Pod {
		for _, p := range s.pods() {
			if strings.HasPrefix(p.Name, prefix) {
				return &p
			}
		}
		return nil
	}
	initStatus := func(p *corev1.Pod, name string) corev1.ContainerStatus {
		for _, cs := range p.Status.InitContainerStatuses {
			if cs.Name == name {
				return cs
			}
		}
		return corev1.ContainerStatus{}
	}
	appStatus := func(p *corev1.Pod, name string) corev1.ContainerStatus {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == name {
				return cs
			}
		}
		return corev1.ContainerStatus{}
	}

	t.Run("two init containers run in order, then the app", func(t *testing.T) {
		// The STATUS column as it goes: each value once, in order.
		var seen []string
		s.waitFor("init-demo ready", 60*time.Second, func() error {
			p := pod("init-demo")
			if p == nil {
				return fmt.Errorf("no pod yet")
			}
			if st := api.SummarizePod(p).Status; len(seen) == 0 || seen[len(seen)-1] != st {
				seen = append(seen, st)
			}
			if p.Status.Phase != corev1.PodRunning || !kube.PodReady(p) {
				return fmt.Errorf("phase %s", p.Status.Phase)
			}
			return nil
		})
		t.Logf("STATUS went %v", seen)
		order := []string{"Init:0/2", "Init:1/2", "Running"}
		last := -1
		for _, st := range seen {
			i := slices.Index(order, st)
			if i < 0 {
				if st != "Pending" && st != "PodInitializing" {
					t.Errorf("unexpected STATUS %q in %v", st, seen)
				}
				continue
			}
			if i < last {
				t.Errorf("STATUS went back from %s to %s: %v", order[last], st, seen)
			}
			last = i
		}
		if !slices.Contains(seen, "Init:1/2") || seen[len(seen)-1] != "Running" {
			t.Errorf("STATUS went %v; want it through Init:1/2 to Running", seen)
		}
		p := pod("init-demo")
		first, second := initStatus(p, "check-config"), initStatus(p, "migrate")
		app := appStatus(p, "app")
		if first.State.Terminated == nil || second.State.Terminated == nil || app.State.Running == nil {
			t.Fatalf("states: %+v / %+v / %+v", first.State, second.State, app.State)
		}
		// Times are in seconds; the init containers sleep 2s and 1s.
		if f, s2, a := first.State.Terminated, second.State.Terminated, app.State.Running; s2.StartedAt.Before(&f.FinishedAt) ||
			a.StartedAt.Before(&s2.FinishedAt) || s2.FinishedAt.Sub(f.StartedAt.Time) < 2*time.Second {
			t.Errorf("out of order: check-config %s-%s, migrate %s-%s, app from %s",
				f.StartedAt, f.FinishedAt, s2.StartedAt, s2.FinishedAt, a.StartedAt)
		}
		// The second init container wrote into an emptyDir the app serves.
		if body, err := httpGet("http://" + p.Status.PodIP + ":8080/file?path=/work/schema"); err != nil || body != "version 2" {
			t.Errorf("the file an init container wrote into the emptyDir: %q, %v", body, err)
		}
		out, err := s.cli("logs", "init-demo", "-c", "check-config")
		if err != nil || out != "config checked\n" {
			t.Errorf("bosun logs init-demo -c check-config: %v\n%q", err, out)
		}
		out, err = s.cli("logs", "init-demo", "-c", "migrate")
		if err != nil || out != "schema migrated\n" {
			t.Errorf("bosun logs init-demo -c migrate: %v\n%q", err, out)
		}
	})

	t.Run("a sidecar serves before the app starts", func(t *testing.T) {
		s.waitFor("proxied ready", 60*time.Second, func() error {
			p := pod("proxied-")
			if p == nil || p.Status.Phase != corev1.PodRunning || !kube.PodReady(p) {
				return fmt.Errorf("not ready: %v", p != nil)
			}
			return nil
		})
		p := pod("proxied-")
		if app := appStatus(p, "app"); app.RestartCount != 0 {
			t.Errorf("app restarted %d times: it started before its sidecar served", app.RestartCount)
		}
		if sum := api.SummarizePod(p); sum.Ready != 2 || sum.Total != 2 || sum.Status != "Running" {
			t.Errorf("summary = %+v", sum)
		}
		out, err := s.cli("get", "pods", p.Name)
		if err != nil || !strings.Contains(out, "2/2") || !strings.Contains(out, "Running") {
			t.Errorf("bosun get pods %s: %v\n%s", p.Name, err, out)
		}
		if body, err := httpGet("http://" + p.Status.PodIP + ":9090/upstream"); err != nil || !strings.Contains(body, "hello from") {
			t.Errorf("sidecar /upstream: %q, %v", body, err)
		}
	})

	t.Run("a Never pod completes although its sidecar runs forever", func(t *testing.T) {
		s.waitFor("batch-demo succeeded", 60*time.Second, func() error {
			if p := pod("batch-demo"); p == nil || p.Status.Phase != corev1.PodSucceeded {
				return fmt.Errorf("not succeeded")
			}
			return nil
		})
		p := pod("batch-demo")
		if side := initStatus(p, "log-shipper"); side.State.Terminated == nil {
			t.Errorf("sidecar still %+v", side.State)
		}
		out, err := s.cli("get", "pods", "batch-demo")
		if err != nil || !strings.Contains(out, "Completed") {
			t.Errorf("bosun get pods batch-demo: %v\n%s", err, out)
		}
	})

	t.Run("postStart exec runs", func(t *testing.T) {
		s.waitFor("hooks-demo ready", 60*time.Second, func() error {
			if p := pod("hooks-demo"); p == nil || !kube.PodReady(p) {
				return fmt.Errorf("not ready")
			}
			return nil
		})
		body, err := httpGet("http://" + pod("hooks-demo").Status.PodIP + ":8080/file?path=/tmp/started")
		if err != nil || body != "by postStart" {
			t.Errorf("file written by postStart: %q, %v", body, err)
		}
	})

	t.Run("gRPC readiness probes", func(t *testing.T) {
		s.waitFor("grpc-demo ready", 60*time.Second, func() error {
			if p := pod("grpc-demo-"); p == nil || !kube.PodReady(p) {
				return fmt.Errorf("not ready")
			}
			return nil
		})
		s.waitFor("grpc-failing to report NOT_SERVING", 60*time.Second, func() error {
			out, err := s.cli("get", "pods", "grpc-failing", "-o", "wide")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			if !strings.Contains(out, `service unhealthy (responded with "NOT_SERVING")`) || !strings.Contains(out, "0/1") {
				return fmt.Errorf("no gRPC probe failure in:\n%s", out)
			}
			return nil
		})
		if p := pod("grpc-failing"); p.Status.Phase != corev1.PodRunning || kube.PodReady(p) {
			t.Errorf("grpc-failing: phase %s, ready %v", p.Status.Phase, kube.PodReady(p))
		}
	})

	t.Run("a failing init container shows Init:Error or Init:CrashLoopBackOff, then is fixed in Git", func(t *testing.T) {
		repo.write("broken.yaml", brokenInit)
		repo.commit("an init container that fails")
		s.waitFor("Init:CrashLoopBackOff", 60*time.Second, func() error {
			out, err := s.cli("get", "pods")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "needs-setup-") && strings.Contains(line, "Init:CrashLoopBackOff") {
					return nil
				}
			}
			return fmt.Errorf("no needs-setup pod in Init:CrashLoopBackOff:\n%s", out)
		})
		if out, err := s.cli("status"); err != nil || !strings.Contains(out, "initializing: default/needs-setup-") {
			t.Errorf("bosun status does not list the pod stuck initializing: %v\n%s", err, out)
		}
		s.waitFor("setup-once failed with Init:Error", 60*time.Second, func() error {
			p := pod("setup-once")
			if p == nil || p.Status.Phase != corev1.PodFailed {
				return fmt.Errorf("not failed")
			}
			if st := api.SummarizePod(p).Status; st != "Init:Error" {
				return fmt.Errorf("STATUS %s", st)
			}
			return nil
		})
		p := pod("needs-setup-")
		if p.Status.Phase != corev1.PodPending || appStatus(p, "app").State.Running != nil {
			t.Errorf("the app of a pod whose init container fails: phase %s, %+v", p.Status.Phase, appStatus(p, "app").State)
		}
		// The log of the current run (a new one starts every backoff).
		s.waitFor("the failing init container's log", 20*time.Second, func() error {
			if out, err := s.cli("logs", p.Name, "-c", "setup"); err != nil || !strings.Contains(out, "setup failed") {
				return fmt.Errorf("bosun logs %s -c setup: %v\n%s", p.Name, err, out)
			}
			return nil
		})

		repo.write("broken.yaml", strings.Replace(brokenInit, `args: ["-print", "setup failed", "-exit", "1"]`, `args: ["-print", "setup done"]`, 1))
		repo.commit("fix the init container")
		s.waitFor("needs-setup running after the fix", 90*time.Second, func() error {
			var ready, other []string
			for _, p := range s.pods() {
				if !strings.HasPrefix(p.Name, "needs-setup-") {
					continue
				}
				if p.Status.Phase == corev1.PodRunning && kube.PodReady(&p) {
					ready = append(ready, p.Name)
				} else {
					other = append(other, p.Name+" "+api.SummarizePod(&p).Status)
				}
			}
			if len(ready) != 1 || len(other) != 0 {
				return fmt.Errorf("ready %v, others %v", ready, other)
			}
			return nil
		})
		p = pod("needs-setup-")
		if cs := initStatus(p, "setup"); cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 || cs.RestartCount != 0 {
			t.Errorf("fixed setup: %+v, restarts %d", cs.State, cs.RestartCount)
		}
	})
}

// BenchmarkCommitToReadyInitContainers measures commit -> pod Ready on
// the real stack (--poll 300ms) for a plain pod, one with two init
// containers that exit at once (the image's task mode), and one with those
// and three projected volumes (a ConfigMap's key, a Secret's key, downward
// API labels). Each iteration commits a new pod, then removes it (untimed).
//
//	go test -run '^$' -bench CommitToReadyInitContainers -benchtime 10x ./e2e
func BenchmarkCommitToReadyInitContainers(b *testing.B) {
	repo := newGitRepo(b)
	repo.write("config.yaml", benchConfig)
	repo.commit("config")
	s := startStack(b, repo)
	seq := 0 // a new pod name per commit, across the benchmark's runs
	for _, v := range []struct {
		name      string
		inits     int
		projected bool
	}{{"plain", 0, false}, {"init=2", 2, false}, {"init=2,projected=3", 2, true}} {
		b.Run(v.name, func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				seq++
				name := fmt.Sprintf("bench-%d", seq)
				repo.write("pod.yaml", benchPod(name, v.inits, v.projected))
				start := time.Now()
				repo.commit(name)
				s.waitFor(name+" ready", 60*time.Second, func() error {
					for _, p := range s.pods() {
						if p.Name == name && kube.PodReady(&p) {
							return nil
						}
					}
					return fmt.Errorf("not ready")
				})
				total += time.Since(start)
				// Remove it, untimed, so its teardown does not compete
				// with the next start.
				b.StopTimer()
				repo.git("rm", "-q", "pod.yaml")
				repo.commit("remove " + name)
				s.waitFor(name+" gone", 60*time.Second, func() error {
					for _, p := range s.pods() {
						if p.Name == name {
							return fmt.Errorf("still there")
						}
					}
					return nil
				})
				time.Sleep(time.Second)
				b.StartTimer()
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/commit-to-ready")
		})
	}
}

const benchConfig = `apiVersion: v1
kind: ConfigMap
metadata:
  name: bench-config
data:
  greeting: hello
---
apiVersion: v1
kind: Secret
metadata:
  name: bench-secret
stringData:
  token: s3cr3t
`

// benchPod is a pod with n init containers and, when projected, three
// projected volumes mounted by its app.
func benchPod(name string, n int, projected bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  labels: {app: bench}\nspec:\n", name)
	if n > 0 {
		b.WriteString("  initContainers:\n")
		for j := range n {
			fmt.Fprintf(&b, "  - name: init%d\n    image: localhost/bosun-hello:v1\n    args: [\"-print\", \"init\"]\n", j)
		}
	}
	b.WriteString("  containers:\n  - name: app\n    image: localhost/bosun-hello:v1\n")
	if projected {
		b.WriteString(`    volumeMounts:
    - {name: config, mountPath: /etc/bench/config}
    - {name: secret, mountPath: /etc/bench/secret}
    - {name: info, mountPath: /etc/bench/info}
  volumes:
  - name: config
    projected:
      sources:
      - configMap: {name: bench-config, items: [{key: greeting, path: greeting}]}
  - name: secret
    projected:
      sources:
      - secret: {name: bench-secret, items: [{key: token, path: token}]}
  - name: info
    projected:
      sources:
      - downwardAPI:
          items:
          - {path: labels, fieldRef: {fieldPath: metadata.labels}}
`)
	}
	return b.String()
}
