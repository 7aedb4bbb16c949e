package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"bosun/audit"
	"bosun/manifest"
	"bosun/store"
	"bosun/syncwindow"
)

// Sync windows (package syncwindow) hold new revisions of the tracked
// branch; this file is the leader's side of them.
//
// Which windows: those of the revision itself. A commit's
// .bosun/windows.yaml governs that commit, as Argo CD applies a change of
// its project at once: a commit that adds a freeze is held by it, a
// commit that removes or shortens a freeze ends it (and is applied), and
// either went through review like any other change. The file is read at
// the root of the repository whatever --path says: one freeze per branch.
// An invalid file rejects the revision like an invalid manifest, so the
// windows in force are never guessed.
//
// What is held: applying a new revision of the tracked branch, nothing
// else. Reconcile passes go on with the applied revision, so pods that die
// are replaced and nodes lost are drained inside a window (self-heal); a
// held revision is fetched and validated (a bad one is rejected at once)
// and recorded as a history entry with ResultHeld. A newer revision
// supersedes a held one; a newer rejected one leaves it held.
//
// When it is applied: when its windows stop blocking (a timer of the
// leader loop, at the time syncwindow.Active computed), by a manual
// `bosun sync` when its windows allow manual syncs, or at once by
// `bosun sync --force --reason` (admin; the history entry records who and
// why). The held revision's objects and windows file are kept in etcd
// (store.Held), so a new leader recomputes the block from them after a
// failover, whatever commit its own clone is at.

// heldRevision is the revision a sync window holds.
type heldRevision struct {
	rev     store.Revision
	set     *manifest.Set
	windows []syncwindow.Window
	raw     []byte // windows as in Git
	seq     int64  // its history entry
	until   time.Time
	reason  string
	// unparsed: restored windows that this bosun no longer parses; they
	// hold until a force or a newer revision.
	unparsed bool
}

// windowRecheck is how often a block without a known end (none within
// syncwindow.Horizon) is looked at again.
const windowRecheck = time.Hour

// windowMetrics are the sync windows' metrics.
type windowMetrics struct {
	blocked prometheus.Gauge
	held    prometheus.Counter
	forced  prometheus.Counter
	applied *prometheus.CounterVec
}

func newWindowMetrics(reg prometheus.Registerer) *windowMetrics {
	m := &windowMetrics{
		blocked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bosun_sync_window_blocked", Help: "1 while a sync window holds a revision of the tracked branch.",
		}),
		held: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_sync_window_held_revisions_total", Help: "Revisions a sync window held when they were fetched.",
		}),
		forced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_sync_window_forced_syncs_total", Help: "Held revisions applied by `bosun sync --force`.",
		}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_sync_window_released_total", Help: "Held revisions applied, by how (window_end, manual, forced).",
		}, []string{"how"}),
	}
	reg.MustRegister(m.blocked, m.held, m.forced, m.applied)
	return m
}

// loadRevision loads a revision's manifests under --path and its windows
// file at the root, listing the problems of both.
func (l *leader) loadRevision(dir string) (*manifest.Set, []syncwindow.Window, []byte, error) {
	set, err := l.cfg.Policy.LoadDir(dir, l.cfg.Path)
	windows, raw, werr := syncwindow.Load(dir)
	return mergeWindowErrors(set, windows, raw, err, werr)
}

// planWindows adds the problems of a ref's windows file to `bosun plan`'s
// load of its manifests, as the leader would reject them.
func planWindows(dir string, set *manifest.Set, err error) (*manifest.Set, error) {
	windows, raw, werr := syncwindow.Load(dir)
	set, _, _, err = mergeWindowErrors(set, windows, raw, err, werr)
	return set, err
}

// mergeWindowErrors joins the manifests' and the windows file's problems
// into one sorted manifest.Errors.
func mergeWindowErrors(set *manifest.Set, windows []syncwindow.Window, raw []byte, err, werr error) (*manifest.Set, []syncwindow.Window, []byte, error) {
	if werr == nil {
		return set, windows, raw, err
	}
	var errs, more manifest.Errors
	if err != nil && !errors.As(err, &errs) {
		return nil, nil, nil, err
	}
	if !errors.As(werr, &more) {
		return nil, nil, nil, werr
	}
	errs = append(append(manifest.Errors{}, errs...), more...)
	manifest.SortErrors(errs)
	return nil, nil, nil, errs
}

