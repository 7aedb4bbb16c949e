package canary

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func spec(t *testing.T, ann map[string]string) *Spec {
	t.Helper()
	s, ps := Parse(ann)
	if len(ps) > 0 || s == nil {
		t.Fatalf("Parse(%v): %v", ann, ps)
	}
	return s
}

func cand(commit, hash string) *Candidate {
	return &Candidate{Branch: "canary/web", Commit: commit, Subject: "try " + commit, Template: &corev1.PodTemplateSpec{}, Hash: hash}
}

func readyPod(name string, ready bool, since time.Time, restarts int32) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(since)},
		Status: corev1.PodStatus{
			Phase:             corev1.PodRunning,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.NewTime(since), Message: "containers with unready status: [web]"}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "web", RestartCount: restarts, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(since)}}}},
		},
	}
}

func reasons(evs []Event) string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Reason+": "+e.Message)
	}
	return strings.Join(out, "\n")
}

// run is a scripted canary: each step decides from the state the last
// one stored.
type run struct {
	t    *testing.T
	in   Input
	last Decision
}

func (r *run) at(d time.Duration) *run {
	r.t.Helper()
	r.in.Now = t0.Add(d)
	r.last = Decide(r.in)
	r.in.State = r.last.State
	return r
}

func TestDecide_stepsWhileHealthyThenHoldsUntilMerge(t *testing.T) {
	s := spec(t, map[string]string{AnnotationBranch: "canary/web", AnnotationSteps: "5,25,50", AnnotationStepInterval: "2m"})
	r := &run{t: t, in: Input{Namespace: "default", Name: "web", Spec: s, Candidate: cand("c1", "h1"), StableHash: "h0", Replicas: 4}}
	r.at(0)
	if !r.last.Run || r.last.Weight != 5 || r.last.Replicas != 1 || r.last.State.Phase != Progressing || !r.last.Wake.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("start: %+v", r.last)
	}
	if got := reasons(r.last.Events); got != "CanaryStarted: canary of canary/web at c1 (template h1) takes 5% of new connections" {
		t.Fatalf("events: %s", got)
	}
	r.in.Pods = []*corev1.Pod{readyPod("web-h1-a", true, t0.Add(time.Second), 0)}
	r.at(time.Minute)
	if r.last.Weight != 5 || len(r.last.Events) != 0 {
		t.Fatalf("stepped early: %+v", r.last)
	}
	r.at(2 * time.Minute)
	if r.last.Weight != 25 || r.last.State.Step != 1 || reasons(r.last.Events) != "CanaryStepped: step 2 of 3: 5% -> 25%" || r.last.Replicas != 1 {
		t.Fatalf("second step: %+v %s", r.last, reasons(r.last.Events))
	}
	r.at(4 * time.Minute)
	if r.last.Weight != 50 || r.last.Replicas != 2 || !r.last.Wake.IsZero() {
		t.Fatalf("third step: %+v", r.last)
	}
	r.at(10 * time.Minute)
	if r.last.Weight != 50 || len(r.last.Events) != 0 || !r.last.Run {
		t.Fatalf("the last step must hold: %+v", r.last)
	}
	// Merged: main runs h1.
	r.in.StableHash = "h1"
	r.at(11 * time.Minute)
	if r.last.Run || r.last.State.Phase != Promoted || !strings.HasPrefix(reasons(r.last.Events), "CanaryPromoted") {
		t.Fatalf("promotion: %+v", r.last)
	}
	r.at(12 * time.Minute)
	if r.last.Run || len(r.last.Events) != 0 || r.last.State.Phase != Promoted {
		t.Fatalf("after promotion: %+v", r.last)
	}
}

