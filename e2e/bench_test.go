package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// BenchmarkCommitToReady measures the time from a commit to every pod of a
// 3-replica Deployment being ready on one node, with --poll 1s. Each
// iteration commits a new pod template (an env change), so 3 new pods
// start; images are already imported, as on a node that ran the previous
// version.
func BenchmarkCommitToReady(b *testing.B) {
	repo := newGitRepo(b)
	repo.copyDir("../examples/hello")
	if err := os.RemoveAll(repo.dir + "/sidecar"); err != nil {
		b.Fatal(err)
	}
	repo.commit("hello")
	s := startStack(b, repo, "--poll", "1s")
	orig, err := os.ReadFile(repo.dir + "/web/deployment.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		version := fmt.Sprintf("iteration-%d", i)
		repo.write("web/deployment.yaml", strings.Replace(string(orig), "env:\n", "env:\n        - name: ITERATION\n          value: "+version+"\n", 1))
		start := time.Now()
		repo.commit(version)
		s.waitFor("3 ready pods of "+version, 60*time.Second, func() error {
			web := withPrefix(s.pods(), "web-")
			ready := 0
			for _, p := range readyPods(web, "web-") {
				if hasEnv(&p, "ITERATION", version) {
					ready++
				}
			}
			if ready != 3 || len(web) != 3 {
				return fmt.Errorf("%d of 3 ready, %d web pods", ready, len(web))
			}
			return nil
		})
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/commit-to-ready")
}

func hasEnv(p *corev1.Pod, name, value string) bool {
	for _, e := range p.Spec.Containers[0].Env {
		if e.Name == name && e.Value == value {
			return true
		}
	}
	return false
}
