package preview

import (
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"bosun/kube"
	"bosun/manifest"
	"bosun/reconciler"
)

// Ops of an ObjectChange.
const (
	OpCreate = "create"
	OpChange = "change"
	OpDelete = "delete"
)

// Ops of a PodChange.
const (
	OpStart = "start"
	OpStop  = "stop"
)

// ObjectChange is one object that applying the next revision creates, changes
// or deletes.
type ObjectChange struct {
	Kind, Namespace, Name string
	// Op is OpCreate, OpChange or OpDelete.
	Op string
	// Source is where the object is defined, "file:line": in the next
	// revision, or for a deletion in the current one; "" when unknown.
	Source string `json:",omitempty"`
	// Address is, for a Service created or changed, the virtual address
	// and ports the revision gives it, as `bosun get services` shows them:
	// "10.96.4.7 80/TCP", "10.96.4.7 80:30080/TCP", "None 5432/TCP"
	// (headless). The leader fills addresses before planning, and a plan
	// goes through the same allocation, so this is the address the Service
	// will have.
	Address string `json:",omitempty"`
	// Diff is, for a change, a unified diff (---/+++ header, @@ hunks, three
	// lines of context) of the object's YAML as it comes from Git: apiVersion,
	// kind, metadata name, namespace, labels and annotations, and spec. For a
	// creation it is the whole YAML, each line prefixed with "+". Empty for a
	// deletion.
	Diff string `json:",omitempty"`
	// Fields lists, for a change, the paths that differ, sorted, for example
	// "spec.replicas", "spec.template.spec.containers[0].image",
	// "metadata.labels['app.kubernetes.io/name']".
	Fields []string `json:",omitempty"`
}

// PodChange is one pod the first step of applying the next revision starts or
// stops, as reconciler.Plan decides it.
type PodChange struct {
	Namespace, Name string
	// Owner is the name of the pod's Deployment (same namespace), or "" for
	// a standalone pod.
	Owner string `json:",omitempty"`
	// Op is OpStart or OpStop.
	Op string
	// Reason is the planner's: "scale up 3 -> 5", "pruned: removed from Git".
	Reason string `json:",omitempty"`
}

// RolloutChange is a Deployment whose pod template changes: over the whole
// rollout, every pod of the old template is replaced by one of the new, a few
// at a time (RollingUpdate) or all at once (Recreate). Result.Pods shows only
// the first step; this shows where the planner's steps end, as
// reconciler.Plan took them over the simulated cluster.
type RolloutChange struct {
	Namespace, Name string
	// FromHash and ToHash are the pod-template-hash of the current and the
	// next template.
	FromHash, ToHash string
	// Replicas is the next revision's spec.replicas: the pods of ToHash at
	// the end.
	Replicas int
	// Replaced counts the pods of other templates the rollout stops.
	Replaced int
	// Peak is the most pods of the Deployment that run at once during the
	// rollout (old and new); Steps how many plans start or stop its pods.
	Peak, Steps int
	// Strategy is "RollingUpdate" or "Recreate"; MaxSurge and MaxUnavailable
	// are the planner's, resolved against Replicas (surge rounded up,
	// unavailability down, and not both zero; 0 and 0 for Recreate).
	Strategy                 string
	MaxSurge, MaxUnavailable int `json:",omitempty"`
	// State is where the rollout ends (reconciler.RolloutSummary):
	// Complete, or Progressing when it stalls (a pod that does not fit), or
	// Failed; Message says what it waits for.
	State   reconciler.RolloutState
	Message string `json:",omitempty"`
}

// String renders the rollout for a person: "rollout web: 4 pods replaced in
// 5 steps, at most 5 pods at once (maxSurge 1, maxUnavailable 1)", and what
// it waits for when it does not complete.
func (r RolloutChange) String() string {
	how := "recreate"
	if r.Strategy == string(appsv1.RollingUpdateDeploymentStrategyType) {
		how = fmt.Sprintf("maxSurge %d, maxUnavailable %d", r.MaxSurge, r.MaxUnavailable)
	}
	out := fmt.Sprintf("rollout %s: %s replaced in %s, at most %s at once (%s)", r.Name, plural(r.Replaced, "pod"),
		plural(r.Steps, "step"), plural(r.Peak, "pod"), how)
	if r.State != reconciler.RolloutComplete {
		out += "; does not complete: " + r.Message
	}
	return out
}

