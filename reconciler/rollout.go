package reconciler

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"bosun/kube"
	"bosun/manifest"
)

// Annotations the planner keeps on the Deployments it writes. They are
// derived from the stored Deployment on every plan, so a new leader carries on
// where the last one stopped.
const (
	// AnnotationRevision is the current revision number, as Kubernetes keeps it:
	// 1 for the first template, one more for each template rolled out after it
	// (a template rolled out again, as by git revert, gets a new number).
	AnnotationRevision = "deployment.kubernetes.io/revision"
	// AnnotationRevisionHistory is a JSON list of Revision, newest (current)
	// first, bounded by spec.revisionHistoryLimit old entries.
	AnnotationRevisionHistory = "bosun.dev/revision-history"
)

// Reasons of the Deployment conditions the planner sets, as in Kubernetes.
const (
	ReasonNewReplicaSetCreated       = "NewReplicaSetCreated"
	ReasonReplicaSetUpdated          = "ReplicaSetUpdated"
	ReasonNewReplicaSetAvailable     = "NewReplicaSetAvailable"
	ReasonProgressDeadlineExceeded   = "ProgressDeadlineExceeded"
	ReasonMinimumReplicasAvailable   = "MinimumReplicasAvailable"
	ReasonMinimumReplicasUnavailable = "MinimumReplicasUnavailable"
)

// Defaults Kubernetes applies to a Deployment spec, applied here when the
// spec leaves them unset.
const (
	defaultRevisionHistoryLimit = 10
	defaultProgressDeadline     = 600 * time.Second
)

// Revision is one pod template a Deployment has run: what Kubernetes keeps
// as a ReplicaSet with its revision annotation.
type Revision struct {
	Revision int64    `json:"revision"`
	Hash     string   `json:"hash"`
	Images   []string `json:"images"`
}

// RevisionHistory reads the revisions recorded on a Deployment the planner
// wrote, newest first. A Deployment without the annotation has none.
func RevisionHistory(d *appsv1.Deployment) ([]Revision, error) {
	raw, ok := d.Annotations[AnnotationRevisionHistory]
	if !ok {
		return nil, nil
	}
	var h []Revision
	if err := json.Unmarshal([]byte(raw), &h); err != nil {
		return nil, fmt.Errorf("deployment %s/%s: annotation %s: %w", d.Namespace, d.Name, AnnotationRevisionHistory, err)
	}
	return h, nil
}

// currentHash is the template hash the stored Deployment's status and
// conditions refer to: the newest entry of its history.
func currentHash(h []Revision) string {
	if len(h) == 0 {
		return ""
	}
	return h[0].Hash
}

// nextHistory is the history after rolling out the template with hash: a
// template already current keeps its entry; one found further down (a
// revert) moves to the front under the next revision number, as Kubernetes
// does when it rolls back to an old ReplicaSet; a new one is added. At most
// limit old entries are kept after the current one.
func nextHistory(prev []Revision, hash string, images []string, limit int) []Revision {
	if len(prev) > 0 && prev[0].Hash == hash {
		if len(prev) <= limit+1 {
			return prev
		}
		return prev[:limit+1]
	}
	var next int64 = 1
	if len(prev) > 0 {
		next = prev[0].Revision + 1
		for _, r := range prev {
			next = max(next, r.Revision+1)
		}
	}
	out := make([]Revision, 0, min(len(prev)+1, limit+1))
	out = append(out, Revision{Revision: next, Hash: hash, Images: images})
	for _, r := range prev {
		if len(out) == limit+1 {
			break
		}
		if r.Hash != hash {
			out = append(out, r)
		}
	}
	return out
}

func templateImages(t *corev1.PodTemplateSpec) []string {
	images := make([]string, 0, len(t.Spec.Containers))
	for _, c := range t.Spec.Containers {
		images = append(images, c.Image)
	}
	return images
}

// fenceposts resolves a Deployment's maxSurge and maxUnavailable against
// replicas as Kubernetes does: percentages of replicas, surge rounded up,
// unavailable rounded down; if both come to 0 (only possible by rounding,
// validation rejects both 0), maxUnavailable is 1 so the rollout can move.
// Recreate has no surge and tolerates no unavailability for its Available
// condition.
func fenceposts(st appsv1.DeploymentStrategy, replicas int) (surge, unavailable int) {
	if st.Type == appsv1.RecreateDeploymentStrategyType {
		return 0, 0
	}
	quarter := intstr.FromString("25%")
	s, u := &quarter, &quarter
	if ru := st.RollingUpdate; ru != nil {
		if ru.MaxSurge != nil {
			s = ru.MaxSurge
		}
		if ru.MaxUnavailable != nil {
			u = ru.MaxUnavailable
		}
	}
	surge = scaled(s, replicas, true)
	unavailable = min(scaled(u, replicas, false), replicas)
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable
}

