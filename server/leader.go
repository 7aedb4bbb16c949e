package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/gitsource"
	"bosun/ipalloc"
	"bosun/manifest"
	"bosun/reconciler"
	"bosun/store"
	"bosun/syncwindow"
)

// The leader does not poll. It plans when the cluster changes (a watch of
// the keys the plan and the rollout outcome read, from the replica's cache,
// which relists and notifies after a lost watch) and when the last plan said it would decide
// something by itself (reconciler.Result.Wake: minReadySeconds, progress
// deadlines, backoffs, ttls, CronJob runs, evictions, node grace). No
// safety resync: a decision due at a time the plan does not report is a bug
// of the plan, which its Wake tests pin.

// fetchStatusInterval is how often the Git source's health is copied into
// the sync status; it starts no reconcile pass.
const fetchStatusInterval = 5 * time.Second

// leader is the work of the elected replica. Only run's goroutine touches
// its fields.
type leader struct {
	cfg   Config
	st    *store.Store
	cache *store.Cache // the replica's cache of the cluster state
	lead  *store.Leadership
	src   *gitsource.Source
	log   *slog.Logger
	m     *metrics

	// The leader's memory of what etcd holds. It changes only once the
	// fenced write that records it has succeeded (commit), so it never runs
	// ahead of etcd; after a failed write it is re-read from etcd (restore),
	// since a write that timed out may have happened.
	desired *manifest.Set // last good revision's objects; nil until the first one
	key     []byte        // the cluster key, for configuration hashes
	sync    store.SyncStatus
	history book

	unreadableReserved unreadableReserved // reserved.go

	// canary is what the leader knows of the canary branches and queries;
	// analyzer measures the queries.
	canary   *canaries
	analyzer *analyzer

	// syncRev is the etcd revision of the last sync request taken, whose
	// reason the fetch it triggers is attributed to (triggerSync).
	syncRev int64

	// pending is a revision whose write failed, accepted again at retry.
	pending *gitsource.Revision
	// held is the revision a sync window holds, nil when none is;
	// windowTimer fires when its block should end (syncwindow.go).
	held        *heldRevision
	windowTimer *time.Timer
	// release is a forced or manual release of the held revision whose
	// write failed: windowCheck tries it again (nil: none).
	release *releaseRequest
	// write is the leadership's fenced write; tests inject failures here.
	write func(ctx context.Context, ops []store.Op) error
}

// retryDelay is how long the leader waits before it writes a revision
// again whose write failed.
const retryDelay = time.Second

