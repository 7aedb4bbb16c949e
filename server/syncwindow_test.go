package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"bosun/gitsource"
	"bosun/store"
)

// windowsRevision is a revision holding one pod and, unless windows is
// "", a .bosun/windows.yaml.
func windowsRevision(t *testing.T, commit, windows string) gitsource.Revision {
	t.Helper()
	rev := revisionDir(t, commit, strings.Replace(leaderTestPod, "bosun-hello:v1", "bosun-hello:"+commit[:4], 1))
	if windows != "" {
		if err := os.MkdirAll(filepath.Join(rev.Dir, ".bosun"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rev.Dir, ".bosun", "windows.yaml"), []byte(windows), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return rev
}

// denyNow is a deny window that opened a minute ago and lasts an hour.
func denyNow(extra string) string {
	start := time.Now().UTC().Add(-time.Minute)
	return fmt.Sprintf("windows:\n- kind: deny\n  schedule: \"%d %d * * *\"\n  duration: 1h\n%s", start.Minute(), start.Hour(), extra)
}

func newWindowLeader(t *testing.T, st *store.Store, lead *store.Leadership) (*leader, *metrics) {
	t.Helper()
	m := newMetrics(prometheus.NewRegistry())
	l := &leader{cfg: Config{ID: "a", HistoryLimit: 10}, st: st, cache: store.RunTestCache(t, st, store.CacheConfig{}),
		lead: lead, log: slog.New(slog.DiscardHandler), m: m}
	if err := l.restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l, m
}

func accepted(t *testing.T, l *leader, rev gitsource.Revision) {
	t.Helper()
	if err := l.accept(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
}

// TestLeader_syncWindowHoldsForceAndFailover: a revision whose own windows
// deny now is held (history, status, etcd), the running revision stays;
// a new leader restores the hold; a force naming another commit is
// ignored, one naming it applies it and records who and why.
func TestLeader_syncWindowHoldsForceAndFailover(t *testing.T) {
	ctx := context.Background()
	st := store.NewTest(t)
	lead := newLeadership(t, st)
	l, m := newWindowLeader(t, st, lead)

	accepted(t, l, windowsRevision(t, "c1c1c1c1c1c1c1c1", ""))
	held := windowsRevision(t, "c2c2c2c2c2c2c2c2", denyNow(""))
	accepted(t, l, held)
	assertStored(t, st, 2, "c1c1c1c1c1c1c1c1")
	h, _ := st.History(ctx)
	if h[0].Result != store.ResultHeld || !strings.HasPrefix(h[0].Detail, "held (sync window until ") ||
		!strings.Contains(h[0].Detail, "deny window .bosun/windows.yaml:2") || len(h[0].Changes) == 0 {
		t.Fatalf("held entry: %+v", h[0])
	}
	sync, _ := st.SyncStatus(ctx)
	if sync.Held == nil || sync.Held.Revision.Commit != held.Commit || sync.Held.Until.IsZero() || sync.Applied.Commit != "c1c1c1c1c1c1c1c1" {
		t.Fatalf("status: held %+v applied %+v", sync.Held, sync.Applied)
	}
	if until := time.Until(sync.Held.Until); until < 58*time.Minute || until > time.Hour {
		t.Errorf("held until %v, want about an hour from now", sync.Held.Until)
	}
	if got := testutil.ToFloat64(m.windows.blocked); got != 1 {
		t.Errorf("bosun_sync_window_blocked = %v, want 1", got)
	}
	// The Git source sends its head again (a restart): nothing new.
	accepted(t, l, held)
	assertStored(t, st, 2, "c1c1c1c1c1c1c1c1")

	// Failover: the new leader holds the same revision, from etcd.
	l2, m2 := newWindowLeader(t, st, lead)
	if l2.held == nil || l2.held.rev.Commit != held.Commit || l2.held.seq != h[0].Seq || len(l2.held.windows) != 1 {
		t.Fatalf("restored hold: %+v", l2.held)
	}
	if plan, err := l2.windowRequest(ctx, store.SyncRequestSpec{Manual: true, By: "ops"}); err != nil || plan {
		t.Fatalf("a manual sync applied a revision whose windows do not allow it: %v %v", plan, err)
	}
	if plan, err := l2.windowRequest(ctx, store.SyncRequestSpec{Force: true, Commit: "c9c9c9c9", By: "ops", Why: "x"}); err != nil || plan {
		t.Fatalf("a force naming another commit applied: %v %v", plan, err)
	}
	if plan, err := l2.windowRequest(ctx, store.SyncRequestSpec{Force: true, Commit: held.Commit, By: "ops", Why: "hotfix for incident 42"}); err != nil || !plan {
		t.Fatalf("force: %v %v", plan, err)
	}
	assertStored(t, st, 2, held.Commit)
	h, _ = st.History(ctx)
	if h[0].Result != store.ResultProgressing || h[0].Detail != "forced by ops: hotfix for incident 42" || h[0].AppliedAt.IsZero() {
		t.Fatalf("forced entry: %+v", h[0])
	}
	if stored, _ := st.Held(ctx); stored != nil {
		t.Error("etcd still holds the forced revision")
	}
	sync, _ = st.SyncStatus(ctx)
	if sync.Held != nil || sync.Applied.Commit != held.Commit {
		t.Fatalf("status after force: held %+v applied %+v", sync.Held, sync.Applied)
	}
	if testutil.ToFloat64(m2.windows.forced) != 1 || testutil.ToFloat64(m2.windows.blocked) != 0 {
		t.Errorf("forced %v blocked %v, want 1 and 0", testutil.ToFloat64(m2.windows.forced), testutil.ToFloat64(m2.windows.blocked))
	}
}

// TestLeader_syncWindowSupersedeRejectAndEnd: a rejected revision leaves
// the held one held; a newer valid one supersedes it; manualSync lets a
// manual sync apply; a block that ends applies the held revision; a bad
// windows file rejects the revision with file:line.
func TestLeader_syncWindowSupersedeRejectAndEnd(t *testing.T) {
	ctx := context.Background()
	st := store.NewTest(t)
	l, _ := newWindowLeader(t, st, newLeadership(t, st))
	accepted(t, l, windowsRevision(t, "a1a1a1a1a1a1a1a1", ""))
	accepted(t, l, windowsRevision(t, "a2a2a2a2a2a2a2a2", denyNow("")))
	accepted(t, l, revisionDir(t, "a3a3a3a3a3a3a3a3", "kind: Nonsense\n"))
	if l.held == nil || l.held.rev.Commit != "a2a2a2a2a2a2a2a2" {
		t.Fatalf("a rejected revision ended the hold: %+v", l.held)
	}
	sync, _ := st.SyncStatus(ctx)
	if sync.Held == nil || len(sync.Errors) == 0 {
		t.Fatalf("status: held %v errors %v", sync.Held, sync.Errors)
	}

	// A bad windows file is an error of the revision.
	bad := windowsRevision(t, "a4a4a4a4a4a4a4a4", "windows:\n- kind: deny\n  schedule: \"0 17 * * 5\"\n  duration: forever\n")
	accepted(t, l, bad)
	sync, _ = st.SyncStatus(ctx)
	if len(sync.Errors) != 1 || !strings.HasPrefix(sync.Errors[0], ".bosun/windows.yaml:4: windows[0].duration: invalid duration") {
		t.Fatalf("errors of a bad windows file: %q", sync.Errors)
	}

	// A newer revision outside any window supersedes the held one.
	accepted(t, l, windowsRevision(t, "a5a5a5a5a5a5a5a5", ""))
	assertStored(t, st, 5, "a5a5a5a5a5a5a5a5")
	h, _ := st.History(ctx)
	for _, e := range h {
		if e.Commit == "a2a2a2a2a2a2a2a2" && e.Result != store.ResultSuperseded {
			t.Errorf("held entry after a newer revision: %s", e.Result)
		}
	}
	if stored, _ := st.Held(ctx); stored != nil || l.held != nil {
		t.Error("a superseded held revision is still held")
	}

	// manualSync: a manual sync applies.
	accepted(t, l, windowsRevision(t, "a6a6a6a6a6a6a6a6", denyNow("  manualSync: true\n")))
	if plan, err := l.windowRequest(ctx, store.SyncRequestSpec{Manual: true, By: "ops"}); err != nil || !plan {
		t.Fatalf("manual sync inside a manualSync window: %v %v", plan, err)
	}
	assertStored(t, st, 6, "a6a6a6a6a6a6a6a6")

	// The block ends: the timer's check applies it.
	accepted(t, l, windowsRevision(t, "a7a7a7a7a7a7a7a7", denyNow("")))
	if plan, err := l.windowCheck(ctx); err != nil || plan {
		t.Fatalf("check inside the window: %v %v", plan, err)
	}
	l.held.windows = nil // the window is over
	if plan, err := l.windowCheck(ctx); err != nil || !plan {
		t.Fatalf("check after the window: %v %v", plan, err)
	}
	assertStored(t, st, 7, "a7a7a7a7a7a7a7a7")
	h, _ = st.History(ctx)
	if h[0].Result != store.ResultProgressing || !strings.HasPrefix(h[0].Detail, "applied as the sync window ended") {
		t.Fatalf("entry applied at the window's end: %+v", h[0])
	}
}

// TestLeader_syncWindowReleaseRetriedAfterAFailedWrite: a force whose
// write fails is kept and applied by the next window check (the API had
// already accepted it), and a window check whose write fails re-arms the
// timer instead of leaving the revision held with no timer.
func TestLeader_syncWindowReleaseRetriedAfterAFailedWrite(t *testing.T) {
	ctx := context.Background()
	st := store.NewTest(t)
	lead := newLeadership(t, st)
	l, _ := newWindowLeader(t, st, lead)
	l.windowTimer = time.NewTimer(time.Hour)
	defer l.windowTimer.Stop()
	failing := false
	l.write = func(ctx context.Context, ops []store.Op) error {
		if failing {
			return errors.New("injected: etcd unavailable")
		}
		return lead.Apply(ctx, ops)
	}
	accepted(t, l, windowsRevision(t, "c1c1c1c1c1c1c1c1", ""))
	held := windowsRevision(t, "c2c2c2c2c2c2c2c2", denyNow(""))
	accepted(t, l, held)

	failing = true
	if plan, err := l.windowRequest(ctx, store.SyncRequestSpec{Force: true, Commit: held.Commit, By: "ops", Why: "hotfix"}); err != nil || plan {
		t.Fatalf("force with a failing write: plan %v err %v, want false and nil (retried)", plan, err)
	}
	if l.held == nil || l.release == nil || l.release.how != "forced" {
		t.Fatalf("after the failed force: held %v release %+v", l.held != nil, l.release)
	}
	assertStored(t, st, 2, "c1c1c1c1c1c1c1c1")
	// The timer fires again (retryDelay); the write still fails: re-armed.
	select {
	case <-l.windowTimer.C:
	case <-time.After(5 * time.Second):
		t.Fatal("the window timer was not re-armed after the failed force")
	}
	if plan, err := l.windowCheck(ctx); err != nil || plan {
		t.Fatalf("window check with a failing write: %v %v", plan, err)
	}
	select {
	case <-l.windowTimer.C:
	case <-time.After(5 * time.Second):
		t.Fatal("the window timer was not re-armed after a failed window check")
	}
	failing = false
	if plan, err := l.windowCheck(ctx); err != nil || !plan {
		t.Fatalf("window check: %v %v", plan, err)
	}
	assertStored(t, st, 2, held.Commit)
	h, _ := st.History(ctx)
	if h[0].Commit != held.Commit || h[0].Detail != "forced by ops: hotfix" {
		t.Fatalf("entry after the retried force: %+v", h[0])
	}
	if l.release != nil || l.held != nil {
		t.Errorf("after the release: release %+v held %v", l.release, l.held != nil)
	}
}
