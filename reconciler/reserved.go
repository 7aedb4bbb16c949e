package reconciler

import (
	corev1 "k8s.io/api/core/v1"

	"bosun/scheduler"
)

// refusedForReservedPort reports whether pod, pinned to its node by
// nodeName, was refused there for one of the ports bosun listens on at
// that node (scheduler.ReasonHostPortReserved) and the node still reserves
// one of its host ports (or its reserved ports do not read): a
// replacement would be refused at once again, for as long as that
// listener is there, so the failed pod is kept, saying why, instead of
// replaced several times a second. Once the node no longer reserves the
// port (its agent restarted with the listener elsewhere), or it is gone,
// the pod is replaced as any finished one.
func (p *planner) refusedForReservedPort(pod *corev1.Pod) bool {
	if pod.Status.Reason != scheduler.ReasonHostPortReserved {
		return false
	}
	for i := range p.observedNodes {
		n := &p.observedNodes[i]
		if n.Name != pod.Spec.NodeName {
			continue
		}
		reserved, err := scheduler.ReservedPortsOf(n)
		if err != nil {
			return true
		}
		for _, hp := range scheduler.HostPortsOf(&pod.Spec) {
			if _, ok := scheduler.ReservedConflict(reserved, hp); ok {
				return true
			}
		}
		return false
	}
	return false
}
