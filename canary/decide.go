package canary

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/kube"
)

// Input is what Decide decides from, for one Deployment.
type Input struct {
	Namespace, Name string
	// Spec is the canary main's Deployment asks for; nil for none.
	Spec *Spec
	// State is the canary as stored; nil when there is none.
	State *State
	// Candidate is what the branch holds, as last fetched; nil when it is
	// not known yet (a new leader before its first fetch of the branch).
	Candidate *Candidate
	// StableHash is the template hash main's Deployment runs; Replicas its
	// replicas.
	StableHash string
	Replicas   int
	// Pods are the canary's pods as observed (label bosun.dev/track:
	// canary, pod-template-hash State.Hash).
	Pods []*corev1.Pod
	// Measurement is the latest evaluation of Spec.Query, nil if none.
	Measurement *Measurement
	// StartDeadline is how long a scheduled canary pod may take to start
	// its containers (the Deployment's progressDeadlineSeconds); zero for
	// no limit but Interval.
	StartDeadline time.Duration
	Now           time.Time
}

// Decision is what the planner does with a canary.
type Decision struct {
	// State is the canary to store; nil to delete the stored one.
	State *State
	// Run says the canary's pods run: Replicas of them, taking Weight
	// percent of new connections.
	Run      bool
	Weight   int32
	Replicas int
	// Events are what happened, for the history.
	Events []Event
	// Wake is when deciding again decides something new by itself (a step
	// is due, a pod's readiness runs out); zero if nothing is pending.
	Wake time.Time
	// MeasureAt is when Spec.Query is due for its next evaluation; zero
	// when the canary has no query or does not run.
	MeasureAt time.Time
}

// Event reasons.
const (
	EventStarted  = "CanaryStarted"
	EventStepped  = "CanaryStepped"
	EventAborted  = "CanaryAborted"
	EventFailed   = "CanaryFailed"
	EventPromoted = "CanaryPromoted"
	EventEnded    = "CanaryEnded"
)

// Event is one notable change of a canary.
type Event struct {
	Namespace, Name string
	Branch, Commit  string
	Subject         string
	Reason, Message string
}

// Decide is the one model of a canary's life, pure: from what main asks
// for, what the branch holds, what is stored and what the canary's pods
// and its query show, it decides whether the canary runs, at which weight,
// and what is stored. The rules:
//
//   - No canary annotation: the stored canary is deleted (a running one
//     ends). A changed branch ends the canary of the old one.
//   - A new commit (or a new template for the same commit, main's
//     configuration having changed) on the branch starts a new canary at
//     the first step, unless that commit was aborted before (never
//     retried), the branch cannot run (Failed, with the reason), or its
//     template is main's (Idle). Nothing is decided from a branch not
//     fetched yet: a new leader resumes the stored canary as it was.
//   - Main running the canary's template (the branch was merged) promotes
//     it: its pods become stable pods, untouched.
//   - Analysis of a running canary. Built-in signals abort at once: a
//     canary pod failed, a container restarted or crash-looping, a pod not
//     ready for a whole Interval after its containers started (or after
//     it lost its readiness), unschedulable for an Interval, or not started
//     within StartDeadline: a slow image pull or a busy node is not the
//     commit's fault. The metric gate: each Measurement of the
//     running commit newer than the last is checked against Max/Min, and
//     FailureLimit failed checks in a row abort. An abort records the
//     commit, which is never run again, and names the signal and value.
//   - Steps: once a step has lasted Interval, and (with a query) a check
//     made after that passed, the next step starts. The last step holds
//     until main is merged or the annotation goes.
func Decide(in Input) Decision {
	var st *State
	if in.State != nil {
		c := *in.State
		c.Checks = slices.Clone(c.Checks)
		c.AbortedCommits = slices.Clone(c.AbortedCommits)
		st = &c
	}
	var d Decision
	ev := func(s *State, reason, format string, args ...any) {
		d.Events = append(d.Events, Event{Namespace: in.Namespace, Name: in.Name, Branch: s.Branch, Commit: s.Commit,
			Subject: s.Subject, Reason: reason, Message: fmt.Sprintf(format, args...)})
	}
	spec := in.Spec
	// A merge that also drops the annotations still promotes; the next
	// decision deletes the state.
	if st.Active() && st.Hash == in.StableHash {
		st.Phase, st.EndedAt, st.Reason = Promoted, in.Now, ""
		ev(st, EventPromoted, "main runs the canary's template %s: its pods are stable now", st.Hash)
		d.State = st
		return d
	}
	if spec == nil {
		if st.Active() {
			ev(st, EventEnded, "the Deployment names no canary branch any more: canary removed, 100%% stable")
		}
		return d
	}
	if st != nil && st.Branch != spec.Branch {
		if st.Active() {
			ev(st, EventEnded, "the canary branch changed from %s to %s", st.Branch, spec.Branch)
		}
		st = nil
	}
	cand := in.Candidate
	if cand != nil && cand.Branch == spec.Branch && changed(st, cand) {
		st = start(in.Namespace, in.Name, st, cand, spec, in.StableHash, in.Now, ev)
	}
	d.State = st
	if !st.Active() {
		return d
	}
	st.Weight = spec.Weight(st.Step)
	if why, ok := builtIn(spec, st, in.Pods, in.StartDeadline, in.Now, &d); !ok {
		abort(st, why, in.Now)
		ev(st, EventAborted, "%s", why.Message)
		return d
	}
	if m := in.Measurement; spec.Query != "" && m != nil && m.Commit == st.Commit && m.At.After(lastMetric(st)) && !m.At.Before(st.StartedAt) {
		c := judge(spec, m)
		if c.OK {
			st.Failures = 0
		} else {
			st.Failures++
		}
		st.addCheck(c)
		if st.Failures >= spec.FailureLimit {
			c.Message = fmt.Sprintf("%s (%d of %d checks failed in a row)", c.Message, st.Failures, spec.FailureLimit)
			abort(st, c, in.Now)
			ev(st, EventAborted, "%s", c.Message)
			return d
		}
	}
	due := st.StepStartedAt.Add(spec.Interval)
	if st.Step < len(spec.Steps)-1 {
		passed := spec.Query == "" || st.Failures == 0 && !lastMetric(st).Before(due)
		switch {
		case !in.Now.Before(due) && passed:
			from := st.Weight
			st.Step++
			st.Weight, st.StepStartedAt = spec.Weight(st.Step), in.Now
			ev(st, EventStepped, "step %d of %d: %d%% -> %d%%", st.Step+1, len(spec.Steps), from, st.Weight)
			if st.Step < len(spec.Steps)-1 && spec.Query == "" {
				d.wakeAt(st.StepStartedAt.Add(spec.Interval))
			}
		case spec.Query == "":
			d.wakeAt(due)
		}
	}
	if spec.Query != "" {
		d.MeasureAt = laterOf(lastMetric(st), st.StepStartedAt).Add(spec.Interval)
	}
	d.Run, d.Weight, d.Replicas = true, st.Weight, spec.CanaryReplicas(in.Replicas, st.Weight)
	return d
}