// scaled is an absolute value or a percentage of replicas. Validation has
// vetted the value; one it would reject counts as the 25% default rather than
// stopping every rollout of the cluster.
func scaled(v *intstr.IntOrString, replicas int, roundUp bool) int {
	n, err := intstr.GetScaledValueFromIntOrPercent(v, replicas, roundUp)
	if err != nil || n < 0 {
		quarter := intstr.FromString("25%")
		n, _ = intstr.GetScaledValueFromIntOrPercent(&quarter, replicas, roundUp)
	}
	return n
}

// progressDeadline is spec.progressDeadlineSeconds; ok is false when the
// Deployment has none (math.MaxInt32, as in Kubernetes).
func progressDeadline(d *appsv1.Deployment) (time.Duration, bool) {
	if d.Spec.ProgressDeadlineSeconds == nil {
		return defaultProgressDeadline, true
	}
	s := *d.Spec.ProgressDeadlineSeconds
	return time.Duration(s) * time.Second, s != math.MaxInt32
}

func revisionHistoryLimit(d *appsv1.Deployment) int {
	if d.Spec.RevisionHistoryLimit == nil || *d.Spec.RevisionHistoryLimit < 0 {
		return defaultRevisionHistoryLimit
	}
	return int(*d.Spec.RevisionHistoryLimit)
}

// available reports whether pod serves: bound, not finished, and Ready for at
// least minReady (Ready's LastTransitionTime + minReady <= now).
func available(pod *corev1.Pod, minReady time.Duration, now time.Time) bool {
	if pod.Spec.NodeName == "" || kube.PodFinished(pod) {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			if c.Status != corev1.ConditionTrue {
				return false
			}
			// Like Kubernetes, a pod with no transition time is available
			// only when no minimum is asked for.
			return minReady <= 0 || !c.LastTransitionTime.IsZero() && !c.LastTransitionTime.Add(minReady).After(now)
		}
	}
	return false
}

// ---- the rollout step ----

// rolloutPod is a pod of a Deployment that is neither finished nor on a lost
// node, with what the rollout step needs to know of it.
type rolloutPod struct {
	ref podRef
	// revision of its template; 0 when the history does not know it (older
	// than anything recorded).
	revision  int64
	available bool
	// drained: the pod is on a node being drained (drain.go); it is
	// replaced like a pod of an old template, whatever its own.
	drained bool
}

// rolloutInput is one Deployment's pods as the step sees them.
type rolloutInput struct {
	recreate                 bool
	replicas                 int
	maxSurge, maxUnavailable int // resolved: see fenceposts
	// current are the pods of the current template, old those of every other;
	// each in the order they should be deleted in (least useful first).
	current, old []rolloutPod
	// replacedCurrent counts pods of the current template this plan deletes
	// because they finished or their node was lost.
	replacedCurrent int
	// failed: the rollout of the current template missed its progress
	// deadline, so it stops: nothing is added to it and only old pods that do
	// not serve are removed.
	failed bool
	// terminating counts the Deployment's deleted pods that a live node is
	// still stopping; Recreate starts new pods only once they are gone.
	terminating int
}

// rolloutDecision is what one step does.
type rolloutDecision struct {
	deleteOld     []rolloutPod // unavailable ones first, then available ones, oldest revision first
	deleteCurrent []rolloutPod // scale down of the current template
	create        int          // new pods of the current template
}

// rolloutStep decides one step of a Deployment's rollout from its pods as
// they are now. Applying the decision and stepping again with nothing else
// changed decides nothing (a fixpoint), so every plan converges in one step
// and the rollout moves only when pods become available.
func rolloutStep(in rolloutInput) rolloutDecision {
	if in.recreate {
		return recreateStep(in)
	}
	return rollingStep(in)
}

