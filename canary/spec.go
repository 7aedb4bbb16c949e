package canary

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"bosun/kube"
)

// The annotations of a Deployment on the main branch that ask for a canary.
const (
	// AnnotationBranch names the branch whose same-named Deployment's pod
	// template runs as the canary.
	AnnotationBranch = "bosun.dev/canary-branch"
	// AnnotationWeight is the percentage (0-100) of new connections the
	// canary receives.
	AnnotationWeight = "bosun.dev/canary-weight"
	// AnnotationSteps are increasing percentages ("5,25,50"), one per step;
	// the canary moves to the next one after each AnnotationStepInterval in
	// which its analysis passed.
	AnnotationSteps = "bosun.dev/canary-steps"
	// AnnotationStepInterval is how long each step lasts and how often the
	// metric gate is evaluated (a Go duration, default 1m).
	AnnotationStepInterval = "bosun.dev/canary-step-interval"
	// AnnotationReplicas is the number of canary pods; by default enough to
	// carry the weight (replicas * weight / 100, rounded up, at least 1).
	AnnotationReplicas = "bosun.dev/canary-replicas"
	// AnnotationQuery is a PromQL expression that returns one number,
	// checked against AnnotationMax and/or AnnotationMin.
	AnnotationQuery = "bosun.dev/canary-query"
	AnnotationMax   = "bosun.dev/canary-max"
	AnnotationMin   = "bosun.dev/canary-min"
	// AnnotationFailureLimit is how many metric checks in a row may fail
	// before the canary is aborted (default 1).
	AnnotationFailureLimit = "bosun.dev/canary-failure-limit"
)

// Pod labels and annotations of a Deployment that runs a canary.
const (
	// LabelTrack says which track a pod is on: TrackStable or TrackCanary.
	// The Service proxy groups a Service's endpoints by it.
	LabelTrack  = kube.LabelTrack
	TrackStable = "stable"
	TrackCanary = "canary"
	// AnnotationPodWeight is the relative share of new connections the
	// pod's track receives (proxy.Group.Weight): the canary's weight on
	// canary pods, 100 minus it on stable ones.
	AnnotationPodWeight = kube.AnnotationWeight
)

// DefaultInterval is the step and analysis interval when none is given.
const DefaultInterval = time.Minute

// Annotations lists every annotation of a canary, for validation.
var Annotations = []string{AnnotationBranch, AnnotationWeight, AnnotationSteps, AnnotationStepInterval,
	AnnotationReplicas, AnnotationQuery, AnnotationMax, AnnotationMin, AnnotationFailureLimit}

// Spec is a canary as a Deployment's annotations ask for it.
type Spec struct {
	Branch string
	// Steps are the weights, in percent, one per step; a single
	// canary-weight is one step.
	Steps []int32
	// Interval is how long a step lasts, and how often the metric gate is
	// evaluated.
	Interval time.Duration
	// Replicas is the number of canary pods; 0 means enough for the weight.
	Replicas int32
	// Query, with Max and/or Min, is the optional metric gate.
	Query        string
	Max, Min     *float64
	FailureLimit int
}

// Problem is one annotation a Spec cannot be read from.
type Problem struct {
	Annotation string
	Message    string
}

