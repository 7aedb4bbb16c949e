package reconciler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/kube"
)

// drainedPods are rpods on a draining node.
func drainedPods(prefix string, revision int64, avail ...bool) []rolloutPod {
	out := rpods(prefix, revision, avail...)
	for i := range out {
		out[i].drained = true
	}
	return out
}

func TestRolloutStep_drain(t *testing.T) {
	const Y, N = true, false
	tests := []struct {
		name      string
		in        rolloutInput
		deleteOld []string
		create    int
	}{
		{name: "4 at 25%/25%, two on the draining node: one goes, two replacements within the surge",
			in:        rolloutInput{replicas: 4, maxSurge: 1, maxUnavailable: 1, current: rpods("a-", 2, Y, Y), old: drainedPods("d-", 2, Y, Y)},
			deleteOld: []string{"d-0"}, create: 2},
		{name: "maxUnavailable 0: replacements first, nothing deleted until one serves",
			in:     rolloutInput{replicas: 4, maxSurge: 1, current: rpods("a-", 2, Y, Y), old: drainedPods("d-", 2, Y, Y)},
			create: 1},
		{name: "maxUnavailable 0: a replacement serves, so one drained pod goes and the next replacement comes",
			in:        rolloutInput{replicas: 4, maxSurge: 1, current: rpods("a-", 2, Y, Y, Y), old: drainedPods("d-", 2, Y, Y)},
			deleteOld: []string{"d-0"}, create: 1},
		{name: "maxSurge 0: delete first, within maxUnavailable, then replace",
			in:        rolloutInput{replicas: 3, maxUnavailable: 1, current: rpods("a-", 2, Y), old: drainedPods("d-", 2, Y, Y)},
			deleteOld: []string{"d-0"}, create: 1},
		{name: "a drained pod that does not serve goes at once",
			in:        rolloutInput{replicas: 3, maxSurge: 1, current: rpods("a-", 2, Y, Y), old: drainedPods("d-", 2, N)},
			deleteOld: []string{"d-0"}, create: 1},
		{name: "during a rollout, pods of the old template go before drained ones of the current",
			in: rolloutInput{replicas: 4, maxSurge: 0, maxUnavailable: 1,
				current: rpods("v2-", 2, Y), old: append(drainedPods("d-", 2, Y), rpods("v1-", 1, Y, Y)...)},
			deleteOld: []string{"v1-0"}, create: 1},
		{name: "one replica, maxUnavailable 0: the replacement first",
			in:     rolloutInput{replicas: 1, maxSurge: 1, old: drainedPods("d-", 2, Y)},
			create: 1},
		{name: "failed rollout: the drain goes on within the budget, one replacement per pod removed",
			in: rolloutInput{replicas: 4, maxSurge: 1, maxUnavailable: 1, failed: true,
				current: rpods("a-", 2, Y, Y, Y), old: drainedPods("d-", 2, Y)},
			deleteOld: []string{"d-0"}, create: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := rolloutStep(tt.in)
			if got := names(dec.deleteOld); !slices.Equal(got, tt.deleteOld) {
				t.Errorf("deleteOld = %v, want %v", got, tt.deleteOld)
			}
			if len(dec.deleteCurrent) > 0 {
				t.Errorf("deleteCurrent = %v, want none", names(dec.deleteCurrent))
			}
			if dec.create != tt.create {
				t.Errorf("create = %d, want %d", dec.create, tt.create)
			}
			checkStepFixpoint(t, tt.in, dec)
		})
	}
}

// cordon returns nodes with name unschedulable, as the leader merges a
// cordon record in.
func cordon(nodes []corev1.Node, name string) []corev1.Node {
	out := make([]corev1.Node, len(nodes))
	for i := range nodes {
		out[i] = *nodes[i].DeepCopy()
		if out[i].Name == name {
			out[i].Spec.Unschedulable = true
		}
	}
	return out
}

