package nodes_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"bosun/store"
)

// BenchmarkInitContainers measures a pod's start on the real containerd:
// from its binding (the pod key written) to its app container running, as
// the agent reports it, with 0, 1 and 2 init containers that exit at once.
// The difference per init container is its start overhead: create, start,
// exit, reap and the next start. Run it with
//
//	go test -run '^$' -bench BenchmarkInitContainers -benchtime 10x ./nodes
func BenchmarkInitContainers(b *testing.B) {
	h := newHarness(b)
	h.startAgent()
	// One pod first, so that the bridge, the image's snapshot and the
	// agent are warm.
	runPodOnce(b, h, "warmup", 0)
	for _, n := range []int{0, 1, 2} {
		b.Run(fmt.Sprintf("init=%d", n), func(b *testing.B) {
			b.StopTimer()
			var total time.Duration
			for i := 0; i < b.N; i++ {
				total += runPodOnce(b, h, fmt.Sprintf("bench%d-%d", n, i), n)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/start")
		})
	}
}

// runPodOnce binds a pod with n init containers (each prints a line and
// exits), waits until its app container runs, deletes it and waits until
// it is gone; it returns the time from binding to running.
func runPodOnce(b *testing.B, h *harness, name string, n int) time.Duration {
	b.Helper()
	p := helloPod(name, types.UID(fmt.Sprintf("%s-uid", name)))
	for i := range n {
		p.Spec.InitContainers = append(p.Spec.InitContainers, hello(fmt.Sprintf("init%d", i), "-print", "init"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := h.st.Client().Watch(ctx, store.PodStatusKey("default", name))
	b.StartTimer()
	start := time.Now()
	h.putPod(p)
	var took time.Duration
	for resp := range w {
		for _, ev := range resp.Events {
			var ps store.PodStatus
			if ev.Kv == nil || json.Unmarshal(ev.Kv.Value, &ps) != nil {
				continue
			}
			if cs := containerStatus(ps, "app"); cs.State.Running != nil && took == 0 {
				took = time.Since(start)
			}
		}
		if took > 0 {
			break
		}
	}
	b.StopTimer()
	if took == 0 {
		b.Fatalf("pod %s not running within 60s", name)
	}
	h.deletePod("default", name)
	h.waitStatus("default", name, 30*time.Second, "deleted", func(ps *store.PodStatus) bool { return ps == nil })
	return took
}
