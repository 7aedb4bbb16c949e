package canary

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Phase is where a canary stands.
type Phase string

const (
	// Progressing: the canary's pods run and take their weight.
	Progressing Phase = "Progressing"
	// Aborted: the analysis failed; the canary's pods are gone and its
	// commit is never tried again.
	Aborted Phase = "Aborted"
	// Failed: the branch cannot be run (missing, invalid, no such
	// Deployment); nothing of it runs.
	Failed Phase = "Failed"
	// Promoted: main now runs the canary's template; its pods became
	// stable ones.
	Promoted Phase = "Promoted"
	// Idle: the branch holds the template main already runs.
	Idle Phase = "Idle"
)

// State is a canary as the leader keeps it in etcd, so that a new leader
// resumes it where it was.
type State struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"` // the Deployment's
	Branch    string `json:"branch"`
	// Commit is the branch's commit the canary runs (or failed on);
	// Subject its first line.
	Commit  string `json:"commit,omitempty"`
	Subject string `json:"subject,omitempty"`
	// Template is the branch's pod template, as main would run it (its
	// configuration hash stamped from main's ConfigMaps and Secrets), and
	// Hash its template hash: the canary pods' pod-template-hash.
	Template *corev1.PodTemplateSpec `json:"template,omitempty"`
	Hash     string                  `json:"hash,omitempty"`
	Phase    Phase                   `json:"phase"`
	// Step indexes Spec.Steps; Weight is the weight it gives.
	Step   int   `json:"step"`
	Weight int32 `json:"weight"`
	// StartedAt is when this commit's canary started, StepStartedAt when
	// its current step did; EndedAt when it was aborted, failed or
	// promoted.
	StartedAt     time.Time `json:"startedAt,omitzero"`
	StepStartedAt time.Time `json:"stepStartedAt,omitzero"`
	EndedAt       time.Time `json:"endedAt,omitzero"`
	// Checks are the latest analysis results, newest last (at most
	// keptChecks); Failures counts the metric checks failed in a row.
	Checks   []Check `json:"checks,omitempty"`
	Failures int     `json:"failures,omitempty"`
	// Reason says why the canary was aborted or failed.
	Reason string `json:"reason,omitempty"`
	// AbortedCommits are the branch's commits whose canary was aborted,
	// newest last (at most keptAborted): they are never run again.
	AbortedCommits []string `json:"abortedCommits,omitempty"`
}

// Check is one analysis result.
type Check struct {
	At time.Time `json:"at"`
	// Signal is what was checked: "metric", "readiness", "restarts",
	// "crashloop" or "pod failed".
	Signal string `json:"signal"`
	// Value is the query's result, for metric checks.
	Value   *float64 `json:"value,omitempty"`
	OK      bool     `json:"ok"`
	Message string   `json:"message"`
}

// Measurement is one evaluation of a canary's query, made by the leader
// (the planner reads no Prometheus): for the canary of Commit, at At,
// Value or an error.
type Measurement struct {
	Commit string
	At     time.Time
	Value  float64
	Err    string
}

// Candidate is what a canary branch holds for one Deployment, as last
// fetched: the input that starts a canary.
type Candidate struct {
	Branch  string
	Commit  string // "" when the branch is missing
	Subject string
	// Template and Hash as State has them; nil when Err is set.
	Template *corev1.PodTemplateSpec
	Hash     string
	// Err says why the branch cannot run (missing, invalid manifests, no
	// such Deployment).
	Err string
}

const (
	keptChecks  = 10
	keptAborted = 20
)

// Active reports whether the canary's pods should run.
func (s *State) Active() bool { return s != nil && s.Phase == Progressing }

// Key is "namespace/name" of the Deployment.
func (s *State) Key() string { return s.Namespace + "/" + s.Name }
