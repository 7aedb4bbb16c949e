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

// The leader does not poll. It plans when the cluster changes (a watch of
// the keys the plan and the rollout outcome read: store.Changes relists and
// notifies after a lost watch) and when the last plan said it would decide
// something by itself (reconciler.Result.Wake: minReadySeconds, progress
// deadlines, backoffs, ttls, CronJob runs, evictions, node grace). No
// safety resync: a decision due at a time the plan does not report is a bug
// of the plan, which its Wake tests pin.
const (
	// fetchStatusInterval is how often the Git source's health is copied
	// into the sync status; it starts no reconcile pass.
	fetchStatusInterval = 5 * time.Second
	// retryInterval is how soon a failed reconcile pass is tried again.
	retryInterval = time.Second
)

// leader is the work of the elected replica. Only run's goroutine touches
// its fields.
type leader struct {
	cfg  Config
	st   *store.Store
	lead *store.Leadership
	src  *gitsource.Source
	log  *slog.Logger
	m    *metrics

	desired *manifest.Set // last good revision's objects; nil until the first one
	key     []byte        // the cluster key, for configuration hashes
	sync    store.SyncStatus
	history book
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
	if err := l.restore(ctx); err != nil {
		return err
	}

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

	// Deployments, Jobs and CronJobs are written by this leader only; their
	// changes bring the pass that settles the revision's outcome.
	changes := l.st.Changes(ctx, store.PodsPrefix, store.PodStatusPrefix, store.NodesPrefix,
		store.DeploymentsPrefix, store.JobsPrefix, store.CronJobsPrefix)
	syncRequests := l.st.Changes(ctx, store.SyncRequestPrefix)
	fetchTick := time.NewTicker(fetchStatusInterval)
	defer fetchTick.Stop()
	// wake fires when the last plan said it would decide something new by
	// itself (reconciler.Result.Wake), or to retry a failed pass.
	wake := time.NewTimer(time.Hour)
	wake.Stop()
	defer wake.Stop()
	l.m.leader.Set(1)
	defer l.m.leader.Set(0)
	cl := &cluster{st: l.st, lead: l.lead, now: time.Now, grace: l.cfg.NodeGracePeriod, m: l.m}
	driver := &reconciler.Driver{Cluster: cl, Logger: l.log, Now: time.Now}
	for {
		select {
		case <-ctx.Done():
			if isClosed(l.lead.Done()) {
				return errLostLeadership
			}
			return ctx.Err()
		case rev := <-revs:
			if err := l.accept(ctx, rev); err != nil {
				if stop := l.failed(ctx, err); stop != nil {
					return stop
				}
			}
		case <-syncRequests:
			l.src.Trigger()
			continue
		case <-changes:
		case <-wake.C:
		case <-fetchTick.C:
			if err := l.recordFetchStatus(ctx); err != nil {
				if stop := l.failed(ctx, err); stop != nil {
					return stop
				}
			}
			continue
		}
		if l.desired == nil {
			continue // nothing good to apply yet: never prune on no information
		}
		start := time.Now()
		observed, res, err := driver.Reconcile(ctx, l.desired)
		if err == nil {
			l.m.observeEvents(res.Events, time.Now())
			if res.Wake.IsZero() {
				wake.Stop()
			} else {
				wake.Reset(time.Until(res.Wake))
			}
			err = l.lead.Apply(ctx, l.history.settle(l.desired, observed, time.Now()))
		}
		l.m.passes.Inc()
		l.m.duration.Observe(time.Since(start).Seconds())
		if err != nil {
			l.m.failures.Inc()
			if errors.Is(err, store.ErrNotLeader) {
				return errLostLeadership
			}
			if ctx.Err() == nil {
				l.log.Warn("reconcile failed; retrying", "err", err, "in", retryInterval)
				wake.Reset(retryInterval)
			}
		}
	}
}

var errLostLeadership = errors.New("leadership lost")

