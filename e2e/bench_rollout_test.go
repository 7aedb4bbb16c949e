package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/api"
)

// BenchmarkRevertByWebhook measures, per iteration, the path of a `git
// revert` of a bad release: the revert is pushed and announced by a GitHub
// webhook, and the 4-replica Deployment rolls back to the previous
// template (images cached, as after any release). Reported:
// webhook-to-rollout-start (the first pod of the old template created) and
// webhook-to-ready (all 4 pods of the old template ready, none other left).
func BenchmarkRevertByWebhook(b *testing.B) {
	repo := newGitRepo(b)
	repo.write("web/deployment.yaml", rolloutDeployment("localhost/bosun-hello:v1"))
	repo.write("web/service.yaml", webService)
	repo.commit("web v1")
	s := startWebhookStackTB(b, repo)
	waitAllOn(s, "localhost/bosun-hello:v1", "v1", 60*time.Second)
	var started, ready time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		repo.write("web/deployment.yaml", rolloutDeployment("localhost/bosun-hello:v2", fmt.Sprintf("RELEASE=%d", i)))
		s.push(fmt.Sprintf("release %d", i))
		s.waitFor("the release", 60*time.Second, func() error {
			for _, p := range readyPods(withPrefix(s.pods(), "web-"), "web-") {
				if !hasEnv(&p, "RELEASE", fmt.Sprint(i)) {
					return fmt.Errorf("pod %s not released yet", p.Name)
				}
			}
			return nil
		})
		waitAllOn(s, "localhost/bosun-hello:v2", "v2", 60*time.Second)
		repo.git("revert", "--no-edit", "HEAD")
		b.StartTimer()
		_, at := s.notify()
		for {
			if pods := s.pods(); anyOn(pods, "localhost/bosun-hello:v1") {
				started += time.Since(at)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		waitAllOn(s, "localhost/bosun-hello:v1", "v1", 60*time.Second)
		ready += time.Since(at)
	}
	b.ReportMetric(float64(started.Milliseconds())/float64(b.N), "ms/webhook-to-rollout-start")
	b.ReportMetric(float64(ready.Milliseconds())/float64(b.N), "ms/webhook-to-ready")
}

func anyOn(pods []corev1.Pod, image string) bool {
	for _, p := range pods {
		if strings.HasPrefix(p.Name, "web-") && imageOf(&p) == image {
			return true
		}
	}
	return false
}

// BenchmarkPlanRef1000Objects measures `bosun plan --ref` end to end on a
// control plane: fetch the branch, load and validate 1,000 objects, and
// preview them against the applied revision of 1,000 objects.
func BenchmarkPlanRef1000Objects(b *testing.B) {
	repo := newGitRepo(b)
	for i := 0; i < 500; i++ {
		repo.write(fmt.Sprintf("apps/app%03d.yaml", i), manyObjects(i, "v1"))
	}
	repo.commit("1,000 objects")
	repo.git("checkout", "-q", "-b", "next")
	for i := 0; i < 500; i += 10 {
		repo.write(fmt.Sprintf("apps/app%03d.yaml", i), manyObjects(i, "v2"))
	}
	repo.commit("a tenth of them on v2")
	repo.git("checkout", "-q", "main")
	s := startControlPlane(b, repo.dir)
	s.waitFor("the revision applied", 60*time.Second, func() error {
		if st, err := s.status(); err != nil || st.Sync.Applied == nil {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	c := s.client()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := c.Post(s.url("/api/v1/plan"), "application/json", strings.NewReader(`{"ref":"next"}`))
		if err != nil {
			b.Fatal(err)
		}
		var res api.PlanResult
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if err != nil || res.Preview == nil || len(res.Preview.Objects) != 50 {
			b.Fatalf("plan: %v, %+v", err, res.Errors)
		}
	}
}

// manyObjects is a Deployment and its Service.
func manyObjects(i int, version string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: app%03d
spec:
  replicas: 2
  selector:
    matchLabels: {app: app%03d}
  template:
    metadata:
      labels: {app: app%03d}
    spec:
      containers:
      - name: app
        image: localhost/bosun-hello:%s
        resources:
          requests: {cpu: 10m, memory: 16Mi}
---
apiVersion: v1
kind: Service
metadata:
  name: app%03d
spec:
  selector: {app: app%03d}
  ports:
  - {name: http, port: 8080}
`, i, i, i, version, i, i)
}