// rollingStep is Kubernetes' RollingUpdate, on pods rather than ReplicaSets.
// After the step the pods that stay number at most replicas + maxSurge
// (unless they already did: the step never adds to an excess), and it removes
// an available pod only while at least replicas - maxUnavailable stay
// available. Old pods that are not available are removed first and at once,
// as Kubernetes' cleanupUnhealthyReplicas does: they serve nothing. Available
// old pods go oldest revision first. New pods are added after the removals,
// within the surge budget those leave, so that the next step has nothing to
// add until a pod becomes available.
func rollingStep(in rolloutInput) rolloutDecision {
	var dec rolloutDecision
	cur := in.current
	if excess := len(cur) - in.replicas; excess > 0 {
		dec.deleteCurrent, cur = cur[:excess], cur[excess:]
	}
	avail := 0
	for _, p := range cur {
		if p.available {
			avail++
		}
	}
	var availOld []rolloutPod
	for _, p := range in.old {
		if p.available {
			availOld = append(availOld, p)
			avail++
		} else {
			dec.deleteOld = append(dec.deleteOld, p)
		}
	}
	// A failed rollout removes no available old pod, but a drain goes on:
	// pods of a draining node stay candidates, and each one removed may be
	// replaced (below), always within the availability budget.
	drainedGone := 0
	candidates := availOld
	if in.failed {
		candidates = nil
		for _, p := range availOld {
			if p.drained {
				candidates = append(candidates, p)
			}
		}
	}
	slices.SortStableFunc(candidates, func(a, b rolloutPod) int { return cmp.Compare(a.revision, b.revision) })
	n := min(len(candidates), max(avail-(in.replicas-in.maxUnavailable), 0))
	dec.deleteOld = append(dec.deleteOld, candidates[:n]...)
	gone := make(map[string]bool, n)
	for _, p := range candidates[:n] {
		gone[p.ref.key] = true
	}
	for _, p := range dec.deleteOld {
		if p.drained {
			drainedGone++
		}
	}
	availOld = slices.DeleteFunc(availOld, func(p rolloutPod) bool { return gone[p.ref.key] })
	if len(availOld) == 0 {
		// Nothing older left to protect: plain scaling.
		dec.create = in.replicas - len(cur)
		return dec
	}
	room := in.replicas + in.maxSurge - len(cur) - len(availOld)
	grow := max(min(in.replicas-len(cur), room), 0)
	if in.failed {
		grow = min(grow, in.replacedCurrent+drainedGone)
	}
	dec.create = grow
	return dec
}

// recreateStep is Kubernetes' Recreate: every old pod goes, and pods of the
// current template are added only once no old pod is left, nor being
// stopped by its node, in a later step: two versions never run together.
func recreateStep(in rolloutInput) rolloutDecision {
	dec := rolloutDecision{deleteOld: in.old}
	cur := in.current
	if excess := len(cur) - in.replicas; excess > 0 {
		dec.deleteCurrent, cur = cur[:excess], cur[excess:]
	}
	if len(in.old) == 0 && in.terminating == 0 {
		dec.create = in.replicas - len(cur)
	}
	return dec
}

// ---- status ----

// rolloutState carries what the status computation needs to know of a
// Deployment's rollout.
type rolloutState struct {
	history []Revision
	// prev is the history of the stored Deployment; its status and
	// conditions refer to currentHash(prev).
	prev                     []Revision
	maxSurge, maxUnavailable int
	minReady                 time.Duration
}

