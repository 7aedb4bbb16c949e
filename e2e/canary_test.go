package e2e

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/canary"
	"bosun/store"
)

// canaryWeb is the Deployment web of the canary tests: replicas pods of
// the hello image of version (which answers "version <version>"), with
// env TAG=tag (another template for the same image), the readiness probe
// path given and the canary annotations given (one "key: value" each).
func canaryWeb(replicas int, version, tag, readyPath string, annotations ...string) string {
	ann := ""
	if len(annotations) > 0 {
		ann = "  annotations:\n"
		for _, a := range annotations {
			ann += "    " + a + "\n"
		}
	}
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
` + ann + `spec:
  replicas: ` + fmt.Sprint(replicas) + `
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: localhost/bosun-hello:` + version + `
        imagePullPolicy: IfNotPresent
        ports:
        - {name: http, containerPort: 8080}
        readinessProbe:
          httpGet: {path: ` + readyPath + `, port: http}
          periodSeconds: 1
          failureThreshold: 1
        lifecycle:
          preStop:
            sleep: {seconds: 1}
        env:
        - {name: TAG, value: "` + tag + `"}
`
}

// canaryService gives web a virtual IP, and client is a pod to ask from.
const canaryService = `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: client
spec:
  replicas: 1
  selector:
    matchLabels: {app: client}
  template:
    metadata:
      labels: {app: client}
    spec:
      containers:
      - name: client
        image: localhost/bosun-hello:v1
        imagePullPolicy: IfNotPresent
        ports:
        - {name: http, containerPort: 8080}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
`

// onBranch commits files on branch (created from main if new) and comes
// back to main; it returns the commit.
func (r *gitRepo) onBranch(branch string, files map[string]string, msg string) string {
	r.t.Helper()
	if r.git("branch", "--list", branch) == "" {
		r.git("checkout", "-q", "-b", branch, "main")
	} else {
		r.git("checkout", "-q", branch)
	}
	for path, content := range files {
		r.write(path, content)
	}
	c := r.commit(msg)
	r.git("checkout", "-q", "main")
	return c
}

// tracks counts web's ready pods by track and returns them.
func canaryPods(pods []corev1.Pod) (stable, canaryReady []corev1.Pod) {
	for _, p := range readyPods(pods, "web-") {
		switch p.Labels[canary.LabelTrack] {
		case canary.TrackCanary:
			canaryReady = append(canaryReady, p)
		default:
			stable = append(stable, p)
		}
	}
	return stable, canaryReady
}

// waitCanary waits until web runs stable ready stable pods and canaries
// ready canary pods of version, at weight (and no other web pod).
func (s *stack) waitCanary(stable, canaries int, version string, weight int, timeout time.Duration) []corev1.Pod {
	s.t.Helper()
	var out []corev1.Pod
	s.waitFor(fmt.Sprintf("%d stable and %d canary pods of %s at %d%%", stable, canaries, version, weight), timeout, func() error {
		all := withPrefix(s.pods(), "web-")
		st, cn := canaryPods(all)
		if len(all) != stable+canaries || len(st) != stable || len(cn) != canaries {
			return fmt.Errorf("%d web pods, %d stable and %d canary ready", len(all), len(st), len(cn))
		}
		for _, p := range cn {
			if w := p.Annotations[canary.AnnotationPodWeight]; w != fmt.Sprint(weight) {
				return fmt.Errorf("canary pod %s has weight %q", p.Name, w)
			}
			body, err := httpGet("http://" + p.Status.PodIP + ":8080/")
			if err != nil || !strings.Contains(body, "version "+version) {
				return fmt.Errorf("canary pod %s answers %q, %v", p.Name, body, err)
			}
		}
		for _, p := range st {
			if canaries > 0 && p.Annotations[canary.AnnotationPodWeight] != fmt.Sprint(100-weight) {
				return fmt.Errorf("stable pod %s has weight %q", p.Name, p.Annotations[canary.AnnotationPodWeight])
			}
		}
		out = cn
		return nil
	})
	return out
}

// canaryShare asks web's virtual IP n times from the client pod, each on
// a new connection, and returns the share the canary pods answered.
func (s *stack) canaryShare(t *testing.T, client corev1.Pod, canaries []corev1.Pod, n int) float64 {
	t.Helper()
	var mu sync.Mutex
	i := 0
	got := countAnswers(n, 10, func() (string, error) {
		mu.Lock()
		i++
		k := i
		mu.Unlock()
		return askFrom(client, "http://"+caseVariant(webName, k)+"/")
	})
	hit := 0
	for _, p := range canaries {
		hit += got[p.Name]
	}
	if got["error"] > 0 {
		t.Errorf("%d of %d requests failed: %v", got["error"], n, got)
	}
	share := float64(hit) / float64(n)
	t.Logf("%d connections: %.1f %% to the %d canary pods: %v", n, 100*share, len(canaries), got)
	return share
}

// canaryEntries are the history's entries of web's canary, oldest first,
// as "<result> <short commit>: <detail>".
func (s *stack) canaryEntries() []string {
	var out []string
	for _, e := range s.history() {
		if e.Canary == "default/web" {
			out = append(out, fmt.Sprintf("%s %.7s: %s", e.Result, e.Commit, e.Detail))
		}
	}
	slices.Reverse(out)
	return out
}

func (s *stack) waitEntry(result, commit string, timeout time.Duration) string {
	s.t.Helper()
	var found string
	s.waitFor(fmt.Sprintf("history: %s %.7s", result, commit), timeout, func() error {
		for _, e := range s.canaryEntries() {
			if strings.HasPrefix(e, fmt.Sprintf("%s %.7s", result, commit)) {
				found = e
				return nil
			}
		}
		return fmt.Errorf("canary history %q", s.canaryEntries())
	})
	return found
}

// startGatedStack runs Prometheus (promtest) and a webhook stack that asks
// it (--prometheus-url) and that it scrapes, and waits for web's 4 pods.
func startGatedStack(t testing.TB, repo *gitRepo) *stack {
	t.Helper()
	p := newPrometheus(t)
	s := startWebhookStackTB(t, repo, "--prometheus-url", p.URL)
	scrapeStacks(t, p, s)
	s.waitWeb(4)
	return s
}

// waitWeb waits until n web pods are ready.
func (s *stack) waitWeb(n int) {
	s.t.Helper()
	s.waitFor(fmt.Sprintf("%d web pods ready", n), 120*time.Second, func() error {
		if got := len(readyPods(s.pods(), "web-")); got != n {
			return fmt.Errorf("%d ready", got)
		}
		return nil
	})
}

// notifyBranch delivers the webhook of a push to branch.
func (s *stack) notifyBranch(branch, commit string) time.Time {
	s.t.Helper()
	code, err := s.webhook(branch, commit, webhookSecret)
	if err != nil || code != http.StatusAccepted {
		s.t.Fatalf("webhook for %s %s: %d, %v", branch, commit, code, err)
	}
	return time.Now()
}

// TestCanary is the story of the issue: a branch named on main runs as a
// canary with an exact share of new connections whatever the pod counts;
// a bad commit aborts by itself and is never retried; a good one is
// promoted by merging, its pods untouched; removing the annotation ends a
// canary. Every commit arrives by webhook.
func TestCanary(t *testing.T) {
	t.Parallel()
	const branch = "canary/web-v2"
	ann := []string{"bosun.dev/canary-branch: " + branch, `bosun.dev/canary-weight: "10"`, "bosun.dev/canary-step-interval: 5s"}
	repo := newGitRepo(t)
	repo.write("web.yaml", canaryWeb(4, "v1", "t1", "/healthz", ann...))
	repo.write("svc.yaml", canaryService)
	repo.commit("web v1, canary of " + branch)
	c2 := repo.onBranch(branch, map[string]string{"web.yaml": canaryWeb(4, "v2", "t2", "/healthz", ann...)}, "web v2")
	s := startWebhookStack(t, repo)

	cn := s.waitCanary(4, 1, "v2", 10, 120*time.Second)
	s.waitEntry(store.ResultCanaryStarted, c2, 10*time.Second)
	s.waitFor("the status to show the followed branch", 15*time.Second, func() error {
		st, err := s.status()
		if err != nil || len(st.Sync.Branches) != 1 || st.Sync.Branches[0] != (store.BranchStatus{Name: branch, Commit: c2}) {
			return fmt.Errorf("branches %+v, %v", st.Sync.Branches, err)
		}
		return nil
	})
	client := readyPods(s.pods(), "client-")[0]
	s.clusterIP("web")

	t.Run("10 % of new connections with 1 canary pod and 4 stable", func(t *testing.T) {
		// The proxy programs the canary once it is ready: wait for its
		// first answer through the VIP.
		s.waitFor("the canary to answer through the VIP", 20*time.Second, func() error {
			if s.canaryShare(t, client, cn, 50) == 0 {
				return fmt.Errorf("no answer from the canary yet")
			}
			return nil
		})
		if share := s.canaryShare(t, client, cn, 1000); share < 0.07 || share > 0.13 {
			t.Fatalf("canary share %.3f, want 0.10 ± 0.03", share)
		}
	})

	t.Run("10 % with 3 canary pods", func(t *testing.T) {
		repo.write("web.yaml", canaryWeb(4, "v1", "t1", "/healthz", append(ann, `bosun.dev/canary-replicas: "3"`)...))
		s.push("three canary pods")
		cn3 := s.waitCanary(4, 3, "v2", 10, 60*time.Second)
		time.Sleep(500 * time.Millisecond) // the proxy's turn
		if share := s.canaryShare(t, client, cn3, 1000); share < 0.07 || share > 0.13 {
			t.Fatalf("canary share %.3f, want 0.10 ± 0.03", share)
		}
		repo.write("web.yaml", canaryWeb(4, "v1", "t1", "/healthz", ann...))
		s.push("one canary pod")
		s.waitCanary(4, 1, "v2", 10, 60*time.Second)
	})

	var good string
	t.Run("a commit whose pods never get ready is aborted and never retried", func(t *testing.T) {
		bad := repo.onBranch(branch, map[string]string{"web.yaml": canaryWeb(4, "v2", "t3", "/nope", ann...)}, "web v3: broken readiness")
		pushed := s.notifyBranch(branch, bad)
		s.waitEntry(store.ResultCanaryStarted, bad, 15*time.Second)
		entry := s.waitEntry(store.ResultCanaryAborted, bad, 20*time.Second)
		t.Logf("aborted %v after the push: %s", time.Since(pushed).Round(time.Millisecond), entry)
		if !strings.Contains(entry, "readiness: pod web-") || !strings.Contains(entry, "not ready for") {
			t.Fatalf("the reason does not name the signal: %s", entry)
		}
		s.waitCanary(4, 0, "", 0, 20*time.Second)
		for _, p := range readyPods(s.pods(), "web-") {
			if _, ok := p.Labels[canary.LabelTrack]; ok {
				t.Fatalf("stable pod %s still on a track after the abort: %v", p.Name, p.Labels)
			}
		}
		stable := readyPods(s.pods(), "web-")
		got := countAnswers(200, 10, func() (string, error) { return askFrom(client, "http://"+caseVariant(webName, 1)+"/") })
		if !allIn(got, stable) || got["error"] > 0 {
			t.Fatalf("after the abort, answers %v are not all from the stable pods", got)
		}
		// The same commit again (a webhook, a sync, an unrelated commit on
		// main): nothing starts.
		s.notifyBranch(branch, bad)
		repo.write("unrelated.yaml", "")
		s.push("unrelated")
		time.Sleep(3 * time.Second)
		if n := len(withPrefix(s.pods(), "web-")); n != 4 {
			t.Fatalf("%d web pods after the aborted commit came again", n)
		}
		if e := s.canaryEntries(); strings.Count(strings.Join(e, "\n"), fmt.Sprintf("%s %.7s", store.ResultCanaryStarted, bad)) != 1 {
			t.Fatalf("the aborted commit started again: %q", e)
		}
		// A new commit on the branch is a new canary.
		good = repo.onBranch(branch, map[string]string{"web.yaml": canaryWeb(4, "v2", "t4", "/healthz", ann...)}, "web v4: readiness fixed")
		s.notifyBranch(branch, good)
		s.waitEntry(store.ResultCanaryStarted, good, 15*time.Second)
		s.waitCanary(4, 1, "v2", 10, 30*time.Second)
	})

	t.Run("merging the branch promotes it: its pod becomes stable without a restart, every request served", func(t *testing.T) {
		if good == "" {
			t.Skip("no good canary")
		}
		_, cn := canaryPods(withPrefix(s.pods(), "web-"))
		if len(cn) != 1 {
			t.Fatalf("%d canary pods", len(cn))
		}
		was := cn[0]
		vip := s.clusterIP("web")
		var served, failed atomic.Int64
		var lastErr atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := askHost("http://" + vip + "/"); err != nil {
						failed.Add(1)
						lastErr.Store(err.Error())
					} else {
						served.Add(1)
					}
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
		repo.git("merge", "-q", "--no-edit", branch)
		merged := repo.git("rev-parse", "HEAD")
		start := s.notifyBranch("main", merged)
		s.waitEntry(store.ResultCanaryPromoted, good, 15*time.Second)
		waitAllOn(s, "localhost/bosun-hello:v2", "v2", 90*time.Second)
		t.Logf("merge -> rollout complete: %v", time.Since(start).Round(time.Millisecond))
		close(stop)
		wg.Wait()
		if failed.Load() > 0 {
			t.Errorf("%d of %d requests failed during the promotion (last: %v)", failed.Load(), served.Load()+failed.Load(), lastErr.Load())
		}
		t.Logf("%d requests served during the promotion", served.Load())
		now := readyPods(s.pods(), "web-")
		i := slices.IndexFunc(now, func(p corev1.Pod) bool { return p.UID == was.UID })
		if i < 0 {
			t.Fatalf("the canary pod %s is gone after the promotion", was.Name)
		}
		p := now[i]
		before, after := was.Status.ContainerStatuses[0], p.Status.ContainerStatuses[0]
		if after.RestartCount != 0 || before.State.Running == nil || after.State.Running == nil || !after.State.Running.StartedAt.Equal(&before.State.Running.StartedAt) {
			t.Fatalf("the canary pod's container restarted: before %+v, after %+v", before, after)
		}
		if _, ok := p.Labels[canary.LabelTrack]; ok {
			t.Fatalf("the promoted pod is still on a track: %v", p.Labels)
		}
	})

	t.Run("removing the annotation ends a running canary", func(t *testing.T) {
		c5 := repo.onBranch(branch, map[string]string{"web.yaml": canaryWeb(4, "v1", "t5", "/healthz", ann...)}, "web v5")
		s.notifyBranch(branch, c5)
		s.waitCanary(4, 1, "v1", 10, 60*time.Second)
		repo.write("web.yaml", canaryWeb(4, "v2", "t4", "/healthz"))
		s.push("no more canary")
		s.waitEntry(store.ResultCanaryEnded, c5, 15*time.Second)
		s.waitCanary(4, 0, "", 0, 30*time.Second)
		for _, p := range readyPods(s.pods(), "web-") {
			if _, ok := p.Labels[canary.LabelTrack]; ok {
				t.Fatalf("pod %s still on a track: %v", p.Name, p.Labels)
			}
		}
	})
	t.Logf("canary history:\n%s", strings.Join(s.canaryEntries(), "\n"))
}

// TestCanary_failover: a branch that does not exist, or whose manifests
// are invalid, fails the canary with the reason and leaves main alone; a
// stepped canary goes on where it was after a SIGKILL of the leader, on
// the other replica, and keeps stepping.
func TestCanary_failover(t *testing.T) {
	t.Parallel()
	const branch = "canary/web-steps"
	ann := []string{"bosun.dev/canary-branch: " + branch, `bosun.dev/canary-steps: "10,30,60"`, "bosun.dev/canary-step-interval: 15s"}
	repo := newGitRepo(t)
	repo.write("web.yaml", canaryWeb(4, "v1", "t1", "/healthz", ann...))
	repo.write("svc.yaml", canaryService)
	repo.commit("web v1, canary of a branch to come")
	endpoints := sharedEtcd(t)
	// b leads first and has no agent; a runs the node. SIGKILL of b moves
	// the leadership to a, whose Git clone has never seen the branch.
	b := startControlPlane(t, repo.dir, "--etcd-endpoints", endpoints, "--id", "replica-b")
	b.waitFor("replica-b to lead", 30*time.Second, func() error {
		if st, err := b.status(); err != nil || st.Leader != "replica-b" {
			return fmt.Errorf("leader: %v", err)
		}
		return nil
	})
	a := startStack(t, repo, "--etcd-endpoints", endpoints, "--id", "replica-a")
	a.waitWeb(4)

	t.Run("a missing branch fails the canary; main runs on", func(t *testing.T) {
		a.waitEntry(store.ResultCanaryFailed, "", 15*time.Second)
		e := a.canaryEntries()
		if len(e) != 1 || !strings.Contains(e[0], "branch "+branch+" does not exist") {
			t.Fatalf("history %q", e)
		}
		a.waitCanary(4, 0, "", 0, 5*time.Second)
	})

	t.Run("an invalid branch fails it with file:line", func(t *testing.T) {
		bad := repo.onBranch(branch, map[string]string{"web.yaml": strings.Replace(canaryWeb(4, "v2", "t2", "/healthz", ann...), "replicas: 4", "replicas: -1", 1)}, "invalid")
		entry := a.waitEntry(store.ResultCanaryFailed, bad, 20*time.Second)
		if !strings.Contains(entry, "is invalid: web.yaml:") || !strings.Contains(entry, "spec.replicas: must be >= 0") {
			t.Fatalf("history entry %q", entry)
		}
		a.waitCanary(4, 0, "", 0, 5*time.Second)
	})

	t.Run("SIGKILL of the leader mid-canary: it goes on at the same step", func(t *testing.T) {
		good := repo.onBranch(branch, map[string]string{"web.yaml": canaryWeb(4, "v2", "t2", "/healthz", ann...)}, "web v2")
		a.waitEntry(store.ResultCanaryStarted, good, 20*time.Second)
		a.waitCanary(4, 1, "v2", 10, 60*time.Second)
		stepped := a.waitEntry(store.ResultCanaryStepped, good, 30*time.Second)
		if !strings.Contains(stepped, "10% -> 30%") {
			t.Fatalf("first step: %s", stepped)
		}
		a.waitCanary(4, 2, "v2", 30, 30*time.Second)
		killed := time.Now()
		b.stop(syscall.SIGKILL)
		a.waitFor("replica-a to lead", 20*time.Second, func() error {
			if st, err := a.status(); err != nil || st.Leader != "replica-a" {
				return fmt.Errorf("leader: %v", err)
			}
			return nil
		})
		t.Logf("replica-a leads %v after the SIGKILL", time.Since(killed).Round(time.Millisecond))
		// The new leader fetches the branch, sees the same commit, and
		// goes on from the stored state: 30 %, not back to 10 %.
		time.Sleep(2 * time.Second)
		_, cn := canaryPods(withPrefix(a.pods(), "web-"))
		if len(cn) != 2 || cn[0].Annotations[canary.AnnotationPodWeight] != "30" {
			t.Fatalf("after the failover: %d canary pods, weight %q", len(cn), cn[0].Annotations[canary.AnnotationPodWeight])
		}
		a.waitFor("the step to 60 %", 30*time.Second, func() error {
			if e := a.canaryEntries(); !strings.Contains(e[len(e)-1], "30% -> 60%") {
				return fmt.Errorf("history %q", e)
			}
			return nil
		})
		a.waitCanary(4, 3, "v2", 60, 30*time.Second)
		e := strings.Join(a.canaryEntries(), "\n")
		if n := strings.Count(e, fmt.Sprintf("%s %.7s", store.ResultCanaryStarted, good)); n != 1 {
			t.Fatalf("the canary started %d times:\n%s", n, e)
		}
		t.Logf("canary history:\n%s", e)
	})
}

// exampleCanary is examples/canary/web.yaml with shorter times for a
// test: steps every interval, the error rate over window.
func exampleCanary(t *testing.T, interval, window string) string {
	t.Helper()
	b, err := os.ReadFile("../examples/canary/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "bosun.dev/canary-step-interval: 2m", "bosun.dev/canary-step-interval: "+interval, 1)
	return strings.ReplaceAll(s, "[1m]", "["+window+"]")
}

// trafficTo asks url from the host, on new connections, every few
// milliseconds until the test ends: the canary's share of real traffic,
// for Prometheus to count.
func trafficTo(t *testing.T, url string) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			askHost(url)
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// TestCanary_metricGate runs examples/canary against a real Prometheus
// (Debian's), which finds the pods through bosun's HTTP service discovery:
// a canary that fails half its requests is aborted by the error-rate gate,
// naming the value; a clean one steps 5 -> 25 -> 50 %.
func TestCanary_metricGate(t *testing.T) {
	t.Parallel()
	const branch = "canary/web-v2"
	web := exampleCanary(t, "6s", "10s")
	repo := newGitRepo(t)
	repo.write("web.yaml", web)
	repo.commit("web v1, canary of " + branch)
	s := startGatedStack(t, repo)
	trafficTo(t, "http://"+s.clusterIP("web")+"/")

	flaky := strings.Replace(strings.Replace(web, "bosun-hello:v1", "bosun-hello:v2", 1),
		"        ports:\n", "        env:\n        - {name: ERROR_RATE, value: \"0.5\"}\n        ports:\n", 1)
	bad := repo.onBranch(branch, map[string]string{"web.yaml": flaky}, "web v2, failing half its requests")
	s.notifyBranch(branch, bad)
	s.waitEntry(store.ResultCanaryStarted, bad, 20*time.Second)
	entry := s.waitEntry(store.ResultCanaryAborted, bad, 60*time.Second)
	t.Log(entry)
	if !strings.Contains(entry, "metric: sum(rate(hello_http_requests_total") || !strings.Contains(entry, "above bosun.dev/canary-max 0.05 (2 of 2 checks failed in a row)") {
		t.Fatalf("the abort does not name the signal, the value and the bound: %s", entry)
	}
	s.waitCanary(4, 0, "", 0, 20*time.Second)

	clean := strings.Replace(web, "bosun-hello:v1", "bosun-hello:v2", 1)
	good := repo.onBranch(branch, map[string]string{"web.yaml": clean}, "web v2")
	s.notifyBranch(branch, good)
	s.waitEntry(store.ResultCanaryStarted, good, 20*time.Second)
	s.waitFor("the canary to step 5 -> 25 -> 50 %", 90*time.Second, func() error {
		e := s.canaryEntries()
		if !strings.Contains(e[len(e)-1], "25% -> 50%") {
			return fmt.Errorf("history %q", e)
		}
		return nil
	})
	s.waitCanary(4, 2, "v2", 50, 20*time.Second)
	e := s.canaryEntries()
	t.Logf("canary history:\n%s", strings.Join(e, "\n"))
	if strings.Contains(strings.Join(e, "\n"), fmt.Sprintf("%s %.7s", store.ResultCanaryAborted, good)) {
		t.Fatalf("the clean canary was aborted")
	}
}
