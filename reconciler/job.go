package reconciler

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"bosun/kube"
)

// Labels and annotations of Jobs and their pods.
const (
	// LabelJobName and LabelBatchJobName carry a Job pod's Job, as in
	// Kubernetes; LabelControllerUID tells one run of a Job from another.
	LabelJobName       = "job-name"
	LabelBatchJobName  = "batch.kubernetes.io/job-name"
	LabelControllerUID = "batch.kubernetes.io/controller-uid"
	// AnnotationExpired marks a Job from Git whose ttlSecondsAfterFinished
	// ran out: its pods are gone and the API hides it, but the record
	// stays (spec hash, status, no pod template) so that the same spec does
	// not run again while it stays in Git. The value is the time it expired.
	AnnotationExpired = "bosun.dev/expired"
	// AnnotationLostPods counts the pods of the current run that were
	// deleted before they finished, because their node was lost or a
	// NoExecute taint evicted them: they count as failed.
	AnnotationLostPods = "bosun.dev/lost-pods"
	// AnnotationScheduledTimestamp is the scheduled time of a CronJob's
	// Job, as Kubernetes writes it (RFC 3339, in the CronJob's time zone).
	AnnotationScheduledTimestamp = "batch.kubernetes.io/cronjob-scheduled-timestamp"
)

// Reasons of the Job conditions, as in Kubernetes.
const (
	ReasonCompletionsReached   = "CompletionsReached"
	ReasonBackoffLimitExceeded = "BackoffLimitExceeded"
	ReasonDeadlineExceeded     = "DeadlineExceeded"
	ReasonJobSuspended         = "JobSuspended"
	ReasonJobResumed           = "JobResumed"
)

// A failed pod of a Job is replaced after a delay that doubles with each
// failure since the last success, as Kubernetes' job controller does.
const (
	jobBackoffBase = 10 * time.Second
	jobBackoffMax  = 6 * time.Minute
)

// JobSpecHash hashes what makes a run of a Job: its pod template,
// completions and completion mode. A Job from Git whose hash changes runs
// again; its other fields (parallelism, suspend, activeDeadlineSeconds,
// backoffLimit, ttlSecondsAfterFinished) apply to the run in place, as
// Kubernetes lets them be updated.
func JobSpecHash(spec *batchv1.JobSpec) string {
	data, _ := json.Marshal(struct {
		Template       *corev1.PodTemplateSpec
		Completions    *int32
		CompletionMode *batchv1.CompletionMode
	}{&spec.Template, spec.Completions, spec.CompletionMode})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:10]
}

