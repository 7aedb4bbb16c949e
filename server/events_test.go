package server

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/canary"
	"bosun/reconciler"
	"bosun/store"
)

func TestServerEvents_fromPassesRevisionsAndNodes(t *testing.T) {
	st := store.NewTest(t)
	e := newServerEvents(st, nil, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { e.run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	pod := func(name, node string, cond corev1.ConditionStatus, why string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Spec: corev1.PodSpec{NodeName: node}}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: cond, Message: why}}
		if cond == corev1.ConditionFalse {
			p.Status.Conditions[0].Reason = corev1.PodReasonUnschedulable
		}
		return p
	}
	ro := func(updated, old, avail int32, state reconciler.RolloutState) reconciler.RolloutSummary {
		return reconciler.RolloutSummary{Namespace: "default", Name: "web", ToHash: "abc", Revision: 2, Replicas: 2,
			Updated: updated, OldPods: old, Available: avail, State: state, Reason: "ProgressDeadlineExceeded", Message: "too slow"}
	}
	e.lead()
	// The first pass of a leadership is its baseline: no rollout event.
	e.pass(reconciler.Result{Rollouts: []reconciler.RolloutSummary{ro(0, 2, 2, reconciler.RolloutProgressing)}})
	e.pass(reconciler.Result{
		Actions: []reconciler.Action{
			{Type: reconciler.CreatePod, Pod: pod("web-a", "n1", corev1.ConditionTrue, "")},
			{Type: reconciler.UpdatePod, Pod: pod("web-b", "", corev1.ConditionFalse, "0/1 nodes are available: 1 Insufficient cpu"), Reason: "unschedulable: x"},
			{Type: reconciler.UpdatePod, Pod: pod("web-c", "n1", corev1.ConditionTrue, ""), Reason: "restart"}, // not a binding
		},
		Rollouts:     []reconciler.RolloutSummary{ro(1, 1, 1, reconciler.RolloutProgressing)},
		CanaryEvents: []canary.Event{{Namespace: "default", Name: "web", Branch: "try", Commit: "0123456789abcdef0123456789abcdef01234567", Reason: canary.EventAborted, Message: "a canary pod restarted"}},
	})
	e.pass(reconciler.Result{Rollouts: []reconciler.RolloutSummary{ro(1, 1, 1, reconciler.RolloutFailed)}})
	e.pass(reconciler.Result{Rollouts: []reconciler.RolloutSummary{ro(2, 0, 2, reconciler.RolloutComplete)}})
	e.revision(store.Revision{Commit: "feedface00feedface00feedface00feedface00", Message: "bad\nbody"}, store.HistoryEntry{Result: store.ResultRejected,
		Errors: []string{"deploy/web.yaml:14: spec.replicas: must be >= 0", "x.yaml:1: y"}})
	now := time.Now()
	e.nodeHealth(store.NodeHealth{Node: "n2", Since: now, Message: "lease expired"}, now)
	e.nodeControls(nil, reconciler.Observed{}) // baseline
	e.nodeControls([]store.NodeControl{{Node: "n1", Unschedulable: true, Who: "ops"}}, reconciler.Observed{})
	e.nodeControls(nil, reconciler.Observed{})

	want := []string{
		"Pod/web-a Scheduled Successfully assigned default/web-a to n1",
		"Pod/web-b FailedScheduling 0/1 nodes are available: 1 Insufficient cpu",
		"Deployment/web RolloutStep revision 2 (template abc): 1 of 2 replicas updated, 1 old pods left, 1 available",
		"Deployment/web CanaryAborted branch try commit 0123456789ab: a canary pod restarted",
		"Deployment/web RolloutFailed revision 2 (template abc): ProgressDeadlineExceeded: too slow",
		"Deployment/web RolloutStep revision 2 (template abc): 2 of 2 replicas updated, 0 old pods left, 2 available",
		"Deployment/web RolloutComplete revision 2 (template abc) rolled out: 2 replicas available",
		`Revision/feedface00fe RevisionRejected commit feedface00fe "bad" rejected; the last good revision keeps running: deploy/web.yaml:14: spec.replicas: must be >= 0 (and 1 more)`,
		"Node/n2 NodeNotReady node n2 is not ready: lease expired",
		"Node/n1 NodeNotSchedulable node n1 cordoned by ops",
		"Node/n1 NodeSchedulable node n1 uncordoned",
	}
	var got []string
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		evs, err := st.Events(ctx, store.EventFilter{})
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, ev := range evs {
			if ev.Source != "leader" {
				t.Errorf("source %q", ev.Source)
			}
			got = append(got, ev.Object.Kind+"/"+ev.Object.Name+" "+ev.Reason+" "+ev.Message)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