// deployPodsOn counts the unfinished pods of Deployment name on node.
func deployPodsOn(o Observed, node, name string) int {
	n := 0
	for _, p := range o.Pods {
		if p.Spec.NodeName == node && !kube.PodFinished(p) && strings.HasPrefix(p.Name, name+"-") {
			n++
		}
	}
	return n
}

// TestDrain_propertyNeverBelowBudgetAndEmptiesTheNode: for random clusters,
// Deployments and strategies, a drain never lets a Deployment drop below
// replicas - maxUnavailable available pods nor exceed replicas + maxSurge
// pods, at any step; nothing new lands on the drained node; and in the end
// the node is empty and every replica serves elsewhere.
func TestDrain_propertyNeverBelowBudgetAndEmptiesTheNode(t *testing.T) {
	strategies := [][2]string{{"25%", "25%"}, {"1", "0"}, {"0", "1"}, {"2", "1"}, {"0", "50%"}, {"100%", "0"}, {"1", "1"}, {"30%", "20%"}}
	for seed := uint64(1); seed <= 40; seed++ {
		rng := rand.New(rand.NewPCG(seed, 11))
		nnodes := 2 + rng.IntN(3)
		var nodes []corev1.Node
		for i := range nnodes {
			nodes = append(nodes, node(fmt.Sprintf("n%d", i+1), "16"))
		}
		replicas := int32(1 + rng.IntN(8))
		st := strategies[rng.IntN(len(strategies))]
		d := rollingUpdate(deployment("web", replicas, "web:1", "100m"), st[0], st[1])
		d.Spec.MinReadySeconds = int32(rng.IntN(3))
		name := fmt.Sprintf("seed %d: %d nodes, %d replicas, surge %s unavailable %s", seed, nnodes, replicas, st[0], st[1])
		t.Run(name, func(t *testing.T) {
			s := newSim(t, set([]appsv1.Deployment{d}, nil, nil), nodes...)
			s.readyAfter = time.Duration(1+rng.IntN(4)) * time.Second
			// Drain the node with the most of the Deployment's pods.
			target := nodes[0].Name
			for _, n := range nodes {
				if deployPodsOn(s.o, n.Name, "web") > deployPodsOn(s.o, target, "web") {
					target = n.Name
				}
			}
			s.o.Nodes = cordon(s.o.Nodes, target)
			s.o.Drains = map[string]Drain{target: {}}
			for step := 1; ; step++ {
				at := s.now
				actions := s.step()
				s.checkBudget(step, d, at)
				for _, a := range actions {
					if a.Type == CreatePod && a.Pod.Spec.NodeName == target {
						t.Fatalf("step %d: %s placed on the draining node", step, a.Pod.Name)
					}
				}
				total, avail, _ := s.budget(d, s.now)
				if deployPodsOn(s.o, target, "web") == 0 && len(actions) == 0 && avail == total && total == int(replicas) {
					break
				}
				if step > 300 {
					t.Fatalf("drain did not finish in 300 steps: %d pods left on %s, %d of %d available", deployPodsOn(s.o, target, "web"), target, avail, total)
				}
			}
			if p := DrainStatus(target, s.o, Drain{}); !p.Done || p.Left != 0 {
				t.Errorf("DrainStatus after the drain = %+v", p)
			}
		})
	}
}

// TestPlan_drainReasonsNameTheNode: the actions of a drain say why pods
// move, so the log (and `bosun get pods`) explains it.
func TestPlan_drainReasonsNameTheNode(t *testing.T) {
	nodes := []corev1.Node{node("n1", "8"), node("n2", "8")}
	d := rollingUpdate(deployment("web", 4, "web:1", "100m"), "1", "1")
	s := newSim(t, set([]appsv1.Deployment{d}, nil, nil), nodes...)
	s.o.Nodes = cordon(s.o.Nodes, "n1")
	s.o.Drains = map[string]Drain{"n1": {}}
	actions := Plan(s.desired, s.o, s.now).Actions
	var dels, creates []string
	for _, a := range actions {
		switch a.Type {
		case DeletePod:
			dels = append(dels, a.Reason)
		case CreatePod:
			creates = append(creates, a.Reason)
			if a.Pod.Spec.NodeName != "n2" {
				t.Errorf("replacement %s on %q, want n2", a.Pod.Name, a.Pod.Spec.NodeName)
			}
		}
	}
	if len(dels) != 1 || dels[0] != "drain node n1" {
		t.Errorf("deletions %q, want one \"drain node n1\"", dels)
	}
	slices.Sort(creates)
	if len(creates) != 2 || !strings.Contains(creates[0], "on draining node n1") || !strings.Contains(creates[1], "drained from node n1") {
		t.Errorf("creations %q", creates)
	}
}

