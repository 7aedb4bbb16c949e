package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bosun/store"
)

// BenchmarkCanary measures, per iteration, the two halves of a canary's
// life that need no Prometheus (images cached, one node):
//   - push-to-traffic: a commit on the canary branch, announced by
//     webhook, until a pod of its template answers through the Service's
//     virtual IP (asked in a loop from the host, each on a new connection,
//     about a millisecond apart; the canary's one pod takes 10 %);
//   - merge-to-complete: the branch merged into main, announced by
//     webhook, until the Deployment runs 4 ready pods of the canary's
//     template and nothing else, the canary's pod among them (default
//     strategy: maxSurge and maxUnavailable 25 %).
func BenchmarkCanary(b *testing.B) {
	const branch = "canary/bench"
	ann := []string{"bosun.dev/canary-branch: " + branch, `bosun.dev/canary-weight: "10"`, "bosun.dev/canary-step-interval: 1m"}
	repo := newGitRepo(b)
	repo.write("web.yaml", canaryWeb(4, "v1", "t0", "/healthz", ann...))
	repo.write("svc.yaml", canaryService)
	repo.commit("web")
	s := startWebhookStackTB(b, repo)
	s.waitWeb(4)
	vip := s.clusterIP("web")
	var traffic, promote time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		stable := map[string]bool{}
		for _, p := range s.pods() {
			stable[p.Name] = true
		}
		version := []string{"v1", "v2"}[(i+1)%2]
		repo.git("checkout", "-q", "-B", branch, "main")
		repo.write("web.yaml", canaryWeb(4, version, fmt.Sprintf("t%d", i+1), "/healthz", ann...))
		c := repo.commit(fmt.Sprintf("canary %d", i))
		repo.git("checkout", "-q", "main")
		b.StartTimer()
		at := s.notifyBranch(branch, c)
		deadline := time.Now().Add(60 * time.Second)
		for {
			name, err := askHost("http://" + vip + "/")
			if err == nil && !stable[name] && strings.HasPrefix(name, "web-") {
				traffic += time.Since(at)
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("no answer from the canary of %s within 60 s", c)
			}
		}
		b.StopTimer()
		s.waitEntry("canary started", c, 10*time.Second)
		repo.git("merge", "-q", "--no-edit", branch)
		b.StartTimer()
		at = s.notifyBranch("main", repo.git("rev-parse", "HEAD"))
		for {
			d := s.deployment("web")
			pods := withPrefix(s.pods(), "web-")
			if d != nil && len(pods) == 4 && len(readyPods(pods, "web-")) == 4 && d.Status.UpdatedReplicas == 4 && d.Status.AvailableReplicas == 4 && d.Status.Replicas == 4 && d.Status.ObservedGeneration == d.Generation {
				fresh := 0
				for _, p := range pods {
					if hasEnv(&p, "TAG", fmt.Sprintf("t%d", i+1)) {
						fresh++
					}
				}
				if fresh == 4 {
					promote += time.Since(at)
					break
				}
			}
			if time.Since(at) > 90*time.Second {
				b.Fatalf("promotion of %s not complete within 90 s", c)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	b.ReportMetric(float64(traffic.Microseconds())/1000/float64(b.N), "ms/push-to-traffic")
	b.ReportMetric(float64(promote.Microseconds())/1000/float64(b.N), "ms/merge-to-complete")
}

// BenchmarkCanaryAbort measures, per iteration, how long a canary that
// the metric gate aborts keeps receiving traffic after the decision: a
// commit whose pods fail every request (ERROR_RATE=1) runs as a 50 %
// canary while the host asks the virtual IP in a loop (a 500 is the
// canary's answer: stable never fails); Prometheus, asked every 2 s,
// sees the error rate; the leader aborts (the canary's EndedAt, read from
// etcd, is the decision). Reported: decision-to-stable, from EndedAt to
// the canary's last answer (0 when it answered last before the decision,
// which a pass that deletes the pods and the proxy's next sync can beat).
func BenchmarkCanaryAbort(b *testing.B) {
	const branch = "canary/abort"
	ann := []string{"bosun.dev/canary-branch: " + branch, `bosun.dev/canary-weight: "50"`, "bosun.dev/canary-step-interval: 2s",
		`bosun.dev/canary-query: sum(rate(hello_http_requests_total{deployment=\"web\",track=\"canary\",code=\"500\"}[4s])) / sum(rate(hello_http_requests_total{deployment=\"web\",track=\"canary\"}[4s]))`,
		`bosun.dev/canary-max: "0.1"`}
	repo := newGitRepo(b)
	web := strings.Replace(canaryWeb(4, "v1", "t0", "/healthz", ann...), "      labels: {app: web}\n",
		"      labels: {app: web}\n      annotations: {prometheus.io/scrape: \"true\", prometheus.io/port: \"8080\"}\n", 1)
	repo.write("web.yaml", web)
	repo.write("svc.yaml", canaryService)
	repo.commit("web")
	s := startGatedStack(b, repo)
	vip := s.clusterIP("web")
	cli, err := store.Dial([]string{"http://" + s.etcdAddr})
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	st := store.New(cli)

	// The host asks the VIP all along; lastFail is the time of the latest
	// 500 (a canary's answer).
	var lastFail atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := newConns.Get("http://" + vip + "/")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusInternalServerError {
						lastFail.Store(time.Now().UnixNano())
					}
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()

	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		bad := strings.Replace(web, "        env:\n", "        env:\n        - {name: ERROR_RATE, value: \"1\"}\n", 1)
		bad = strings.Replace(bad, `value: "t0"`, fmt.Sprintf(`value: "bad%d"`, i), 1)
		c := repo.onBranch(branch, map[string]string{"web.yaml": bad}, fmt.Sprintf("bad %d", i))
		s.notifyBranch(branch, c)
		s.waitEntry("canary aborted", c, 60*time.Second)
		// Long enough for any straggling answer to be counted.
		time.Sleep(time.Second)
		var ended time.Time
		snap, err := st.Snapshot(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		for _, cs := range snap.Canaries {
			if cs.Name == "web" && cs.Commit == c {
				ended = cs.EndedAt
			}
		}
		if ended.IsZero() {
			b.Fatalf("no EndedAt for %s", c)
		}
		if last := time.Unix(0, lastFail.Load()); last.After(ended) {
			total += last.Sub(ended)
		}
		if n := len(withPrefix(s.pods(), "web-")); n != 4 {
			b.Fatalf("%d web pods after the abort", n)
		}
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/decision-to-stable")
}