// JobFinished returns the Job's finished condition (Complete or Failed,
// status True), or nil while it runs.
func JobFinished(st *batchv1.JobStatus) *batchv1.JobCondition {
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

// finishedAt is when a finished Job finished: its completion time, or when
// it failed.
func finishedAt(st *batchv1.JobStatus) time.Time {
	c := JobFinished(st)
	switch {
	case c == nil:
		return time.Time{}
	case c.Type == batchv1.JobComplete && st.CompletionTime != nil:
		return st.CompletionTime.Time
	}
	return c.LastTransitionTime.Time
}

func jobCondition(st *batchv1.JobStatus, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// setJobCondition sets a condition; its times move only when its status
// does, as in Kubernetes.
func setJobCondition(st *batchv1.JobStatus, t batchv1.JobConditionType, status corev1.ConditionStatus, reason, msg string, now metav1.Time) {
	c := jobCondition(st, t)
	if c == nil {
		st.Conditions = append(st.Conditions, batchv1.JobCondition{Type: t})
		c = &st.Conditions[len(st.Conditions)-1]
	}
	if c.Status != status {
		c.LastTransitionTime, c.LastProbeTime = now, now
	}
	c.Status, c.Reason, c.Message = status, reason, msg
}

// jobPods are the pods of a Job's current run, as the planner found them.
type jobPods struct {
	active, succeeded, failed []*corev1.Pod
	// lost are active pods on a node that is gone, or evicted by a taint:
	// they are deleted and count as failed.
	lost []*corev1.Pod
}

// jobStepInput is everything one step of a Job needs.
type jobStepInput struct {
	spec   *batchv1.JobSpec
	status *batchv1.JobStatus // as stored (empty for a new run)
	// lostBefore counts pods lost in earlier plans (AnnotationLostPods).
	lostBefore int32
	pods       jobPods
	now        time.Time
}

// jobStepResult is what one step decides for a Job.
type jobStepResult struct {
	status batchv1.JobStatus
	// create is how many pods to start; remove are active pods to stop,
	// for removeWhy.
	create    int
	remove    []*corev1.Pod
	removeWhy string
	// wake is when the step would decide something new by itself (a
	// deadline, the end of a backoff); zero for never.
	wake time.Time
	// event is what this step changed about the Job, if anything worth
	// telling: it finished, was suspended or resumed.
	event *Event
}

// stepJob is the job controller's decision for one Job: how many pods to
// start and which to stop, and the Job's status as it will be once that is
// done. It is pure.
//
// While fewer than completions pods have succeeded, up to parallelism pods
// run (never more than the completions still missing). A failed pod is
// replaced after the backoff (10 s, doubling, at most 6 min) unless the
// failures exceed backoffLimit; with restartPolicy OnFailure the node
// restarts containers in place and their restarts count as failures (as in
// Kubernetes: the Job fails once they reach backoffLimit). Past
// activeDeadlineSeconds from its start, the Job fails. A suspended Job runs
// no pod; resuming it restarts its deadline. A finished Job runs nothing.
func stepJob(in jobStepInput) jobStepResult {
	var out jobStepResult
	st := *in.status.DeepCopy()
	now := stamp(in.now)
	pods := in.pods
	active := pods.active
	finish := func() {
		out.remove, active = active, nil
	}
	if JobFinished(&st) != nil {
		// Its counts are final: the pods it stopped are gone.
		finish()
		out.removeWhy = "job finished"
		return out.withCounts(st, active, 0)
	}
	st.Succeeded = int32(len(pods.succeeded))
	st.Failed = int32(len(pods.failed)) + in.lostBefore + int32(len(pods.lost))
	spec := in.spec
	if spec.Suspend != nil && *spec.Suspend {
		finish()
		out.removeWhy = "job suspended"
		if c := jobCondition(&st, batchv1.JobSuspended); c == nil || c.Status != corev1.ConditionTrue {
			setJobCondition(&st, batchv1.JobSuspended, corev1.ConditionTrue, ReasonJobSuspended, "Job suspended", now)
			out.event = &Event{Reason: ReasonJobSuspended, Message: "suspended: its pods are stopped"}
		}
		return out.withCounts(st, active, 0)
	}
	if c := jobCondition(&st, batchv1.JobSuspended); c != nil && c.Status == corev1.ConditionTrue {
		setJobCondition(&st, batchv1.JobSuspended, corev1.ConditionFalse, ReasonJobResumed, "Job resumed", now)
		st.StartTime = &now // the deadline counts from the resumption
		out.event = &Event{Reason: ReasonJobResumed, Message: "resumed"}
	}
	if st.StartTime == nil {
		st.StartTime = &now
	}

	limit := int32(6)
	if spec.BackoffLimit != nil {
		limit = *spec.BackoffLimit
	}
	var deadline time.Time
	if spec.ActiveDeadlineSeconds != nil {
		deadline = st.StartTime.Add(time.Duration(*spec.ActiveDeadlineSeconds) * time.Second)
	}
	fail := func(reason, msg string) {
		st.Failed += int32(len(active)) // stopped by the failure: they fail too, as in Kubernetes
		finish()
		out.removeWhy = "job failed: " + reason
		setJobCondition(&st, batchv1.JobFailed, corev1.ConditionTrue, reason, msg, now)
		out.event = &Event{Reason: reason, Message: msg}
	}
	switch {
	case !deadline.IsZero() && !in.now.Before(deadline):
		fail(ReasonDeadlineExceeded, fmt.Sprintf("Job was active longer than specified deadline (%ds)", *spec.ActiveDeadlineSeconds))
	case st.Failed > limit:
		fail(ReasonBackoffLimitExceeded, fmt.Sprintf("Job has reached the specified backoff limit (%d): %d pods failed", limit, st.Failed))
	case pastBackoffLimitOnFailure(spec, active, limit):
		fail(ReasonBackoffLimitExceeded, fmt.Sprintf("Job has reached the specified backoff limit (%d): containers restarted %d times", limit, restarts(active)))
	case complete(spec, st.Succeeded, len(active)):
		finish()
		out.removeWhy = "job complete"
		st.CompletionTime = &now
		setJobCondition(&st, batchv1.JobComplete, corev1.ConditionTrue, ReasonCompletionsReached, "Reached expected number of succeeded pods", now)
		out.event = &Event{Reason: ReasonCompletionsReached, Message: fmt.Sprintf("complete: %d succeeded, %d failed", st.Succeeded, st.Failed)}
	default:
		want := wantActive(spec, st.Succeeded, len(active))
		if len(active) > want {
			slices.SortFunc(active, byStopOrder)
			out.remove, active = active[:len(active)-want], active[len(active)-want:]
			out.removeWhy = fmt.Sprintf("parallelism: %d active pods, want %d", len(active)+len(out.remove), want)
		}
		if len(active) < want {
			if until := backoffUntil(pods.succeeded, pods.failed); in.now.Before(until) {
				out.wake = until
			} else {
				out.create = want - len(active)
			}
		}
		if !deadline.IsZero() && (out.wake.IsZero() || deadline.Before(out.wake)) {
			out.wake = deadline
		}
	}
	return out.withCounts(st, active, out.create)
}

// withCounts completes the status with the pods that will be active.
func (out jobStepResult) withCounts(st batchv1.JobStatus, active []*corev1.Pod, created int) jobStepResult {
	st.Active = int32(len(active) + created)
	var readyPods int32
	for _, pod := range active {
		if kube.PodReady(pod) {
			readyPods++
		}
	}
	st.Ready = &readyPods
	out.status = st
	return out
}

// complete reports whether a Job has succeeded: completions pods
// succeeded, or (without completions, a work queue) one did and none runs.
func complete(spec *batchv1.JobSpec, succeeded int32, active int) bool {
	if spec.Completions == nil {
		return succeeded > 0 && active == 0
	}
	return succeeded >= *spec.Completions
}

// wantActive is how many pods should run: parallelism, but no more than
// the completions still missing; without completions, no new pod once one
// has succeeded.
func wantActive(spec *batchv1.JobSpec, succeeded int32, active int) int {
	parallelism := 1
	if spec.Parallelism != nil {
		parallelism = max(int(*spec.Parallelism), 0)
	}
	if spec.Completions == nil {
		if succeeded > 0 {
			return min(active, parallelism)
		}
		return parallelism
	}
	return max(min(int(*spec.Completions-succeeded), parallelism), 0)
}

// pastBackoffLimitOnFailure applies backoffLimit to the restarts of a Job
// whose pods restart their containers in place, as Kubernetes does.
func pastBackoffLimitOnFailure(spec *batchv1.JobSpec, active []*corev1.Pod, limit int32) bool {
	if spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return false
	}
	n := restarts(active)
	if limit == 0 {
		return n > 0
	}
	return n >= limit
}

func restarts(pods []*corev1.Pod) int32 {
	var n int32
	for _, pod := range pods {
		for _, cs := range pod.Status.InitContainerStatuses {
			n += cs.RestartCount
		}
		for _, cs := range pod.Status.ContainerStatuses {
			n += cs.RestartCount
		}
	}
	return n
}

// backoffUntil is the end of the wait before a new pod after failures:
// 10 s after the latest failure, doubled for each failure since the last
// success, at most 6 min.
func backoffUntil(succeeded, failed []*corev1.Pod) time.Time {
	var lastSuccess, lastFailure time.Time
	for _, pod := range succeeded {
		if t := podFinished(pod); t.After(lastSuccess) {
			lastSuccess = t
		}
	}
	n := 0
	for _, pod := range failed {
		t := podFinished(pod)
		if t.Before(lastSuccess) {
			continue
		}
		n++
		if t.After(lastFailure) {
			lastFailure = t
		}
	}
	if n == 0 {
		return time.Time{}
	}
	return lastFailure.Add(backoffDelay(n))
}

func backoffDelay(failures int) time.Duration {
	d := jobBackoffBase
	for i := 1; i < failures && d < jobBackoffMax; i++ {
		d *= 2
	}
	return min(d, jobBackoffMax)
}

// podFinished is when a finished pod finished: its containers' latest
// termination, or, if the node reported none, the latest time it knows.
func podFinished(pod *corev1.Pod) time.Time {
	var t time.Time
	for _, cs := range pod.Status.ContainerStatuses {
		if term := cs.State.Terminated; term != nil && term.FinishedAt.After(t) {
			t = term.FinishedAt.Time
		}
	}
	if !t.IsZero() {
		return t
	}
	for _, c := range pod.Status.Conditions {
		if c.LastTransitionTime.After(t) {
			t = c.LastTransitionTime.Time
		}
	}
	if t.IsZero() && pod.Status.StartTime != nil {
		t = pod.Status.StartTime.Time
	}
	if t.IsZero() {
		t = pod.CreationTimestamp.Time
	}
	return t
}

// byStopOrder sorts a Job's active pods least advanced first: unbound, not
// ready, then ready; newest first within each.
func byStopOrder(a, b *corev1.Pod) int {
	rank := func(p *corev1.Pod) int {
		switch {
		case p.Spec.NodeName == "":
			return 0
		case !kube.PodReady(p):
			return 1
		}
		return 2
	}
	return cmp.Or(cmp.Compare(rank(a), rank(b)),
		-a.CreationTimestamp.Compare(b.CreationTimestamp.Time),
		-cmp.Compare(a.Name, b.Name))
}

// stamp is a time as the store keeps it: whole seconds. Times the batch
// planner writes and later reads back (start, completion, schedule) are
// stamped, so that a plan decides the same from its own writes as from
// what the store returns.
func stamp(t time.Time) metav1.Time { return metav1.NewTime(t.Truncate(time.Second)) }

// ---- Job pods ----

// newJobPod is a pod of a Job's current run: named "<job>-<suffix>", with
// the job-name labels and an ownerReference to the Job.
func newJobPod(j *batchv1.Job, name string) *corev1.Pod {
	t := j.Spec.Template.DeepCopy()
	labels := make(map[string]string, len(t.Labels)+3)
	for k, v := range t.Labels {
		labels[k] = v
	}
	labels[LabelJobName] = j.Name
	labels[LabelBatchJobName] = j.Name
	labels[LabelControllerUID] = string(j.UID)
	controller, block := true, true
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   j.Namespace,
			Labels:      labels,
			Annotations: t.Annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         "batch/v1",
				Kind:               "Job",
				Name:               j.Name,
				UID:                j.UID,
				Controller:         &controller,
				BlockOwnerDeletion: &block,
			}},
		},
		Spec: t.Spec,
	}
}