// holdFor decides whether a valid revision's own windows hold it now;
// nil when it may be applied.
func holdFor(r store.Revision, set *manifest.Set, windows []syncwindow.Window, raw []byte, now time.Time) *heldRevision {
	blocked, until, reason := syncwindow.Active(windows, now)
	if !blocked {
		return nil
	}
	return &heldRevision{rev: r, set: set, windows: windows, raw: raw, until: until, reason: reason}
}

// detail is the held entry's Detail: "held (sync window until <time>):
// <why>".
func (h *heldRevision) detail() string {
	until := "held (sync window"
	if !h.until.IsZero() {
		until += " until " + h.until.UTC().Format(time.RFC3339)
	}
	return until + "): " + h.reason
}

func (h *heldRevision) status() *store.HeldStatus {
	return &store.HeldStatus{Revision: h.rev, Until: h.until, Reason: h.reason}
}

// recordHold adds to a revision's ops what its hold changes: the held
// revision stored (h, whose history entry is hist's newest) or forgotten
// (a revision applied while another was held), and the status.
func (l *leader) recordHold(ops []store.Op, h *heldRevision, hist *book, sync *store.SyncStatus) ([]store.Op, error) {
	if h == nil {
		if l.held != nil {
			ops = append(ops, store.DeleteHeld())
		}
		sync.Held = nil
		return ops, nil
	}
	h.seq = hist.newest().Seq
	op, err := store.PutHeld(&store.Held{Desired: *desiredFrom(h.rev, h.set), Windows: h.raw, Seq: h.seq})
	if err != nil {
		return nil, err
	}
	sync.Held = h.status()
	return append(ops, op), nil
}

// held records in memory what a revision's write did to the hold: the
// new held revision (nil when one was applied).
func (l *leader) setHeld(h *heldRevision) {
	if h != nil {
		l.m.windows.held.Inc()
	}
	l.held = h
	if l.release != nil && (h == nil || h.rev.Commit != l.release.commit) {
		l.release = nil
	}
	l.armWindowTimer()
}

// armWindowTimer sets the timer to the end of the hold.
func (l *leader) armWindowTimer() {
	if l.m.windows != nil {
		l.m.windows.blocked.Set(map[bool]float64{true: 1}[l.held != nil])
	}
	if l.windowTimer == nil {
		return
	}
	l.windowTimer.Stop()
	switch {
	case l.held == nil:
	case l.held.until.IsZero():
		l.windowTimer.Reset(windowRecheck)
	default:
		l.windowTimer.Reset(max(time.Until(l.held.until), 0))
	}
}

// restoreHeld picks up the revision the previous leader held (or re-reads
// it after a failed write), and has the loop decide on it again at once
// (windowCheck). On an error what the leader held stays as it was.
func (l *leader) restoreHeld(ctx context.Context) error {
	if l.sync.Held == nil {
		l.setHeldRestored(nil)
		return nil
	}
	stored, err := l.st.Held(ctx)
	if err != nil {
		return err
	}
	if stored == nil { // written by nobody but the leader, with the status: not expected
		l.log.Warn("the sync status names a held revision that etcd does not hold; forgetting it", "commit", short(l.sync.Held.Revision.Commit))
		l.sync.Held = nil
		l.setHeldRestored(nil)
		return nil
	}
	windows, err := syncwindow.Parse(stored.Windows)
	if err != nil {
		// Parsed when the revision was held: a later bosun refuses what an
		// earlier one took. Holding on is the safe side; --force applies it.
		l.log.Warn("the held revision's windows no longer parse; holding it until a sync --force or a newer revision", "err", err)
	}
	h := &heldRevision{rev: l.sync.Held.Revision, set: setFromDesired(&stored.Desired), windows: windows, raw: stored.Windows,
		seq: stored.Seq, until: l.sync.Held.Until, reason: l.sync.Held.Reason, unparsed: err != nil}
	if err != nil {
		h.until = time.Time{}
	}
	l.setHeldRestored(h)
	return nil
}

