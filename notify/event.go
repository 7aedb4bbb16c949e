package notify

import (
	"path"
	"time"
)

// Event types: what bosun decided about a commit. The names are those of
// the cluster's events (store.Event reasons) where both exist.
const (
	// RevisionApplied: the revision was accepted and is being rolled out.
	RevisionApplied = "RevisionApplied"
	// RevisionRejected: the revision has invalid manifests (Reason names
	// file:line) or an untrusted signature; the last good one keeps running.
	RevisionRejected = "RevisionRejected"
	// RevisionHeld: a sync window holds the revision (Reason says until when).
	RevisionHeld = "RevisionHeld"
	// RevisionSuperseded: a newer revision was applied before this one's
	// rollout finished.
	RevisionSuperseded = "RevisionSuperseded"
	// RolloutComplete: every pod of the revision is ready.
	RolloutComplete = "RolloutComplete"
	// RolloutFailed: the rollout failed (Reason says why: a progress
	// deadline, a crash loop, an image that cannot be pulled).
	RolloutFailed = "RolloutFailed"
	// Canary events: the commit is the canary branch's head.
	CanaryStarted  = "CanaryStarted"
	CanaryStepped  = "CanaryStepped"
	CanaryPromoted = "CanaryPromoted"
	CanaryAborted  = "CanaryAborted"
	CanaryFailed   = "CanaryFailed"
	CanaryEnded    = "CanaryEnded"
)

// Types lists every event type, in the order of a revision's life.
var Types = []string{
	RevisionApplied, RevisionRejected, RevisionHeld, RevisionSuperseded, RolloutComplete, RolloutFailed,
	CanaryStarted, CanaryStepped, CanaryPromoted, CanaryAborted, CanaryFailed, CanaryEnded,
}

// Event is one outcome bosun reports about a commit.
type Event struct {
	// ID identifies the event across deliveries and retries (the webhook's
	// X-Bosun-Delivery); the same outcome sent again keeps its ID.
	ID   string `json:"id"`
	Type string `json:"type"`
	// Commit is the full SHA, Branch the branch it was seen on, Subject its
	// message's first line.
	Commit  string `json:"commit"`
	Branch  string `json:"branch"`
	Subject string `json:"subject,omitempty"`
	// Message says in a few words what happened ("rollout complete in
	// 12s"); Reason why, or the first error (file:line for a rejected
	// revision); Errors every error of a rejected revision.
	Message string   `json:"message"`
	Reason  string   `json:"reason,omitempty"`
	Errors  []string `json:"errors,omitempty"`
	// Canary names the Deployment ("namespace/name") of a canary event.
	Canary string    `json:"canary,omitempty"`
	Time   time.Time `json:"time"`
}

// State is a commit status, in GitHub's words; each sink translates it.
type State string

const (
	StatePending State = "pending"
	StateSuccess State = "success"
	StateFailure State = "failure"
	// StateError is for a revision that will never finish (superseded).
	StateError State = "error"
)

// StateOf is the commit status an event type sets.
func StateOf(typ string) State {
	switch typ {
	case RolloutComplete, CanaryPromoted, CanaryEnded:
		return StateSuccess
	case RevisionRejected, RolloutFailed, CanaryAborted, CanaryFailed:
		return StateFailure
	case RevisionSuperseded:
		return StateError
	default: // applied (rolling out), held, canary started or stepped
		return StatePending
	}
}

// knownType reports whether a filter pattern matches at least one event
// type (a typo in the configuration is an error, not a silent filter).
func knownType(pattern string) bool {
	for _, t := range Types {
		if ok, _ := path.Match(pattern, t); ok {
			return true
		}
	}
	return false
}

// matches reports whether typ passes a filter: no patterns pass all.
func matches(patterns []string, typ string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, typ); ok {
			return true
		}
	}
	return false
}

func pathMatchErr(pattern string) (bool, error) { return path.Match(pattern, "") }