func TestDecide_aMergeThatDropsTheAnnotationsStillPromotes(t *testing.T) {
	s := spec(t, map[string]string{AnnotationBranch: "canary/web", AnnotationWeight: "10"})
	r := &run{t: t, in: Input{Namespace: "default", Name: "web", Spec: s, Candidate: cand("c1", "h1"), StableHash: "h0", Replicas: 4}}
	r.at(0)
	r.in.Spec, r.in.StableHash = nil, "h1"
	r.at(time.Minute)
	if r.last.Run || r.last.State.Phase != Promoted || !strings.HasPrefix(reasons(r.last.Events), "CanaryPromoted") {
		t.Fatalf("merge without annotations: %+v %s", r.last, reasons(r.last.Events))
	}
	r.at(2 * time.Minute)
	if r.last.State != nil || len(r.last.Events) != 0 {
		t.Fatalf("the promoted canary's state must go once main names none: %+v", r.last)
	}
}

func TestDecide_builtInSignalsAbortAndTheCommitIsNeverRetried(t *testing.T) {
	s := spec(t, map[string]string{AnnotationBranch: "canary/web", AnnotationWeight: "10", AnnotationStepInterval: "30s"})
	for _, tt := range []struct {
		name  string
		pod   *corev1.Pod
		after time.Duration
		want  string
	}{
		{"not ready for an interval", readyPod("p", false, t0, 0), 30 * time.Second, "readiness: pod p not ready for 30s (containers with unready status: [web])"},
		{"not ready for an interval after a slow start", func() *corev1.Pod {
			p := readyPod("p", false, t0, 0)
			p.Status.ContainerStatuses[0].State.Running.StartedAt = metav1.NewTime(t0.Add(45 * time.Second))
			return p
		}(), 75 * time.Second, "readiness: pod p not ready for 30s (containers with unready status: [web])"},
		{"containers not started within the progress deadline", func() *corev1.Pod {
			p := readyPod("p", false, t0, 0)
			p.Status.Phase = corev1.PodPending
			p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
			return p
		}(), 10 * time.Minute, "readiness: pod p not ready for 10m0s (containers with unready status: [web])"},
		{"unschedulable for an interval", func() *corev1.Pod {
			p := readyPod("p", false, t0, 0)
			p.Status.Phase, p.Status.ContainerStatuses = corev1.PodPending, nil
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/1 nodes have enough cpu"})
			return p
		}(), 30 * time.Second, "readiness: pod p not ready for 30s (Unschedulable: 0/1 nodes have enough cpu)"},
		{"restarted", readyPod("p", true, t0, 2), time.Second, "restarts: pod p container web restarted 2 times"},
		{"crash loop", func() *corev1.Pod {
			p := readyPod("p", false, t0, 3)
			p.Status.ContainerStatuses[0].State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}
			return p
		}(), time.Second, "crashloop: pod p container web is crash-looping (3 restarts)"},
		{"failed", func() *corev1.Pod {
			p := readyPod("p", false, t0, 0)
			p.Status.Phase, p.Status.Message = corev1.PodFailed, "exit code 1"
			return p
		}(), time.Second, "pod failed: pod p failed: exit code 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &run{t: t, in: Input{Namespace: "default", Name: "web", Spec: s, Candidate: cand("c1", "h1"), StableHash: "h0", Replicas: 4, StartDeadline: 10 * time.Minute}}
			r.at(0)
			r.in.Pods = []*corev1.Pod{tt.pod}
			if tt.after > time.Second {
				r.at(tt.after - time.Second)
				if !r.last.Run || !r.last.Wake.Equal(t0.Add(tt.after)) {
					t.Fatalf("aborted before the interval ran out, or no wake at its end: %+v", r.last)
				}
			}
			r.at(tt.after)
			if r.last.Run || r.last.State.Phase != Aborted || r.last.State.Reason != tt.want {
				t.Fatalf("got run=%v phase=%s reason %q, want aborted: %q", r.last.Run, r.last.State.Phase, r.last.State.Reason, tt.want)
			}
			if got := reasons(r.last.Events); got != "CanaryAborted: "+tt.want {
				t.Fatalf("events %q", got)
			}
			// Same commit again (a new leader refetches it): stays aborted.
			r.in.Pods = nil
			r.at(tt.after + time.Minute)
			if r.last.Run || r.last.State.Phase != Aborted || len(r.last.Events) != 0 {
				t.Fatalf("the aborted commit ran again: %+v", r.last)
			}
			// A force-push to another commit and back to it: not retried.
			r.in.Candidate = cand("c2", "h2")
			r.at(tt.after + 2*time.Minute)
			if !r.last.Run || r.last.State.Commit != "c2" {
				t.Fatalf("a new commit must start a new canary: %+v", r.last)
			}
			r.in.Candidate = cand("c1", "h1")
			r.at(tt.after + 3*time.Minute)
			if r.last.Run || r.last.State.Phase != Aborted || !strings.Contains(r.last.State.Reason, "aborted before") {
				t.Fatalf("an aborted commit ran again: %+v", r.last)
			}
		})
	}
}

