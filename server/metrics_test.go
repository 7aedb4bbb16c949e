package server

import (
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"bosun/reconciler"
	"bosun/scheduler"
	"bosun/store"
)

// TestUnschedulableReasons pins the reason labels against what the real
// scheduler says, so that a change of its words cannot silently turn every
// reason into "other".
func TestUnschedulableReasons(t *testing.T) {
	node := func(name string, mod func(*scheduler.Node)) scheduler.Node {
		n := scheduler.Node{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name},
			Allocatable: scheduler.Resources{MilliCPU: 1000, Memory: 1 << 30}, MaxPods: 10}
		if mod != nil {
			mod(&n)
		}
		return n
	}
	pod := func(mod func(*scheduler.Pod)) scheduler.Pod {
		p := scheduler.Pod{Key: "default/p", Namespace: "default", Labels: map[string]string{"app": "p"}}
		if mod != nil {
			mod(&p)
		}
		return p
	}
	required := func(labels map[string]string) *corev1.PodAffinityTerm {
		return &corev1.PodAffinityTerm{LabelSelector: &metav1.LabelSelector{MatchLabels: labels}, TopologyKey: "kubernetes.io/hostname"}
	}
	for _, tc := range []struct {
		name  string
		nodes []scheduler.Node
		bound []scheduler.Pod
		pod   scheduler.Pod
		want  []string
	}{
		{"no nodes", nil, nil, pod(nil), []string{"no_nodes"}},
		{"cordoned", []scheduler.Node{node("n1", func(n *scheduler.Node) { n.Unschedulable = true })}, nil, pod(nil), []string{"node_cordoned"}},
		{"taint", []scheduler.Node{node("n1", func(n *scheduler.Node) {
			n.Taints = []corev1.Taint{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}}
		})}, nil, pod(nil), []string{"taint"}},
		{"selector", []scheduler.Node{node("n1", nil)}, nil, pod(func(p *scheduler.Pod) { p.NodeSelector = map[string]string{"disk": "ssd"} }), []string{"node_selector"}},
		{"affinity", []scheduler.Node{node("n1", nil)}, nil, pod(func(p *scheduler.Pod) {
			p.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"ssd"}}}}},
			}}}
		}), []string{"node_affinity"}},
		{"resources", []scheduler.Node{node("n1", nil), node("n2", func(n *scheduler.Node) { n.MaxPods = 1 })},
			[]scheduler.Pod{{Key: "default/other", Namespace: "default", NodeName: "n2"}},
			pod(func(p *scheduler.Pod) { p.Requests = scheduler.Resources{MilliCPU: 2000, Memory: 2 << 30} }),
			[]string{"insufficient_cpu", "insufficient_memory", "too_many_pods"}},
		{"anti-affinity", []scheduler.Node{node("n1", nil)},
			[]scheduler.Pod{{Key: "default/other", Namespace: "default", Labels: map[string]string{"app": "p"}, NodeName: "n1"}},
			pod(func(p *scheduler.Pod) {
				p.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{*required(map[string]string{"app": "p"})}}}
			}), []string{"pod_anti_affinity"}},
		{"pod affinity", []scheduler.Node{node("n1", nil)},
			[]scheduler.Pod{{Key: "default/other", Namespace: "default", Labels: map[string]string{"app": "db"}, NodeName: "n1"}},
			pod(func(p *scheduler.Pod) {
				p.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{*required(map[string]string{"app": "cache"})}}}
			}), []string{"pod_affinity"}},
		{"volume capacity", []scheduler.Node{node("n1", func(n *scheduler.Node) { n.VolumeCapacity = 1 })}, nil,
			pod(func(p *scheduler.Pod) { p.Claims = []scheduler.Claim{{Key: "default/data", Request: 2}} }), []string{"volume_capacity"}},
		{"volume node affinity", []scheduler.Node{node("n1", nil)}, nil,
			pod(func(p *scheduler.Pod) { p.Claims = []scheduler.Claim{{Key: "default/data", Node: "gone"}} }), []string{"volume_node_affinity"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := scheduler.Schedule(tc.nodes, append(slices.Clip(tc.bound), tc.pod))
			msg, ok := res.Unschedulable[tc.pod.Key]
			if !ok {
				t.Fatalf("pod placed on %q, want unschedulable", res.Bindings[tc.pod.Key])
			}
			got := unschedulableReasonsOf(msg)
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("reasons of %q = %v, want %v", msg, got, tc.want)
			}
		})
	}
	if got := unschedulableReasonsOf("something new"); !slices.Equal(got, []string{"other"}) {
		t.Errorf("unknown message: %v, want [other]", got)
	}
}

func TestMetrics_rolloutOutcomes(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	entry := func(seq int64, result string) store.HistoryEntry {
		return store.HistoryEntry{Seq: seq, Result: result, ReadyAfter: store.Duration(3 * time.Second)}
	}
	before := []store.HistoryEntry{entry(4, store.ResultProgressing), entry(3, store.ResultProgressing), entry(2, store.ResultProgressing), entry(1, store.ResultApplied)}
	after := []store.HistoryEntry{entry(5, store.ResultProgressing), entry(4, store.ResultSuperseded), entry(3, store.ResultApplied), entry(2, store.ResultRolloutFailed), entry(1, store.ResultApplied)}
	m.rolloutOutcomes(before, after)
	m.rolloutOutcomes(after, after) // nothing ended: nothing counted again
	for outcome, want := range map[string]float64{"complete": 1, "failed": 1, "aborted": 1} {
		if got := testutil.ToFloat64(m.rollouts.WithLabelValues(outcome)); got != want {
			t.Errorf("bosun_rollouts_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
	if got := testutil.CollectAndCount(m.rolloutTime); got != 1 {
		t.Errorf("rollout durations: %d series", got)
	}
}

func TestMetrics_observeScheduling(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	pod := func(name, uid, node string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(uid)}, Spec: corev1.PodSpec{NodeName: node}}
	}
	pending := pod("waiting", "w", "")
	pending.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: "0/2 nodes are available: 1 insufficient cpu, 1 node(s) had untolerated taint {dedicated: db}"}}
	observed := reconciler.Observed{Pods: []*corev1.Pod{
		pod("bound-before", "b", "n1"), // an update of a bound pod: no placement
		pod("unbound", "u", ""),        // bound by this plan: one
		pod("replaced", "old", "n1"),   // a new instance of the same name: one
	}}
	actions := []reconciler.Action{
		{Type: reconciler.UpdatePod, Pod: pod("bound-before", "b", "n1")},
		{Type: reconciler.UpdatePod, Pod: pod("unbound", "u", "n2")},
		{Type: reconciler.CreatePod, Pod: pod("replaced", "new", "n2")},
		{Type: reconciler.CreatePod, Pod: pod("fresh", "f", "n1")}, // new: one
		{Type: reconciler.CreatePod, Pod: pending},
		{Type: reconciler.DeletePod, Namespace: "default", Name: "gone"},
	}
	m.observeScheduling(observed, actions)
	if got := testutil.ToFloat64(m.placements); got != 3 {
		t.Errorf("bosun_scheduler_placements_total = %v, want 3", got)
	}
	for reason, want := range map[string]float64{"insufficient_cpu": 1, "taint": 1, "other": 0} {
		if got := testutil.ToFloat64(m.unschedulable.WithLabelValues(reason)); got != want {
			t.Errorf("bosun_scheduler_unschedulable_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}