// setHeldRestored sets the held revision read from etcd, drops a failed
// release of another revision, and has the loop decide on it at once.
func (l *leader) setHeldRestored(h *heldRevision) {
	l.held = h
	if l.release != nil && (h == nil || h.rev.Commit != l.release.commit) {
		l.release = nil
	}
	if l.m.windows != nil {
		l.m.windows.blocked.Set(map[bool]float64{true: 1}[h != nil])
	}
	if l.windowTimer != nil {
		l.windowTimer.Stop()
		if h != nil {
			l.windowTimer.Reset(0)
		}
	}
}

// releaseRequest is a forced or manual release of the held revision
// (commit), kept to be tried again when its write failed.
type releaseRequest struct {
	commit, how, by, why string
}

// windowFailed handles a failed write of windowCheck or windowRequest:
// the leadership's end is returned; otherwise the check is tried again
// after retryDelay, whatever the state re-read after the failure says
// (a release retried, the block's end computed again).
func (l *leader) windowFailed(ctx context.Context, err error) error {
	if stop := l.failed(ctx, err); stop != nil {
		return stop
	}
	if l.held != nil && l.windowTimer != nil {
		l.windowTimer.Stop()
		l.windowTimer.Reset(retryDelay)
	}
	return nil
}

// windowCheck decides on the held revision again, when the timer fires:
// a forced or manual release whose write failed is tried again; else it
// is applied if its windows no longer block it, else the block's end is
// computed again. plan says whether a reconcile pass should follow.
func (l *leader) windowCheck(ctx context.Context) (plan bool, stop error) {
	h := l.held
	if h == nil {
		return false, nil
	}
	if r := l.release; r != nil && r.commit == h.rev.Commit {
		if err := l.releaseHeld(ctx, r.how, r.by, r.why); err != nil {
			return false, l.windowFailed(ctx, err)
		}
		return true, nil
	}
	now := time.Now()
	blocked, until, reason := syncwindow.Active(h.windows, now)
	if h.unparsed {
		blocked, until, reason = true, time.Time{}, h.reason
	}
	if !blocked {
		if err := l.releaseHeld(ctx, "window_end", "", ""); err != nil {
			return false, l.windowFailed(ctx, err)
		}
		return true, nil
	}
	if !until.Equal(h.until) || reason != h.reason {
		if err := l.updateHold(ctx, until, reason); err != nil {
			return false, l.windowFailed(ctx, err)
		}
	}
	l.armWindowTimer()
	return false, nil
}

// updateHold records a new end of the block (a block whose end was beyond
// the search horizon, a clock that moved).
func (l *leader) updateHold(ctx context.Context, until time.Time, reason string) error {
	h := *l.held
	h.until, h.reason = until, reason
	sync, hist := l.sync, l.history.clone()
	sync.Held = h.status()
	sync.UpdatedAt = time.Now()
	var ops []store.Op
	if e := hist.entry(h.seq); e != nil {
		e.Detail = h.detail()
		ops = append(ops, put(e))
	}
	op, err := store.PutSyncStatus(&sync)
	if err != nil {
		return err
	}
	if err := l.apply(ctx, append(ops, op)); err != nil {
		return err
	}
	l.sync, l.history, l.held = sync, hist, &h
	return nil
}

