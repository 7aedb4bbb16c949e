package main

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/scheduler"
)

func TestReservedPortsLine(t *testing.T) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	if got := reservedPortsLine(n); got != "<none>" {
		t.Errorf("no annotation: %q", got)
	}
	n.Annotations = map[string]string{scheduler.AnnotationReservedHostPorts: "TCP/0.0.0.0:80=ingress,UDP/10.88.1.1:53=pod-dns"}
	if got := reservedPortsLine(n); got != "TCP/0.0.0.0:80=ingress, UDP/10.88.1.1:53=pod-dns" {
		t.Errorf("ports: %q", got)
	}
	n.Annotations[scheduler.AnnotationReservedHostPorts] = "TCP/0.0.0.0:80=ingress,garbage"
	if got := reservedPortsLine(n); !strings.HasPrefix(got, "unreadable, no pod with a host port is placed here: node n1: bosun.dev/reserved-host-ports: entry 2: \"garbage\"") {
		t.Errorf("garbage: %q", got)
	}
}
