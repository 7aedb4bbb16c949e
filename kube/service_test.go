package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestServicePorts(t *testing.T) {
	svc := &corev1.Service{Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
		{Port: 80}, {Port: 53, Protocol: corev1.ProtocolUDP, NodePort: 30053}, {Port: 443, Protocol: corev1.ProtocolTCP},
	}}}
	if got, want := ServicePorts(svc), "80/TCP,53:30053/UDP,443/TCP"; got != want {
		t.Errorf("ServicePorts = %q, want %q", got, want)
	}
	if got := ServicePorts(&corev1.Service{}); got != "<none>" {
		t.Errorf("no ports: %q", got)
	}
}
