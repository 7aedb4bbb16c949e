package server

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/store"
)

func nodeNamed(name string) corev1.Node {
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func podOn(name, node string) corev1.Pod {
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Spec: corev1.PodSpec{NodeName: node}}
}

func names(nodes []corev1.Node) map[string]bool {
	out := map[string]bool{}
	for _, n := range nodes {
		out[n.Name] = n.Spec.Unschedulable
	}
	return out
}

func TestNodesWithGrace(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	grace := 30 * time.Second
	// A new leader sees n1 registered and pods bound to n2, which it has
	// never seen: n2 is kept, unschedulable, for the grace period.
	snap := &store.Snapshot{Nodes: []corev1.Node{nodeNamed("n1")}, Pods: []corev1.Pod{podOn("a", "n1"), podOn("b", "n2")}}
	lastSeen := boundNodes(snap, t0)
	got := names(nodesWithGrace(snap, lastSeen, t0, grace))
	if len(got) != 2 || got["n1"] || !got["n2"] {
		t.Fatalf("at start: %v, want n1 schedulable and n2 unschedulable", got)
	}

	// n1 vanishes: kept for the grace period, then dropped.
	snap = &store.Snapshot{Pods: []corev1.Pod{podOn("a", "n1"), podOn("b", "n2")}}
	if got := names(nodesWithGrace(snap, lastSeen, t0.Add(10*time.Second), grace)); len(got) != 2 || !got["n1"] {
		t.Fatalf("10s after n1 vanished: %v, want n1 kept unschedulable", got)
	}
	if got := names(nodesWithGrace(snap, lastSeen, t0.Add(31*time.Second), grace)); len(got) != 0 {
		t.Fatalf("after the grace period: %v, want no nodes", got)
	}
	// Still bound pods do not bring a lost node back.
	if got := names(nodesWithGrace(snap, lastSeen, t0.Add(32*time.Second), grace)); len(got) != 0 {
		t.Fatalf("a pass later: %v, want no nodes", got)
	}

	// n2 registers again: schedulable, and it restarts its grace when gone.
	snap = &store.Snapshot{Nodes: []corev1.Node{nodeNamed("n2")}}
	if got := names(nodesWithGrace(snap, lastSeen, t0.Add(40*time.Second), grace)); len(got) != 1 || got["n2"] {
		t.Fatalf("n2 back: %v", got)
	}
}
