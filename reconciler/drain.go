package reconciler

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/kube"
)

// Draining a node (`bosun node drain`), as kubectl drain does it but with
// the rollout's rules instead of eviction calls: the node is cordoned
// (Observed.Nodes has it unschedulable), and its pods leave it.
//
//   - A Deployment's pods on the node are replaced as a rolling update
//     replaces old pods (rollingStep, the one model of those rules): a
//     replacement is placed on another node first where maxSurge allows,
//     and a pod on the node is deleted only while the Deployment keeps at
//     least replicas - maxUnavailable available. Recreate Deployments
//     replace them as Recreate does: at once.
//   - Canary pods and pods of controllers the planner does not manage are
//     deleted at once; their owner replaces them.
//   - Standalone Pods (no controller) and running Jobs' pods stay, unless
//     the drain is forced: kubectl refuses pods nothing replaces and waits
//     for Jobs. Forced, a standalone Pod is recreated under its name on
//     another node, and a Job's pod counts as failed and is replaced.
//   - Finished pods stay where they are; pods whose spec names the node
//     are never moved (they would only come back).

// Drain is a drain of a node in progress.
type Drain struct {
	// Force also evicts standalone Pods and running Jobs' pods.
	Force bool
}

// drainOf returns the drain of pod's node, if pod is to leave it: bound,
// not finished, not pinned to its node.
func (p *planner) drainOf(pod *corev1.Pod, pinned bool) (Drain, bool) {
	if pinned || pod.Spec.NodeName == "" || kube.PodFinished(pod) {
		return Drain{}, false
	}
	d, ok := p.observed.Drains[pod.Spec.NodeName]
	return d, ok
}

// drainedNow says whether pod is evicted at once by a drain of its node:
// always for pods whose owner replaces them at once (needsForce false),
// only when forced for pods nothing replaces first.
func (p *planner) drainedNow(pod *corev1.Pod, pinned, needsForce bool) (string, bool) {
	d, ok := p.drainOf(pod, pinned)
	if !ok || needsForce && !d.Force {
		return "", false
	}
	if needsForce {
		return "evicted: node " + pod.Spec.NodeName + " drained (--force)", true
	}
	return "evicted: node " + pod.Spec.NodeName + " drained", true
}

// evictedOrDrained is evicted, then drainedNow.
func (p *planner) evictedOrDrained(pod *corev1.Pod, pinned, needsForce bool) (string, bool) {
	if why, ok := p.evicted(pod, pinned); ok {
		return why, true
	}
	return p.drainedNow(pod, pinned, needsForce)
}

// DrainProgress is where the drain of a node stands, from the pods still
// on it.
type DrainProgress struct {
	Node string `json:"node"`
	// Pods counts the pods left on the node by owner ("Deployment/ns/name",
	// "Job/ns/name", "Pod/ns/name" for a standalone Pod).
	Pods map[string]int `json:"pods,omitempty"`
	// Left is the sum of Pods.
	Left int `json:"left"`
	// Stopping counts deleted pods the node is still tearing down.
	Stopping int `json:"stopping,omitempty"`
	// Waiting says what holds the drain other than the rollouts' budgets:
	// Jobs' pods waiting for completion, standalone Pods refused without
	// force.
	Waiting []string `json:"waiting,omitempty"`
	// Done: no pod left and none stopping.
	Done bool `json:"done"`
}

// DrainStatus says how far the drain of node has come in o: the pods
// the drain moves that are still bound to it, and what holds them.
func DrainStatus(node string, o Observed, d Drain) DrainProgress {
	out := DrainProgress{Node: node, Pods: map[string]int{}}
	for _, pod := range o.Pods {
		if pod.Spec.NodeName != node || kube.PodFinished(pod) {
			continue
		}
		owner := kube.OwnerOf(pod)
		kind, _, _ := strings.Cut(owner, "/")
		if kind == "DaemonSet" {
			continue // stays, as kubectl drain --ignore-daemonsets leaves it (daemonset.go)
		}
		switch {
		case owner == "":
			owner = "Pod/" + pod.Namespace + "/" + pod.Name
			if !d.Force {
				out.Waiting = append(out.Waiting, fmt.Sprintf("pod %s/%s is not managed by a Deployment or Job: drain with --force to recreate it on another node", pod.Namespace, pod.Name))
			}
		case kind == "StatefulSet" && claimPinned(pod, byName(o.Claims)):
			out.Waiting = append(out.Waiting, stsDrainWait(pod)) // statefulset.go
		case kind == "Job" && !d.Force:
			out.Waiting = append(out.Waiting, fmt.Sprintf("pod %s/%s of %s runs to completion (--force evicts it)", pod.Namespace, pod.Name, strings.ToLower(kind)+" "+strings.TrimPrefix(owner, "Job/")))
		}
		out.Pods[owner]++
		out.Left++
	}
	registered := false
	for i := range o.Nodes {
		registered = registered || o.Nodes[i].Name == node
	}
	if registered { // a node that is gone never reports its teardown
		for _, t := range o.Terminating {
			if t.Node == node {
				out.Stopping++
			}
		}
	}
	slices.Sort(out.Waiting)
	out.Done = out.Left == 0 && out.Stopping == 0
	return out
}

// DrainRefusals lists the pods of node a drain without force refuses to
// move, as kubectl drain does: pods no controller owns (bosun would
// recreate them from Git on another node, but not before deleting them).
// Empty when the drain may start.
func DrainRefusals(node string, pods []*corev1.Pod) []string {
	var out []string
	for _, pod := range pods {
		if pod.Spec.NodeName == node && !kube.PodFinished(pod) && metav1.GetControllerOfNoCopy(pod) == nil {
			out = append(out, pod.Namespace+"/"+pod.Name)
		}
	}
	slices.SortFunc(out, cmp.Compare)
	return out
}

// draining says whether pod is on a node being drained and leaves it by
// its Deployment's rollout.
func (p *planner) draining(pod *corev1.Pod, pinned bool) bool {
	_, ok := p.drainOf(pod, pinned)
	return ok
}
