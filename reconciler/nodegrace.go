package reconciler

import (
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeGrace decides which nodes a plan counts: the registered ones, plus
// those absent for less than Period, marked unschedulable and tainted
// node.kubernetes.io/unreachable:NoSchedule (TaintAbsent, as Kubernetes
// taints a node it cannot reach; NoSchedule only, so that nothing is
// evicted by it). A node's absence
// counts from the first pass that sees it gone (its lease has lapsed by
// then), not from the last pass that saw it: the leader plans only when
// something changes, and a node that registered an hour ago in a quiet
// cluster must still get its whole grace. An agent that
// restarts, or a node whose lease lapsed for a moment, keeps its pods while
// no new pod is placed on it; once the grace ends the node is gone and Plan
// replaces its pods (they are lost). It is a value: Observe takes the state
// and returns the next one, so the decision stays pure; the leader keeps
// the state between passes.
type NodeGrace struct {
	// Period is how long a node may be absent before its pods count as lost.
	Period time.Duration
	// LastSeen is, by name, the last registration of each node still
	// counted, and when it was seen.
	LastSeen map[string]SeenNode
}

// SeenNode is the last registration seen of a node.
type SeenNode struct {
	Node corev1.Node
	At   time.Time
	// GoneAt is when a pass first saw the node absent; zero while it is
	// registered.
	GoneAt time.Time
}

// AnnotationPlaceholderNode marks a node the leader has never seen
// registered (StartNodeGrace): it knows only its name, from the pods bound
// to it, not its labels, taints or capacity.
const AnnotationPlaceholderNode = "bosun.dev/placeholder-node"

// TaintAbsent is the taint NodeGrace puts on a node that is absent but
// still counted (its TimeAdded is when a pass first saw it gone), as
// Kubernetes' node lifecycle controller taints an unreachable node. Daemon
// pods do not tolerate it (only its NoExecute twin), so no DaemonSet
// places a pod there; the scheduler takes no pod there at all
// (scheduler.Node.Closed).
var TaintAbsent = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule}

// NodeAbsent says whether node is one NodeGrace keeps while it is absent
// (it carries TaintAbsent with a TimeAdded): its agent is not there, and
// what the planner knows of it may be only its name (a placeholder).
func NodeAbsent(node *corev1.Node) bool {
	for i := range node.Spec.Taints {
		t := &node.Spec.Taints[i]
		if t.Key == TaintAbsent.Key && t.Effect == TaintAbsent.Effect && t.TimeAdded != nil {
			return true
		}
	}
	return false
}

// StartNodeGrace is what a leader that just took over knows of the nodes:
// it has never seen those the pods are bound to, so it counts them as seen
// now, as placeholders (AnnotationPlaceholderNode: a name, nothing else).
// A restart of the whole server then does not reschedule every pod before
// the agents register again.
func StartNodeGrace(period time.Duration, pods []*corev1.Pod, now time.Time) NodeGrace {
	g := NodeGrace{Period: period, LastSeen: map[string]SeenNode{}}
	for _, p := range pods {
		if name := p.Spec.NodeName; name != "" {
			g.LastSeen[name] = SeenNode{Node: corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
				Annotations: map[string]string{AnnotationPlaceholderNode: "true"}}}, At: now}
		}
	}
	return g
}

// Observe takes the registered nodes at now. It returns the next state, the
// nodes to plan with (the registered ones and, unschedulable and tainted
// TaintAbsent since they were first seen gone, those absent for less than
// Period; sorted by name), and when the first of those absent
// ones stops counting (zero if none): Observed.NodeGraceExpires, so that
// the plan wakes then. registered is not modified.
func (g NodeGrace) Observe(registered []corev1.Node, now time.Time) (next NodeGrace, nodes []corev1.Node, expires time.Time) {
	next = NodeGrace{Period: g.Period, LastSeen: make(map[string]SeenNode, len(registered))}
	nodes = make([]corev1.Node, 0, len(registered))
	for i := range registered {
		next.LastSeen[registered[i].Name] = SeenNode{Node: registered[i], At: now}
		nodes = append(nodes, registered[i])
	}
	for name, seen := range g.LastSeen {
		if _, present := next.LastSeen[name]; present {
			continue
		}
		if seen.GoneAt.IsZero() {
			seen.GoneAt = now
		}
		end := seen.GoneAt.Add(g.Period)
		if !now.Before(end) {
			continue // lost
		}
		next.LastSeen[name] = seen
		absent := seen.Node.DeepCopy()
		absent.Spec.Unschedulable = true
		taint := TaintAbsent
		taint.TimeAdded = &metav1.Time{Time: seen.GoneAt}
		absent.Spec.Taints = append(absent.Spec.Taints, taint)
		nodes = append(nodes, *absent)
		if expires.IsZero() || end.Before(expires) {
			expires = end
		}
	}
	slices.SortFunc(nodes, func(a, b corev1.Node) int { return strings.Compare(a.Name, b.Name) })
	return next, nodes, expires
}
