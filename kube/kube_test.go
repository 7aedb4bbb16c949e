package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodReady(t *testing.T) {
	cond := func(typ corev1.PodConditionType, s corev1.ConditionStatus) corev1.PodCondition {
		return corev1.PodCondition{Type: typ, Status: s}
	}
	for _, tt := range []struct {
		name  string
		conds []corev1.PodCondition
		want  bool
	}{
		{"no conditions", nil, false},
		{"ready", []corev1.PodCondition{cond(corev1.PodScheduled, "True"), cond(corev1.PodReady, "True")}, true},
		{"not ready", []corev1.PodCondition{cond(corev1.PodReady, "False")}, false},
		{"unknown", []corev1.PodCondition{cond(corev1.PodReady, "Unknown")}, false},
		{"containers ready is not ready", []corev1.PodCondition{cond(corev1.ContainersReady, "True")}, false},
	} {
		p := &corev1.Pod{Status: corev1.PodStatus{Conditions: tt.conds}}
		if got := PodReady(p); got != tt.want {
			t.Errorf("%s: PodReady = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestPodFinished(t *testing.T) {
	for phase, want := range map[corev1.PodPhase]bool{"": false, corev1.PodPending: false, corev1.PodRunning: false,
		corev1.PodSucceeded: true, corev1.PodFailed: true} {
		if got := PodFinished(&corev1.Pod{Status: corev1.PodStatus{Phase: phase}}); got != want {
			t.Errorf("phase %q: PodFinished = %v", phase, got)
		}
	}
}

func TestNodeReady(t *testing.T) {
	n := &corev1.Node{}
	if NodeReady(n) {
		t.Error("a node without conditions is ready")
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: "True"}, {Type: corev1.NodeReady, Status: "True"}}
	if !NodeReady(n) {
		t.Error("a Ready node is not ready")
	}
}

func TestOwnerOf(t *testing.T) {
	yes, no := true, false
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1", OwnerReferences: []metav1.OwnerReference{
		{Kind: "Service", Name: "not-a-controller", Controller: &no},
		{Kind: "Deployment", Name: "web", Controller: &yes},
	}}}
	if got := OwnerOf(pod); got != "Deployment/shop/web" {
		t.Errorf("OwnerOf = %q", got)
	}
	if kind, name := Controller(pod); kind != "Deployment" || name != "web" {
		t.Errorf("Controller = %q %q", kind, name)
	}
	pod.OwnerReferences = pod.OwnerReferences[:1]
	if got := OwnerOf(pod); got != "" {
		t.Errorf("OwnerOf without a controller = %q", got)
	}
}
