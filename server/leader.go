package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"bosun/gitsource"
	"bosun/manifest"
	"bosun/reconciler"
	"bosun/store"
)

// resyncInterval bounds how long the leader goes without a reconcile pass
// even when nothing signals a change (time-based decisions, missed events).
const resyncInterval = 2 * time.Second

// leader is the work of the elected replica.
type leader struct {
	cfg  Config
	st   *store.Store
	lead *store.Leadership
	src  *gitsource.Source
	log  *slog.Logger

	desired *manifest.Set // last good revision's objects; nil until the first one
	sync    store.SyncStatus
}

// run leads until ctx ends or the leadership is lost.
func (l *leader) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-l.lead.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	if prev, err := l.st.SyncStatus(ctx); err == nil {
		l.sync = prev
	}
	l.sync.Leader = l.cfg.ID

	revs := make(chan gitsource.Revision, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := l.src.Run(ctx, revs); err != nil && !errors.Is(err, context.Canceled) {
			l.log.Error("git source stopped", "err", err)
			cancel()
		}
	}()
	defer wg.Wait()

	changes := l.st.Changes(ctx, store.PodsPrefix, store.PodStatusPrefix, store.NodesPrefix)
	tick := time.NewTicker(resyncInterval)
	defer tick.Stop()
	driver := &reconciler.Driver{Cluster: &cluster{st: l.st, lead: l.lead, now: time.Now, grace: l.cfg.NodeGracePeriod}, Logger: l.log}
	for {
		select {
		case <-ctx.Done():
			if lost := l.lead.Done(); isClosed(lost) {
				return errLostLeadership
			}
			return ctx.Err()
		case rev := <-revs:
			l.accept(ctx, rev)
		case <-changes:
		case <-tick.C:
			l.recordFetchStatus(ctx)
		}
		if l.desired == nil {
			continue // nothing good to apply yet: never prune on no information
		}
		if _, err := driver.Reconcile(ctx, l.desired); err != nil {
			if errors.Is(err, store.ErrNotLeader) {
				return errLostLeadership
			}
			if ctx.Err() == nil {
				l.log.Warn("reconcile failed; retrying", "err", err)
			}
		}
	}
}

var errLostLeadership = errors.New("leadership lost")

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// accept loads a revision's manifests. A revision with any invalid manifest
// is rejected whole: the last good one stays desired and the status lists
// every error.
func (l *leader) accept(ctx context.Context, rev gitsource.Revision) {
	r := &store.Revision{Commit: rev.Commit, Author: rev.Author, Message: firstLine(rev.Message), Time: rev.Time}
	l.sync.Seen = r
	set, err := manifest.LoadDir(rev.Dir, l.cfg.Path)
	if err != nil {
		var errs manifest.Errors
		if errors.As(err, &errs) {
			l.sync.Errors = make([]string, len(errs))
			for i, e := range errs {
				l.sync.Errors[i] = e.Error()
			}
		} else {
			l.sync.Errors = []string{err.Error()}
		}
		l.log.Error("revision rejected; keeping the last good revision",
			"commit", short(rev.Commit), "errors", len(l.sync.Errors), "first", l.sync.Errors[0])
	} else {
		l.desired = set
		l.sync.Applied = r
		l.sync.Errors = nil
		l.log.Info("revision accepted", "commit", short(rev.Commit), "message", r.Message,
			"pods", len(set.Pods), "deployments", len(set.Deployments), "services", len(set.Services))
	}
	l.writeSync(ctx)
}

// recordFetchStatus copies the Git source's health into the sync status
// when it changed.
func (l *leader) recordFetchStatus(ctx context.Context) {
	gs := l.src.Status()
	if gs.FetchError == l.sync.FetchError && gs.LastFetch.Sub(l.sync.LastFetch) < time.Minute {
		return
	}
	l.sync.FetchError = gs.FetchError
	l.sync.LastFetch = gs.LastFetch
	l.writeSync(ctx)
}

func (l *leader) writeSync(ctx context.Context) {
	l.sync.UpdatedAt = time.Now()
	op, err := store.PutSyncStatus(&l.sync)
	if err == nil {
		err = l.lead.Apply(ctx, []store.Op{op})
	}
	if err != nil && ctx.Err() == nil {
		l.log.Warn("write sync status", "err", err)
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// Trigger asks the Git source for a fetch now.
func (l *leader) Trigger() { l.src.Trigger() }
