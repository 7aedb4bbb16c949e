package main

import (
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"bosun/scheduler"
)

// describeReservedPorts shows the ports bosun listens on at node n, as
// its agent publishes them (scheduler.AnnotationReservedHostPorts), or
// why they do not read: the scheduler then places no pod with a host
// port there.
func describeReservedPorts(w io.Writer, n *corev1.Node) {
	field(w, "Reserved ports", reservedPortsLine(n))
}

func reservedPortsLine(n *corev1.Node) string {
	ports, err := scheduler.ReservedPortsOf(n)
	switch {
	case err != nil:
		return "unreadable, no pod with a host port is placed here: " + err.Error()
	case len(ports) == 0:
		return "<none>"
	}
	out := make([]string, len(ports))
	for i, p := range ports {
		out[i] = p.String()
	}
	return strings.Join(out, ", ")
}
