package server

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/reconciler"
	"bosun/store"
)

// newLeadership makes this test the leader of st until it ends.
func newLeadership(t *testing.T, st *store.Store) *store.Leadership {
	t.Helper()
	ctx := context.Background()
	lead, err := st.Campaign(ctx, "a", 10*time.Second) // long enough for a loaded machine
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lead.Resign(ctx) })
	return lead
}

// TestCluster_observeReadsItsOwnWrites: right after Apply, Observe shows
// what was written, though the cache learns of it through a watch; and a
// binding moves the pod under its node, deleting its unbound key.
func TestCluster_observeReadsItsOwnWrites(t *testing.T) {
	ctx := context.Background()
	st := store.NewTest(t)
	lead := newLeadership(t, st)
	cl := &cluster{st: st, cache: store.RunTestCache(t, st, store.CacheConfig{}), lead: lead, now: time.Now, grace: time.Minute,
		m: newMetrics(prometheus.NewRegistry()), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if _, err := cl.Observe(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p" + string(rune('a'+i))},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img"}}}}
		if err := cl.Apply(ctx, []reconciler.Action{{Type: reconciler.CreatePod, Pod: p}}); err != nil {
			t.Fatal(err)
		}
		o, err := cl.Observe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(o.Pods) != i+1 {
			t.Fatalf("after creating %d pods Observe shows %d", i+1, len(o.Pods))
		}
		bound := o.Pods[i].DeepCopy()
		bound.Spec.NodeName = "n1"
		if err := cl.Apply(ctx, []reconciler.Action{{Type: reconciler.UpdatePod, Pod: bound}}); err != nil {
			t.Fatal(err)
		}
		if o, err = cl.Observe(ctx); err != nil {
			t.Fatal(err)
		}
		if len(o.Pods) != i+1 || cl.snap.Pod("default", bound.Name).Spec.NodeName != "n1" {
			t.Fatalf("after binding pod %s: %d pods, node %q", bound.Name, len(o.Pods), cl.snap.Pod("default", bound.Name).Spec.NodeName)
		}
	}
	if on, _, _ := st.PodsOnNode(ctx, ""); len(on) != 0 {
		t.Errorf("%d pods left under the unbound prefix", len(on))
	}
	if err := cl.Apply(ctx, []reconciler.Action{{Type: reconciler.DeletePod, Namespace: "default", Name: "pa"}}); err != nil {
		t.Fatal(err)
	}
	if on, _, _ := st.PodsOnNode(ctx, "n1"); len(on) != 19 {
		t.Errorf("pods on n1 after deleting one = %d, want 19", len(on))
	}
}
