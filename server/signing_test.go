package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/gitsource"
	"bosun/manifest"
	"bosun/signature"
	"bosun/store"
)

var (
	alice  = signature.Signer{Kind: signature.OpenPGP, Identity: "Alice <alice@example.com>", Fingerprint: "0123456789ABCDEF0123456789ABCDEF01234567"}
	eveKey = &signature.UntrustedError{Kind: signature.SSH, Fingerprint: "SHA256:evekey", KeyType: "ed25519", In: "/keys/allowed_signers"}
)

func TestSignerOfAndUntrusted(t *testing.T) {
	rev := func(v *gitsource.Verification) gitsource.Revision {
		return gitsource.Revision{Commit: "1a2b3c4d5e6f7a8b", Verification: v}
	}
	for _, tc := range []struct {
		name          string
		v             *gitsource.Verification
		signer, error string
	}{
		{"not verified", nil, "", ""},
		{"trusted", &gitsource.Verification{Signer: alice}, "Alice <alice@example.com> (OpenPGP key 0123456789ABCDEF0123456789ABCDEF01234567)", ""},
		{"unsigned", &gitsource.Verification{Err: signature.ErrNotSigned}, "unsigned", "commit 1a2b3c4: not signed (--verify-commits is on)"},
		{"untrusted ssh", &gitsource.Verification{Err: eveKey}, "untrusted SSH key SHA256:evekey (ed25519)",
			"commit 1a2b3c4: signed by SSH key SHA256:evekey (ed25519), which is not in /keys/allowed_signers"},
		{"untrusted openpgp", &gitsource.Verification{Err: &signature.UntrustedError{Kind: signature.OpenPGP, Fingerprint: "FFFF", In: "/keys"}},
			"untrusted OpenPGP key FFFF", "commit 1a2b3c4: signed by OpenPGP key FFFF, which is not among the trusted OpenPGP keys in /keys"},
		{"bad", &gitsource.Verification{Err: errors.New("SSH signature by key SHA256:x does not verify")}, "invalid signature",
			"commit 1a2b3c4: SSH signature by key SHA256:x does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := signerOf(rev(tc.v)); got != tc.signer {
				t.Errorf("signerOf = %q, want %q", got, tc.signer)
			}
			if got := untrusted(rev(tc.v)); got != tc.error {
				t.Errorf("untrusted = %q, want %q", got, tc.error)
			}
		})
	}
}

// auditLog captures a leader's log as JSON lines.
type auditLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (a *auditLog) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.Write(p)
}

// lines returns the audit lines logged so far.
func (a *auditLog) lines(t *testing.T) []map[string]any {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(a.buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if m["audit"] == true {
			out = append(out, m)
		}
	}
	return out
}

// TestAccept_signatures runs the leader's accept on a real etcd with
// revisions as a verifying Git source hands them out: a trusted one is
// applied with its signer, an unsigned one is rejected whole (its
// manifests are not even read) while the good one stays, each logs one
// audit line, and a rejected head sent again is judged again only when
// the keys' verdict on it changed.
func TestAccept_signatures(t *testing.T) {
	ctx := context.Background()
	st := store.NewTest(t)
	var logs auditLog
	l := &leader{cfg: Config{ID: "a", HistoryLimit: 10, Branch: "main"}, st: st, cache: store.RunTestCache(t, st, store.CacheConfig{}),
		lead: newLeadership(t, st), log: slog.New(slog.NewJSONHandler(&logs, nil)), m: newMetrics(prometheus.NewRegistry())}
	if err := l.restore(ctx); err != nil {
		t.Fatal(err)
	}

	good := revisionDir(t, "a1a1a1a1a1a1a1a1", leaderTestPod)
	good.Branch, good.Trigger, good.Verification = "main", gitsource.TriggerPoll, &gitsource.Verification{Signer: alice}
	if err := l.accept(ctx, good); err != nil {
		t.Fatal(err)
	}
	if l.sync.Applied == nil || l.sync.Applied.Signer != alice.String() || l.history.entries[0].Signer != alice.String() {
		t.Fatalf("applied %+v history %+v: want the signer recorded", l.sync.Applied, l.history.entries[0])
	}

	// Invalid manifests too: the signature decides first, alone.
	unsigned := revisionDir(t, "b2b2b2b2b2b2b2b2", "kind: Nonsense\n")
	unsigned.Branch, unsigned.Trigger, unsigned.Verification = "main", "github push b2b2b2b by mallory", &gitsource.Verification{Err: signature.ErrNotSigned}
	if err := l.accept(ctx, unsigned); err != nil {
		t.Fatal(err)
	}
	want := "commit b2b2b2b: not signed (--verify-commits is on)"
	sync, err := st.SyncStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sync.Applied.Commit != good.Commit || len(sync.Errors) != 1 || sync.Errors[0] != want || sync.Seen.Signer != "unsigned" {
		t.Fatalf("stored status: applied %v seen %+v errors %q; want the good revision applied and %q", sync.Applied, sync.Seen, sync.Errors, want)
	}
	h, _ := st.History(ctx)
	if len(h) != 2 || h[0].Result != store.ResultRejected || h[0].Signer != "unsigned" || h[0].Errors[0] != want {
		t.Fatalf("history %+v", h)
	}

	lines := logs.lines(t)
	if len(lines) != 2 {
		t.Fatalf("%d audit lines, want 2: %v", len(lines), lines)
	}
	for i, w := range []map[string]any{
		{"event": "revision.accepted", "actor": "Alice <alice@example.com>", "commit": good.Commit, "branch": "main", "author": "Ada <ada@example.com>",
			"signer": alice.String(), "trigger": "poll", "result": "accepted"},
		{"event": "revision.rejected", "actor": "Ada <ada@example.com>", "commit": unsigned.Commit, "signer": "unsigned",
			"trigger": "github push b2b2b2b by mallory", "result": "rejected", "reason": want},
	} {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("audit line %d: %s = %v, want %v", i, k, lines[i][k], v)
			}
		}
	}

	// Sent again (a restart) with the same verdict: nothing new.
	if err := l.accept(ctx, unsigned); err != nil {
		t.Fatal(err)
	}
	if h, _ := st.History(ctx); len(h) != 2 {
		t.Fatalf("a rejected head re-sent with the same verdict wrote history: %d entries", len(h))
	}
	// Sent again after the keys changed (a restart with the signer's key
	// added): judged again, and now its manifests are read.
	unsigned.Verification = &gitsource.Verification{Signer: alice}
	if err := l.accept(ctx, unsigned); err != nil {
		t.Fatal(err)
	}
	h, _ = st.History(ctx)
	if len(h) != 3 || h[0].Signer != alice.String() || h[0].Result != store.ResultRejected || !strings.HasPrefix(h[0].Errors[0], "app.yaml:1:") {
		t.Fatalf("judged again: history %+v", h[0])
	}
}

