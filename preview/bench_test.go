package preview

import (
	"fmt"
	"testing"
)

// BenchmarkCompute1000Objects previews a commit to a 1,000-object repository
// (400 Deployments of 2 replicas, 400 Services, 200 Pods) that changes the
// image of one Deployment and one Pod in ten, over a cluster of 50 nodes
// running the current revision. Target: well under 300 ms.
//
//	go test -run '^$' -bench Compute1000Objects -benchmem ./preview/
func BenchmarkCompute1000Objects(b *testing.B) {
	repo := func(changed bool) []string {
		var docs []string
		for i := range 400 {
			image := "registry.local/app:1.0"
			if changed && i%10 == 0 {
				image = "registry.local/app:1.1"
			}
			name := fmt.Sprintf("app%03d", i)
			docs = append(docs, deployment(name, 2, image, "50m", "64Mi", ""),
				fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\nspec:\n  selector:\n    app: %s\n  ports:\n  - port: 80\n", name, name))
		}
		for i := range 200 {
			image := "registry.local/job:1.0"
			if changed && i%10 == 0 {
				image = "registry.local/job:1.1"
			}
			docs = append(docs, fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: job%03d\nspec:\n  containers:\n  - name: job\n    image: %s\n    resources:\n      requests:\n        cpu: 50m\n        memory: 32Mi\n", i, image))
		}
		return docs
	}
	cur, next := set(b, repo(false)...), set(b, repo(true)...)
	var nodes []string
	for i := range 50 {
		nodes = append(nodes, fmt.Sprintf("node%02d:8:32Gi", i))
	}
	o := running(b, cur, nodesOf(b, nodes)...)
	if len(cur.Deployments)+len(cur.Services)+len(cur.Pods) != 1000 || len(o.Pods) != 1000 {
		b.Fatalf("%d objects, %d pods running", len(cur.Deployments)+len(cur.Services)+len(cur.Pods), len(o.Pods))
	}
	b.ReportAllocs()
	b.ResetTimer()
	var r *Result
	for b.Loop() {
		r = Compute(cur, next, o, now)
	}
	b.StopTimer()
	if len(r.Objects) != 60 || len(r.Rollouts) != 40 || !r.Fits {
		b.Fatalf("%d objects changed, %d rollouts, verdict %q", len(r.Objects), len(r.Rollouts), r.Verdict)
	}
}
