package scheduler

import (
	corev1 "k8s.io/api/core/v1"

	"bosun/kube"
)

// NodeOf is the scheduler's view of a node: its labels, taints, cordon,
// and allocatable cpu, memory and pods (a node that states no pods
// allocatable takes any number), local volume capacity
// (kube.ResourceLocalStorage; stating none, or 0, is no limit) and the
// ports bosun listens on there (AnnotationReservedHostPorts; an
// unreadable value sets ReservedPortsErr). The planner and bosun
// plan's dry run both read nodes through it.
func NodeOf(n *corev1.Node) Node {
	reserved, err := ReservedPortsOf(n)
	return Node{
		Name:   n.Name,
		Labels: n.Labels,
		Allocatable: Resources{
			MilliCPU: n.Status.Allocatable.Cpu().MilliValue(),
			Memory:   n.Status.Allocatable.Memory().Value(),
		},
		MaxPods:       int(n.Status.Allocatable.Pods().Value()),
		Unschedulable: n.Spec.Unschedulable,
		Taints:        n.Spec.Taints,
		// Absent: no limit, as 0 is.
		VolumeCapacity: volumeCapacityOf(n),
		// Unreadable: no host port is known to be free.
		ReservedPorts:    hostPortsOf(reserved),
		ReservedPortsErr: err,
	}
}

// hostPortsOf is the ports of reserved.
func hostPortsOf(reserved []ReservedPort) []HostPort {
	if len(reserved) == 0 {
		return nil
	}
	out := make([]HostPort, len(reserved))
	for i, r := range reserved {
		out[i] = r.HostPort
	}
	return out
}

// volumeCapacityOf is the node's allocatable kube.ResourceLocalStorage in
// bytes; 0 (no limit) when it states none.
func volumeCapacityOf(n *corev1.Node) int64 {
	q, ok := n.Status.Allocatable[kube.ResourceLocalStorage]
	if !ok {
		return 0
	}
	return max(q.Value(), 0)
}

// PodOf is the scheduler's view of a pod with this namespace, labels and
// spec; key and owner are the caller's (see Pod). spec.NodeName, when
// set, binds it. The planner and bosun plan's dry run both read pods
// through it.
func PodOf(key, owner, namespace string, labels map[string]string, spec *corev1.PodSpec) Pod {
	return Pod{
		Key:                       key,
		Namespace:                 namespace,
		Labels:                    labels,
		Owner:                     owner,
		Requests:                  RequestsOf(spec),
		NodeSelector:              spec.NodeSelector,
		Tolerations:               spec.Tolerations,
		Affinity:                  spec.Affinity,
		TopologySpreadConstraints: spec.TopologySpreadConstraints,
		HostPorts:                 HostPortsOf(spec),
		NodeName:                  spec.NodeName,
	}
}

// RequestsOf returns what a pod with this spec requests, computed as Kubernetes
// does: a container's request for a resource is its request, or its limit when it
// sets a limit but no request; the pod requests the larger of the sum over its
// containers (plus sidecars, i.e. init containers with restartPolicy Always) and
// the largest single init container (plus the sidecars started before it); pod
// overhead is added on top.
func RequestsOf(spec *corev1.PodSpec) Resources {
	var sum, sidecars, initPeak Resources
	for i := range spec.InitContainers {
		ct := &spec.InitContainers[i]
		r := containerRequests(ct)
		if ct.RestartPolicy != nil && *ct.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars = add(sidecars, r)
			initPeak = maxOf(initPeak, sidecars)
			continue
		}
		initPeak = maxOf(initPeak, add(sidecars, r))
	}
	for i := range spec.Containers {
		sum = add(sum, containerRequests(&spec.Containers[i]))
	}
	total := maxOf(add(sum, sidecars), initPeak)
	if spec.Overhead != nil {
		total.MilliCPU += spec.Overhead.Cpu().MilliValue()
		total.Memory += spec.Overhead.Memory().Value()
	}
	return total
}

func containerRequests(ct *corev1.Container) Resources {
	var r Resources
	if q, ok := ct.Resources.Requests[corev1.ResourceCPU]; ok {
		r.MilliCPU = q.MilliValue()
	} else if q, ok := ct.Resources.Limits[corev1.ResourceCPU]; ok {
		r.MilliCPU = q.MilliValue()
	}
	if q, ok := ct.Resources.Requests[corev1.ResourceMemory]; ok {
		r.Memory = q.Value()
	} else if q, ok := ct.Resources.Limits[corev1.ResourceMemory]; ok {
		r.Memory = q.Value()
	}
	return r
}

func add(a, b Resources) Resources {
	return Resources{MilliCPU: a.MilliCPU + b.MilliCPU, Memory: a.Memory + b.Memory}
}

func maxOf(a, b Resources) Resources {
	return Resources{MilliCPU: max(a.MilliCPU, b.MilliCPU), Memory: max(a.Memory, b.Memory)}
}
