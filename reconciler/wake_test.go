package reconciler

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/manifest"
)

// Wake is exact: planning at Wake decides something new, and planning a
// moment before it decides nothing. Each case brings a cluster to a fixed
// point, reads Wake, and checks both sides of it.
func TestPlan_wakeIsTheExactTimeOfTheNextTimedDecision(t *testing.T) {
	n1 := node("n1", "4")
	readySince := t0.Add(10 * time.Second)
	tests := []struct {
		name string
		// setup returns the desired state and a cluster at a fixed point at
		// now (planning at now has no actions).
		setup    func(t *testing.T) (desired *manifest.Set, o Observed, now time.Time)
		wantWake func(o Observed) time.Time
		// atWake checks what the plan at Wake decides.
		atWake func(t *testing.T, res Result)
	}{
		{
			name: "minReadySeconds: a ready pod becomes available",
			setup: func(t *testing.T) (*manifest.Set, Observed, time.Time) {
				v1 := rollingUpdate(deployment("web", 2, "web:1", "100m"), "1", "0")
				v2 := rollingUpdate(deployment("web", 2, "web:2", "100m"), "1", "0")
				v2.Spec.MinReadySeconds = 30
				o := settled(t, set([]appsv1.Deployment{v1}, nil, nil), n1)
				desired := set([]appsv1.Deployment{v2}, nil, nil)
				o = apply(t, o, Plan(desired, o, t0).Actions)
				o = setPod(t, o, podOf(v2, 0), func(p *corev1.Pod) {
					p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(readySince)}}
				})
				now := readySince.Add(time.Second)
				o = apply(t, o, Plan(desired, o, now).Actions) // the Ready pod's status
				return desired, o, now
			},
			wantWake: func(Observed) time.Time { return readySince.Add(30 * time.Second) },
			atWake: func(t *testing.T, res Result) {
				if count(res.Actions, DeletePod) != 1 || count(res.Actions, CreatePod) != 1 {
					t.Errorf("at Wake: %s; want the rollout to move on", strings.Join(summarize(res.Actions), "; "))
				}
			},
		},
		{
			name: "progressDeadlineSeconds: a rollout that does not progress fails",
			setup: func(t *testing.T) (*manifest.Set, Observed, time.Time) {
				v1 := withDeadline(deployment("web", 2, "web:1", "100m"), 60)
				v2 := withDeadline(deployment("web", 2, "web:2", "100m"), 60)
				o := settled(t, set([]appsv1.Deployment{v1}, nil, nil), n1)
				desired := set([]appsv1.Deployment{v2}, nil, nil)
				o = apply(t, o, Plan(desired, o, t0).Actions) // new pods never become ready
				return desired, o, t0.Add(time.Second)
			},
			wantWake: func(o Observed) time.Time {
				// Stored times are whole seconds, as the store keeps them.
				return progressingOf(&o.Deployments[0]).LastUpdateTime.Add(60*time.Second + time.Nanosecond)
			},
			atWake: func(t *testing.T, res Result) {
				if len(res.Rollouts) != 1 || res.Rollouts[0].State != RolloutFailed || res.Rollouts[0].Reason != ReasonProgressDeadlineExceeded {
					t.Errorf("at Wake: rollouts %+v; want web failed, ProgressDeadlineExceeded", res.Rollouts)
				}
			},
		},
		{
			name: "node grace: the pods of a node gone longer than the grace are lost",
			setup: func(t *testing.T) (*manifest.Set, Observed, time.Time) {
				desired := set([]appsv1.Deployment{deployment("web", 2, "web:1", "100m")}, nil, nil)
				o := settled(t, desired, n1, node("n2", "4"))
				g, _, _ := NodeGrace{Period: 40 * time.Second}.Observe(o.Nodes, t0)
				now := t0.Add(5 * time.Second)
				_, o.Nodes, o.NodeGraceExpires = g.Observe([]corev1.Node{n1}, now) // n2 stopped registering
				return desired, o, now
			},
			wantWake: func(Observed) time.Time { return t0.Add(45 * time.Second) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			desired, o, now := tt.setup(t)
			res := Plan(desired, o, now)
			if len(res.Actions) > 0 {
				t.Fatalf("not a fixed point at now: %s", strings.Join(summarize(res.Actions), "; "))
			}
			want := tt.wantWake(o)
			if !res.Wake.Equal(want) {
				t.Fatalf("Wake = %v, want %v", res.Wake, want)
			}
			if before := Plan(desired, o, want.Add(-time.Nanosecond)); len(before.Actions) > 0 {
				t.Errorf("a moment before Wake the plan acts: %s", strings.Join(summarize(before.Actions), "; "))
			}
			if tt.atWake != nil {
				tt.atWake(t, Plan(desired, o, want))
			}
		})
	}
}

