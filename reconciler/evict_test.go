package reconciler

import (
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func noExecute(key string, added time.Time) corev1.Taint {
	at := metav1.NewTime(added)
	return corev1.Taint{Key: key, Effect: corev1.TaintEffectNoExecute, TimeAdded: &at}
}

func tolerate(key string, seconds ...int64) corev1.Toleration {
	t := corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}
	if len(seconds) > 0 {
		t.TolerationSeconds = &seconds[0]
	}
	return t
}

func TestEvictionOf(t *testing.T) {
	boundAtT0 := func(tolerations ...corev1.Toleration) *corev1.Pod {
		return &corev1.Pod{
			Spec: corev1.PodSpec{NodeName: "n1", Tolerations: tolerations},
			Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{
				Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0),
			}}},
		}
	}
	nodeWith := func(taints ...corev1.Taint) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: corev1.NodeSpec{Taints: taints}}
	}
	tests := []struct {
		name string
		pod  *corev1.Pod
		node *corev1.Node
		now  time.Time
		want eviction
	}{
		{
			name: "no taints",
			pod:  boundAtT0(), node: nodeWith(), now: t0,
		},
		{
			name: "NoSchedule and PreferNoSchedule taints never evict",
			pod:  boundAtT0(),
			node: nodeWith(corev1.Taint{Key: "a", Effect: corev1.TaintEffectNoSchedule}, corev1.Taint{Key: "b", Effect: corev1.TaintEffectPreferNoSchedule}),
			now:  t0.Add(time.Hour),
		},
		{
			name: "an untolerated NoExecute taint evicts at once",
			pod:  boundAtT0(), node: nodeWith(noExecute("maint", t0.Add(time.Minute))), now: t0.Add(time.Minute),
			want: eviction{now: true, why: "evicted: node n1 has taint {maint: }:NoExecute, not tolerated"},
		},
		{
			name: "a toleration without tolerationSeconds keeps the pod for ever",
			pod:  boundAtT0(tolerate("maint")), node: nodeWith(noExecute("maint", t0)), now: t0.Add(1000 * time.Hour),
		},
		{
			name: "tolerationSeconds: not yet",
			pod:  boundAtT0(tolerate("maint", 30)), node: nodeWith(noExecute("maint", t0.Add(10*time.Second))),
			now:  t0.Add(39 * time.Second),
			want: eviction{at: t0.Add(40 * time.Second)},
		},
		{
			name: "tolerationSeconds: that long after the taint was added",
			pod:  boundAtT0(tolerate("maint", 30)), node: nodeWith(noExecute("maint", t0.Add(10*time.Second))),
			now:  t0.Add(40 * time.Second),
			want: eviction{now: true, why: "evicted: node n1 has taint {maint: }:NoExecute, tolerated for 30s"},
		},
		{
			name: "a pod bound after the taint gets its full tolerationSeconds",
			pod:  boundAtT0(tolerate("maint", 30)), node: nodeWith(noExecute("maint", t0.Add(-time.Hour))),
			now:  t0.Add(29 * time.Second),
			want: eviction{at: t0.Add(30 * time.Second)},
		},
		{
			name: "zero tolerationSeconds evicts at once",
			pod:  boundAtT0(tolerate("maint", 0)), node: nodeWith(noExecute("maint", t0)), now: t0,
			want: eviction{now: true, why: "evicted: node n1 has taint {maint: }:NoExecute, tolerated for 0s"},
		},
		{
			name: "of two tolerations of one taint the most lenient counts",
			pod:  boundAtT0(tolerate("maint", 30), corev1.Toleration{Operator: corev1.TolerationOpExists}),
			node: nodeWith(noExecute("maint", t0)), now: t0.Add(time.Hour),
		},
		{
			name: "of two tainted deadlines the first counts",
			pod:  boundAtT0(tolerate("a", 300), tolerate("b", 60)),
			node: nodeWith(noExecute("a", t0), noExecute("b", t0)),
			now:  t0.Add(time.Minute),
			want: eviction{now: true, why: "evicted: node n1 has taint {b: }:NoExecute, tolerated for 1m0s"},
		},
		{
			name: "every NoExecute taint must be tolerated",
			pod:  boundAtT0(tolerate("a")),
			node: nodeWith(noExecute("a", t0), noExecute("b", t0)),
			now:  t0,
			want: eviction{now: true, why: "evicted: node n1 has taint {b: }:NoExecute, not tolerated"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := evictionOf(tt.pod, tt.node, tt.now); got != tt.want {
				t.Errorf("evictionOf = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// taintNode returns o with taints added to the node named name.
func taintNode(o Observed, name string, taints ...corev1.Taint) Observed {
	o.Nodes = slices.Clone(o.Nodes)
	for i := range o.Nodes {
		if o.Nodes[i].Name == name {
			n := o.Nodes[i].DeepCopy()
			n.Spec.Taints = append(n.Spec.Taints, taints...)
			o.Nodes[i] = *n
		}
	}
	return o
}

func podsOn(o Observed, node string) []string {
	var out []string
	for _, p := range o.Pods {
		if p.Spec.NodeName == node {
			out = append(out, p.Name)
		}
	}
	return out
}

func TestPlan_noExecuteTaintEvictsDeploymentPods(t *testing.T) {
	web := deployment("web", 2, "web:1", "100m")
	desired := set([]appsv1.Deployment{web}, nil, nil)
	o := settled(t, desired, node("n1", "4"), node("n2", "4"))
	if len(podsOn(o, "n1")) != 1 || len(podsOn(o, "n2")) != 1 {
		t.Fatalf("pods not spread: n1 %v, n2 %v", podsOn(o, "n1"), podsOn(o, "n2"))
	}
	victim := podsOn(o, "n1")[0]
	o = taintNode(o, "n1", noExecute("maint", t0.Add(time.Minute)))

	actions := Plan(desired, o, t0.Add(time.Minute)).Actions
	got := summarize(actions)
	if len(got) < 2 ||
		got[0] != "DeletePod default/"+victim+" (evicted: node n1 has taint {maint: }:NoExecute, not tolerated)" ||
		!strings.HasPrefix(got[1], "CreatePod default/web-") || !strings.Contains(got[1], "node=n2 (replacement for pod "+victim+" evicted from node n1)") {
		t.Fatalf("actions:\n%s", strings.Join(got, "\n"))
	}
	o = runPods(apply(t, o, actions))
	if again := Plan(desired, o, t0.Add(2*time.Minute)).Actions; len(again) > 1 || (len(again) == 1 && again[0].Type != PutDeployment) {
		t.Fatalf("not converged:\n%s", strings.Join(summarize(again), "\n"))
	}
	if on := podsOn(o, "n1"); len(on) != 0 {
		t.Fatalf("pods still on the tainted node: %v", on)
	}
}

func TestPlan_noExecuteTaintToleratedForAWhile(t *testing.T) {
	web := deployment("web", 2, "web:1", "100m")
	web.Spec.Template.Spec.Tolerations = []corev1.Toleration{tolerate("maint", 30)}
	desired := set([]appsv1.Deployment{web}, nil, nil)
	// Settled at t0: the pods were bound at t0.
	o := settled(t, desired, node("n1", "4"), node("n2", "4"))
	victim := podsOn(o, "n1")[0]
	o = taintNode(o, "n1", noExecute("maint", t0.Add(10*time.Second)))

	if next, ok := NextEviction(o, t0.Add(10*time.Second)); !ok || !next.Equal(t0.Add(40*time.Second)) {
		t.Fatalf("NextEviction = %v, %v; want t0+40s", next, ok)
	}
	if actions := Plan(desired, o, t0.Add(39*time.Second)).Actions; len(actions) != 0 {
		t.Fatalf("evicted before tolerationSeconds ran out:\n%s", strings.Join(summarize(actions), "\n"))
	}
	actions := Plan(desired, o, t0.Add(40*time.Second)).Actions
	got := summarize(actions)
	if len(got) < 2 || got[0] != "DeletePod default/"+victim+" (evicted: node n1 has taint {maint: }:NoExecute, tolerated for 30s)" {
		t.Fatalf("actions at t0+40s:\n%s", strings.Join(got, "\n"))
	}
	// The replacement still tolerates the taint, so it may go anywhere; on
	// n1 it would get its own 30 seconds from its binding.
	if !strings.Contains(got[1], "CreatePod default/web-") {
		t.Fatalf("no replacement:\n%s", strings.Join(got, "\n"))
	}
}

func TestPlan_noExecuteTaintEvictsStandalonePods(t *testing.T) {
	free := standalone("free", "tool:1", "100m", corev1.RestartPolicyAlways)
	free.Spec.NodeSelector = nil
	pinned := standalone("pinned", "tool:1", "100m", corev1.RestartPolicyAlways)
	pinned.Spec.NodeName = "n1"
	desired := set(nil, []corev1.Pod{free, pinned}, nil)
	big := node("n1", "8")
	o := settled(t, desired, big, node("n2", "2"))
	if on := podsOn(o, "n1"); !slices.Equal(on, []string{"free", "pinned"}) {
		t.Fatalf("pods on n1: %v", on)
	}
	o = taintNode(o, "n1", noExecute("maint", t0))
	got := summarize(Plan(desired, o, t0.Add(time.Second)).Actions)
	want := []string{
		"DeletePod default/free (evicted: node n1 has taint {maint: }:NoExecute, not tolerated)",
		"CreatePod default/free node=n2 (evicted: node n1 has taint {maint: }:NoExecute, not tolerated)",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("actions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPlan_noExecuteTaintKeepsNewPodsOff(t *testing.T) {
	web := deployment("web", 2, "web:1", "100m")
	desired := set([]appsv1.Deployment{web}, nil, nil)
	nodes := []corev1.Node{node("n1", "8"), node("n2", "1")}
	o := taintNode(Observed{Nodes: nodes}, "n1", noExecute("maint", t0))
	_, o = planApplied(t, desired, o)
	if on := podsOn(o, "n1"); len(on) != 0 {
		t.Fatalf("new pods placed on a NoExecute node: %v", on)
	}
}

// The planner hands the scheduler every placement rule of the template, and
// replicas created in one plan see each other.
func TestPlan_podAntiAffinitySpreadsReplicasAndExplainsTheRest(t *testing.T) {
	web := deployment("web", 3, "web:1", "100m")
	web.Spec.Template.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			TopologyKey:   "kubernetes.io/hostname",
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		}},
	}}
	web.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
	desired := set([]appsv1.Deployment{web}, nil, nil)
	nodes := []corev1.Node{
		node("n1", "4", "kubernetes.io/hostname", "n1"),
		node("n2", "4", "kubernetes.io/hostname", "n2"),
		node("n3", "4", "kubernetes.io/hostname", "n3"),
	}
	nodes[2].Spec.Taints = []corev1.Taint{{Key: "gpu", Value: "a100", Effect: corev1.TaintEffectNoSchedule}}
	actions, _ := planApplied(t, desired, Observed{Nodes: nodes})
	var placed, pending []string
	for _, line := range summarize(actions) {
		switch {
		case strings.Contains(line, "node="):
			placed = append(placed, line[strings.Index(line, "node="):strings.Index(line, " (")])
		case strings.Contains(line, "unschedulable="):
			pending = append(pending, line[strings.Index(line, "unschedulable=")+len("unschedulable="):strings.Index(line, " (")])
		}
	}
	slices.Sort(placed)
	if !slices.Equal(placed, []string{"node=n1", "node=n2"}) {
		t.Errorf("placed on %v, want n1 and n2", placed)
	}
	want := "0/3 nodes are available: 1 node(s) had untolerated taint {gpu: a100}, 2 node(s) didn't match pod anti-affinity rules"
	if !slices.Equal(pending, []string{want}) {
		t.Errorf("pending %q, want [%q]", pending, want)
	}
}