func TestDecide_metricGate(t *testing.T) {
	s := spec(t, map[string]string{AnnotationBranch: "canary/web", AnnotationSteps: "5,25", AnnotationStepInterval: "1m",
		AnnotationQuery: "errors", AnnotationMax: "0.1", AnnotationFailureLimit: "2"})
	r := &run{t: t, in: Input{Namespace: "default", Name: "web", Spec: s, Candidate: cand("c1", "h1"), StableHash: "h0", Replicas: 4}}
	r.at(0)
	if !r.last.MeasureAt.Equal(t0.Add(time.Minute)) || !r.last.Wake.IsZero() {
		t.Fatalf("the first measurement is due after an interval, and a gated step waits for it, not a timer: %+v", r.last)
	}
	r.at(70 * time.Second)
	if r.last.Weight != 5 {
		t.Fatalf("stepped without a check: %+v", r.last)
	}
	// A passing check steps.
	r.in.Measurement = &Measurement{Commit: "c1", At: t0.Add(61 * time.Second), Value: 0.02}
	r.at(71 * time.Second)
	if r.last.Weight != 25 || r.last.State.Checks[0].Message != "metric: errors = 0.02, within bounds" {
		t.Fatalf("a passing check must step: %+v", r.last.State)
	}
	// A measurement of another commit counts for nothing; one failing
	// check is within the limit; the second aborts.
	r.in.Measurement = &Measurement{Commit: "c0", At: t0.Add(140 * time.Second), Value: 0.9}
	r.at(141 * time.Second)
	if r.last.State.Failures != 0 {
		t.Fatalf("another commit's measurement counted")
	}
	r.in.Measurement = &Measurement{Commit: "c1", At: t0.Add(142 * time.Second), Value: 0.5}
	r.at(143 * time.Second)
	if !r.last.Run || r.last.State.Failures != 1 {
		t.Fatalf("one failure of two aborted: %+v", r.last.State)
	}
	r.at(144 * time.Second) // the same measurement again counts once
	if r.last.State.Failures != 1 {
		t.Fatalf("a measurement counted twice")
	}
	r.in.Measurement = &Measurement{Commit: "c1", At: t0.Add(200 * time.Second), Err: "query returned no data"}
	r.at(201 * time.Second)
	want := "metric: errors: query returned no data (2 of 2 checks failed in a row)"
	if r.last.Run || r.last.State.Phase != Aborted || r.last.State.Reason != want {
		t.Fatalf("reason %q, want %q", r.last.State.Reason, want)
	}
}

