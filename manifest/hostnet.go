package manifest

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Host networking (spec.hostNetwork and containers[].ports[].hostPort) is
// honoured only under the operator's --allow-host-network (Policy.
// AllowHostNetwork): a pod on the host's network, or one that takes a port
// of its node, can reach and shadow whatever else runs on that machine.

// defaultHostNetworkPorts is Kubernetes' defaulting of a hostNetwork pod's
// ports: a port with no hostPort takes its containerPort, since the
// container listens on the host's network anyway. The scheduler then
// counts it against other pods' host ports on that node.
func defaultHostNetworkPorts(spec *corev1.PodSpec) {
	if !spec.HostNetwork {
		return
	}
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			for j := range cs[i].Ports {
				if p := &cs[i].Ports[j]; p.HostPort == 0 {
					p.HostPort = p.ContainerPort
				}
			}
		}
	}
}

// validateHostPorts checks host ports as Kubernetes does: with hostNetwork
// a hostPort must equal its containerPort; a hostIP must be an IP address;
// and no two ports of the pod (init containers included) take the same
// hostPort, protocol and hostIP.
func validateHostPorts(spec *corev1.PodSpec, path *field.Path, ps *problems) {
	seen := map[string]string{}
	check := func(cs []corev1.Container, name string) {
		for i := range cs {
			for j, port := range cs[i].Ports {
				p := path.Child(name).Index(i).Child("ports").Index(j)
				if spec.HostNetwork && port.HostPort != port.ContainerPort {
					ps.add(p.Child("containerPort"), "%d must match hostPort (%d) when hostNetwork is true", port.ContainerPort, port.HostPort)
				}
				switch {
				case port.HostIP != "" && port.HostPort == 0:
					ps.add(p.Child("hostIP"), "has no effect without hostPort")
				case port.HostIP != "":
					if a, err := netip.ParseAddr(port.HostIP); err != nil || a.Zone() != "" {
						ps.add(p.Child("hostIP"), "%q must be an IP address", port.HostIP)
					}
				}
				if port.HostPort == 0 {
					continue
				}
				key := fmt.Sprintf("%s/%s/%d", port.Protocol, port.HostIP, port.HostPort)
				if first, dup := seen[key]; dup {
					ps.add(p.Child("hostPort"), "duplicate value %d/%s (hostIP %q): %s takes it already", port.HostPort, port.Protocol, port.HostIP, first)
					continue
				}
				seen[key] = p.String()
			}
		}
	}
	check(spec.InitContainers, "initContainers")
	check(spec.Containers, "containers")
}

// checkHostNetwork is the policy's part for host networking: without
// AllowHostNetwork a pod spec on the host's network, or with a hostPort,
// is refused naming the flag. A hostNetwork pod's hostPorts (which
// defaulting filled in) are not reported again.
func (pol Policy) checkHostNetwork(at podSpecAt, ps *problems) {
	if pol.AllowHostNetwork {
		return
	}
	if at.spec.HostNetwork {
		ps.add(at.path.Child("hostNetwork"), "not allowed: the operator has not given --allow-host-network")
		return
	}
	eachContainer(at, func(c *corev1.Container, p *field.Path) {
		for i, port := range c.Ports {
			if port.HostPort != 0 {
				ps.add(p.Child("ports").Index(i).Child("hostPort"), "not allowed: the operator has not given --allow-host-network")
			}
		}
	})
}
