package reconciler

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/kube"
	"bosun/scheduler"
)

// Eviction by NoExecute taints, as Kubernetes' taint manager does it: a pod
// bound to a node with a NoExecute taint it does not tolerate is deleted at
// once; one whose tolerations of the node's NoExecute taints all carry
// tolerationSeconds is deleted that long after the taint was added (or
// after the pod was bound, if later: a pod placed on a node tainted an hour
// ago gets its full tolerationSeconds). A toleration without
// tolerationSeconds tolerates the taint for ever; when several tolerations
// tolerate one taint, the most lenient counts. Finished pods are left
// alone, and so are pods whose spec names their node: they would only be
// recreated on the same node.

// eviction is the verdict on one pod.
type eviction struct {
	// now: evict in this plan; why says which taint.
	now bool
	why string
	// at is when a tolerated taint runs out (zero: never), for a pod not
	// evicted now.
	at time.Time
}

// evictionOf decides whether pod, bound to node, is evicted at now.
func evictionOf(pod *corev1.Pod, node *corev1.Node, now time.Time) eviction {
	var ev eviction
	var first *corev1.Taint
	for i := range node.Spec.Taints {
		t := &node.Spec.Taints[i]
		if t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		limit, tolerated := toleratedFor(pod.Spec.Tolerations, t)
		if !tolerated {
			return eviction{now: true, why: fmt.Sprintf("evicted: node %s has taint %s, not tolerated", node.Name, taintString(t))}
		}
		if limit < 0 {
			continue // for ever
		}
		start := boundAt(pod)
		if t.TimeAdded != nil && t.TimeAdded.After(start) {
			start = t.TimeAdded.Time
		}
		at := start.Add(limit)
		if ev.at.IsZero() || at.Before(ev.at) {
			ev.at, first = at, t
		}
	}
	if first != nil && !now.Before(ev.at) {
		limit, _ := toleratedFor(pod.Spec.Tolerations, first)
		return eviction{now: true, why: fmt.Sprintf("evicted: node %s has taint %s, tolerated for %s", node.Name, taintString(first), limit)}
	}
	return ev
}

// toleratedFor says whether tolerations tolerate taint and for how long:
// the longest tolerationSeconds of those that do, negative for ever. A
// tolerationSeconds of zero or less evicts at once, as in Kubernetes.
func toleratedFor(tolerations []corev1.Toleration, taint *corev1.Taint) (time.Duration, bool) {
	limit, tolerated := time.Duration(0), false
	for i := range tolerations {
		tl := &tolerations[i]
		if !scheduler.ToleratesTaint(tl, taint) {
			continue
		}
		if tl.TolerationSeconds == nil {
			return -1, true
		}
		tolerated = true
		limit = max(limit, time.Duration(max(*tl.TolerationSeconds, 0))*time.Second)
	}
	return limit, tolerated
}

// boundAt is when pod was bound to its node: its PodScheduled condition's
// transition to True, else its creation.
func boundAt(pod *corev1.Pod) time.Time {
	if c := scheduledCondition(pod); c != nil && c.Status == corev1.ConditionTrue && !c.LastTransitionTime.IsZero() {
		return c.LastTransitionTime.Time
	}
	return pod.CreationTimestamp.Time
}

func taintString(t *corev1.Taint) string {
	return fmt.Sprintf("{%s: %s}:%s", t.Key, t.Value, t.Effect)
}

// evicted says whether the planner evicts this observed pod now, and why.
// A pinned pod (its spec names its node) and a finished one never are.
func (p *planner) evicted(pod *corev1.Pod, pinned bool) (string, bool) {
	if pinned || kube.PodFinished(pod) || pod.Spec.NodeName == "" {
		return "", false
	}
	node := p.nodeObjs[pod.Spec.NodeName]
	if node == nil || len(node.Spec.Taints) == 0 {
		return "", false
	}
	ev := evictionOf(pod, node, p.now)
	return ev.why, ev.now
}

// plannedKinds are the controllers whose planners evict their own pods
// (daemonset.go: drains leave daemon pods; statefulset.go).
var plannedKinds = map[string]bool{"Deployment": true, "StatefulSet": true, "DaemonSet": true}

// evictUnmanaged deletes the pods of controllers this planner does not
// manage that a NoExecute taint evicts: their controller replaces them.
func (p *planner) evictUnmanaged() {
	for _, ref := range p.all {
		owner := metav1.GetControllerOfNoCopy(ref.pod)
		if owner == nil || plannedKinds[owner.Kind] {
			continue
		}
		if why, ok := p.evictedOrDrained(ref.pod, false, false); ok {
			p.deletePod(ref, why)
		}
	}
}

// NextEviction is the earliest time after now at which a NoExecute taint
// tolerated for a while evicts one of the observed pods; false when none
// will. A driver that sleeps between plans must plan again by then.
func NextEviction(o Observed, now time.Time) (time.Time, bool) {
	nodes := make(map[string]*corev1.Node, len(o.Nodes))
	for i := range o.Nodes {
		nodes[o.Nodes[i].Name] = &o.Nodes[i]
	}
	var next time.Time
	for _, pod := range o.Pods {
		node := nodes[pod.Spec.NodeName]
		if node == nil || kube.PodFinished(pod) {
			continue
		}
		if ev := evictionOf(pod, node, now); !ev.now && !ev.at.IsZero() && (next.IsZero() || ev.at.Before(next)) {
			next = ev.at
		}
	}
	return next, !next.IsZero()
}
