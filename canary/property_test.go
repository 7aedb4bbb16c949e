package canary

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestDecide_properties drives Decide through random lives — new commits,
// force-pushes back to old ones, a missing branch, unknown branches (a new
// leader), pods that get ready, fail or restart, measurements in and out
// of bounds, annotation changes, merges — and checks after every step:
//   - a commit once aborted never runs again;
//   - Run exactly when the state is Progressing, at the weight of its step
//     (one of the spec's), with at least one pod;
//   - the step of a running commit never goes back;
//   - deciding again at the same time from the state just decided
//     changes nothing and reports nothing (the plan converges).
func TestDecide_properties(t *testing.T) {
	specs := []*Spec{
		spec(t, map[string]string{AnnotationBranch: "b", AnnotationWeight: "10", AnnotationStepInterval: "10s"}),
		spec(t, map[string]string{AnnotationBranch: "b", AnnotationSteps: "5,25,50", AnnotationStepInterval: "10s"}),
		spec(t, map[string]string{AnnotationBranch: "b", AnnotationSteps: "5,50", AnnotationStepInterval: "10s",
			AnnotationQuery: "q", AnnotationMax: "1", AnnotationFailureLimit: "2"}),
	}
	seen := map[string]int{}
	for seed := range uint64(300) {
		rnd := rand.New(rand.NewPCG(seed, 9))
		in := Input{Namespace: "default", Name: "web", Spec: specs[rnd.IntN(len(specs))], StableHash: "h0", Replicas: 4, Now: t0}
		aborted := map[string]bool{}
		lastStep := map[string]int{}
		for step := range 60 {
			in.Now = in.Now.Add(time.Duration(rnd.IntN(8000)) * time.Millisecond)
			switch rnd.IntN(12) {
			case 0, 1:
				c := fmt.Sprintf("c%d", rnd.IntN(5))
				in.Candidate = &Candidate{Branch: "b", Commit: c, Template: &corev1.PodTemplateSpec{}, Hash: "h" + c}
				in.Pods = nil
			case 2:
				in.Candidate = &Candidate{Branch: "b", Err: "branch b does not exist"}
			case 3:
				in.Candidate = nil // a new leader
			case 4:
				in.Pods = []*corev1.Pod{readyPod("p", true, in.Now, 0)}
			case 5:
				in.Pods = []*corev1.Pod{readyPod("p", rnd.IntN(2) == 0, in.Now.Add(-time.Minute), int32(rnd.IntN(2)))}
			case 6:
				if in.State != nil {
					in.Measurement = &Measurement{Commit: in.State.Commit, At: in.Now, Value: rnd.Float64() * 2}
				}
			case 7:
				in.Spec = specs[rnd.IntN(len(specs))]
			case 8:
				if rnd.IntN(4) == 0 && in.State.Active() {
					in.StableHash = in.State.Hash // merged
				}
			}
			d := Decide(in)
			for _, e := range d.Events {
				seen[e.Reason]++
			}
			if d.Run && d.State.Step > 0 {
				seen["stepped past the first"]++
			}
			ctx := fmt.Sprintf("seed %d step %d: state %+v", seed, step, d.State)
			if d.State != nil {
				for _, c := range d.State.AbortedCommits {
					aborted[c] = true
				}
				if d.Run && aborted[d.State.Commit] {
					t.Fatalf("%s: an aborted commit runs", ctx)
				}
			}
			if d.Run != d.State.Active() {
				t.Fatalf("%s: Run %v", ctx, d.Run)
			}
			if d.Run {
				if !slices.Contains(in.Spec.Steps, d.Weight) || d.Weight != in.Spec.Weight(d.State.Step) || d.Replicas < 1 {
					t.Fatalf("%s: weight %d, replicas %d", ctx, d.Weight, d.Replicas)
				}
				k := d.State.Commit + "@" + d.State.StartedAt.String()
				if d.State.Step < lastStep[k] {
					t.Fatalf("%s: step went back from %d", ctx, lastStep[k])
				}
				lastStep[k] = d.State.Step
			}
			again := in
			again.State = d.State
			d2 := Decide(again)
			if len(d2.Events) > 0 || !sameJSON(d2.State, d.State) || d2.Run != d.Run {
				t.Fatalf("%s: deciding again changed it: %+v", ctx, d2)
			}
			in.State = d.State
		}
	}
	for _, what := range []string{EventStarted, EventStepped, EventAborted, EventFailed, EventPromoted, EventEnded, "stepped past the first"} {
		if seen[what] < 10 {
			t.Errorf("only %d %s in the random lives: %v", seen[what], what, seen)
		}
	}
}
