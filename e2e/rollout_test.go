package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"bosun/store"
)

const webhookSecret = "e2e-webhook-secret"

// rolloutDeployment is a 4-replica Deployment with a readiness probe and a
// rolling update of at most one pod over and one pod under.
func rolloutDeployment(image string, env ...string) string {
	extra := ""
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		extra += fmt.Sprintf("        - name: %s\n          value: %q\n", k, v)
	}
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 4
  progressDeadlineSeconds: 6
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: ` + image + `
        env:
        - name: PORT
          value: "8080"
` + extra + `        ports:
        - {name: http, containerPort: 8080}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
          failureThreshold: 1
        lifecycle:
          preStop:
            sleep: {seconds: 1}
`
}

// webService is headless: the sampler reads the ready endpoints from DNS,
// which answers a Service with a virtual IP with that address alone.
const webService = `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: None
  selector: {app: web}
  ports:
  - {name: http, port: 8080}
`

// startWebhookStack runs bosun with a long poll, so that only webhooks (and
// bosun sync) bring new commits in.
func startWebhookStack(t *testing.T, repo *gitRepo) *stack { return startWebhookStackTB(t, repo) }

func startWebhookStackTB(t testing.TB, repo *gitRepo, extra ...string) *stack {
	secretFile := filepath.Join(t.TempDir(), "webhook-secret")
	if err := os.WriteFile(secretFile, []byte(webhookSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return startStack(t, repo, append([]string{"--poll", "1h", "--webhook-secret-file", secretFile}, extra...)...)
}

// webhook delivers a GitHub push event for branch, signed with secret.
func (s *stack) webhook(branch, after, secret string) (int, error) {
	body, _ := json.Marshal(map[string]any{"ref": "refs/heads/" + branch, "after": after, "pusher": map[string]string{"name": "e2e"}})
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	addr := s.apiAddr
	if s.hookAddr != "" {
		addr = s.hookAddr
	}
	req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/api/v1/webhooks/git", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.tlsClient().Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// push commits and delivers the webhook; it returns the commit and when
// the webhook was accepted.
func (s *stack) push(msg string) (string, time.Time) {
	s.t.Helper()
	s.repo.commit(msg)
	return s.notify()
}

// notify delivers the webhook for the repository's head.
func (s *stack) notify() (string, time.Time) {
	s.t.Helper()
	commit := s.repo.git("rev-parse", "HEAD")
	code, err := s.webhook("main", commit, webhookSecret)
	if err != nil || code != http.StatusAccepted {
		s.t.Fatalf("webhook for %s: %d, %v", commit, code, err)
	}
	return commit, time.Now()
}

func (s *stack) deployment(name string) *appsv1.Deployment {
	s.t.Helper()
	var list struct{ Items []appsv1.Deployment }
	if err := s.getJSON("/api/v1/deployments/"+name, &list); err != nil || len(list.Items) != 1 {
		return nil
	}
	return &list.Items[0]
}

func (s *stack) history() []store.HistoryEntry {
	s.t.Helper()
	var h struct{ Items []store.HistoryEntry }
	if err := s.getJSON("/api/v1/history", &h); err != nil {
		s.t.Fatal(err)
	}
	return h.Items
}

func imageOf(p *corev1.Pod) string { return p.Spec.Containers[0].Image }

// allOn waits until the Deployment web runs exactly 4 ready pods, every one
// of image and answering version.
func waitAllOn(s *stack, image, version string, timeout time.Duration) {
	s.t.Helper()
	s.waitFor("4 ready pods of "+image, timeout, func() error {
		all := withPrefix(s.pods(), "web-")
		ready := readyPods(all, "web-")
		if len(all) != 4 || len(ready) != 4 {
			return fmt.Errorf("%d pods, %d ready", len(all), len(ready))
		}
		for _, p := range ready {
			if imageOf(&p) != image {
				return fmt.Errorf("pod %s runs %s", p.Name, imageOf(&p))
			}
			body, err := httpGet("http://" + p.Status.PodIP + ":8080/")
			if err != nil || !strings.Contains(body, "version "+version) {
				return fmt.Errorf("pod %s answers %q, %v", p.Name, body, err)
			}
		}
		return nil
	})
}

// sampler checks, every 100 ms, that DNS answers at least min endpoints and
// that every answered endpoint serves HTTP. Pods leave DNS as soon as they
// are deleted, and their preStop hook (sleep 1 s) keeps them serving for a
// while after that, so even a client with a slightly stale answer is
// served.
type sampler struct {
	s       *stack
	min     int
	stop    chan struct{}
	done    chan struct{}
	samples int
	fewest  int
	errs    []string
}

func startSampler(s *stack, min int) *sampler {
	sm := &sampler{s: s, min: min, stop: make(chan struct{}), done: make(chan struct{}), fewest: 1 << 30}
	go func() {
		defer close(sm.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			sm.sample()
			select {
			case <-sm.stop:
				sm.sample() // the final state counts too
				return
			case <-tick.C:
			}
		}
	}()
	return sm
}

func (sm *sampler) sample() {
	r, err := sm.s.lookup(webName, mdns.TypeA)
	if err != nil {
		sm.errs = append(sm.errs, "DNS: "+err.Error())
		return
	}
	ips := aRecords(r)
	sm.samples++
	sm.fewest = min(sm.fewest, len(ips))
	if len(ips) < sm.min {
		sm.errs = append(sm.errs, fmt.Sprintf("DNS answered %d endpoints (%v), want >= %d", len(ips), ips, sm.min))
	}
	for _, ip := range ips {
		if _, err := httpGet("http://" + ip + ":8080/"); err != nil {
			sm.errs = append(sm.errs, fmt.Sprintf("endpoint %s answered by DNS does not serve: %v", ip, err))
		}
	}
}

func (sm *sampler) finish(t *testing.T) {
	t.Helper()
	close(sm.stop)
	<-sm.done
	t.Logf("sampled DNS %d times; fewest endpoints answered: %d", sm.samples, sm.fewest)
	if sm.samples < 2 {
		t.Errorf("only %d samples", sm.samples)
	}
	for _, e := range sm.errs {
		t.Error(e)
	}
}

// TestRollout is the daily life of a bosun user: deploy by commit, roll
// forward without dropping traffic, stall on a bad version while the old
// one serves, revert, and supersede a rollout with a newer commit. Every
// commit arrives by webhook.
func TestRollout(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("web/deployment.yaml", rolloutDeployment("localhost/bosun-hello:v1"))
	repo.write("web/service.yaml", webService)
	repo.commit("web v1")
	s := startWebhookStack(t, repo)
	waitAllOn(s, "localhost/bosun-hello:v1", "v1", 60*time.Second)

	t.Run("rolling update v1 -> v2 never drops below replicas - maxUnavailable", func(t *testing.T) {
		sm := startSampler(s, 3)
		repo.write("web/deployment.yaml", rolloutDeployment("localhost/bosun-hello:v2"))
		s.push("web v2")
		waitAllOn(s, "localhost/bosun-hello:v2", "v2", 60*time.Second)
		sm.finish(t)
	})

	t.Run("git revert rolls back to v1", func(t *testing.T) {
		sm := startSampler(s, 3)
		repo.git("revert", "--no-edit", "HEAD")
		_, at := s.notify()
		waitAllOn(s, "localhost/bosun-hello:v1", "v1", 60*time.Second)
		t.Logf("revert (new pods, images cached) -> 4 pods ready: %v", time.Since(at))
		sm.finish(t)
	})

	var bad string
	t.Run("a version that never gets ready stalls, fails, and v1 keeps serving", func(t *testing.T) {
		sm := startSampler(s, 3)
		repo.write("web/deployment.yaml", rolloutDeployment("localhost/bosun-hello:v2", "FAIL_READY=1"))
		bad, _ = s.push("web v2 that never gets ready")
		s.waitFor("the rollout marked failed", 60*time.Second, func() error {
			d := s.deployment("web")
			if d == nil {
				return fmt.Errorf("no deployment")
			}
			for _, c := range d.Status.Conditions {
				if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
					return nil
				}
			}
			return fmt.Errorf("conditions %+v", d.Status.Conditions)
		})
		if out, _ := s.cli("status"); !strings.Contains(out, "failed: ReplicaSet") {
			t.Errorf("bosun status does not show the failed rollout:\n%s", out)
		}
		// Failed: no more new pods; the old ones keep serving.
		before := podIdentity(withPrefix(s.pods(), "web-"))
		time.Sleep(3 * time.Second)
		after := podIdentity(withPrefix(s.pods(), "web-"))
		if fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("pods changed after the rollout failed:\nbefore %v\nafter  %v", before, after)
		}
		v1 := 0
		for _, p := range readyPods(s.pods(), "web-") {
			if imageOf(&p) == "localhost/bosun-hello:v1" {
				v1++
			}
		}
		if v1 < 3 {
			t.Errorf("%d ready v1 pods while v2 stalls, want >= 3", v1)
		}
		sm.finish(t)
		h := s.history()
		if len(h) == 0 || h[0].Commit != bad || h[0].Result != store.ResultRolloutFailed {
			t.Errorf("newest history entry = %+v, want %s rollout failed", h[0], bad)
		}
	})

	t.Run("git revert of the bad commit by webhook: all v1 again", func(t *testing.T) {
		sm := startSampler(s, 3)
		repo.git("revert", "--no-edit", "HEAD")
		_, at := s.notify()
		waitAllOn(s, "localhost/bosun-hello:v1", "v1", 60*time.Second)
		t.Logf("webhook of the revert -> 4 v1 pods ready: %v", time.Since(at))
		sm.finish(t)
	})

	t.Run("a newer commit supersedes a rollout in progress", func(t *testing.T) {
		// The 6 s deadline that makes the stall above quick would fail a
		// rollout whose pods take longer to become ready on a loaded
		// machine; a failed rollout rightly stops, which is not what this
		// subtest is about.
		patient := func(d string) string {
			return strings.Replace(d, "progressDeadlineSeconds: 6", "progressDeadlineSeconds: 120", 1)
		}
		repo.write("web/deployment.yaml", patient(rolloutDeployment("localhost/bosun-hello:v2")))
		first, _ := s.push("web v2 again")
		s.waitFor("the v2 rollout to start", 30*time.Second, func() error {
			for _, p := range withPrefix(s.pods(), "web-") {
				if imageOf(&p) == "localhost/bosun-hello:v2" {
					return nil
				}
			}
			return fmt.Errorf("no v2 pod yet")
		})
		repo.write("web/deployment.yaml", patient(rolloutDeployment("localhost/bosun-hello:v2", "GREETING=newest")))
		second, _ := s.push("web v2, newest")
		s.waitFor("every pod on the newest template", 60*time.Second, func() error {
			all := withPrefix(s.pods(), "web-")
			ready := readyPods(all, "web-")
			if len(all) != 4 || len(ready) != 4 {
				return fmt.Errorf("%d pods, %d ready", len(all), len(ready))
			}
			for _, p := range ready {
				if !hasEnv(&p, "GREETING", "newest") {
					return fmt.Errorf("pod %s is not on the newest template", p.Name)
				}
			}
			return nil
		})
		results := map[string]string{}
		for _, e := range s.history() {
			results[e.Commit] = e.Result
		}
		if results[first] != store.ResultSuperseded {
			t.Errorf("history: %s is %q, want superseded", first, results[first])
		}
		s.waitFor("the newest revision recorded as applied", 10*time.Second, func() error {
			for _, e := range s.history() {
				if e.Commit == second && e.Result == store.ResultApplied && e.ReadyAfter > 0 {
					return nil
				}
			}
			return fmt.Errorf("not yet")
		})
	})

	t.Run("history lists every revision with its result", func(t *testing.T) {
		repo.write("web/broken.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: Bad_Name\n")
		broken, _ := s.push("a broken manifest")
		s.waitFor("the rejection", 15*time.Second, func() error {
			if h := s.history(); len(h) == 0 || h[0].Commit != broken || h[0].Result != store.ResultRejected {
				return fmt.Errorf("newest entry %+v", h[0])
			}
			return nil
		})
		out, err := s.cli("history")
		if err != nil {
			t.Fatalf("bosun history: %v\n%s", err, out)
		}
		for _, want := range []string{"rejected", "web/broken.yaml:4:", "applied", "superseded", "rollout failed", "~Deployment/web"} {
			if !strings.Contains(out, want) {
				t.Errorf("bosun history lacks %q:\n%s", want, out)
			}
		}
		var h struct{ Items []store.HistoryEntry }
		out, err = s.cli("history", "-o", "json")
		if err != nil || json.Unmarshal([]byte(out), &h) != nil || len(h.Items) < 7 {
			t.Errorf("bosun history -o json: %v, %d items\n%s", err, len(h.Items), out)
		}
	})
}

// TestRolloutExample runs examples/rollout as a user would: its probes
// pass on the real stack, and a pull request's image change rolls out.
func TestRolloutExample(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.copyDir("../examples/rollout")
	repo.commit("rollout example")
	s := startStack(t, repo)
	waitAllOn(s, "localhost/bosun-hello:v1", "v1", 60*time.Second)
	dep := readFile(t, repo.dir+"/web/deployment.yaml")
	repo.write("web/deployment.yaml", strings.Replace(dep, "bosun-hello:v1", "bosun-hello:v2", 1))
	repo.commit("web v2")
	waitAllOn(s, "localhost/bosun-hello:v2", "v2", 90*time.Second)
	s.waitFor("the rollout complete in the deployment's status", 30*time.Second, func() error {
		d := s.deployment("web")
		if d == nil || d.Status.AvailableReplicas != 4 || d.Status.UpdatedReplicas != 4 || d.Annotations["deployment.kubernetes.io/revision"] != "2" {
			return fmt.Errorf("deployment %+v", d)
		}
		return nil
	})
}
