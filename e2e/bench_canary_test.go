package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
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
	s.waitFor("4 web pods", 120*time.Second, func() error {
		if n := len(readyPods(s.pods(), "web-")); n != 4 {
			return fmt.Errorf("%d ready", n)
		}
		return nil
	})
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
