package nodes

// Pure decisions of a pod worker: restart and backoff, the pod's status, the
// process arguments and environment of a container, names and generated
// files. Nothing here does I/O or reads the clock.

import (
	"crypto/sha256"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Waiting reasons, as kubelet reports them.
const (
	ReasonContainerCreating = "ContainerCreating"
	ReasonCrashLoopBackOff  = "CrashLoopBackOff"
	ReasonErrImagePull      = "ErrImagePull"
	ReasonImagePullBackOff  = "ImagePullBackOff"
	ReasonErrImageNeverPull = "ErrImageNeverPull"
	ReasonCreateConfigError = "CreateContainerConfigError"
	ReasonCreateError       = "CreateContainerError"
	ReasonRunError          = "RunContainerError"
)

// containerRecord is a pod worker's view of one container of its pod. The
// worker owns it; status is derived from it by buildStatus.
type containerRecord struct {
	Name string
	// ID is the containerd container ID of the current (or last) instance,
	// "" when none exists.
	ID      string
	ImageID string
	Running bool
	// Probes is the prober state of the current instance (nil before the
	// first start). Readiness and "started" derive from it.
	Probes    *containerProbes
	StartedAt time.Time
	// KillReason and KillMessage, when set, say why the agent stopped the
	// current instance (a failing liveness or startup probe); they become
	// the reason and message of its termination.
	KillReason  string
	KillMessage string
	// Terminated is the final state of a container that will not restart.
	Terminated *corev1.ContainerStateTerminated
	// Last is the termination of the previous run.
	Last *corev1.ContainerStateTerminated
	// Waiting is why the container is not running (when neither Running nor
	// Terminated).
	Waiting      *corev1.ContainerStateWaiting
	RestartCount int32
	// Backoff counts consecutive restarts after exits, for the crash loop
	// backoff; a run longer than 2*MaxRestartBackoff resets it.
	Backoff int
	// StartFailures counts consecutive failed starts (image pulls, config
	// errors), for their own backoff; a start resets it.
	StartFailures int
	// NextStart is the earliest time of the next start attempt.
	NextStart time.Time
	// PostStartPending: the current instance's postStart hook has not
	// returned yet; until it does the container is not started (nor ready)
	// and the containers after it in sequence wait.
	PostStartPending bool
	// Stopping: the agent is stopping the current instance for good (a
	// sidecar of a pod that is done); its exit is final.
	Stopping bool
}

// shouldRestart applies the pod's restartPolicy to an exit code.
func shouldRestart(policy corev1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	default: // Always, and the API default
		return true
	}
}

// backoffDelay is the wait before attempt n+1 after n consecutive failures:
// 0 for the first retry, then base, 2*base, ... capped at max (kubelet's
// restart backoff).
func backoffDelay(n int, base, max time.Duration) time.Duration {
	if n <= 0 {
		return 0
	}
	d := base
	for i := 1; i < n; i++ {
		d *= 2
		if d >= max {
			return max
		}
	}
	if d > max {
		return max
	}
	return d
}

// exitPlan decides what follows a container's exit.
type exitPlan struct {
	Restart bool
	Delay   time.Duration // before the restart
	Backoff int           // the record's new backoff count
}

// planExit returns the plan after a run of ranFor ending with exitCode, given
// the record's backoff count. A run longer than 2*max resets the backoff.
func planExit(policy corev1.RestartPolicy, exitCode int32, ranFor time.Duration, backoff int, base, max time.Duration) exitPlan {
	if !shouldRestart(policy, exitCode) {
		return exitPlan{Backoff: backoff}
	}
	if ranFor >= 2*max {
		backoff = 0
	}
	return exitPlan{Restart: true, Delay: backoffDelay(backoff, base, max), Backoff: backoff + 1}
}

// exitReason is the terminated reason kubelet reports for an exit code.
func exitReason(exitCode int32) string {
	if exitCode == 0 {
		return "Completed"
	}
	return "Error"
}

