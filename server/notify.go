package server

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"bosun/notify"
	"bosun/store"
)

// Notifications (package notify) hang off the leader's history: an outcome
// is sent once the fenced write that records it succeeded (notifyHistory),
// so a deposed leader reports nothing. Each leadership runs the notifier
// (startNotify); a new leader sends the newest revision's status again to
// the status sinks (idempotent), which repairs one the old leader had
// queued but not sent.

// loadNotify reads and validates --notify-config (Config.validate).
func (c *Config) loadNotify() error {
	if c.NotifyConfigFile == "" {
		return nil
	}
	nc, err := notify.Load(c.NotifyConfigFile)
	if err != nil {
		return fmt.Errorf("--notify-config: %w", err)
	}
	c.notifier = notify.New(nc, notify.Options{Logger: c.Logger.With("component", "notify")})
	names := make([]string, len(nc.Sinks))
	for i, s := range nc.Sinks {
		names[i] = s.Name + " (" + s.Type + ")"
	}
	c.Logger.Info("notifications configured", "file", c.NotifyConfigFile, "sinks", strings.Join(names, ", "))
	return nil
}

// registerNotify adds the notifier's metrics to the replica's registry.
func (c *Config) registerNotify(reg prometheus.Registerer) error {
	return c.notifier.Register(reg) // nil-safe
}

// startNotify runs the notifier for this leadership; the function it
// returns stops it and waits.
func (l *leader) startNotify(ctx context.Context) (stop func()) {
	n := l.cfg.notifier
	if n == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	wait := n.Start(ctx)
	if e := l.history.newestRevision(); e != nil {
		if ev, ok := l.eventOf(*e); ok {
			n.NotifyStatus(ev)
		}
	}
	return func() {
		cancel()
		wait()
	}
}

// notifyHistory sends the outcomes that the write from old to next
// recorded: new entries, and entries whose result changed, oldest first.
func (l *leader) notifyHistory(old, next book) {
	n := l.cfg.notifier
	if n == nil {
		return
	}
	for _, e := range changed(old, next) {
		if ev, ok := l.eventOf(e); ok {
			n.Notify(ev)
		}
	}
}

// changed returns the entries of next that are new or whose result
// changed since old, oldest first.
func changed(old, next book) []store.HistoryEntry {
	before := make(map[int64]string, len(old.entries))
	for _, e := range old.entries {
		before[e.Seq] = e.Result
	}
	var out []store.HistoryEntry
	for i := len(next.entries) - 1; i >= 0; i-- {
		e := next.entries[i]
		if r, ok := before[e.Seq]; !ok || r != e.Result {
			out = append(out, e)
		}
	}
	return out
}

// canaryTypes are the notification types of canary history results.
var canaryTypes = map[string]string{
	store.ResultCanaryStarted: notify.CanaryStarted, store.ResultCanaryStepped: notify.CanaryStepped,
	store.ResultCanaryAborted: notify.CanaryAborted, store.ResultCanaryFailed: notify.CanaryFailed,
	store.ResultCanaryPromoted: notify.CanaryPromoted, store.ResultCanaryEnded: notify.CanaryEnded,
}

// eventOf is the notification of a history entry's result; false for a
// result that is not one.
func (l *leader) eventOf(e store.HistoryEntry) (notify.Event, bool) {
	return eventOf(e, l.cfg.Branch)
}

func eventOf(e store.HistoryEntry, branch string) (notify.Event, bool) {
	ev := notify.Event{Commit: e.Commit, Branch: branch, Subject: e.Message, Time: e.SeenAt}
	if e.Branch != "" {
		ev.Branch = e.Branch
	}
	reason := ""
	if len(e.Errors) > 0 {
		reason = e.Errors[0]
	}
	switch {
	case e.Canary != "":
		t, ok := canaryTypes[e.Result]
		if !ok {
			return ev, false
		}
		ev.Type, ev.Canary, ev.Reason = t, e.Canary, e.Detail
		ev.Message = e.Result + " " + e.Canary
	case e.Result == store.ResultProgressing:
		ev.Type, ev.Message = notify.RevisionApplied, fmt.Sprintf("revision applied (%d changes); rolling out", len(e.Changes))
	case e.Result == store.ResultRejected:
		ev.Type, ev.Reason, ev.Errors = notify.RevisionRejected, reason, e.Errors
		ev.Message = fmt.Sprintf("revision rejected (%d errors); the last good revision keeps running", len(e.Errors))
		if len(e.Errors) == 1 {
			ev.Message = "revision rejected; the last good revision keeps running"
		}
	case e.Result == store.ResultSuperseded:
		ev.Type, ev.Message = notify.RevisionSuperseded, "superseded by a newer revision before its rollout finished"
	case e.Result == store.ResultApplied:
		ev.Type, ev.Message = notify.RolloutComplete, "rollout complete"
		if e.ReadyAfter > 0 {
			ev.Message += " in " + time.Duration(e.ReadyAfter).Round(100*time.Millisecond).String()
		}
	case e.Result == store.ResultRolloutFailed:
		ev.Type, ev.Message, ev.Reason = notify.RolloutFailed, "rollout failed", reason
	case strings.HasPrefix(e.Result, "held"):
		// Sync windows (issue 12, H6): "held (sync window until <time>)".
		ev.Type, ev.Message, ev.Reason = notify.RevisionHeld, "revision held", e.Result
		if e.Detail != "" {
			ev.Reason = e.Detail
		}
	default:
		return ev, false
	}
	ev.ID = fmt.Sprintf("%d-%s-%s", e.Seq, short(e.Commit), ev.Type)
	return ev, true
}
