package scheduler

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
)

// reasonPorts is kube-scheduler's NodePorts reason; reasonPortsUnreadable
// bosun's, for a node whose reserved ports are unknown (Node.
// ReservedPortsErr).
const (
	reasonPorts           = "node(s) didn't have free ports for the requested pod ports"
	reasonPortsUnreadable = "node(s) had an unreadable " + AnnotationReservedHostPorts + " annotation"
)

// HostPort is one port a pod takes on its node (containers[].ports[]
// with a hostPort): Protocol TCP, UDP or SCTP ("" is TCP), HostIP the
// node address it binds ("", or any unspecified address such as "0.0.0.0"
// or "::", is every address).
type HostPort struct {
	Protocol corev1.Protocol
	HostIP   string
	Port     int32
}

// wildcard is how norm spells every address.
const wildcard = "0.0.0.0"

// norm gives the defaults and each address their one spelling: every
// unspecified address ("", "0.0.0.0", "::") is wildcard, others are
// canonical (an IPv4-mapped IPv6 address is its IPv4 one), so that two
// spellings of one address conflict.
func (h HostPort) norm() HostPort {
	if h.Protocol == "" {
		h.Protocol = corev1.ProtocolTCP
	}
	if h.HostIP == "" {
		h.HostIP = wildcard
	} else if a, err := netip.ParseAddr(h.HostIP); err == nil {
		a = a.Unmap().WithZone("")
		if a.IsUnspecified() {
			h.HostIP = wildcard
		} else {
			h.HostIP = a.String()
		}
	}
	return h
}

// Conflicts is Kubernetes' rule (HostPortInfo.CheckConflict): the same
// port and protocol on the same address, or on any address when either
// side binds every address. The node agent admits pods by it too.
func (h HostPort) Conflicts(o HostPort) bool {
	return h.norm().conflictsNorm(o.norm())
}

// conflictsNorm is Conflicts on two ports normalized already (norm): the
// scheduler's inner loop, which normalizes each port once (rules,
// reservePorts) instead of at every comparison.
func (h HostPort) conflictsNorm(o HostPort) bool {
	if h.Port != o.Port || h.Protocol != o.Protocol {
		return false
	}
	return h.HostIP == o.HostIP || h.HostIP == wildcard || o.HostIP == wildcard
}

// HostPortsOf lists the host ports a pod with this spec takes, init
// containers included (as kube-scheduler counts them). On a hostNetwork
// pod every container port is a host port (Kubernetes' defaulting makes
// hostPort equal containerPort; a spec that skipped defaulting counts the
// same).
func HostPortsOf(spec *corev1.PodSpec) []HostPort {
	var out []HostPort
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			for _, p := range cs[i].Ports {
				port := p.HostPort
				if port == 0 && spec.HostNetwork {
					port = p.ContainerPort
				}
				if port > 0 {
					out = append(out, HostPort{Protocol: p.Protocol, HostIP: p.HostIP, Port: port}.norm())
				}
			}
		}
	}
	return out
}

// portsFree is the NodePorts filter: none of p's host ports conflicts
// with one a pod placed on node n takes, or one bosun listens on there
// (Node.ReservedPorts; none at all when those are unknown:
// failPortsUnreadable). Both sides are normalized already (rules,
// reservePorts), so they are compared as they are.
func (c *cluster) portsFree(r *rules, n int) failure {
	if len(r.hostPorts) == 0 || len(c.usedPorts) == 0 {
		return fits
	}
	if c.portsUnknown != nil && c.portsUnknown[n] {
		return failPortsUnreadable
	}
	for _, want := range r.hostPorts {
		for _, used := range c.usedPorts[n] {
			if want.conflictsNorm(used) {
				return failPorts
			}
		}
	}
	return fits
}

// reservePorts counts node's reserved ports as used on node n, before any
// pod is placed.
func (c *cluster) reservePorts(n int, node *Node) {
	if len(node.ReservedPorts) == 0 && node.ReservedPortsErr == nil {
		return
	}
	if c.usedPorts == nil {
		c.usedPorts = make([][]HostPort, len(c.names))
	}
	c.usedPorts[n] = make([]HostPort, len(node.ReservedPorts))
	for i, h := range node.ReservedPorts {
		c.usedPorts[n][i] = h.norm()
	}
	if node.ReservedPortsErr != nil {
		if c.portsUnknown == nil {
			c.portsUnknown = make([]bool, len(c.names))
		}
		c.portsUnknown[n] = true
	}
}

// placePorts records the host ports of r's pod as used on node n.
func (c *cluster) placePorts(r *rules, n int) {
	if len(r.hostPorts) == 0 {
		return
	}
	if c.usedPorts == nil {
		c.usedPorts = make([][]HostPort, len(c.names))
	}
	c.usedPorts[n] = append(c.usedPorts[n], r.hostPorts...)
}