// statusInput is everything buildStatus needs.
type statusInput struct {
	Pod       *corev1.Pod
	Records   map[string]*containerRecord
	PodIP     string
	HostIP    string
	StartTime time.Time
	// Message, when set, explains a pod-level problem (sandbox setup).
	Message string
	// Reason, when set, says the node refused the pod for good (kubelet's
	// admission failure): the status is Failed with this reason and
	// Message, and no container status (none was ever created).
	Reason string
	Prev   *corev1.PodStatus // the last status written, for transition times
	Now    time.Time
}

// buildStatus derives the pod's status from the worker's records, as
// kubelet does: init container and container statuses, the phase, and the
// Initialized, ContainersReady and Ready conditions (sidecars count toward
// readiness).
func buildStatus(in statusInput) corev1.PodStatus {
	spec := &in.Pod.Spec
	st := corev1.PodStatus{HostIP: in.HostIP, PodIP: in.PodIP, Message: in.Message}
	if in.HostIP != "" {
		st.HostIPs = []corev1.HostIP{{IP: in.HostIP}}
	}
	if in.PodIP != "" {
		st.PodIPs = []corev1.PodIP{{IP: in.PodIP}}
	}
	if in.Reason != "" {
		return rejectedStatus(st, in)
	}
	if !in.StartTime.IsZero() {
		t := metav1.NewTime(in.StartTime)
		st.StartTime = &t
	}
	defaultWaiting := ReasonContainerCreating
	if len(spec.InitContainers) > 0 {
		defaultWaiting = ReasonPodInitializing
	}
	var unready []string
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		cs := containerStatusOf(c, in.Records[c.Name], defaultWaiting, !isSidecar(c))
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
		if isSidecar(c) && !cs.Ready {
			unready = append(unready, c.Name)
		}
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		cs := containerStatusOf(c, in.Records[c.Name], defaultWaiting, false)
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		if !cs.Ready {
			unready = append(unready, c.Name)
		}
	}
	allReady := len(spec.Containers) > 0 && len(unready) == 0
	st.Phase = podPhase(spec, st.InitContainerStatuses, st.ContainerStatuses)
	initialized := planPod(spec, in.Records).Initialized || st.Phase == corev1.PodSucceeded

	cond := func(t corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, Message: msg}
		if ok {
			c.Status, c.Reason = corev1.ConditionTrue, ""
		}
		c.LastTransitionTime = metav1.NewTime(in.Now)
		if in.Prev != nil {
			for _, p := range in.Prev.Conditions {
				if p.Type == t && p.Status == c.Status {
					c.LastTransitionTime = p.LastTransitionTime
				}
			}
		}
		return c
	}
	readyReason := "ContainersNotReady"
	if st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed {
		readyReason = "PodCompleted"
	}
	readyMsg := ""
	if !allReady && readyReason != "PodCompleted" {
		readyMsg = fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
	}
	initMsg := ""
	if !initialized {
		initMsg = fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(incompleteInit(spec, in.Records), " "))
	}
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodScheduled, true, "", ""),
		cond(corev1.PodInitialized, initialized, ReasonContainersNotInitialized, initMsg),
		cond(corev1.ContainersReady, allReady, readyReason, readyMsg),
		cond(corev1.PodReady, allReady, readyReason, readyMsg),
	}
	probeState := make(map[string]*containerProbes, len(in.Records))
	for name, rec := range in.Records {
		probeState[name] = rec.Probes
	}
	if configured, ok, failed, msg := probeSummary(probed(spec), probeState); configured {
		reason := "ProbesPending"
		if failed {
			reason = "ProbeFailed"
		}
		st.Conditions = append(st.Conditions, cond(ConditionProbes, ok, reason, msg))
	}
	return st
}

