package reconciler

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"bosun/scheduler"
)

// TestPlan_reservedHostPortsKeepPodsOff: the planner reads a node's
// reserved ports (the ports bosun listens on there, from its
// bosun.dev/reserved-host-ports annotation): a pod asking one stays
// Pending with kube-scheduler's reason, on another port it is bound, and
// a DaemonSet's pod for that node waits the same way.
func TestPlan_reservedHostPortsKeepPodsOff(t *testing.T) {
	n1 := node("n1", "4")
	n1.Annotations = map[string]string{scheduler.AnnotationReservedHostPorts: "TCP/0.0.0.0:80=ingress,UDP/10.88.1.1:53=pod-dns"}
	withHostPort := func(p corev1.Pod, port int32, proto corev1.Protocol) corev1.Pod {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: port, Protocol: proto}}
		return p
	}
	web := withHostPort(standalone("web", "web:1", "100m", ""), 80, corev1.ProtocolTCP)
	dns := withHostPort(standalone("dns", "dns:1", "100m", ""), 53, corev1.ProtocolUDP)
	alt := withHostPort(standalone("alt", "web:1", "100m", ""), 8080, corev1.ProtocolTCP)
	ds := daemonSet("edge", "edge:1", "100m")
	ds.Spec.Template.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 80}}
	desired := set(nil, []corev1.Pod{web, dns, alt}, nil)
	desired.DaemonSets = []appsv1.DaemonSet{ds}

	const reason = "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports"
	seen := map[string]bool{}
	for _, a := range Plan(desired, Observed{Nodes: []corev1.Node{n1}}, t0).Actions {
		if a.Type != CreatePod {
			continue
		}
		p := a.Pod
		name := p.Name
		if isDaemonPod(p) {
			name = "edge"
		}
		seen[name] = true
		cond := scheduledCondition(p)
		switch name {
		case "alt":
			if p.Spec.NodeName != "n1" {
				t.Errorf("alt (host port 8080) not bound: node %q, %+v", p.Spec.NodeName, cond)
			}
		default:
			if p.Spec.NodeName != "" || cond == nil || cond.Reason != corev1.PodReasonUnschedulable || cond.Message != reason {
				t.Errorf("%s: node %q, PodScheduled %+v; want pending with %q", name, p.Spec.NodeName, cond, reason)
			}
		}
	}
	for _, n := range []string{"web", "dns", "alt", "edge"} {
		if !seen[n] {
			t.Errorf("no pod %s created", n)
		}
	}

	// An unreadable annotation: no pod with a host port goes there.
	n1.Annotations[scheduler.AnnotationReservedHostPorts] = "TCP/0.0.0.0:80=ingress,?"
	for _, a := range Plan(set(nil, []corev1.Pod{alt}, nil), Observed{Nodes: []corev1.Node{n1}}, t0).Actions {
		if a.Type == CreatePod && a.Pod.Spec.NodeName != "" {
			t.Errorf("alt bound to %s, whose reserved ports are unreadable", a.Pod.Spec.NodeName)
		}
	}
}

// TestPlan_podRefusedForAReservedPortIsReplacedElsewhere: a Deployment's
// pod bound to a node before that node reserved its port (an older
// leader, or the flag is new) is refused there for good by the agent
// (Failed, HostPortReserved); the planner replaces it, and the scheduler
// puts the replacement on a node without that listener, never back.
func TestPlan_podRefusedForAReservedPortIsReplacedElsewhere(t *testing.T) {
	d := deployment("web", 1, "web:1", "100m")
	d.Spec.Template.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 80}}
	desired := set([]appsv1.Deployment{d}, nil, nil)
	n1 := node("n1", "4")
	o := apply(t, Observed{Nodes: []corev1.Node{n1}}, Plan(desired, Observed{Nodes: []corev1.Node{n1}}, t0).Actions)
	if len(o.Pods) != 1 || o.Pods[0].Spec.NodeName != "n1" {
		t.Fatalf("pods %v", o.Pods)
	}
	old := o.Pods[0].Name
	o.Pods[0].Status = corev1.PodStatus{Phase: corev1.PodFailed, Reason: "HostPortReserved",
		Message: "Pod was rejected: port 80/TCP is bosun's ingress listener (--ingress-listen) on this node"}
	n1.Annotations = map[string]string{scheduler.AnnotationReservedHostPorts: "TCP/0.0.0.0:80=ingress"}
	o.Nodes = []corev1.Node{n1, node("n2", "4")}
	deleted, placed := false, ""
	for _, a := range Plan(desired, o, t0.Add(time.Second)).Actions {
		switch {
		case a.Type == DeletePod && a.Name == old:
			deleted = true
		case a.Type == CreatePod:
			placed = a.Pod.Spec.NodeName
		}
	}
	if !deleted || placed != "n2" {
		t.Errorf("the refused pod deleted %v, its replacement placed on %q; want deleted, on n2", deleted, placed)
	}
}

// TestPlan_pinnedPodRefusedForAReservedPortIsKept: a standalone pod pinned
// by nodeName to a node that reserves its host port, refused there for
// good, is kept as it failed (saying why) instead of replaced by a pod
// that would be refused at once again, over and over; once the node no
// longer reserves the port (the listener moved), it is replaced.
func TestPlan_pinnedPodRefusedForAReservedPortIsKept(t *testing.T) {
	pinned := standalone("pinned", "web:1", "100m", "")
	pinned.Spec.NodeName = "n1"
	pinned.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 443}}
	desired := set(nil, []corev1.Pod{pinned}, nil)
	n1 := node("n1", "4")
	n1.Annotations = map[string]string{scheduler.AnnotationReservedHostPorts: "TCP/0.0.0.0:443=ingress-tls"}
	o := apply(t, Observed{Nodes: []corev1.Node{n1}}, Plan(desired, Observed{Nodes: []corev1.Node{n1}}, t0).Actions)
	if len(o.Pods) != 1 || o.Pods[0].Spec.NodeName != "n1" {
		t.Fatalf("pods %v", o.Pods)
	}
	o.Pods[0].Status = corev1.PodStatus{Phase: corev1.PodFailed, Reason: scheduler.ReasonHostPortReserved,
		Message: "Pod was rejected: port 443/TCP is bosun's ingress TLS listener (--ingress-tls-listen) on this node"}
	for _, a := range Plan(desired, o, t0.Add(time.Second)).Actions {
		if a.Type == DeletePod || a.Type == CreatePod {
			t.Errorf("while the node reserves the port: %s %s/%s (%s)", a.Type, a.Namespace, a.Name, a.Reason)
		}
	}
	o.Nodes[0].Annotations[scheduler.AnnotationReservedHostPorts] = "TCP/0.0.0.0:8443=ingress-tls"
	var types []ActionType
	for _, a := range Plan(desired, o, t0.Add(2*time.Second)).Actions {
		if a.Type == DeletePod || a.Type == CreatePod {
			types = append(types, a.Type)
		}
	}
	if len(types) != 2 || types[0] != DeletePod || types[1] != CreatePod {
		t.Errorf("once the listener moved: %v, want the pod replaced", types)
	}
}