// TestPlan_drainStandaloneAndJobPodsNeedForce: a standalone Pod stays on a
// node drained without force; forced, it is recreated on another node.
func TestPlan_drainStandaloneAndJobPodsNeedForce(t *testing.T) {
	nodes := []corev1.Node{node("n1", "8"), node("n2", "8")}
	solo := standalone("solo", "solo:1", "100m", corev1.RestartPolicyAlways)
	desired := set(nil, []corev1.Pod{solo}, nil)
	o := Observed{Nodes: nodes}
	o = apply(t, o, Plan(desired, o, t0).Actions)
	on := o.Pods[0].Spec.NodeName
	other := map[string]string{"n1": "n2", "n2": "n1"}[on]
	o.Nodes = cordon(o.Nodes, on)
	o.Drains = map[string]Drain{on: {}}
	if actions := Plan(desired, o, t0.Add(time.Second)).Actions; len(actions) > 0 {
		t.Fatalf("a drain without force moved a standalone pod:\n%s", strings.Join(summarize(actions), "\n"))
	}
	if p := DrainStatus(on, o, Drain{}); p.Done || len(p.Waiting) != 1 || !strings.Contains(p.Waiting[0], "--force") || p.Pods["Pod/default/solo"] != 1 {
		t.Errorf("DrainStatus without force = %+v", p)
	}
	if got := DrainRefusals(on, o.Pods); !slices.Equal(got, []string{"default/solo"}) {
		t.Errorf("DrainRefusals = %v", got)
	}
	o.Drains = map[string]Drain{on: {Force: true}}
	actions := Plan(desired, o, t0.Add(2*time.Second)).Actions
	want := []string{"DeletePod default/solo (evicted: node " + on + " drained (--force))",
		"CreatePod default/solo node=" + other + " (evicted: node " + on + " drained (--force))"}
	if got := summarize(actions); !slices.Equal(got, want) {
		t.Errorf("forced drain:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDrainStatus_countsByOwnerAndWaitsForJobs(t *testing.T) {
	ctl := true
	pod := func(name, kind, owner, node string, phase corev1.PodPhase) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: phase}}
		if kind != "" {
			p.OwnerReferences = []metav1.OwnerReference{{Kind: kind, Name: owner, Controller: &ctl}}
		}
		return p
	}
	o := Observed{
		Nodes: []corev1.Node{node("n1", "8")},
		Pods: []*corev1.Pod{
			pod("web-1", "Deployment", "web", "n1", corev1.PodRunning),
			pod("web-2", "Deployment", "web", "n1", corev1.PodRunning),
			pod("web-3", "Deployment", "web", "n2", corev1.PodRunning),
			pod("batch-1", "Job", "batch", "n1", corev1.PodRunning),
			pod("batch-0", "Job", "batch", "n1", corev1.PodSucceeded),
		},
		Terminating: []TerminatingPod{{Namespace: "default", Name: "web-0", Node: "n1"}},
	}
	p := DrainStatus("n1", o, Drain{})
	if p.Left != 3 || p.Pods["Deployment/default/web"] != 2 || p.Pods["Job/default/batch"] != 1 || p.Stopping != 1 || p.Done {
		t.Errorf("DrainStatus = %+v", p)
	}
	if len(p.Waiting) != 1 || !strings.Contains(p.Waiting[0], "runs to completion") {
		t.Errorf("Waiting = %q", p.Waiting)
	}
	if p := DrainStatus("n1", o, Drain{Force: true}); len(p.Waiting) != 0 {
		t.Errorf("forced: Waiting = %q", p.Waiting)
	}
	// A node that is gone never reports its teardown: nothing to wait for.
	o.Nodes = nil
	if p := DrainStatus("n1", o, Drain{}); p.Stopping != 0 {
		t.Errorf("gone node: Stopping = %d", p.Stopping)
	}
}