// changed reports whether the branch holds something else than the stored
// canary was decided from.
func changed(st *State, c *Candidate) bool {
	if st == nil {
		return true
	}
	if c.Err != "" {
		return st.Phase != Failed || st.Commit != c.Commit || st.Reason != c.Err
	}
	return st.Commit != c.Commit || st.Hash != c.Hash || st.Phase == Failed
}

// start decides what a new branch head becomes.
func start(ns, name string, prev *State, c *Candidate, spec *Spec, stable string, now time.Time, ev func(*State, string, string, ...any)) *State {
	st := &State{Namespace: ns, Name: name, Branch: c.Branch, Commit: c.Commit, Subject: c.Subject}
	if prev != nil {
		st.AbortedCommits = prev.AbortedCommits
		switch {
		case !prev.Active():
		case prev.Commit == c.Commit:
			// Same commit, another template: main's ConfigMaps or Secrets
			// that the template uses changed (their hash is stamped on it).
			ev(prev, EventEnded, "main's configuration changed: the branch's template is %s now, not %s", c.Hash, prev.Hash)
		default:
			ev(prev, EventEnded, "superseded by commit %s of %s", short(c.Commit), c.Branch)
		}
	}
	switch {
	case c.Err != "":
		st.Phase, st.Reason, st.EndedAt = Failed, c.Err, now
		ev(st, EventFailed, "%s", c.Err)
	case slices.Contains(st.AbortedCommits, c.Commit):
		st.Phase, st.Template, st.Hash, st.EndedAt = Aborted, c.Template, c.Hash, now
		st.Reason = "this commit's canary was aborted before; push a new commit to " + c.Branch + " to try again"
	case c.Hash == stable:
		st.Phase, st.Template, st.Hash = Idle, c.Template, c.Hash
		st.Reason = "the branch's template is the one main runs"
	default:
		st.Phase, st.Template, st.Hash = Progressing, c.Template, c.Hash
		st.StartedAt, st.StepStartedAt, st.Step, st.Weight = now, now, 0, spec.Weight(0)
		ev(st, EventStarted, "canary of %s at %s (template %s) takes %d%% of new connections", c.Branch, short(c.Commit), c.Hash, st.Weight)
	}
	return st
}

