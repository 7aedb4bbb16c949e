package preview

import (
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

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
// the first step; this shows where it ends.
type RolloutChange struct {
	Namespace, Name string
	// FromHash and ToHash are the pod-template-hash of the current and the
	// next template.
	FromHash, ToHash string
	// Replicas is the next revision's spec.replicas: the pods of ToHash at
	// the end.
	Replicas int
	// Replaced counts the observed, unfinished pods of the Deployment on
	// another template: the pods the rollout stops.
	Replaced int
	// Strategy is "RollingUpdate" or "Recreate"; for RollingUpdate, MaxSurge
	// and MaxUnavailable are resolved against Replicas as Kubernetes does
	// (surge rounded up, unavailability down, and not both zero).
	Strategy                 string
	MaxSurge, MaxUnavailable int `json:",omitempty"`
}

// String renders the rollout for a person:
// "rollout web: 4 pods replaced (maxSurge 1, maxUnavailable 1)".
func (r RolloutChange) String() string {
	how := "recreate"
	if r.Strategy == string(appsv1.RollingUpdateDeploymentStrategyType) {
		how = fmt.Sprintf("maxSurge %d, maxUnavailable %d", r.MaxSurge, r.MaxUnavailable)
	}
	return fmt.Sprintf("rollout %s: %s replaced (%s)", r.Name, plural(r.Replaced, "pod"), how)
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
	// Fits says whether the next revision's pods fit the observed nodes, both
	// at its end state and at the peak of its rolling updates.
	Fits bool
	// Verdict explains Fits in one line, for example "fits: 3 pods start on 1
	// node" or "does not fit: needs 2.5 CPU more than is free on any node;
	// web-7f9c4d2a1b and 2 more cannot be scheduled: 0/1 nodes are available:
	// 1 insufficient cpu".
	Verdict string
}

// Changed reports whether applying the revision would change anything: an
// object, or a pod started or stopped.
func (r *Result) Changed() bool { return len(r.Objects) > 0 || len(r.Pods) > 0 }

// Compute previews applying next over a cluster that runs current (nil when
// nothing is applied yet) and is observed as observed. next must be non-nil.
// now is passed to reconciler.Plan; Compute reads no clock and does no I/O.
func Compute(current, next *manifest.Set, observed reconciler.Observed, now time.Time) *Result {
	actions := reconciler.Plan(next, observed, now).Actions
	deleted := make(map[string]bool)
	for _, a := range actions {
		if a.Type == reconciler.DeletePod {
			deleted[a.Namespace+"/"+a.Name] = true
		}
	}
	res := &Result{
		Objects:  Objects(current, next),
		Pods:     podChanges(actions, observed.Pods),
		Rollouts: rollouts(current, next, observed.Pods),
	}
	res.Fits, res.Verdict = capacity(next, observed, deleted, actions)
	return res
}

func podChanges(actions []reconciler.Action, observed []corev1.Pod) []PodChange {
	byKey := make(map[string]*corev1.Pod, len(observed))
	for i := range observed {
		p := &observed[i]
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
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil && ref.Kind == "Deployment" {
		return ref.Name
	}
	return ""
}

// labelPodTemplateHash is the label carrying a Deployment pod's template hash
// (the issue 3 contract: manifest.TemplateHash of the template).
const labelPodTemplateHash = "pod-template-hash"

func rollouts(current, next *manifest.Set, observed []corev1.Pod) []RolloutChange {
	if current == nil {
		return nil
	}
	before := make(map[string]*appsv1.Deployment, len(current.Deployments))
	for i := range current.Deployments {
		d := &current.Deployments[i]
		before[d.Namespace+"/"+d.Name] = d
	}
	// Template hashes of the observed, unfinished pods of each Deployment.
	hashes := make(map[string][]string)
	for i := range observed {
		p := &observed[i]
		if owner := deploymentOf(p); owner != "" && !finished(p) {
			k := p.Namespace + "/" + owner
			hashes[k] = append(hashes[k], p.Labels[labelPodTemplateHash])
		}
	}
	var out []RolloutChange
	for i := range next.Deployments {
		d := &next.Deployments[i]
		old := before[d.Namespace+"/"+d.Name]
		if old == nil {
			continue
		}
		from, to := manifest.TemplateHash(&old.Spec.Template), manifest.TemplateHash(&d.Spec.Template)
		if from == to {
			continue
		}
		rc := RolloutChange{Namespace: d.Namespace, Name: d.Name, FromHash: from, ToHash: to, Replicas: replicas(d), Strategy: string(d.Spec.Strategy.Type)}
		rc.MaxSurge, rc.MaxUnavailable = surge(d)
		for _, h := range hashes[d.Namespace+"/"+d.Name] {
			if h != to {
				rc.Replaced++
			}
		}
		out = append(out, rc)
	}
	return out // next.Deployments is sorted by namespace and name
}

func replicas(d *appsv1.Deployment) int {
	if d.Spec.Replicas == nil {
		return 1
	}
	return int(*d.Spec.Replicas)
}

// surge resolves a RollingUpdate Deployment's maxSurge and maxUnavailable as
// Kubernetes does; both are 0 for Recreate.
func surge(d *appsv1.Deployment) (maxSurge, maxUnavailable int) {
	ru := d.Spec.Strategy.RollingUpdate
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil {
		return 0, 0
	}
	n := replicas(d)
	// Validated by manifest loading, so these cannot fail.
	s, _ := intstr.GetScaledValueFromIntOrPercent(orZero(ru.MaxSurge), n, true)
	u, _ := intstr.GetScaledValueFromIntOrPercent(orZero(ru.MaxUnavailable), n, false)
	if s == 0 && u == 0 {
		u = 1
	}
	return s, u
}

func orZero(v *intstr.IntOrString) *intstr.IntOrString {
	if v == nil {
		return &intstr.IntOrString{}
	}
	return v
}

func finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