// TestDrain_tolerateEverythingPodLeavesForGood: a Deployment pod that
// tolerates every taint ({operator: Exists}, so the unschedulable one
// too) leaves a draining node and its replacement lands elsewhere: the
// drain ends. (A toleration lifts a plain cordon, not a drain.)
func TestDrain_tolerateEverythingPodLeavesForGood(t *testing.T) {
	d := rollingUpdate(deployment("web", 2, "web:1", "100m"), "1", "1")
	d.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	s := newSim(t, set([]appsv1.Deployment{d}, nil, nil), node("n1", "8"), node("n2", "8"))
	target := "n1"
	if deployPodsOn(s.o, "n2", "web") > deployPodsOn(s.o, "n1", "web") {
		target = "n2"
	}
	s.o.Nodes = cordon(s.o.Nodes, target)
	s.o.Drains = map[string]Drain{target: {}}
	for step := 1; ; step++ {
		for _, a := range s.step() {
			if a.Type == CreatePod && a.Pod.Spec.NodeName == target {
				t.Fatalf("step %d: %s placed back on the draining node", step, a.Pod.Name)
			}
		}
		if p := DrainStatus(target, s.o, Drain{}); p.Done {
			break
		}
		if step > 30 {
			t.Fatalf("drain not done after 30 steps: %+v", DrainStatus(target, s.o, Drain{}))
		}
	}
	if n := deployPodsOn(s.o, target, "web"); n != 0 {
		t.Errorf("%d pods left on %s", n, target)
	}
}

// TestNodeGrace_absentNodeTakesNoPodWhateverItTolerates: a node gone but in
// its grace is tainted unreachable:NoSchedule (a Deployment's pods are not
// evicted by it) and takes no new pod, even one that tolerates everything.
func TestNodeGrace_absentNodeTakesNoPodWhateverItTolerates(t *testing.T) {
	d := deployment("web", 2, "web:1", "100m")
	d.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	desired := set([]appsv1.Deployment{d}, nil, nil)
	o := settled(t, desired, node("n1", "8"), node("n2", "64")) // n2 would score best
	g, _, _ := NodeGrace{Period: time.Minute}.Observe(o.Nodes, t0)
	_, o.Nodes, o.NodeGraceExpires = g.Observe([]corev1.Node{node("n1", "8")}, t0.Add(time.Second))
	var n2 *corev1.Node
	for i := range o.Nodes {
		if o.Nodes[i].Name == "n2" {
			n2 = &o.Nodes[i]
		}
	}
	if n2 == nil || !NodeAbsent(n2) || !n2.Spec.Unschedulable {
		t.Fatalf("absent n2 = %+v, want unschedulable and tainted %s", n2, TaintAbsent.Key)
	}
	if actions := Plan(desired, o, t0.Add(2*time.Second)).Actions; len(actions) > 0 {
		t.Fatalf("the absent node's pods moved before the grace ended:\n%s", strings.Join(summarize(actions), "\n"))
	}
	// One more replica: it goes to n1, never to the absent n2.
	more := deployment("web", 3, "web:1", "100m")
	more.Spec.Template.Spec.Tolerations = d.Spec.Template.Spec.Tolerations
	for _, a := range Plan(set([]appsv1.Deployment{more}, nil, nil), o, t0.Add(2*time.Second)).Actions {
		if a.Type == CreatePod && a.Pod.Spec.NodeName != "n1" {
			t.Errorf("%s placed on %q, want n1", a.Pod.Name, a.Pod.Spec.NodeName)
		}
	}
}