// rejectedStatus is the status of a pod the node refused (statusInput.
// Reason), as kubelet's rejectPod writes it: Failed, the reason, the
// message; scheduled but never ready. st has the node's address.
func rejectedStatus(st corev1.PodStatus, in statusInput) corev1.PodStatus {
	st.PodIP, st.PodIPs = "", nil
	st.Phase, st.Reason = corev1.PodFailed, in.Reason
	at := metav1.NewTime(in.Now)
	if in.Prev != nil && in.Prev.Reason == in.Reason && len(in.Prev.Conditions) > 0 {
		at = in.Prev.Conditions[0].LastTransitionTime
	}
	st.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: at},
		{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: in.Reason, LastTransitionTime: at},
		{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: in.Reason, LastTransitionTime: at},
	}
	return st
}

// probed lists the containers that may have probes: sidecars, then app
// containers.
func probed(spec *corev1.PodSpec) []corev1.Container {
	var out []corev1.Container
	for i := range spec.InitContainers {
		if isSidecar(&spec.InitContainers[i]) {
			out = append(out, spec.InitContainers[i])
		}
	}
	return append(out, spec.Containers...)
}

// containerStatusOf is one container's status. A container without a
// record (never created) waits with defaultWaiting (PodInitializing in a
// pod with init containers, else ContainerCreating). runsToCompletion (a
// regular init container) counts as ready once it exited 0, as kubelet
// reports it.
func containerStatusOf(c *corev1.Container, rec *containerRecord, defaultWaiting string, runsToCompletion bool) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
	if rec == nil {
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: defaultWaiting}
		return cs
	}
	cs.ImageID = rec.ImageID
	if rec.ID != "" {
		cs.ContainerID = "containerd://" + rec.ID
	}
	cs.RestartCount = rec.RestartCount
	switch {
	case rec.Running:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(rec.StartedAt)}
		cs.Ready = !runsToCompletion && rec.ready()
	case rec.Terminated != nil:
		cs.State.Terminated = rec.Terminated.DeepCopy()
		cs.Ready = runsToCompletion && rec.Terminated.ExitCode == 0
	case rec.Waiting != nil:
		cs.State.Waiting = rec.Waiting.DeepCopy()
	case rec.ID == "" && rec.Last == nil:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: defaultWaiting}
	default:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: ReasonContainerCreating}
	}
	if rec.Last != nil {
		cs.LastTerminationState.Terminated = rec.Last.DeepCopy()
	}
	started := rec.started()
	cs.Started = &started
	return cs
}

// podPhase is kubelet's getPhase: init containers that have not completed
// keep the pod Pending (an init container failed under restartPolicy Never
// fails it); sidecars count as running while they run and are ignored once
// stopped, so they never keep a pod from completing; then the app
// containers decide, by the restart policy.
func podPhase(spec *corev1.PodSpec, initStatuses, statuses []corev1.ContainerStatus) corev1.PodPhase {
	find := func(list []corev1.ContainerStatus, name string) (corev1.ContainerStatus, bool) {
		for _, cs := range list {
			if cs.Name == name {
				return cs, true
			}
		}
		return corev1.ContainerStatus{}, false
	}
	var pendingInit, failedInit int
	var unknown, running, waiting, stopped, succeeded int
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		cs, ok := find(initStatuses, c.Name)
		if !isSidecar(c) {
			switch {
			case !ok || cs.State.Running != nil:
				pendingInit++
			case cs.State.Terminated != nil:
				if cs.State.Terminated.ExitCode != 0 {
					failedInit++
				}
			case cs.LastTerminationState.Terminated != nil:
				if cs.LastTerminationState.Terminated.ExitCode != 0 {
					failedInit++
				}
			default:
				pendingInit++
			}
			continue
		}
		switch {
		case !ok:
			pendingInit++
			unknown++
		case cs.State.Running != nil:
			if cs.Started == nil || !*cs.Started {
				pendingInit++
			}
			running++
		case cs.State.Terminated != nil, cs.LastTerminationState.Terminated != nil:
			// Stopped, or restarting: a sidecar's exit decides nothing.
		default:
			pendingInit++
			waiting++
		}
	}
	regularStarted := false
	for i := range spec.Containers {
		cs, ok := find(statuses, spec.Containers[i].Name)
		switch {
		case !ok:
			unknown++
		case cs.State.Running != nil:
			running++
			regularStarted = true
		case cs.State.Terminated != nil:
			stopped++
			regularStarted = true
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.LastTerminationState.Terminated != nil:
			// Waiting to restart after a run.
			stopped++
			if cs.LastTerminationState.Terminated.ExitCode == 0 {
				succeeded++
			}
		default:
			waiting++
		}
	}
	if failedInit > 0 && spec.RestartPolicy == corev1.RestartPolicyNever {
		return corev1.PodFailed
	}
	switch {
	case pendingInit > 0 && !regularStarted, waiting > 0, len(spec.Containers) == 0:
		return corev1.PodPending
	case running > 0 && unknown == 0:
		return corev1.PodRunning
	case running == 0 && stopped > 0 && unknown == 0:
		switch {
		case spec.RestartPolicy == corev1.RestartPolicyAlways || spec.RestartPolicy == "":
			return corev1.PodRunning // every container is restarting
		case stopped == succeeded:
			return corev1.PodSucceeded
		case spec.RestartPolicy == corev1.RestartPolicyNever:
			return corev1.PodFailed
		}
		return corev1.PodRunning // OnFailure: a failure is restarting
	}
	return corev1.PodPending
}