// failed decides what an error of the leader's own writes means: the end
// of this leadership (returned), or a failure to retry (nil, logged).
func (l *leader) failed(ctx context.Context, err error) error {
	if errors.Is(err, store.ErrNotLeader) || isClosed(l.lead.Done()) {
		return errLostLeadership
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	l.log.Warn("write failed; will retry", "err", err)
	return nil
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// restore picks up where the previous leader stopped: its sync status,
// history and the last good revision, so that an invalid Git head after a
// restart or a failover keeps the last good revision running.
func (l *leader) restore(ctx context.Context) error {
	prev, err := l.st.SyncStatus(ctx)
	if err != nil {
		return err
	}
	l.sync = prev
	l.sync.Leader = l.cfg.ID
	if l.key, err = l.st.ClusterKey(ctx); err != nil {
		return err
	}
	entries, err := l.st.History(ctx)
	if err != nil {
		return err
	}
	l.history = book{limit: l.cfg.HistoryLimit, entries: entries}
	d, err := l.st.Desired(ctx)
	if err != nil {
		return err
	}
	if d != nil {
		l.desired = setFromDesired(d)
		l.log.Info("restored the last good revision", "commit", short(d.Revision.Commit))
	}
	return nil
}

// accept loads a revision's manifests. A revision with any invalid manifest
// is rejected whole: the last good one stays desired and the status lists
// every error. The desired state, the history and the status are written
// in one fenced transaction.
func (l *leader) accept(ctx context.Context, rev gitsource.Revision) error {
	r := store.Revision{Commit: rev.Commit, Author: rev.Author, Message: firstLine(rev.Message), Time: rev.Time}
	if n := l.history.newest(); n != nil && n.Commit == r.Commit && l.sync.Seen != nil && l.sync.Seen.Commit == r.Commit {
		return nil // the Git source re-emits its head on start: nothing new
	}
	l.sync.Seen = &r
	entry := store.HistoryEntry{Revision: r, SeenAt: time.Now()}
	var ops []store.Op
	set, err := l.cfg.Policy.LoadDir(rev.Dir, l.cfg.Path)
	if err == nil {
		set, err = finishRevision(l.key, l.desired, set)
	}
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
		entry.Result, entry.Errors = store.ResultRejected, l.sync.Errors
		l.m.revisions.WithLabelValues("rejected").Inc()
		l.log.Error("revision rejected; keeping the last good revision",
			"commit", short(rev.Commit), "errors", len(l.sync.Errors), "first", l.sync.Errors[0])
	} else {
		entry.Result = store.ResultProgressing
		l.m.revisions.WithLabelValues("accepted").Inc()
		entry.Changes = changesBetween(l.desired, set)
		op, err := store.PutDesired(desiredFrom(r, set))
		if err != nil {
			return err
		}
		ops = append(ops, op)
		l.desired = set
		l.sync.Applied = &r
		l.sync.Errors = nil
		l.log.Info("revision accepted", "commit", short(rev.Commit), "message", r.Message, "changes", len(entry.Changes),
			"pods", len(set.Pods), "deployments", len(set.Deployments), "services", len(set.Services))
	}
	ops = append(ops, l.history.add(entry)...)
	l.sync.UpdatedAt = time.Now()
	op, err := store.PutSyncStatus(&l.sync)
	if err != nil {
		return err
	}
	return l.lead.Apply(ctx, append(ops, op))
}

// recordFetchStatus copies the Git source's health into the sync status
// when it changed.
func (l *leader) recordFetchStatus(ctx context.Context) error {
	gs := l.src.Status()
	l.m.fetchFails.Set(float64(gs.Failures))
	if gs.FetchError == l.sync.FetchError && gs.LastFetch.Sub(l.sync.LastFetch) < time.Minute {
		return nil
	}
	l.sync.FetchError = gs.FetchError
	l.sync.LastFetch = gs.LastFetch
	l.sync.UpdatedAt = time.Now()
	op, err := store.PutSyncStatus(&l.sync)
	if err != nil {
		return err
	}
	return l.lead.Apply(ctx, []store.Op{op})
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