func TestNodeGrace(t *testing.T) {
	grace := 30 * time.Second
	names := func(nodes []corev1.Node) map[string]bool {
		out := map[string]bool{}
		for _, n := range nodes {
			out[n.Name] = n.Spec.Unschedulable
		}
		return out
	}
	n1, n2 := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}}
	podOn := func(name, node string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Spec: corev1.PodSpec{NodeName: node}}
	}
	// A new leader sees n1 registered and pods bound to n2, which it has
	// never seen: n2 is kept, unschedulable, for the grace period.
	g := StartNodeGrace(grace, []*corev1.Pod{podOn("a", "n1"), podOn("b", "n2")}, t0)
	g, nodes, expires := g.Observe([]corev1.Node{n1}, t0)
	if got := names(nodes); len(got) != 2 || got["n1"] || !got["n2"] || !expires.Equal(t0.Add(grace)) {
		t.Fatalf("at start: %v expiring %v, want n1 schedulable and n2 unschedulable until %v", got, expires, t0.Add(grace))
	}

	// n1 registers at 10 s, then vanishes (seen gone at 12 s): kept for the
	// grace period from then, then dropped.
	g, _, _ = g.Observe([]corev1.Node{n1}, t0.Add(10*time.Second))
	g, nodes, expires = g.Observe(nil, t0.Add(12*time.Second))
	if got := names(nodes); len(got) != 2 || !got["n1"] || !expires.Equal(t0.Add(grace)) {
		t.Fatalf("after n1 vanished: %v expiring %v; want both kept, n2's grace first", got, expires)
	}
	g, nodes, expires = g.Observe(nil, t0.Add(grace))
	if got := names(nodes); len(got) != 1 || !got["n1"] || !expires.Equal(t0.Add(12*time.Second+grace)) {
		t.Fatalf("at n2's grace end: %v expiring %v; want only n1, until %v", got, expires, t0.Add(12*time.Second+grace))
	}
	g, nodes, expires = g.Observe(nil, t0.Add(42*time.Second))
	if len(nodes) != 0 || !expires.IsZero() || len(g.LastSeen) != 0 {
		t.Fatalf("after the grace period: %v expiring %v, state %v; want nothing", names(nodes), expires, g.LastSeen)
	}

	// n2 registers again: schedulable, and its grace restarts when it goes.
	g, nodes, _ = g.Observe([]corev1.Node{n2}, t0.Add(50*time.Second))
	if got := names(nodes); len(got) != 1 || got["n2"] {
		t.Fatalf("n2 back: %v", got)
	}
	registered := []corev1.Node{n1}
	_, nodes, expires = g.Observe(registered, t0.Add(60*time.Second))
	if got := names(nodes); len(got) != 2 || !got["n2"] || !expires.Equal(t0.Add(90*time.Second)) || registered[0].Spec.Unschedulable {
		t.Fatalf("n2 gone again: %v expiring %v", got, expires)
	}

	// A quiet cluster: no pass for an hour after n1 registered, then n1's
	// lease lapses. It still gets its whole grace from the pass that sees
	// it gone (it was lost at once when the grace counted from the last
	// pass that saw it).
	g = StartNodeGrace(grace, nil, t0)
	g, _, _ = g.Observe([]corev1.Node{n1}, t0)
	hour := t0.Add(time.Hour)
	g, nodes, expires = g.Observe(nil, hour)
	if got := names(nodes); len(got) != 1 || !got["n1"] || !expires.Equal(hour.Add(grace)) {
		t.Fatalf("n1 gone after a quiet hour: %v expiring %v, want kept until %v", got, expires, hour.Add(grace))
	}
	if _, nodes, _ = g.Observe(nil, hour.Add(grace-time.Nanosecond)); len(nodes) != 1 {
		t.Fatalf("n1 dropped before its grace ended: %v", names(nodes))
	}
}

func TestPlan_rolloutSummaries(t *testing.T) {
	n1 := node("n1", "4")
	v1 := rollingUpdate(deployment("web", 4, "web:1", "100m"), "1", "1")
	v2 := rollingUpdate(deployment("web", 4, "web:2", "100m"), "1", "1")
	o := settled(t, set([]appsv1.Deployment{v1}, nil, nil), n1)
	desired := set([]appsv1.Deployment{v1}, nil, nil)
	if res := Plan(desired, o, t0); len(res.Rollouts) != 1 || res.Rollouts[0] != (RolloutSummary{
		Namespace: "default", Name: "web", ToHash: hashOf(v1), Revision: 1, Replicas: 4, Updated: 4, Ready: 4, Available: 4,
		MaxSurge: 1, MaxUnavailable: 1, State: RolloutComplete, Reason: ReasonNewReplicaSetAvailable,
		Message: `deployment "web" successfully rolled out`}) {
		t.Errorf("settled: %+v", res.Rollouts)
	}

	// The first step of v2: one old pod goes, two new ones start.
	desired = set([]appsv1.Deployment{v2}, nil, nil)
	res := Plan(desired, o, t0)
	want := RolloutSummary{Namespace: "default", Name: "web", FromHash: hashOf(v1), ToHash: hashOf(v2), Revision: 2,
		Replicas: 4, Updated: 2, Ready: 3, Available: 3, OldPods: 3, MaxSurge: 1, MaxUnavailable: 1,
		State: RolloutProgressing, Reason: ReasonNewReplicaSetCreated,
		Message: `Waiting for deployment "web" rollout to finish: 2 out of 4 new replicas have been updated...`}
	if len(res.Rollouts) != 1 || res.Rollouts[0] != want {
		t.Errorf("first step of v2:\n got %+v\nwant %+v", res.Rollouts, want)
	}
	// The summary and RolloutStatus of the Deployment the plan writes agree.
	o = apply(t, o, res.Actions)
	if complete, failed, msg := RolloutStatus(storedDeployment(t, o, "web")); complete || failed || msg != want.Message {
		t.Errorf("RolloutStatus = %v %v %q, want the summary's %q", complete, failed, msg, want.Message)
	}

	// Recreate: no surge, no unavailability.
	rc := recreate(deployment("db", 1, "db:1", "100m"))
	if res := Plan(set([]appsv1.Deployment{rc}, nil, nil), Observed{Nodes: []corev1.Node{n1}}, t0); res.Rollouts[0].MaxSurge != 0 || res.Rollouts[0].MaxUnavailable != 0 ||
		res.Rollouts[0].State != RolloutProgressing || res.Rollouts[0].FromHash != "" {
		t.Errorf("recreate: %+v", res.Rollouts)
	}
}
