package kube

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodReady reports whether the pod's Ready condition is True.
func PodReady(p *corev1.Pod) bool {
	for i := range p.Status.Conditions {
		if c := &p.Status.Conditions[i]; c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// PodFinished reports whether the pod ran to its end: phase Succeeded or
// Failed. A finished pod is never started again under the same UID.
func PodFinished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// NodeReady reports whether the node's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	for i := range n.Status.Conditions {
		if c := &n.Status.Conditions[i]; c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Controller returns the kind and name of the object that controls obj: its
// owner reference with controller set, as Kubernetes' garbage collector
// reads it. Both are "" when nothing controls it.
func Controller(obj metav1.Object) (kind, name string) {
	if ref := metav1.GetControllerOfNoCopy(obj); ref != nil {
		return ref.Kind, ref.Name
	}
	return "", ""
}

// OwnerOf names obj's controller as "Kind/namespace/name" (an owner lives in
// its object's namespace), or "" when nothing controls it. It is the form
// bosun keys owners by: in the store's pod status, the scheduler's spreading
// group and the planner's bosun.dev/owner annotation.
func OwnerOf(obj metav1.Object) string {
	kind, name := Controller(obj)
	if kind == "" {
		return ""
	}
	return kind + "/" + obj.GetNamespace() + "/" + name
}
