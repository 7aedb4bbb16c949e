package server

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/reconciler"
	"bosun/store"
)

func TestHealthChanges(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	grace := 30 * time.Second
	reg := func(name string) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}}
	}
	bound := func(name, node string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Spec: corev1.PodSpec{NodeName: node}}
	}
	ready := store.NodeHealth{Node: "a", Ready: true, Since: t0.Add(-time.Hour), Reason: store.ReasonNodeReady, Message: "bosun agent is running"}
	lastSeen := map[string]reconciler.SeenNode{"a": {Node: reg("a"), At: t0.Add(-time.Second)}}

	tests := []struct {
		name string
		snap store.Snapshot
		now  time.Time
		// want: node -> "ready" | "notready" (with since) ; gone nodes
		put   map[string]string
		since map[string]time.Time
		gone  []string
		msg   map[string]string // substring of the NotReady message
	}{
		{name: "a new registered node gets a Ready record",
			snap: store.Snapshot{Nodes: []corev1.Node{reg("a")}}, now: t0,
			put: map[string]string{"a": "ready"}},
		{name: "steady: nothing written",
			snap: store.Snapshot{Nodes: []corev1.Node{reg("a")}, NodeHealth: []store.NodeHealth{ready}}, now: t0},
		{name: "registration gone, pods bound: NotReady since now, with the last registration",
			snap: store.Snapshot{Pods: []*corev1.Pod{bound("p", "a")}, NodeHealth: []store.NodeHealth{ready}}, now: t0,
			put: map[string]string{"a": "notready"}, since: map[string]time.Time{"a": t0},
			msg: map[string]string{"a": "its pods (1) are replaced on other nodes at 2026-03-01T12:00:30Z"}},
		{name: "cordoned node never registered: known, NotReady",
			snap: store.Snapshot{NodeControls: []store.NodeControl{{Node: "b", Unschedulable: true}}}, now: t0,
			put: map[string]string{"b": "notready"}},
		{name: "after the grace period the message says the pods were replaced; since stays",
			snap: store.Snapshot{NodeControls: []store.NodeControl{{Node: "a", Unschedulable: true}},
				NodeHealth: []store.NodeHealth{{Node: "a", Since: t0, Reason: store.ReasonNodeLeaseExpired, Message: notReadyMessage(t0, grace, 0, t0)}}},
			now: t0.Add(31 * time.Second),
			put: map[string]string{"a": "notready"}, since: map[string]time.Time{"a": t0},
			msg: map[string]string{"a": "its pods were replaced on other nodes"}},
		{name: "unknown node: its record goes",
			snap: store.Snapshot{NodeHealth: []store.NodeHealth{{Node: "z", Since: t0}}}, now: t0,
			gone: []string{"z"}},
		{name: "back: Ready since now",
			snap: store.Snapshot{Nodes: []corev1.Node{reg("a")}, NodeHealth: []store.NodeHealth{{Node: "a", Since: t0, Reason: store.ReasonNodeLeaseExpired}}}, now: t0.Add(time.Minute),
			put: map[string]string{"a": "ready"}, since: map[string]time.Time{"a": t0.Add(time.Minute)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			put, gone := healthChanges(&tt.snap, lastSeen, grace, tt.now)
			got := map[string]string{}
			for _, h := range put {
				got[h.Node] = map[bool]string{true: "ready", false: "notready"}[h.Ready]
				if s, ok := tt.since[h.Node]; ok && !h.Since.Equal(s) {
					t.Errorf("%s since %v, want %v", h.Node, h.Since, s)
				}
				if m, ok := tt.msg[h.Node]; ok && !strings.Contains(h.Message, m) {
					t.Errorf("%s message %q lacks %q", h.Node, h.Message, m)
				}
				if h.Node == "a" && !h.Ready && h.LastSeen == nil {
					t.Errorf("NotReady record of a lacks its last registration")
				}
			}
			if len(got) != len(tt.put) {
				t.Errorf("put %v, want %v", got, tt.put)
			}
			for k, v := range tt.put {
				if got[k] != v {
					t.Errorf("put %v, want %v", got, tt.put)
				}
			}
			if !slices.Equal(gone, tt.gone) {
				t.Errorf("gone %v, want %v", gone, tt.gone)
			}
			// Applying the writes and deciding again writes nothing.
			next := tt.snap
			next.NodeHealth = slices.DeleteFunc(slices.Clone(tt.snap.NodeHealth), func(h store.NodeHealth) bool {
				return slices.Contains(gone, h.Node) || slices.ContainsFunc(put, func(p store.NodeHealth) bool { return p.Node == h.Node })
			})
			next.NodeHealth = append(next.NodeHealth, put...)
			if put2, gone2 := healthChanges(&next, lastSeen, grace, tt.now); len(put2)+len(gone2) > 0 {
				t.Errorf("not a fixpoint: put %+v gone %v", put2, gone2)
			}
		})
	}
}

func TestWithControls_cordonAndDrainWithoutTouchingTheInput(t *testing.T) {
	nodes := []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, {ObjectMeta: metav1.ObjectMeta{Name: "b"}}, {ObjectMeta: metav1.ObjectMeta{Name: "c"}}}
	out, drains := withControls(nodes, []store.NodeControl{
		{Node: "a", Unschedulable: true}, {Node: "b", Unschedulable: true, Drain: &store.NodeDrain{Force: true}}, {Node: "gone", Unschedulable: true}})
	if !out[0].Spec.Unschedulable || !out[1].Spec.Unschedulable || out[2].Spec.Unschedulable {
		t.Errorf("unschedulable: %v %v %v", out[0].Spec.Unschedulable, out[1].Spec.Unschedulable, out[2].Spec.Unschedulable)
	}
	if nodes[0].Spec.Unschedulable || nodes[1].Spec.Unschedulable {
		t.Error("the input nodes were modified")
	}
	if len(drains) != 1 || !drains["b"].Force {
		t.Errorf("drains = %v", drains)
	}
}