// Result is what applying the next revision would do.
type Result struct {
	// Objects are sorted by kind, namespace and name.
	Objects []ObjectChange
	// Pods are sorted by namespace and name, a stop before a start of the
	// same name (a standalone pod whose spec changed is recreated).
	Pods []PodChange
	// Rollouts are the Deployments whose template changes, sorted by
	// namespace and name.
	Rollouts []RolloutChange
	// Fits says whether the next revision's pods fit the observed nodes at
	// every step the planner takes towards it: no plan of the simulation
	// leaves a pod unschedulable.
	Fits bool
	// Verdict explains Fits in one line, for example "fits: 3 pods start on 1
	// node" or "does not fit: needs 2.5 CPU more than is free on any node;
	// web-7f9c4d2a1b-x2b and 2 more cannot be scheduled: 0/1 nodes are
	// available: 1 insufficient cpu".
	Verdict string
}

// Changed reports whether applying the revision would change anything: an
// object, or a pod started or stopped.
func (r *Result) Changed() bool { return len(r.Objects) > 0 || len(r.Pods) > 0 }

// Compute previews applying next over a cluster that runs current (nil when
// nothing is applied yet) and is observed as observed. next must be non-nil.
// It runs reconciler.Plan, from now on, over a copy of observed until the
// plan has nothing left to do (simulation); it reads no clock and does no
// I/O.
func Compute(current, next *manifest.Set, observed reconciler.Observed, now time.Time) *Result {
	s := simulate(next, observed, now)
	res := &Result{
		Objects:  Objects(current, next),
		Pods:     podChanges(s.first.Actions, observed.Pods),
		Rollouts: rollouts(current, next, s),
	}
	res.Fits, res.Verdict = verdict(s)
	return res
}

func podChanges(actions []reconciler.Action, observed []*corev1.Pod) []PodChange {
	byKey := make(map[string]*corev1.Pod, len(observed))
	for _, p := range observed {
		byKey[p.Namespace+"/"+p.Name] = p
	}
	var out []PodChange
	for _, a := range actions {
		switch a.Type {
		case reconciler.CreatePod:
			out = append(out, PodChange{Namespace: a.Pod.Namespace, Name: a.Pod.Name, Owner: deploymentOf(a.Pod), Op: OpStart, Reason: a.Reason})
		case reconciler.DeletePod:
			pc := PodChange{Namespace: a.Namespace, Name: a.Name, Op: OpStop, Reason: a.Reason}
			if p := byKey[a.Namespace+"/"+a.Name]; p != nil {
				pc.Owner = deploymentOf(p)
			}
			out = append(out, pc)
		}
		// UpdatePod binds a pod or rewrites its status or metadata: no pod
		// starts or stops, and metadata changes show as object changes.
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Op == OpStop && b.Op == OpStart
	})
	return out
}

// deploymentOf names the Deployment that controls pod, or "".
func deploymentOf(pod *corev1.Pod) string {
	if kind, name := kube.Controller(pod); kind == "Deployment" {
		return name
	}
	return ""
}

// rollouts describes, per Deployment whose template differs between current
// and next, the rollout the simulation ran.
func rollouts(current, next *manifest.Set, s *simulation) []RolloutChange {
	if current == nil {
		return nil
	}
	before := make(map[string]*appsv1.Deployment, len(current.Deployments))
	for i := range current.Deployments {
		d := &current.Deployments[i]
		before[d.Namespace+"/"+d.Name] = d
	}
	summaries := make(map[string]*reconciler.RolloutSummary, len(s.last.Rollouts))
	for i := range s.last.Rollouts {
		r := &s.last.Rollouts[i]
		summaries[r.Namespace+"/"+r.Name] = r
	}
	var out []RolloutChange
	for i := range next.Deployments {
		d := &next.Deployments[i]
		k := d.Namespace + "/" + d.Name
		old, sum, track := before[k], summaries[k], s.rollouts[k]
		if old == nil || sum == nil || track == nil {
			continue
		}
		from := manifest.TemplateHash(&old.Spec.Template)
		if from == track.hash {
			continue
		}
		out = append(out, RolloutChange{
			Namespace: d.Namespace, Name: d.Name, FromHash: from, ToHash: track.hash,
			Replicas: int(sum.Replicas), Replaced: track.replaced, Peak: track.peak, Steps: track.steps,
			Strategy: string(d.Spec.Strategy.Type), MaxSurge: sum.MaxSurge, MaxUnavailable: sum.MaxUnavailable,
			State: sum.State, Message: sum.Message,
		})
	}
	return out // next.Deployments is sorted by namespace and name
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