// windowRequest applies the held revision for a sync request that may:
// `bosun sync --force` naming it, or a manual `bosun sync` its windows
// allow. plan says whether a reconcile pass should follow.
func (l *leader) windowRequest(ctx context.Context, req store.SyncRequestSpec) (plan bool, stop error) {
	h := l.held
	switch {
	case !req.Force && !req.Manual:
		return false, nil
	case req.Force && (h == nil || h.rev.Commit != req.Commit):
		held := "none"
		if h != nil {
			held = short(h.rev.Commit)
		}
		l.log.Warn("sync --force ignored: it names a revision that is not the one held", "commit", short(req.Commit), "held", held, "by", req.By)
		return false, nil
	case h == nil:
		return false, nil
	case req.Force:
		return l.releaseRequested(ctx, releaseRequest{commit: h.rev.Commit, how: "forced", by: req.By, why: req.Why})
	case !h.unparsed && syncwindow.ManualAllowed(h.windows, time.Now()):
		return l.releaseRequested(ctx, releaseRequest{commit: h.rev.Commit, how: "manual", by: req.By})
	}
	l.log.Info("manual sync: the held revision stays held (its windows do not allow manual syncs; sync --force overrides)",
		"commit", short(h.rev.Commit), "reason", h.reason)
	return false, nil
}

// releaseRequested applies the held revision for a request; when the
// write fails the request is kept and tried again (windowCheck), so a
// `bosun sync --force` the API accepted is not lost to an etcd hiccup.
func (l *leader) releaseRequested(ctx context.Context, r releaseRequest) (plan bool, stop error) {
	if err := l.releaseHeld(ctx, r.how, r.by, r.why); err != nil {
		l.release = &r
		return false, l.windowFailed(ctx, err)
	}
	return true, nil
}

// releaseHeld applies the held revision: how is window_end, manual or
// forced; by and why say who forced it and why.
func (l *leader) releaseHeld(ctx context.Context, how, by, why string) error {
	h := l.held
	now := time.Now()
	var detail string
	switch how {
	case "forced":
		detail = "forced by " + by + ": " + why
	case "manual":
		detail = "applied by a manual sync by " + by + " (the windows allow manual syncs)"
	default:
		detail = "applied as the sync window ended (held since it was seen)"
	}
	sync, hist := l.sync, l.history.clone()
	op, err := store.PutDesired(desiredFrom(h.rev, h.set))
	if err != nil {
		return err
	}
	ops := append([]store.Op{op, store.DeleteHeld()}, hist.release(h.seq, detail, now)...)
	r := h.rev
	sync.Applied = &r
	sync.Held = nil
	if l.src != nil {
		sync.Branches = l.branchStatus(h.set, l.src.Status())
	}
	sync.UpdatedAt = now
	op, err = store.PutSyncStatus(&sync)
	if err != nil {
		return err
	}
	if err := l.apply(ctx, append(ops, op)); err != nil {
		return err
	}
	l.recorded(l.history, hist)
	if e := hist.entry(h.seq); e != nil {
		l.cfg.events.revision(h.rev, *e)
	}
	l.sync, l.history, l.desired = sync, hist, h.set
	l.release = nil
	l.setHeld(nil)
	if how == "forced" {
		l.m.windows.forced.Inc()
	}
	l.m.windows.applied.WithLabelValues(how).Inc()
	l.m.revisions.WithLabelValues("accepted").Inc()
	actor := by
	if actor == "" {
		actor = "sync window"
	}
	audit.Log(ctx, l.log, "revision.released", actor, slog.String("commit", h.rev.Commit), slog.String("how", how), slog.String("reason", why))
	l.log.Info("held revision applied", "commit", short(h.rev.Commit), "how", how)
	if l.src != nil {
		l.follow()
	}
	return nil
}

// entry returns the entry of seq, or nil.
func (b *book) entry(seq int64) *store.HistoryEntry {
	for i := range b.entries {
		if b.entries[i].Seq == seq {
			return &b.entries[i]
		}
	}
	return nil
}

// release turns the held entry seq into the progressing one, at now: the
// revision it records is applied. A revision still rolling out is
// superseded, as by any applied revision.
func (b *book) release(seq int64, detail string, now time.Time) []store.Op {
	var ops []store.Op
	for i := range b.entries {
		if b.entries[i].Result == store.ResultProgressing {
			b.entries[i].Result = store.ResultSuperseded
			ops = append(ops, put(&b.entries[i]))
		}
	}
	if e := b.entry(seq); e != nil { // gone when the history limit dropped it
		e.Result, e.Detail, e.AppliedAt = store.ResultProgressing, detail, now
		ops = append(ops, put(e))
	}
	return ops
}