func TestDecide_branchAndAnnotationChanges(t *testing.T) {
	s := spec(t, map[string]string{AnnotationBranch: "canary/web", AnnotationWeight: "10"})
	r := &run{t: t, in: Input{Namespace: "default", Name: "web", Spec: s, StableHash: "h0", Replicas: 2}}
	r.at(0)
	if r.last.State != nil || r.last.Run {
		t.Fatalf("nothing is decided before the branch is fetched: %+v", r.last)
	}
	r.in.Candidate = &Candidate{Branch: "canary/web", Err: "branch canary/web does not exist"}
	r.at(time.Second)
	if r.last.Run || r.last.State.Phase != Failed || reasons(r.last.Events) != "CanaryFailed: branch canary/web does not exist" {
		t.Fatalf("missing branch: %+v", r.last)
	}
	r.at(2 * time.Second)
	if len(r.last.Events) != 0 {
		t.Fatalf("a failure is reported once")
	}
	r.in.Candidate = cand("c1", "h0")
	r.at(3 * time.Second)
	if r.last.Run || r.last.State.Phase != Idle {
		t.Fatalf("a branch with main's template: %+v", r.last)
	}
	r.in.Candidate = cand("c2", "h2")
	r.at(4 * time.Second)
	if !r.last.Run || r.last.Replicas != 1 || r.last.Weight != 10 {
		t.Fatalf("a new commit: %+v", r.last)
	}
	// A new leader has not fetched the branch: the canary goes on.
	r.in.Candidate = nil
	r.at(5 * time.Second)
	if !r.last.Run || r.last.State.Commit != "c2" || len(r.last.Events) != 0 {
		t.Fatalf("the stored canary must resume as it was: %+v", r.last)
	}
	r.in.Spec = nil
	r.at(6 * time.Second)
	if r.last.Run || r.last.State != nil || !strings.HasPrefix(reasons(r.last.Events), "CanaryEnded") {
		t.Fatalf("removing the annotation must end it: %+v", r.last)
	}
}

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		ann  map[string]string
		want string
	}{
		{map[string]string{AnnotationWeight: "10"}, "bosun.dev/canary-weight: needs bosun.dev/canary-branch: a canary runs the pod template of a branch"},
		{map[string]string{AnnotationBranch: "b"}, "bosun.dev/canary-branch: needs bosun.dev/canary-weight or bosun.dev/canary-steps: the share of new connections the canary receives"},
		{map[string]string{AnnotationBranch: "b", AnnotationWeight: "100"}, `bosun.dev/canary-weight: invalid value "100": must be a whole percentage from 1 to 99`},
		{map[string]string{AnnotationBranch: "b", AnnotationWeight: "5", AnnotationQuery: "x"}, "bosun.dev/canary-query: needs bosun.dev/canary-max or bosun.dev/canary-min: the bound its result is checked against"},
		{map[string]string{AnnotationBranch: "b", AnnotationWeight: "5", AnnotationReplicas: "0"}, `bosun.dev/canary-replicas: invalid value "0": must be a positive integer`},
		{map[string]string{AnnotationBranch: "refs/heads/b", AnnotationWeight: "5"}, `bosun.dev/canary-branch: invalid branch "refs/heads/b": give the branch name, not a ref`},
		{map[string]string{AnnotationBranch: "b", AnnotationWeight: "5", AnnotationQuery: "x", AnnotationMax: "1", AnnotationMin: "2"}, "bosun.dev/canary-min: 2 is above bosun.dev/canary-max 1"},
	} {
		s, ps := Parse(tt.ann)
		if s != nil || len(ps) != 1 || ps[0].Annotation+": "+ps[0].Message != tt.want {
			t.Errorf("Parse(%v) = %v, %v; want %q", tt.ann, s, ps, tt.want)
		}
	}
	s := spec(t, map[string]string{AnnotationBranch: "canary/web-v2", AnnotationWeight: "10"})
	if s.CanaryReplicas(4, 10) != 1 || s.CanaryReplicas(20, 10) != 2 || s.CanaryReplicas(0, 10) != 1 || s.Interval != DefaultInterval || s.FailureLimit != 1 {
		t.Fatalf("defaults: %+v", s)
	}
}

func sameJSON(a, b *State) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