// builtIn checks the canary's pods; it returns the failed check when one
// fails, and wakes d when a pod's readiness runs out.
func builtIn(spec *Spec, st *State, pods []*corev1.Pod, startDeadline time.Duration, now time.Time, d *Decision) (Check, bool) {
	pods = slices.SortedFunc(slices.Values(pods), func(a, b *corev1.Pod) int { return cmp.Compare(a.Name, b.Name) })
	fail := func(signal, format string, args ...any) (Check, bool) {
		return Check{At: now, Signal: signal, Message: signal + ": " + fmt.Sprintf(format, args...)}, false
	}
	for _, p := range pods {
		if p.Status.Phase == corev1.PodFailed {
			return fail("pod failed", "pod %s failed: %s", p.Name, cmp.Or(p.Status.Message, p.Status.Reason, "its containers exited"))
		}
		for _, cs := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
			if w := cs.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" {
				return fail("crashloop", "pod %s container %s is crash-looping (%d restarts)", p.Name, cs.Name, cs.RestartCount)
			}
			if cs.RestartCount > 0 {
				return fail("restarts", "pod %s container %s restarted %d times", p.Name, cs.Name, cs.RestartCount)
			}
		}
		if kube.PodReady(p) {
			continue
		}
		since, limit, why := readinessClock(p, st.StartedAt, spec.Interval, startDeadline)
		if at := since.Add(limit); now.Before(at) {
			d.wakeAt(at)
			continue
		}
		msg := fmt.Sprintf("pod %s not ready for %s", p.Name, now.Sub(since).Round(time.Second))
		if why != "" {
			msg += " (" + why + ")"
		}
		return fail("readiness", "%s", msg)
	}
	return Check{}, true
}

// readinessClock says since when a canary pod that is not ready has been
// given time, how long it has, and why it is not ready. A pod has an
// Interval from when its last container started or its readiness was
// lost, and from its creation when it cannot be scheduled; a scheduled pod
// whose containers have not all started yet (an image pull, a busy node)
// has startDeadline from its creation.
func readinessClock(p *corev1.Pod, started time.Time, interval, startDeadline time.Duration) (since time.Time, limit time.Duration, why string) {
	since, limit = laterOf(p.CreationTimestamp.Time, started), interval
	unscheduled := false
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status != corev1.ConditionTrue {
			since = laterOf(since, c.LastTransitionTime.Time)
			why = c.Message
		}
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			why, unscheduled = c.Reason+": "+c.Message, true
		}
	}
	if unscheduled {
		return since, limit, why
	}
	running := len(p.Status.ContainerStatuses) > 0 && len(p.Status.ContainerStatuses) >= len(p.Spec.Containers)
	for _, cs := range p.Status.ContainerStatuses {
		if r := cs.State.Running; r != nil {
			since = laterOf(since, r.StartedAt.Time)
		} else {
			running = false
		}
	}
	if !running && startDeadline > interval {
		limit = startDeadline
	}
	return since, limit, why
}

// judge checks a Measurement against the gate's bounds.
func judge(spec *Spec, m *Measurement) Check {
	c := Check{At: m.At, Signal: "metric", OK: true}
	if m.Err != "" {
		c.OK, c.Message = false, "metric: "+oneLine(spec.Query)+": "+m.Err
		return c
	}
	v := m.Value
	c.Value = &v
	val := strconv.FormatFloat(v, 'g', 6, 64)
	switch {
	case spec.Max != nil && v > *spec.Max:
		c.OK, c.Message = false, fmt.Sprintf("metric: %s = %s, above %s %s", oneLine(spec.Query), val, AnnotationMax, strconv.FormatFloat(*spec.Max, 'g', -1, 64))
	case spec.Min != nil && v < *spec.Min:
		c.OK, c.Message = false, fmt.Sprintf("metric: %s = %s, below %s %s", oneLine(spec.Query), val, AnnotationMin, strconv.FormatFloat(*spec.Min, 'g', -1, 64))
	default:
		c.Message = fmt.Sprintf("metric: %s = %s, within bounds", oneLine(spec.Query), val)
	}
	return c
}

func abort(st *State, c Check, now time.Time) {
	if c.Signal != "metric" {
		st.addCheck(c)
	}
	st.Phase, st.Reason, st.EndedAt = Aborted, c.Message, now
	if !slices.Contains(st.AbortedCommits, st.Commit) {
		st.AbortedCommits = append(st.AbortedCommits, st.Commit)
		if n := len(st.AbortedCommits) - keptAborted; n > 0 {
			st.AbortedCommits = st.AbortedCommits[n:]
		}
	}
}

func (s *State) addCheck(c Check) {
	s.Checks = append(s.Checks, c)
	if n := len(s.Checks) - keptChecks; n > 0 {
		s.Checks = s.Checks[n:]
	}
}

// lastMetric is when the latest metric check was made, zero if none.
func lastMetric(s *State) time.Time {
	for i := len(s.Checks) - 1; i >= 0; i-- {
		if s.Checks[i].Signal == "metric" {
			return s.Checks[i].At
		}
	}
	return time.Time{}
}

func (d *Decision) wakeAt(t time.Time) {
	if !t.IsZero() && (d.Wake.IsZero() || t.Before(d.Wake)) {
		d.Wake = t
	}
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// oneLine is a query as messages show it: its lines joined by one space
// (a query written as a YAML block keeps its newlines for Prometheus).
func oneLine(q string) string {
	lines := strings.Split(q, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(slices.DeleteFunc(lines, func(l string) bool { return l == "" }), " ")
}
