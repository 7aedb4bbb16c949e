package server

import (
	"slices"
	"time"

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

// add records a new revision. An applied revision supersedes a previous one
// whose rollout has not finished: a newer commit always wins.
func (b *book) add(e store.HistoryEntry) []store.Op {
	var ops []store.Op
	if e.Result != store.ResultRejected {
		for i := range b.entries {
			if b.entries[i].Result == store.ResultProgressing {
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
		e.Result, e.ReadyAfter = store.ResultApplied, store.Duration(now.Sub(e.SeenAt))
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
