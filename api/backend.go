package api

import (
	"context"
	"errors"
	"io"

	"bosun/canary"
	"bosun/preview"
	"bosun/store"
)

// Backend is what the API needs beyond the store: previews and container
// logs. The server implements it.
type Backend interface {
	// Plan previews a revision: a ref of the tracked repository, or files
	// sent by the CLI (`bosun plan --dir`).
	Plan(ctx context.Context, req PlanRequest) (*PlanResult, error)
	// Logs streams a container's log to w.
	Logs(ctx context.Context, req LogRequest, w io.Writer) error
}

// PlanRequest is the body of POST /api/v1/plan: exactly one of Ref and
// Files.
type PlanRequest struct {
	// Ref is a branch, tag or commit of the tracked repository.
	Ref string `json:"ref,omitempty"`
	// Files are manifest files by path relative to the manifests' root.
	Files map[string]string `json:"files,omitempty"`
}

// PlanResult is the answer of POST /api/v1/plan.
type PlanResult struct {
	// Revision is the previewed commit (for a ref).
	Revision *store.Revision `json:"revision,omitempty"`
	// Current is the revision the cluster runs now, if any.
	Current *store.Revision `json:"current,omitempty"`
	// Errors are the previewed revision's validation errors; when present
	// there is no Preview: such a revision would be rejected whole.
	Errors  []string        `json:"errors,omitempty"`
	Preview *preview.Result `json:"preview,omitempty"`
	// Canaries are set when the ref is a branch that the running revision
	// names in bosun.dev/canary-branch: for each Deployment naming it,
	// what its canary would run. Errors and Preview are then what merging
	// the branch into main would do.
	Canaries []CanaryPlan `json:"canaries,omitempty"`
}

// CanaryPlan is what a canary branch would run beside one Deployment of
// the running revision, as the leader would decide it (reconciler.Plan,
// which runs canary.Decide) if it fetched the branch now.
type CanaryPlan struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Branch    string `json:"branch"`
	// Commit is the branch's head, "" when the branch does not exist.
	Commit  string `json:"commit,omitempty"`
	Subject string `json:"subject,omitempty"`
	// Phase is what the canary would be: Progressing when its pods run;
	// Failed (the branch cannot run), Aborted (this commit's canary was
	// aborted before) or Idle (the branch holds main's template) with
	// Reason.
	Phase  canary.Phase `json:"phase"`
	Reason string       `json:"reason,omitempty"`
	// Current is the canary as stored now ("Progressing at 1a2b3c4d5e,
	// step 2 of 3, 25%"), "" when there is none.
	Current string `json:"current,omitempty"`
	// StableHash is the template hash main runs, Hash the canary's.
	StableHash string `json:"stableHash"`
	Hash       string `json:"hash,omitempty"`
	// Steps are the weights; Weight the canary's share of new connections
	// at the step it would be at, StableWeight the rest.
	Steps        []int32 `json:"steps,omitempty"`
	Weight       int32   `json:"weight"`
	StableWeight int32   `json:"stableWeight"`
	// Replicas is how many canary pods would run (canary.Spec.CanaryReplicas),
	// StableReplicas main's replicas, which keep running.
	Replicas       int   `json:"replicas"`
	StableReplicas int32 `json:"stableReplicas"`
	// Changes say how the branch's pod template differs from main's, one
	// line each ("container app: image hello:v1 -> hello:v2", "container
	// app: env +FEATURE_X ~LOG_LEVEL"); never an env value.
	Changes []string `json:"changes,omitempty"`
	// Pods are the canary's pods the next plan starts or stops, with the
	// node the scheduler picks or why none fits.
	Pods []CanaryPodPlan `json:"pods,omitempty"`
}

// CanaryPodPlan is one pod a canary's plan starts or stops.
type CanaryPodPlan struct {
	// Op is preview.OpStart or preview.OpStop.
	Op     string `json:"op"`
	Name   string `json:"name"`
	Node   string `json:"node,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// LogRequest selects a container log.
type LogRequest struct {
	Namespace, Pod, Container string
	Follow, Previous          bool
	TailLines                 int
}

// Errors a Backend wraps to choose the answer's status.
var (
	// ErrNotFound: the pod, container, log or ref does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request cannot be served as asked (400).
	ErrInvalid = errors.New("invalid request")
)
