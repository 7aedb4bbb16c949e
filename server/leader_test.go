package server

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"bosun/gitsource"
	"bosun/store"
)

const leaderTestPod = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: localhost/bosun-hello:v1
`

// revisionDir is a checked-out revision holding one file.
func revisionDir(t *testing.T, commit, manifest string) gitsource.Revision {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	return gitsource.Revision{Commit: commit, Author: "Ada <ada@example.com>", Message: "commit " + commit, Time: time.Now(), Dir: dir}
}

// TestLeader_failedWriteChangesNothingAndIsRetried injects failures into
// the leader's fenced write on a real etcd: a write that did not happen
// leaves the leader's memory as etcd has it, and the revision is accepted
// again at retry; a write that happened although it reported an error
// (a timeout after the commit) is found by re-reading etcd, so the retry
// records the revision once, not twice.
func TestLeader_failedWriteChangesNothingAndIsRetried(t *testing.T) {
	ctx := context.Background()
	st := store.NewTest(t)
	lead := newLeadership(t, st)
	m := newMetrics(prometheus.NewRegistry())
	l := &leader{cfg: Config{ID: "a", HistoryLimit: 10}, st: st, cache: store.RunTestCache(t, st, store.CacheConfig{}),
		lead: lead, log: slog.New(slog.DiscardHandler), m: m}
	if err := l.restore(ctx); err != nil {
		t.Fatal(err)
	}
	errInjected := errors.New("injected: etcd unavailable")
	mode := "fail" // fail: write nothing; late: write, then fail; "": write
	l.write = func(ctx context.Context, ops []store.Op) error {
		switch mode {
		case "fail":
			return errInjected
		case "late":
			if err := lead.Apply(ctx, ops); err != nil {
				return err
			}
			return errInjected
		}
		return lead.Apply(ctx, ops)
	}
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()

	rev := revisionDir(t, "c1c1c1c1c1c1c1c1", leaderTestPod)
	l.pending = &rev
	if err := l.acceptPending(ctx, retry); err != nil {
		t.Fatalf("a failed write is retried, not the end of the leadership: %v", err)
	}
	if l.pending == nil || l.desired != nil || l.sync.Seen != nil || l.sync.Applied != nil || len(l.history.entries) != 0 {
		t.Fatalf("memory ran ahead of a write that failed: pending %v desired %v seen %v history %d",
			l.pending != nil, l.desired != nil, l.sync.Seen, len(l.history.entries))
	}
	assertStored(t, st, 0, "")
	if got := testutil.ToFloat64(m.writeFailures); got != 1 {
		t.Errorf("bosun_revision_write_failures_total = %v, want 1", got)
	}

	// The write happens but reports an error: re-reading etcd finds it.
	mode = "late"
	if err := l.acceptPending(ctx, retry); err != nil {
		t.Fatal(err)
	}
	assertStored(t, st, 1, rev.Commit)
	if l.desired == nil || l.sync.Applied == nil || l.sync.Applied.Commit != rev.Commit || len(l.history.entries) != 1 {
		t.Fatalf("after re-reading etcd the leader's memory differs from it: desired %v applied %v history %d",
			l.desired != nil, l.sync.Applied, len(l.history.entries))
	}

	// The retry succeeds and records the revision once.
	mode = ""
	if err := l.acceptPending(ctx, retry); err != nil {
		t.Fatal(err)
	}
	if l.pending != nil {
		t.Error("the revision is still pending after a successful write")
	}
	assertStored(t, st, 1, rev.Commit)

	// A rejected revision's failed write leaves the good one in place.
	mode = "fail"
	bad := revisionDir(t, "d2d2d2d2d2d2d2d2", "kind: Nonsense\n")
	l.pending = &bad
	if err := l.acceptPending(ctx, retry); err != nil {
		t.Fatal(err)
	}
	if l.sync.Seen.Commit != rev.Commit || len(l.sync.Errors) != 0 || len(l.history.entries) != 1 {
		t.Fatalf("a rejected revision whose write failed changed memory: seen %s errors %v", l.sync.Seen.Commit, l.sync.Errors)
	}
	mode = ""
	if err := l.acceptPending(ctx, retry); err != nil {
		t.Fatal(err)
	}
	sync, _ := st.SyncStatus(ctx)
	if sync.Seen.Commit != bad.Commit || sync.Applied.Commit != rev.Commit || len(sync.Errors) == 0 {
		t.Fatalf("stored status: seen %v applied %v errors %v", sync.Seen, sync.Applied, sync.Errors)
	}
}

// assertStored checks etcd's history length and applied revision.
func assertStored(t *testing.T, st *store.Store, entries int, applied string) {
	t.Helper()
	ctx := context.Background()
	h, err := st.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != entries {
		t.Fatalf("etcd holds %d history entries, want %d", len(h), entries)
	}
	d, err := st.Desired(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if applied == "" && d != nil || applied != "" && (d == nil || d.Revision.Commit != applied) {
		t.Fatalf("etcd's desired revision is %+v, want %q", d, applied)
	}
}