// apply writes ops through the leadership, fenced.
func (l *leader) apply(ctx context.Context, ops []store.Op) error {
	if l.write != nil {
		return l.write(ctx, ops)
	}
	return l.lead.Apply(ctx, ops)
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
	// Fires at once: a held revision restored is decided on again.
	l.windowTimer = time.NewTimer(time.Hour)
	defer l.windowTimer.Stop()
	defer func() {
		if l.m.windows != nil {
			l.m.windows.blocked.Set(0) // the next leader says whether a window blocks
		}
	}()
	if err := l.restore(ctx); err != nil {
		return err
	}
	defer l.startNotify(ctx)() // notifications of this leadership (notify.go)
	l.canary = newCanaries()
	l.cfg.events.lead()
	l.analyzer = newAnalyzer(l.cfg.Measure, l.log)
	defer l.analyzer.wg.Wait()
	defer l.analyzer.timer.Stop()
	l.follow()

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

	// Deployments, Jobs, CronJobs, DaemonSets, StatefulSets and claims are
	// written by this leader only; their changes bring the pass that
	// settles the revision's outcome.
	changes := l.cache.Changes(ctx, store.PodsPrefix, store.PodStatusPrefix, store.NodesPrefix,
		store.DeploymentsPrefix, store.JobsPrefix, store.CronJobsPrefix, store.NodeControlPrefix,
		store.DaemonSetsPrefix, store.StatefulSetsPrefix, store.ClaimsPrefix)
	// The watch fires once as it starts: requests up to now are not news.
	var err error
	if _, l.syncRev, err = l.st.SyncRequest(ctx); err != nil {
		l.log.Warn("read the last sync request", "err", err)
	}
	syncRequests := l.st.Changes(ctx, store.SyncRequestPrefix)
	fetchTick := time.NewTicker(fetchStatusInterval)
	defer fetchTick.Stop()
	// wake fires when the last plan said it would decide something new by
	// itself (reconciler.Result.Wake), or to retry a failed pass.
	wake := time.NewTimer(time.Hour)
	wake.Stop()
	defer wake.Stop()
	// retry fires when a revision whose write failed is due again.
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	l.m.leader.Set(1)
	defer l.m.leader.Set(0)
	cl := &cluster{st: l.st, cache: l.cache, lead: l.lead, now: time.Now, grace: l.cfg.NodeGracePeriod, m: l.m, log: l.log,
		canaries: l.canaryInput}
	cl.events = l.cfg.events
	driver := &reconciler.Driver{Cluster: cl, Logger: l.log, Now: time.Now, Planning: l.m.planning}
	// Node subnets are given as nodes come, Git revision or not.
	sn, err := newSubnets(l.cfg.PodNetwork, l.st, l.apply, l.log, l.m.subnets)
	if err != nil {
		return err
	}
	subnetChanges := l.st.Changes(ctx, store.NodesPrefix, store.NodeSubnetsPrefix)
	subnetRetry := time.NewTimer(time.Hour)
	subnetRetry.Stop()
	defer subnetRetry.Stop()
	for {
		select {
		case <-ctx.Done():
			if isClosed(l.lead.Done()) {
				return errLostLeadership
			}
			return ctx.Err()
		case rev := <-revs:
			if rev.Branch != "" && rev.Branch != l.cfg.Branch {
				l.branchRevision(ctx, rev)
				break
			}
			l.pending = &rev // a newer revision replaces one waiting for retry
			if stop := l.acceptPending(ctx, retry); stop != nil {
				return stop
			}
		case <-retry.C:
			if stop := l.acceptPending(ctx, retry); stop != nil {
				return stop
			}
		case <-syncRequests:
			req, news := l.triggerSync(ctx)
			if !news {
				continue
			}
			if plan, stop := l.windowRequest(ctx, req); stop != nil {
				return stop
			} else if !plan {
				continue
			}
		case <-l.windowTimer.C:
			if plan, stop := l.windowCheck(ctx); stop != nil {
				return stop
			} else if !plan {
				continue
			}
		case <-subnetChanges:
			if plan, stop := l.syncSubnets(ctx, sn, cl, subnetRetry); stop != nil {
				return stop
			} else if !plan {
				continue
			}
		case <-subnetRetry.C:
			if plan, stop := l.syncSubnets(ctx, sn, cl, subnetRetry); stop != nil {
				return stop
			} else if !plan {
				continue
			}
		case <-changes:
		case <-wake.C:
		case <-l.analyzer.timer.C:
			l.analyzer.fire(ctx)
			continue
		case r := <-l.analyzer.results:
			l.measured(r)
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
			l.unreadableReserved.check(l.log, observed.Nodes) // reserved.go
			l.m.observeScheduling(observed, res.Actions)
			l.m.observeDaemonSets(observed, res.Actions)
			l.cfg.events.pass(res)
			if res.Wake.IsZero() {
				wake.Stop()
			} else {
				wake.Reset(time.Until(res.Wake))
			}
			l.analyzer.plan(res.Canaries)
			l.m.observeCanaries(res.Canaries, res.CanaryEvents)
			hist := l.history.clone()
			ops := append(hist.addCanary(res.CanaryEvents, time.Now()), hist.settle(l.desired, observed, time.Now())...)
			ops = append(ops, cl.takeHealth()...) // node health records (nodehealth.go)
			if err = l.apply(ctx, ops); err == nil {
				l.recorded(l.history, hist)
				l.history = hist
			}
		}
		l.m.passes.Inc()
		l.m.duration.Observe(time.Since(start).Seconds())
		if err != nil {
			l.m.failures.Inc()
			if errors.Is(err, store.ErrNotLeader) {
				return errLostLeadership
			}
			if ctx.Err() == nil {
				l.log.Warn("reconcile failed; retrying", "err", err, "in", retryDelay)
				wake.Reset(retryDelay)
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
	// The write may have happened even though it failed (a timeout after
	// the commit): memory follows etcd again before anything else is
	// decided from it.
	if err := l.restore(ctx); err != nil {
		l.log.Warn("re-read the leader's state after a failed write", "err", err)
		if errors.Is(err, store.ErrNotLeader) || isClosed(l.lead.Done()) {
			return errLostLeadership
		}
	}
	return nil
}

// acceptPending accepts the pending revision; when its write fails it stays
// pending and retry is armed.
func (l *leader) acceptPending(ctx context.Context, retry *time.Timer) error {
	if l.pending == nil {
		return nil
	}
	if err := l.accept(ctx, *l.pending); err != nil {
		l.m.writeFailures.Inc()
		if stop := l.failed(ctx, err); stop != nil {
			return stop
		}
		retry.Reset(retryDelay)
		return nil
	}
	l.pending = nil
	l.follow()
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
	if err := l.restoreHeld(ctx); err != nil {
		return err
	}
	d, err := l.st.Desired(ctx)
	if err != nil {
		return err
	}
	if d != nil {
		set := setFromDesired(d)
		if err := l.restoreAddresses(ctx, set); err != nil {
			return err
		}
		l.desired = set
		l.log.Info("restored the last good revision", "commit", short(d.Revision.Commit))
	}
	return nil
}

// restoreAddresses gives the restored revision's Services their addresses:
// those it records, else (a revision stored by a bosun that did not
// allocate) those of the Services stored in etcd, else new ones. Nothing
// is written: the next pass stores the Services, and a restart finds the
// same addresses in them.
func (l *leader) restoreAddresses(ctx context.Context, set *manifest.Set) error {
	var stored []corev1.Service
	if !ipalloc.Complete(set.Services) {
		rev, err := l.st.Revision(ctx)
		if err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, readOwnWritesTimeout)
		err = l.cache.WaitFor(wctx, rev)
		cancel()
		if err != nil {
			return fmt.Errorf("read the stored Services: %w", err)
		}
		snap, err := l.cache.Snapshot(ctx)
		if err != nil {
			return err
		}
		stored = snap.Services
	}
	out, errs := ipalloc.Allocate(l.cfg.Services, set.Services, set.Services, stored)
	if len(errs) > 0 {
		// The ranges changed since the revision was accepted: its Services
		// keep what they have until a revision that fits is accepted.
		l.log.Warn("the last good revision's Services do not fit the service CIDR or node port range; they keep their addresses until a revision that fits",
			"service-cidr", l.cfg.Services.ServiceCIDR, "node-port-range", l.cfg.Services.NodePorts, "errors", len(errs), "first", errs[0].Error())
	}
	set.Services = out
	return nil
}

// accept loads a revision's manifests. A revision with any invalid manifest
// is rejected whole: the last good one stays desired and the status lists
// every error. The desired state, the history and the status are written
// in one fenced transaction, and the leader's memory of them changes only
// once that write succeeded.
func (l *leader) accept(ctx context.Context, rev gitsource.Revision) error {
	r := store.Revision{Commit: rev.Commit, Author: rev.Author, Message: firstLine(rev.Message), Time: rev.Time, Signer: signerOf(rev)}
	if n := l.history.newestRevision(); n != nil && n.Commit == r.Commit && l.sync.Seen != nil && l.sync.Seen.Commit == r.Commit &&
		(n.Result != store.ResultRejected || n.Signer == r.Signer) {
		// The Git source re-emits its head on start: nothing new. A head
		// rejected is judged again when the keys' verdict on it changed
		// (they are read at start).
		return nil
	}
	if rev.Trigger == gitsource.TriggerStart && l.sync.Seen != nil && l.sync.Seen.Commit != r.Commit {
		// This server's own clone, not fetched yet: with several servers
		// it is as old as this server's last time as leader, and applying
		// it would roll the cluster back until the fetch. The cluster's
		// desired state (from etcd) keeps running; the fetch decides.
		l.log.Info("not resuming this server's clone: the cluster has seen another commit since; waiting for the fetch",
			"clone", short(r.Commit), "cluster", short(l.sync.Seen.Commit))
		return nil
	}
	sync, hist, desired := l.sync, l.history.clone(), l.desired
	sync.Seen = &r
	entry := store.HistoryEntry{Revision: r, SeenAt: time.Now()}
	var ops []store.Op
	var set *manifest.Set
	var windows []syncwindow.Window // the revision's own (syncwindow.go)
	var rawWindows []byte
	var held *heldRevision
	var err error
	if why := untrusted(rev); why != "" {
		err = errors.New(why) // rejected whole, before its manifests are read
	} else {
		set, windows, rawWindows, err = l.loadRevision(rev.Dir)
	}
	if err == nil {
		snap, serr := l.cache.Snapshot(ctx)
		if serr != nil {
			return serr
		}
		set, err = finishRevision(l.key, l.cfg.Services, l.desired, set, snap.Services)
	}
	if err != nil {
		var errs manifest.Errors
		if errors.As(err, &errs) {
			sync.Errors = make([]string, len(errs))
			for i, e := range errs {
				sync.Errors[i] = e.Error()
			}
		} else {
			sync.Errors = []string{err.Error()}
		}
		entry.Result, entry.Errors = store.ResultRejected, sync.Errors
	} else if held = holdFor(r, set, windows, rawWindows, time.Now()); held != nil {
		entry.Result, entry.Detail = store.ResultHeld, held.detail()
		entry.Changes = changesBetween(l.desired, set)
		sync.Errors = nil
	} else {
		entry.Result = store.ResultProgressing
		entry.Changes = changesBetween(l.desired, set)
		op, err := store.PutDesired(desiredFrom(r, set))
		if err != nil {
			return err
		}
		ops = append(ops, op)
		desired = set
		sync.Applied = &r
		sync.Errors = nil
		var gs gitsource.Status
		if l.src != nil { // nil in tests of accept alone
			gs = l.src.Status()
		}
		sync.Branches = l.branchStatus(set, gs)
	}
	ops = append(ops, hist.add(entry)...)
	if entry.Result != store.ResultRejected {
		if ops, err = l.recordHold(ops, held, &hist, &sync); err != nil {
			return err
		}
	}
	sync.UpdatedAt = time.Now()
	op, err := store.PutSyncStatus(&sync)
	if err != nil {
		return err
	}
	if err := l.apply(ctx, append(ops, op)); err != nil {
		return fmt.Errorf("record revision %s: %w", short(rev.Commit), err)
	}
	l.recorded(l.history, hist)
	l.sync, l.history, l.desired = sync, hist, desired
	if entry.Result != store.ResultRejected {
		l.setHeld(held)
	}
	if held != nil {
		l.cfg.events.revision(r, entry)
		auditRevision(ctx, l.log, rev, false, "held", held.detail())
		l.m.revisions.WithLabelValues("held").Inc()
		l.log.Info("revision held by a sync window", "commit", short(rev.Commit), "until", held.until, "reason", held.reason)
		return nil
	}
	if entry.Result == store.ResultRejected {
		l.cfg.events.revision(r, entry)
		auditRevision(ctx, l.log, rev, false, "rejected", sync.Errors[0])
		l.m.revisions.WithLabelValues("rejected").Inc()
		l.log.Error("revision rejected; keeping the last good revision",
			"commit", short(rev.Commit), "errors", len(sync.Errors), "first", sync.Errors[0])
		return nil
	}
	l.cfg.events.revision(r, entry)
	auditRevision(ctx, l.log, rev, false, "accepted", "")
	l.m.revisions.WithLabelValues("accepted").Inc()
	l.log.Info("revision accepted", "commit", short(rev.Commit), "message", r.Message, "changes", len(entry.Changes),
		"pods", len(set.Pods), "deployments", len(set.Deployments), "services", len(set.Services))
	return nil
}

// recordFetchStatus copies the Git source's health into the sync status
// when it changed.
func (l *leader) recordFetchStatus(ctx context.Context) error {
	gs := l.src.Status()
	branches := l.branchStatus(l.desired, gs)
	if gs.FetchError == l.sync.FetchError && gs.LastFetch.Sub(l.sync.LastFetch) < time.Minute && slices.Equal(branches, l.sync.Branches) {
		return nil
	}
	sync := l.sync
	sync.FetchError = gs.FetchError
	sync.LastFetch = gs.LastFetch
	sync.Branches = branches
	sync.UpdatedAt = time.Now()
	op, err := store.PutSyncStatus(&sync)
	if err != nil {
		return err
	}
	if err := l.apply(ctx, []store.Op{op}); err != nil {
		return err
	}
	l.sync = sync
	return nil
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

// recorded passes on what a fenced write of the history from old to next
// changed (a revision's result, a rollout's outcome, a canary event), once
// that write succeeded: to the metrics and the notifications (notify.go).
func (l *leader) recorded(old, next book) {
	l.m.rolloutOutcomes(old.entries, next.entries)
	l.notifyHistory(old, next)
}