func condition(conds []appsv1.DeploymentCondition, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// setCondition returns want stamped against prev: prev itself when nothing
// but the times would change and force is off; otherwise updated now, with
// its transition time moved only if the status flips.
func setCondition(prev *appsv1.DeploymentCondition, want appsv1.DeploymentCondition, force bool, now time.Time) appsv1.DeploymentCondition {
	if prev != nil && !force && prev.Status == want.Status && prev.Reason == want.Reason && prev.Message == want.Message {
		return *prev
	}
	want.LastUpdateTime.Time = now
	want.LastTransitionTime.Time = now
	if prev != nil && prev.Status == want.Status {
		want.LastTransitionTime = prev.LastTransitionTime
	}
	return want
}

// progressed reports whether the rollout moved between two statuses of the
// same template, as Kubernetes judges it: more pods of the new template, more
// ready or available pods, or fewer pods of old templates.
func progressed(before, after *appsv1.DeploymentStatus) bool {
	return after.UpdatedReplicas > before.UpdatedReplicas ||
		after.ReadyReplicas > before.ReadyReplicas ||
		after.AvailableReplicas > before.AvailableReplicas ||
		after.Replicas-after.UpdatedReplicas < before.Replicas-before.UpdatedReplicas
}

func replicaSetName(d *appsv1.Deployment, hash string) string { return d.Name + "-" + hash }

// conditions computes the Available and Progressing conditions of st, the
// status the Deployment will have after this plan. od is the stored
// Deployment (nil if none).
func conditions(d, od *appsv1.Deployment, hash string, rs *rolloutState, st *appsv1.DeploymentStatus, replicas int, now time.Time) []appsv1.DeploymentCondition {
	var prevConds []appsv1.DeploymentCondition
	var prevStatus *appsv1.DeploymentStatus
	if od != nil {
		prevConds, prevStatus = od.Status.Conditions, &od.Status
	}

	wantAvail := appsv1.DeploymentCondition{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue,
		Reason: ReasonMinimumReplicasAvailable, Message: "Deployment has minimum availability."}
	if int(st.AvailableReplicas) < replicas-rs.maxUnavailable {
		wantAvail.Status, wantAvail.Reason, wantAvail.Message = corev1.ConditionFalse,
			ReasonMinimumReplicasUnavailable, "Deployment does not have minimum availability."
	}
	avail := setCondition(condition(prevConds, appsv1.DeploymentAvailable), wantAvail, false, now)

	// The stored Progressing condition speaks of currentHash(rs.prev): for
	// another template it is history, and the rollout starts fresh.
	var prev *appsv1.DeploymentCondition
	if currentHash(rs.prev) == hash {
		prev = condition(prevConds, appsv1.DeploymentProgressing)
	}
	name := replicaSetName(d, hash)
	complete := int(st.UpdatedReplicas) == replicas && int(st.Replicas) == replicas && int(st.AvailableReplicas) == replicas
	want := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue}
	force := false
	deadline, hasDeadline := progressDeadline(d)
	switch {
	case complete && prev != nil && prev.Reason == ReasonNewReplicaSetAvailable:
		want = *prev // the steady state, cheaply
	case complete:
		want.Reason, want.Message = ReasonNewReplicaSetAvailable, fmt.Sprintf("ReplicaSet %q has successfully progressed.", name)
	case prev == nil:
		want.Reason, want.Message = ReasonNewReplicaSetCreated, fmt.Sprintf("Created new replica set %q", name)
	case prev.Reason == ReasonProgressDeadlineExceeded || prev.Reason == ReasonNewReplicaSetAvailable:
		// A failed rollout stays failed until the template changes; a
		// finished one stays finished: pods replaced later are no rollout.
		want = *prev
	case progressed(prevStatus, st):
		want.Reason, want.Message = ReasonReplicaSetUpdated, fmt.Sprintf("ReplicaSet %q is progressing.", name)
		force = true
	case hasDeadline && now.Sub(prev.LastUpdateTime.Time) > deadline:
		want.Status, want.Reason, want.Message = corev1.ConditionFalse, ReasonProgressDeadlineExceeded,
			fmt.Sprintf("ReplicaSet %q has timed out progressing.", name)
	default:
		want = *prev
	}
	prog := setCondition(prev, want, force, now)
	return []appsv1.DeploymentCondition{avail, prog}
}

// failedFor reports whether the stored Deployment od says the rollout of the
// template with hash missed its progress deadline.
func failedFor(od *appsv1.Deployment, prev []Revision, hash string) bool {
	if od == nil || currentHash(prev) != hash {
		return false
	}
	c := condition(od.Status.Conditions, appsv1.DeploymentProgressing)
	return c != nil && c.Status == corev1.ConditionFalse && c.Reason == ReasonProgressDeadlineExceeded
}

// RolloutState is where a Deployment's rollout of its current template
// stands.
type RolloutState string

// The states of a rollout.
const (
	RolloutProgressing RolloutState = "Progressing"
	RolloutComplete    RolloutState = "Complete"
	RolloutFailed      RolloutState = "Failed"
)

// RolloutSummary is one Deployment's rollout as a plan leaves it: the
// status it writes, judged by the rules of RolloutStatus.
type RolloutSummary struct {
	Namespace, Name string
	// FromHash is the template hash of the revision before the current one
	// ("" when there is none); ToHash the current template's; Revision its
	// number (deployment.kubernetes.io/revision).
	FromHash, ToHash string
	Revision         int64
	// Replicas is spec.replicas; Updated, Ready and Available count the
	// Deployment's pods as the plan leaves them (its status).
	Replicas, Updated, Ready, Available int32
	// OldPods counts the pods of other templates left after the plan.
	OldPods int32
	// MaxSurge and MaxUnavailable are the strategy's, resolved against
	// Replicas (rounded as Kubernetes does; 0 and 0 for Recreate).
	MaxSurge, MaxUnavailable int
	State                    RolloutState
	// Reason is the Progressing condition's: NewReplicaSetCreated,
	// ReplicaSetUpdated, NewReplicaSetAvailable or ProgressDeadlineExceeded.
	Reason string
	// Message says what the rollout waits for, as kubectl rollout status.
	Message string
}

