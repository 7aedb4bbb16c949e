package api

import (
	"context"
	"errors"
	"io"

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
