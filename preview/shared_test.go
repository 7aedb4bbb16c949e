package preview

import (
	"reflect"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"bosun/reconciler"
)

// TestCompute_neverModifiesObservedPods: the observed pods are the store
// cache's (shared with the leader's planner and the API), so the
// simulation must replace the pods it binds, starts or stops with copies.
// Two previews run at once on one observed state (under -race, a write
// into a shared pod fails the test), and the state is as before.
func TestCompute_neverModifiesObservedPods(t *testing.T) {
	cur := set(t, deployment("web", 4, "registry.local/web:1.0", "500m", "64Mi", ""))
	next := set(t, deployment("web", 6, "registry.local/web:2.0", "500m", "64Mi", ""))
	o := running(t, cur, node("n1", "8", "8Gi"))
	// One pod has not started yet and one is unbound: the simulation runs
	// and binds pods of its own copy.
	o.Pods[0] = o.Pods[0].DeepCopy()
	o.Pods[0].Status = corev1.PodStatus{Phase: corev1.PodPending}
	o.Pods[1] = o.Pods[1].DeepCopy()
	o.Pods[1].Spec.NodeName = ""
	o.Pods[1].Status = corev1.PodStatus{Phase: corev1.PodPending}
	before := reconciler.Observed{Nodes: o.Nodes}
	for _, p := range o.Pods {
		before.Pods = append(before.Pods, p.DeepCopy())
	}
	var wg sync.WaitGroup
	results := make([]*Result, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = Compute(cur, next, o, now)
		}()
	}
	wg.Wait()
	if !reflect.DeepEqual(results[0], results[1]) {
		t.Errorf("two previews of one state differ:\n%+v\n%+v", results[0], results[1])
	}
	if len(results[0].Rollouts) != 1 || results[0].Rollouts[0].Replaced != 4 {
		t.Errorf("rollouts = %+v, want web's 4 pods replaced", results[0].Rollouts)
	}
	if !reflect.DeepEqual(before.Pods, o.Pods) {
		for i := range o.Pods {
			if !reflect.DeepEqual(before.Pods[i], o.Pods[i]) {
				t.Errorf("Compute modified observed pod %s", o.Pods[i].Name)
			}
		}
	}
}