// statusEqual reports whether two statuses are the same. Times are part of
// a status, but buildStatus reuses the recorded times, so a status rebuilt
// from unchanged records is equal and is not written again.
func statusEqual(a, b *corev1.PodStatus) bool {
	if a == nil || b == nil {
		return a == b
	}
	return apiequality.Semantic.DeepEqual(a, b)
}

// processArgs applies Kubernetes' command/args semantics to the image's
// entrypoint and cmd: command replaces the entrypoint (and drops the cmd),
// args replace the cmd.
func processArgs(entrypoint, cmd, command, args []string) []string {
	var out []string
	switch {
	case len(command) > 0:
		out = append(out, command...)
		out = append(out, args...)
	case len(args) > 0:
		out = append(out, entrypoint...)
		out = append(out, args...)
	default:
		out = append(out, entrypoint...)
		out = append(out, cmd...)
	}
	return out
}

var unsafeID = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// shortUID is the first 8 hex characters of a UID.
func shortUID(uid string) string {
	s := strings.ReplaceAll(uid, "-", "")
	if len(s) > 8 {
		s = s[:8]
	}
	return s
}

// boundedName joins parts with "-" and, when the result is longer than max,
// keeps a prefix and appends a hash of the whole so names stay unique.
func boundedName(max int, parts ...string) string {
	s := unsafeID.ReplaceAllString(strings.Join(parts, "-"), "_")
	if len(s) <= max {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	h := fmt.Sprintf("%x", sum[:6])
	return s[:max-len(h)-1] + "-" + h
}

// sandboxName names the pod's network namespace and CNI attachment.
func sandboxName(namespace, pod, uid string) string {
	return boundedName(100, "bosun", namespace, pod, shortUID(uid))
}

// containerID names one instance (run) of a container; containerd accepts
// at most 76 characters.
func containerID(namespace, pod, uid, container string, restart int32) string {
	return boundedName(76, namespace, pod, container, shortUID(uid), fmt.Sprint(restart))
}

// gracePeriod is the pod's termination grace period (default 30s).
func gracePeriod(pod *corev1.Pod) time.Duration {
	if pod != nil && pod.Spec.TerminationGracePeriodSeconds != nil && *pod.Spec.TerminationGracePeriodSeconds >= 0 {
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return 30 * time.Second
}

// pullPolicy is the container's image pull policy with the API default:
// Always for :latest or untagged images, else IfNotPresent.
func pullPolicy(c *corev1.Container) corev1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	img := c.Image
	if i := strings.LastIndex(img, "@"); i >= 0 {
		return corev1.PullIfNotPresent
	}
	slash := strings.LastIndex(img, "/")
	colon := strings.LastIndex(img, ":")
	if colon <= slash || img[colon+1:] == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

func splitLines(s string) []string { return strings.Split(s, "\n") }

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