// Parse reads the canary a Deployment's annotations ask for: nil when they
// name no branch. Each problem names its annotation; with any problem the
// Spec is nil. Parse is the one reading of the annotations: manifest
// validation reports its problems, and the planner runs what it returns.
func Parse(ann map[string]string) (*Spec, []Problem) {
	var ps []Problem
	bad := func(a, format string, args ...any) { ps = append(ps, Problem{a, fmt.Sprintf(format, args...)}) }
	branch, ok := ann[AnnotationBranch]
	if !ok {
		for _, a := range Annotations {
			if _, set := ann[a]; set {
				bad(a, "needs %s: a canary runs the pod template of a branch", AnnotationBranch)
			}
		}
		return nil, ps
	}
	s := &Spec{Branch: branch, Interval: DefaultInterval, FailureLimit: 1}
	if why := checkBranch(branch); why != "" {
		bad(AnnotationBranch, "invalid branch %q: %s", branch, why)
	}
	weight, hasWeight := ann[AnnotationWeight]
	steps, hasSteps := ann[AnnotationSteps]
	switch {
	case hasWeight && hasSteps:
		bad(AnnotationSteps, "give either %s or %s, not both", AnnotationWeight, AnnotationSteps)
	case hasWeight:
		w, err := percent(weight)
		if err != "" {
			bad(AnnotationWeight, "invalid value %q: %s", weight, err)
		}
		s.Steps = []int32{w}
	case hasSteps:
		for part := range strings.SplitSeq(steps, ",") {
			w, err := percent(strings.TrimSpace(part))
			if err != "" {
				bad(AnnotationSteps, "invalid value %q: each step %s", steps, err)
				break
			}
			if n := len(s.Steps); n > 0 && w <= s.Steps[n-1] {
				bad(AnnotationSteps, "invalid value %q: the steps must increase", steps)
				break
			}
			s.Steps = append(s.Steps, w)
		}
	default:
		bad(AnnotationBranch, "needs %s or %s: the share of new connections the canary receives", AnnotationWeight, AnnotationSteps)
	}
	if v, ok := ann[AnnotationStepInterval]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			bad(AnnotationStepInterval, "invalid value %q: must be a duration of at least 1s, such as 30s or 2m", v)
		}
		s.Interval = d
	}
	if v, ok := ann[AnnotationReplicas]; ok {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 1 {
			bad(AnnotationReplicas, "invalid value %q: must be a positive integer", v)
		}
		s.Replicas = int32(n)
	}
	if v, ok := ann[AnnotationFailureLimit]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			bad(AnnotationFailureLimit, "invalid value %q: must be a positive integer", v)
		}
		s.FailureLimit = n
	}
	bound := func(a string) *float64 {
		v, ok := ann[a]
		if !ok {
			return nil
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			bad(a, "invalid value %q: must be a number", v)
			return nil
		}
		return &f
	}
	s.Max, s.Min = bound(AnnotationMax), bound(AnnotationMin)
	s.Query = strings.TrimSpace(ann[AnnotationQuery])
	switch _, hasQuery := ann[AnnotationQuery]; {
	case hasQuery && s.Query == "":
		bad(AnnotationQuery, "must not be empty")
	case hasQuery && s.Max == nil && s.Min == nil:
		bad(AnnotationQuery, "needs %s or %s: the bound its result is checked against", AnnotationMax, AnnotationMin)
	case !hasQuery && (s.Max != nil || s.Min != nil):
		bad(cmpAnnotation(ann), "needs %s: the query whose result it bounds", AnnotationQuery)
	case s.Max != nil && s.Min != nil && *s.Min > *s.Max:
		bad(AnnotationMin, "%v is above %s %v", *s.Min, AnnotationMax, *s.Max)
	}
	if len(ps) > 0 {
		slices.SortStableFunc(ps, func(a, b Problem) int { return strings.Compare(a.Annotation, b.Annotation) })
		return nil, ps
	}
	return s, nil
}

func cmpAnnotation(ann map[string]string) string {
	if _, ok := ann[AnnotationMax]; ok {
		return AnnotationMax
	}
	return AnnotationMin
}

func percent(v string) (int32, string) {
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 1 || n > 99 {
		return 0, "must be a whole percentage from 1 to 99"
	}
	return int32(n), ""
}

// checkBranch applies Git's rules for branch names (go-git's, which
// gitsource applies when it follows the branch).
func checkBranch(b string) string {
	switch {
	case b == "":
		return "must not be empty"
	case strings.HasPrefix(b, "refs/"):
		return "give the branch name, not a ref"
	case plumbing.NewBranchReferenceName(b).Validate() != nil:
		return "not a valid Git branch name"
	}
	return ""
}

// Weight is the canary's share at step (the last step once past the end).
func (s *Spec) Weight(step int) int32 {
	return s.Steps[min(max(step, 0), len(s.Steps)-1)]
}

// CanaryReplicas is how many canary pods carry weight percent of a
// Deployment of replicas pods: AnnotationReplicas if given, else the
// share rounded up, at least 1.
func (s *Spec) CanaryReplicas(replicas int, weight int32) int {
	if s.Replicas > 0 {
		return int(s.Replicas)
	}
	return max(1, (replicas*int(weight)+99)/100)
}
