package kube

import (
	"cmp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ServicePorts renders a Service's ports as kubectl's PORT(S) column does:
// PORT/PROTOCOL, or PORT:NODEPORT/PROTOCOL for a port with a node port,
// comma-separated; "<none>" when it has none. `bosun get services` and
// `bosun plan` show them.
func ServicePorts(svc *corev1.Service) string {
	if len(svc.Spec.Ports) == 0 {
		return "<none>"
	}
	parts := make([]string, len(svc.Spec.Ports))
	for i, p := range svc.Spec.Ports {
		s := strconv.Itoa(int(p.Port))
		if p.NodePort != 0 {
			s += ":" + strconv.Itoa(int(p.NodePort))
		}
		parts[i] = s + "/" + string(cmp.Or(p.Protocol, corev1.ProtocolTCP))
	}
	return strings.Join(parts, ",")
}
