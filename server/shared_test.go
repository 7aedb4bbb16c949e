package server

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/manifest"
	"bosun/reconciler"
	"bosun/store"
)

// TestCluster_planOnSharedSnapshotWhileCacheApplies: the planner reads the
// cache's pods themselves (Observed.Pods is the snapshot's slice), while
// the cache goes on applying status reports for the same pods. Plans of a
// rollout, and of binding an unbound pod, run on each observed state, four
// at once, while an agent reports;
// the observed pods must stay exactly as they were published (under -race,
// a write into a shared pod by either side fails the test).
func TestCluster_planOnSharedSnapshotWhileCacheApplies(t *testing.T) {
	ctx := context.Background()
	st := store.NewTest(t)
	lead := newLeadership(t, st)
	n1 := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")}}}
	nl, err := st.RegisterNode(ctx, n1, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close(ctx)
	cl := &cluster{st: st, cache: store.RunTestCache(t, st, store.CacheConfig{}), lead: lead, now: time.Now, grace: time.Minute,
		m: newMetrics(prometheus.NewRegistry()), log: slog.New(slog.NewTextHandler(io.Discard, nil))}

	desired := func(image string) *manifest.Set {
		s, err := manifest.Decode("test.yaml", []byte(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: %q, resources: {requests: {cpu: 100m}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: huge}
spec:
  containers: [{name: app, image: huge, resources: {requests: {cpu: "100"}}}]
`, image)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	v1, v2 := desired("web:1"), desired("web:2")
	var o reconciler.Observed
	for i := 0; ; i++ {
		if o, err = cl.Observe(ctx); err != nil {
			t.Fatal(err)
		}
		actions := reconciler.Plan(v1, o, cl.now()).Actions
		if len(actions) == 0 {
			break
		}
		if i == 5 {
			t.Fatalf("no fixpoint: %d actions left", len(actions))
		}
		if err := cl.Apply(ctx, actions); err != nil {
			t.Fatal(err)
		}
	}
	var bound []*corev1.Pod
	for _, p := range o.Pods {
		if p.Spec.NodeName != "" {
			bound = append(bound, p)
		}
	}
	if len(bound) != 6 {
		t.Fatalf("%d pods bound, want 6", len(bound))
	}

	// The agent reports the pods ready and unready, over and over.
	actx, stop := context.WithCancel(ctx)
	agent := make(chan error, 1)
	go func() {
		for i := 0; actx.Err() == nil; i++ {
			p := bound[i%len(bound)]
			cond := corev1.ConditionTrue
			if i/len(bound)%2 == 1 {
				cond = corev1.ConditionFalse
			}
			err := st.PutPodStatus(actx, p.Namespace, p.Name, store.PodStatus{UID: p.UID, Node: cmp.Or(p.Spec.NodeName, "n1"), Status: corev1.PodStatus{
				Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.0.0.%d", i%250+1),
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: cond}}}})
			if err != nil && actx.Err() == nil {
				agent <- err
				return
			}
		}
		agent <- nil
	}()
	for round := 0; round < 20; round++ {
		if o, err = cl.Observe(ctx); err != nil {
			t.Fatal(err)
		}
		if len(o.Pods) > 0 && &o.Pods[0] != &cl.snap.Pods[0] {
			t.Fatal("Observed.Pods is not the snapshot's slice")
		}
		before := make([]*corev1.Pod, len(o.Pods))
		for i, p := range o.Pods {
			before[i] = p.DeepCopy()
		}
		// With n1 grown, huge fits: the plans bind it (a pod the planner
		// writes) besides rolling web.
		grown := o
		n := o.Nodes[0].DeepCopy()
		n.Status.Allocatable[corev1.ResourceCPU] = resource.MustParse("200")
		grown.Nodes = []corev1.Node{*n}
		var wg sync.WaitGroup
		for _, plan := range []reconciler.Observed{o, grown, o, grown} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				reconciler.Plan(v2, plan, cl.now())
			}()
		}
		wg.Wait()
		for i, p := range o.Pods {
			if !reflect.DeepEqual(p, before[i]) {
				t.Fatalf("round %d: pod %s/%s changed after planning", round, p.Namespace, p.Name)
			}
		}
	}
	stop()
	if err := <-agent; err != nil {
		t.Fatal(err)
	}
}