// RolloutStatus says where the rollout of a stored Deployment stands, as
// `kubectl rollout status` does: complete when the planner has seen the
// current spec and every replica runs the current template and is
// available, with no other pod left; failed when the rollout of the current
// template missed its progress deadline. msg says which, or what it waits for.
func RolloutStatus(d *appsv1.Deployment) (complete, failed bool, msg string) {
	if d.Generation > d.Status.ObservedGeneration {
		return false, false, "Waiting for deployment spec update to be observed..."
	}
	hist, _ := RevisionHistory(d) // unreadable: no failure can be attributed to this template
	failed = failedFor(d, hist, manifest.TemplateHash(&d.Spec.Template))
	state, msg := judgeRollout(d, &d.Status, failed)
	return state == RolloutComplete, state == RolloutFailed, msg
}

// judgeRollout is RolloutStatus's verdict on a status st of d, once the
// spec is observed; failed says the current template missed its deadline.
func judgeRollout(d *appsv1.Deployment, st *appsv1.DeploymentStatus, failed bool) (RolloutState, string) {
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	if failed {
		msg := ""
		if c := condition(st.Conditions, appsv1.DeploymentProgressing); c != nil {
			msg = c.Message
		}
		return RolloutFailed, fmt.Sprintf("deployment %q exceeded its progress deadline: %s", d.Name, msg)
	}
	var msg string
	switch {
	case st.UpdatedReplicas < replicas:
		msg = fmt.Sprintf("Waiting for deployment %q rollout to finish: %d out of %d new replicas have been updated...", d.Name, st.UpdatedReplicas, replicas)
	case st.Replicas > st.UpdatedReplicas:
		msg = fmt.Sprintf("Waiting for deployment %q rollout to finish: %d old replicas are pending termination...", d.Name, st.Replicas-st.UpdatedReplicas)
	case st.AvailableReplicas < st.UpdatedReplicas:
		msg = fmt.Sprintf("Waiting for deployment %q rollout to finish: %d of %d updated replicas are available...", d.Name, st.AvailableReplicas, st.UpdatedReplicas)
	case st.UpdatedReplicas != replicas || st.Replicas != replicas || st.AvailableReplicas != replicas:
		msg = fmt.Sprintf("Waiting for deployment %q rollout to finish: %d replicas, want %d...", d.Name, st.Replicas, replicas)
	default:
		return RolloutComplete, fmt.Sprintf("deployment %q successfully rolled out", d.Name)
	}
	return RolloutProgressing, msg
}

// availableAt is when a ready pod that is not available yet becomes
// available: its Ready transition plus minReady. ok is false for a pod
// that is available already or is not ready (nothing to wait for).
func availableAt(pod *corev1.Pod, minReady time.Duration, now time.Time) (time.Time, bool) {
	if minReady <= 0 || pod.Spec.NodeName == "" || kube.PodFinished(pod) {
		return time.Time{}, false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			if c.Status != corev1.ConditionTrue || c.LastTransitionTime.IsZero() {
				return time.Time{}, false
			}
			at := c.LastTransitionTime.Add(minReady)
			return at, at.After(now)
		}
	}
	return time.Time{}, false
}

// deadlineAt is when a rollout whose Progressing condition is prog misses
// its progress deadline if it makes no progress: the first instant strictly
// after LastUpdateTime + progressDeadlineSeconds (Kubernetes compares
// strictly). ok is false when no deadline can pass: none set, the rollout
// complete, or failed already.
func deadlineAt(d *appsv1.Deployment, prog *appsv1.DeploymentCondition) (time.Time, bool) {
	deadline, has := progressDeadline(d)
	if !has || prog == nil || prog.Status != corev1.ConditionTrue || prog.Reason == ReasonNewReplicaSetAvailable {
		return time.Time{}, false
	}
	return prog.LastUpdateTime.Add(deadline).Add(time.Nanosecond), true
}

func formatRevision(n int64) string { return strconv.FormatInt(n, 10) }
