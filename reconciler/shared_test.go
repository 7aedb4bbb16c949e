package reconciler

import (
	"reflect"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestPlan_sharedObservedIsNeverModified: Observed.Pods are the store
// cache's shared pods (server/cluster.go hands the snapshot's slice over),
// so plans running at once on one Observed must only read them, and no
// action may carry an observed pod itself (the driver writes actions' pods).
// The plans bind an unbound pod, leave one unschedulable, roll a
// Deployment, rewrite a standalone pod's metadata and recreate a lost one:
// every path that changes a pod. Under -race a write into a shared pod by
// one plan while another reads it fails the test; without -race the
// comparison with a copy taken before does.
func TestPlan_sharedObservedIsNeverModified(t *testing.T) {
	web := deployment("web", 3, "web:1", "100m")
	tool := standalone("tool", "tool:1", "100m", corev1.RestartPolicyAlways)
	huge := standalone("huge", "huge:1", "100", corev1.RestartPolicyAlways)
	lost := standalone("lost", "lost:1", "100m", corev1.RestartPolicyAlways)
	late := standalone("late", "late:1", "100m", corev1.RestartPolicyAlways)
	o := settled(t, set(nil, nil, nil), node("n1", "4"), node("n2", "4"))
	o = settled(t, set([]appsv1.Deployment{web}, []corev1.Pod{tool, huge, lost, late}, nil), o.Nodes...)
	// late is unbound again (the planner binds it), and lost's node is
	// gone (the planner recreates it).
	o = setPod(t, o, "default/late", func(p *corev1.Pod) {
		p.Spec.NodeName = ""
		p.Status = corev1.PodStatus{Phase: corev1.PodPending}
	})
	var lostNode string
	for _, p := range o.Pods {
		if p.Name == "lost" {
			lostNode = p.Spec.NodeName
		}
	}
	var nodes []corev1.Node
	for _, n := range o.Nodes {
		if n.Name != lostNode {
			nodes = append(nodes, n)
		}
	}
	o.Nodes = nodes
	next := deployment("web", 3, "web:2", "100m")
	tool.Labels["tier"] = "tools"
	desired := set([]appsv1.Deployment{next}, []corev1.Pod{tool, huge, lost, late}, nil)

	before := deepCopyObserved(o)
	shared := make(map[*corev1.Pod]bool, len(o.Pods))
	for _, p := range o.Pods {
		shared[p] = true
	}
	want := strings.Join(summarize(Plan(desired, before, t0).Actions), "\n")
	for _, must := range []string{"UpdatePod default/late node=",
		"unschedulable=", "metadata changed in Git", "CreatePod default/lost", "CreatePod default/web-"} {
		if !strings.Contains(want, must) {
			t.Fatalf("scenario does not exercise %q; actions:\n%s", must, want)
		}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2 {
				actions := Plan(desired, o, t0).Actions
				if got := strings.Join(summarize(actions), "\n"); got != want {
					t.Errorf("plan on the shared Observed:\n%s\nwant:\n%s", got, want)
				}
				for _, a := range actions {
					if a.Pod != nil && shared[a.Pod] {
						t.Errorf("%s %s/%s carries the observed pod itself, not a copy", a.Type, a.Pod.Namespace, a.Pod.Name)
					}
				}
			}
		}()
	}
	wg.Wait()
	if !reflect.DeepEqual(before, o) {
		for i := range o.Pods {
			if !reflect.DeepEqual(before.Pods[i], o.Pods[i]) {
				t.Errorf("Plan modified observed pod %s/%s", o.Pods[i].Namespace, o.Pods[i].Name)
			}
		}
		t.Fatal("Plan modified its input")
	}
}