// jobPodName names the pod with this ordinal of a run of a Job:
// "<job>-<5 characters>", the suffix encoding the ordinal bijectively for
// the run (its UID), as Deployment pod names do.
func jobPodName(j *batchv1.Job, ordinal int) string {
	return jobPodPrefix(j) + nameSuffix(jobSuffixSeed(j), ordinal)
}

func jobPodPrefix(j *batchv1.Job) string {
	const maxName = 253
	base := j.Name
	if room := maxName - suffixLen - 1; len(base) > room {
		base = strings.TrimRight(base[:room], "-.")
	}
	return base + "-"
}

func jobSuffixSeed(j *batchv1.Job) int64 { return nameSeed(j.Namespace, j.Name, string(j.UID)) }

// jobPodOrdinal reads the ordinal back from a name jobPodName made.
func jobPodOrdinal(j *batchv1.Job, name string) (int, bool) {
	return suffixOrdinal(name, jobPodPrefix(j), jobSuffixSeed(j))
}

// objectUID gives a new Job or CronJob its identity, derived like a pod's
// from what it is and the plan's time.
func objectUID(kind, namespace, name, salt string, now time.Time) types.UID {
	h := sha256.New()
	for _, s := range []string{kind, namespace, name, salt, strconv.FormatInt(now.UnixNano(), 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	b := h.Sum(sum[:0])
	b[6] = b[6]&0x0f | 0x80 // UUID version 8: custom
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}

func lostPods(j *batchv1.Job) int32 {
	n, _ := strconv.ParseInt(j.Annotations[AnnotationLostPods], 10, 32)
	return int32(max(n, 0))
}
