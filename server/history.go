package server

import (
	"cmp"
	"slices"
	"time"

	"bosun/canary"
	"bosun/manifest"
	"bosun/preview"
	"bosun/reconciler"
	"bosun/store"
)

// book is the leader's copy of the revision history: it decides what each
// new revision and each rollout outcome writes, and keeps the history
// bounded. The leader writes the ops it returns.
type book struct {
	limit   int
	entries []store.HistoryEntry // newest first
}

// clone returns a copy whose changes leave b as it is: the leader changes
// a copy and keeps it once the copy's writes are done.
func (b *book) clone() book {
	return book{limit: b.limit, entries: slices.Clone(b.entries)}
}

// newest returns the newest entry, or nil.
func (b *book) newest() *store.HistoryEntry {
	if len(b.entries) == 0 {
		return nil
	}
	return &b.entries[0]
}

// newestRevision returns the newest entry of a main revision (not of a
// canary), or nil.
func (b *book) newestRevision() *store.HistoryEntry {
	for i := range b.entries {
		if b.entries[i].Canary == "" {
			return &b.entries[i]
		}
	}
	return nil
}

// canaryResults are the history results of canary events.
var canaryResults = map[string]string{
	canary.EventStarted: store.ResultCanaryStarted, canary.EventStepped: store.ResultCanaryStepped,
	canary.EventAborted: store.ResultCanaryAborted, canary.EventFailed: store.ResultCanaryFailed,
	canary.EventPromoted: store.ResultCanaryPromoted, canary.EventEnded: store.ResultCanaryEnded,
}

// addCanary records canary events, at now.
func (b *book) addCanary(events []canary.Event, now time.Time) []store.Op {
	var ops []store.Op
	for _, e := range events {
		ops = append(ops, b.add(store.HistoryEntry{
			Revision: store.Revision{Commit: e.Commit, Message: e.Subject},
			SeenAt:   now, Result: canaryResults[e.Reason],
			Canary: e.Namespace + "/" + e.Name, Branch: e.Branch, Detail: e.Message,
		})...)
	}
	return ops
}

// add records a new revision. An applied revision supersedes a previous one
// whose rollout has not finished: a newer commit always wins.
func (b *book) add(e store.HistoryEntry) []store.Op {
	var ops []store.Op
	if e.Result != store.ResultRejected && e.Canary == "" {
		for i := range b.entries {
			if r := b.entries[i].Result; r == store.ResultProgressing || r == store.ResultHeld {
				b.entries[i].Result = store.ResultSuperseded
				ops = append(ops, put(&b.entries[i]))
			}
		}
	}
	e.Seq = 1
	if n := b.newest(); n != nil {
		e.Seq = n.Seq + 1
	}
	b.entries = append([]store.HistoryEntry{e}, b.entries...)
	ops = append(ops, put(&b.entries[0]))
	for len(b.entries) > b.limit {
		last := b.entries[len(b.entries)-1]
		ops = append(ops, store.DeleteHistory(last.Seq))
		b.entries = b.entries[:len(b.entries)-1]
	}
	return ops
}

// settle records the outcome of the progressing revision, if it is known.
func (b *book) settle(set *manifest.Set, observed reconciler.Observed, now time.Time) []store.Op {
	var e *store.HistoryEntry
	for i := range b.entries {
		if b.entries[i].Result == store.ResultProgressing {
			e = &b.entries[i]
			break
		}
	}
	if e == nil {
		return nil
	}
	done, failed, msg := reconciler.RevisionOutcome(set, observed)
	switch {
	case failed:
		e.Result, e.Errors = store.ResultRolloutFailed, []string{msg}
	case done:
		e.Result, e.ReadyAfter = store.ResultApplied, store.Duration(now.Sub(cmp.Or(e.AppliedAt, e.SeenAt)))
	default:
		return nil
	}
	return []store.Op{put(e)}
}

func put(e *store.HistoryEntry) store.Op {
	op, _ := store.PutHistory(e) // a HistoryEntry always encodes
	return op
}

// changesBetween summarises what a revision changes: objects created (+),
// changed (~) and deleted (-), by what Git says of them.
func changesBetween(prev, next *manifest.Set) []store.ObjectChange {
	objs := preview.Objects(prev, next)
	out := make([]store.ObjectChange, len(objs))
	for i, o := range objs {
		op := map[string]string{preview.OpCreate: "+", preview.OpChange: "~", preview.OpDelete: "-"}[o.Op]
		out[i] = store.ObjectChange{Op: op, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name}
	}
	return out
}