func TestCanaryCandidate_untrustedHeadDoesNotRun(t *testing.T) {
	d := appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}}
	desired := &manifest.Set{Deployments: []appsv1.Deployment{d}}
	rev := gitsource.Revision{Branch: "canary/web-v2", Commit: "c3c3c3c3c3c3c3c3", Message: "v2", Dir: "/nonexistent",
		Verification: &gitsource.Verification{Err: eveKey}}
	loaded := map[string]loadedBranch{}
	cand := canaryCandidate(manifest.Policy{}, "", nil, desired, &d, rev, loaded)
	want := "branch canary/web-v2: commit c3c3c3c: signed by SSH key SHA256:evekey (ed25519), which is not in /keys/allowed_signers"
	if cand.Err != want || cand.Template != nil {
		t.Fatalf("candidate err %q template %v, want %q", cand.Err, cand.Template != nil, want)
	}
	if len(loaded) != 0 {
		t.Error("the untrusted branch's manifests were loaded")
	}
}

// TestAccept_staleCloneAtStart: a server that becomes leader again sends
// the head of its own clone at start, before its first fetch; when the
// cluster has seen another commit since (another server led meanwhile),
// that head is not applied: the cluster would roll back until the fetch.
// The same commit, or a fetched revision, is applied as always.
func TestAccept_staleCloneAtStart(t *testing.T) {
	ctx := context.Background()
	st := store.NewTest(t)
	l := &leader{cfg: Config{ID: "a", HistoryLimit: 10, Branch: "main"}, st: st, cache: store.RunTestCache(t, st, store.CacheConfig{}),
		lead: newLeadership(t, st), log: slog.New(slog.DiscardHandler), m: newMetrics(prometheus.NewRegistry())}
	if err := l.restore(ctx); err != nil {
		t.Fatal(err)
	}
	newer := revisionDir(t, "c3c3c3c3c3c3c3c3", leaderTestPod)
	newer.Branch, newer.Trigger = "main", gitsource.TriggerPoll
	if err := l.accept(ctx, newer); err != nil {
		t.Fatal(err)
	}
	old := revisionDir(t, "d4d4d4d4d4d4d4d4", leaderTestPod)
	old.Branch, old.Trigger = "main", gitsource.TriggerStart
	if err := l.accept(ctx, old); err != nil {
		t.Fatal(err)
	}
	sync, err := st.SyncStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sync.Applied == nil || sync.Applied.Commit != newer.Commit || sync.Seen.Commit != newer.Commit {
		t.Fatalf("applied %+v seen %+v: the stale clone's head was taken", sync.Applied, sync.Seen)
	}
	// Fetched, the same commit is a revision like any other.
	old.Trigger = gitsource.TriggerPoll
	if err := l.accept(ctx, old); err != nil {
		t.Fatal(err)
	}
	if sync, _ = st.SyncStatus(ctx); sync.Applied == nil || sync.Applied.Commit != old.Commit {
		t.Fatalf("applied %+v: a fetched revision must be applied", sync.Applied)
	}
}
