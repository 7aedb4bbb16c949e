package gitsource

import "sync"

// What made Run send a revision (Revision.Trigger), besides the reasons
// given to TriggerBy.
const (
	// TriggerStart: sent from the existing clone when Run starts, or when a
	// newly followed branch is sent for the first time by this Run.
	TriggerStart = "start"
	// TriggerPoll: found by a fetch of the poll timer (or a backoff retry).
	TriggerPoll = "poll"
	// TriggerRequested: found by a fetch asked for by Trigger, with no
	// reason given.
	TriggerRequested = "trigger"
)

// triggerReason is the reason of the pending Trigger; its own mutex, never
// held with another.
type triggerReason struct {
	mu     sync.Mutex
	reason string
}

// TriggerBy is Trigger with a reason ("github push 1a2b3c4 by alice",
// "bosun sync from ..."), which the revisions that fetch brings carry in
// Revision.Trigger. Reasons of triggers that coalesce: the last one wins.
func (s *Source) TriggerBy(reason string) {
	s.why.mu.Lock()
	s.why.reason = reason
	s.why.mu.Unlock()
	s.Trigger()
}

// takeReason returns the reason of the trigger being served and clears it.
func (s *Source) takeReason() string {
	s.why.mu.Lock()
	defer s.why.mu.Unlock()
	r := s.why.reason
	s.why.reason = ""
	if r == "" {
		return TriggerRequested
	}
	return r
}
