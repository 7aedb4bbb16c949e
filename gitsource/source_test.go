package gitsource

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestFetch_clonesLocalPathAndFileURL(t *testing.T) {
	up := newUpstream(t)
	first := up.commit("first\n\nbody line", map[string]string{"deploy/web.yaml": "kind: Pod\n"})

	for name, url := range map[string]string{"path": up.bare, "file URL": "file://" + up.bare} {
		t.Run(name, func(t *testing.T) {
			s := newSource(t, Config{URL: url})
			rev, changed := mustFetch(t, s)
			if !changed {
				t.Error("first fetch: changed = false, want true")
			}
			if rev.Commit != first {
				t.Errorf("commit = %s, want %s", rev.Commit, first)
			}
			if rev.Author != "Ada Lovelace <ada@example.com>" {
				t.Errorf("author = %q", rev.Author)
			}
			if rev.Message != "first\n\nbody line\n" {
				t.Errorf("message = %q", rev.Message)
			}
			if rev.Time.IsZero() || time.Since(rev.Time) > time.Hour {
				t.Errorf("time = %v, want about now", rev.Time)
			}
			if got := readRevFile(t, rev, "deploy/web.yaml"); got != "kind: Pod\n" {
				t.Errorf("deploy/web.yaml = %q", got)
			}
			if st := s.Status(); st.Revision == nil || st.Revision.Commit != first || st.LastFetch.IsZero() || st.FetchError != "" {
				t.Errorf("status = %+v", st)
			}

			again, changed := mustFetch(t, s)
			if changed || again.Commit != first {
				t.Errorf("second fetch without new commits: changed=%v commit=%s", changed, again.Commit)
			}
		})
	}
}

func TestFetch_picksUpNewCommitAndKeepsSnapshotsImmutable(t *testing.T) {
	up := newUpstream(t)
	up.commit("v1", map[string]string{"app.yaml": "v1"})
	s := newSource(t, Config{URL: up.bare})
	rev1, _ := mustFetch(t, s)

	want := up.commit("v2", map[string]string{"app.yaml": "v2"})
	rev2, changed := mustFetch(t, s)
	if !changed || rev2.Commit != want {
		t.Fatalf("after new commit: changed=%v commit=%s, want %s", changed, rev2.Commit, want)
	}
	if got := readRevFile(t, rev2, "app.yaml"); got != "v2" {
		t.Errorf("new revision app.yaml = %q", got)
	}
	if got := readRevFile(t, rev1, "app.yaml"); got != "v1" {
		t.Errorf("previous revision's snapshot changed under its reader: app.yaml = %q", got)
	}
	if fi, err := os.Stat(filepath.Join(rev2.Dir, "app.yaml")); err != nil || fi.Mode().Perm()&0o222 != 0 {
		t.Errorf("snapshot file should be read-only: %v %v", fi.Mode(), err)
	}

	// Only the newest keptRevisions snapshots stay on disk.
	for i := 3; i <= 5; i++ {
		up.commit("v", map[string]string{"app.yaml": "v" + string(rune('0'+i))})
		mustFetch(t, s)
	}
	entries, err := os.ReadDir(filepath.Dir(rev1.Dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != keptRevisions {
		t.Errorf("snapshots on disk = %d, want %d", len(entries), keptRevisions)
	}
	if _, err := os.Stat(rev1.Dir); !os.IsNotExist(err) {
		t.Errorf("oldest snapshot %s should be pruned, stat err = %v", rev1.Dir, err)
	}
}

func TestFetch_followsForcePush(t *testing.T) {
	up := newUpstream(t)
	up.commit("base", map[string]string{"a.yaml": "a"})
	old := up.commit("to be rewritten", map[string]string{"b.yaml": "old"})
	s := newSource(t, Config{URL: "file://" + up.bare})
	if rev, _ := mustFetch(t, s); rev.Commit != old {
		t.Fatalf("commit = %s, want %s", rev.Commit, old)
	}

	rewritten := up.amendForcePush("rewritten", map[string]string{"b.yaml": "new"})
	rev, changed := mustFetch(t, s)
	if !changed || rev.Commit != rewritten {
		t.Fatalf("after force-push: changed=%v commit=%s, want %s", changed, rev.Commit, rewritten)
	}
	if got := readRevFile(t, rev, "b.yaml"); got != "new" {
		t.Errorf("b.yaml = %q, want new", got)
	}
	if rev.Message != "rewritten\n" {
		t.Errorf("message = %q", rev.Message)
	}
}

func TestFetch_missingBranchIsAnError(t *testing.T) {
	up := newUpstream(t)
	up.commit("x", nil)
	s := newSource(t, Config{URL: up.bare, Branch: "nope"})
	_, _, err := s.Fetch(context.Background())
	if err == nil {
		t.Fatal("Fetch of a missing branch succeeded")
	}
	if st := s.Status(); st.Failures != 1 || st.FetchError == "" || st.Revision != nil {
		t.Errorf("status = %+v", st)
	}
}

func TestRun_sendsFirstAndNewRevisions(t *testing.T) {
	up := newUpstream(t)
	first := up.commit("one", nil)
	s := newSource(t, Config{URL: up.bare, Poll: 50 * time.Millisecond})
	out, stop := runSource(t, s)

	if rev := receive(t, out); rev.Commit != first {
		t.Fatalf("first revision = %s, want %s", rev.Commit, first)
	}
	second := up.commit("two", nil)
	if rev := receive(t, out); rev.Commit != second {
		t.Fatalf("second revision = %s, want %s", rev.Commit, second)
	}
	if st := s.Status(); st.NextRetry.IsZero() {
		t.Error("status.NextRetry is zero while Run is running")
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
}

func TestRun_triggerFetchesBeforePoll(t *testing.T) {
	up := newUpstream(t)
	up.commit("one", nil)
	s := newSource(t, Config{URL: up.bare, Poll: time.Hour})
	out, _ := runSource(t, s)
	receive(t, out)

	second := up.commit("two", nil)
	s.Trigger()
	s.Trigger() // coalesced, never blocks
	if rev := receive(t, out); rev.Commit != second {
		t.Fatalf("triggered revision = %s, want %s", rev.Commit, second)
	}
}

func TestGitDaemon_unreachableServerKeepsRevisionAndRecovers(t *testing.T) {
	up := newUpstream(t)
	first := up.commit("one", map[string]string{"f": "1"})
	d := startGitDaemon(t, up.root)
	s := newSource(t, Config{URL: d.url("repo.git"), Poll: 50 * time.Millisecond})

	out, stop := runSource(t, s)
	if rev := receive(t, out); rev.Commit != first {
		t.Fatalf("revision over git:// = %s, want %s", rev.Commit, first)
	}

	d.stop()
	second := up.commit("two", map[string]string{"f": "2"})
	eventually(t, "two consecutive failures", func() bool { return s.Status().Failures >= 2 })
	st := s.Status()
	if st.Revision == nil || st.Revision.Commit != first {
		t.Errorf("while down, status revision = %+v, want %s", st.Revision, first)
	}
	if !strings.Contains(st.FetchError, "127.0.0.1") {
		t.Errorf("FetchError = %q, want it to name the server", st.FetchError)
	}
	if !st.NextRetry.After(st.LastFetch) {
		t.Errorf("NextRetry %v not after LastFetch %v", st.NextRetry, st.LastFetch)
	}
	select {
	case rev := <-out:
		t.Fatalf("revision %s sent while the server was down", rev.Commit)
	default:
	}

	d.start()
	s.Trigger()
	if rev := receive(t, out); rev.Commit != second {
		t.Fatalf("after recovery revision = %s, want %s", rev.Commit, second)
	}
	eventually(t, "failures reset", func() bool {
		st := s.Status()
		return st.Failures == 0 && st.FetchError == ""
	})
	stop()
}

func TestHTTP_smartHTTPWithBasicAuth(t *testing.T) {
	up := newUpstream(t)
	head := up.commit("over http", map[string]string{"x.yaml": "x"})
	const secret = "s3cr3t-Pa55"
	srv := startHTTPGit(t, up.root, "deployer", secret)
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	bad := filepath.Join(dir, "bad")
	os.WriteFile(good, []byte(secret+"\n"), 0o600)
	os.WriteFile(bad, []byte("wrong-Pa55word\n"), 0o600)

	t.Run("password file", func(t *testing.T) {
		s := newSource(t, Config{URL: srv.URL + "/repo.git", Auth: Auth{Username: "deployer", PasswordFile: good}})
		rev, _ := mustFetch(t, s)
		if rev.Commit != head || readRevFile(t, rev, "x.yaml") != "x" {
			t.Errorf("revision = %+v", rev)
		}
	})

	t.Run("wrong password is rejected and not disclosed", func(t *testing.T) {
		s := newSource(t, Config{URL: srv.URL + "/repo.git", Auth: Auth{Username: "deployer", PasswordFile: bad}})
		_, _, err := s.Fetch(context.Background())
		if !errors.Is(err, transport.ErrAuthenticationRequired) {
			t.Fatalf("err = %v, want ErrAuthenticationRequired", err)
		}
		st := s.Status()
		for _, msg := range []string{err.Error(), st.FetchError} {
			if strings.Contains(msg, "wrong-Pa55word") || strings.Contains(msg, secret) {
				t.Errorf("password disclosed: %q", msg)
			}
		}
		if st.Failures != 1 {
			t.Errorf("failures = %d, want 1", st.Failures)
		}
	})

	t.Run("password in URL", func(t *testing.T) {
		withPass := strings.Replace(srv.URL, "http://", "http://deployer:"+secret+"@", 1) + "/repo.git"
		s := newSource(t, Config{URL: withPass})
		if rev, _ := mustFetch(t, s); rev.Commit != head {
			t.Errorf("commit = %s", rev.Commit)
		}
		cfg, err := os.ReadFile(filepath.Join(s.cfg.Dir, "repo", "config"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(cfg), secret) {
			t.Errorf("password stored in the clone's config:\n%s", cfg)
		}

		wrong := strings.Replace(srv.URL, "http://", "http://deployer:Wr0ngPa55@", 1) + "/repo.git"
		s = newSource(t, Config{URL: wrong})
		_, _, err = s.Fetch(context.Background())
		if err == nil || strings.Contains(err.Error(), "Wr0ngPa55") || strings.Contains(s.Status().FetchError, "Wr0ngPa55") {
			t.Errorf("wrong URL password: err = %v", err)
		}
	})
}

func TestRun_restartReemitsCurrentRevisionWithoutRecloning(t *testing.T) {
	up := newUpstream(t)
	head := up.commit("deployed", map[string]string{"a": "a"})
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := Config{URL: up.bare, Dir: dataDir, Poll: 50 * time.Millisecond}

	out, stop := runSource(t, newSource(t, cfg))
	receive(t, out)
	stop()

	// Mark the clone, then take the server away: the restart must neither
	// reclone nor need the network to re-emit its revision.
	marker := filepath.Join(dataDir, "repo", "bosun-marker")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(up.bare, up.bare+".gone"); err != nil {
		t.Fatal(err)
	}

	s := newSource(t, cfg)
	out, stop = runSource(t, s)
	rev := receive(t, out)
	if rev.Commit != head || readRevFile(t, &rev, "a") != "a" {
		t.Fatalf("re-emitted revision = %+v, want %s", rev, head)
	}
	eventually(t, "fetch error while server gone", func() bool { return s.Status().Failures > 0 })
	stop()
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("clone was replaced: %v", err)
	}
}

func TestOpen_reclonesWhenURLChanged(t *testing.T) {
	a, b := newUpstream(t), newUpstream(t)
	a.commit("a", nil)
	headB := b.commit("b", nil)
	dataDir := filepath.Join(t.TempDir(), "data")
	mustFetch(t, newSource(t, Config{URL: a.bare, Dir: dataDir}))

	s := newSource(t, Config{URL: b.bare, Dir: dataDir})
	if rev, _ := mustFetch(t, s); rev.Commit != headB {
		t.Errorf("commit = %s, want %s from the new URL", rev.Commit, headB)
	}
}

func TestFetch_stalledServerTimesOut(t *testing.T) {
	// A server that accepts connections and never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-accepted
		for _, c := range conns {
			c.Close()
		}
	})

	s := newSource(t, Config{URL: "git://" + l.Addr().String() + "/repo.git", FetchTimeout: 200 * time.Millisecond})
	start := time.Now()
	_, _, err = s.Fetch(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("fetch took %s with a 200ms timeout", took)
	}
	if st := s.Status(); st.Failures != 1 {
		t.Errorf("failures = %d, want 1", st.Failures)
	}
}

func TestFetch_snapshotDropsSymlinksEscapingTheTree(t *testing.T) {
	up := newUpstream(t)
	up.writeFiles(map[string]string{"a.yaml": "a", "sub/b.yaml": "b", "run.sh": "#!/bin/sh\n"})
	links := map[string]string{
		"ok":           "a.yaml",
		"sub/ok":       "../a.yaml",
		"abs":          "/etc/passwd",
		"up2":          "../../etc/passwd",
		"sub/up":       "..",                  // inside: points at the root
		"chain":        "sub/up/sub/up/../..", // lexically inside, physically outside
		"sub/dangling": "missing",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(up.work, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(up.work, "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	up.commit("links", nil)

	rev, _ := mustFetch(t, newSource(t, Config{URL: up.bare}))
	for name, wantKept := range map[string]bool{
		"ok": true, "sub/ok": true, "sub/up": true,
		"abs": false, "up2": false, "chain": false, "sub/dangling": false,
	} {
		_, err := os.Lstat(filepath.Join(rev.Dir, name))
		if kept := err == nil; kept != wantKept {
			t.Errorf("symlink %s -> %s: kept = %v, want %v", name, links[name], kept, wantKept)
		}
	}
	if got := readRevFile(t, rev, "sub/ok"); got != "a" {
		t.Errorf("sub/ok reads %q", got)
	}
	if fi, err := os.Stat(filepath.Join(rev.Dir, "run.sh")); err != nil || fi.Mode().Perm() != 0o555 {
		t.Errorf("run.sh mode = %v (%v), want r-xr-xr-x", fi.Mode(), err)
	}
}

// syncBuffer is a log sink safe for Run's goroutine and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRun_logsFailedAttemptsWithoutThePassword(t *testing.T) {
	up := newUpstream(t)
	up.commit("x", nil)
	srv := startHTTPGit(t, up.root, "deployer", "right-one")
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("Not-The-Right-One"), 0o600)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	url := strings.Replace(srv.URL, "http://", "http://deployer@", 1) + "/repo.git"
	s := newSource(t, Config{URL: url, Auth: Auth{PasswordFile: pwFile}, Poll: 20 * time.Millisecond, Logger: logger})

	_, stop := runSource(t, s)
	eventually(t, "two failures", func() bool { return s.Status().Failures >= 2 })
	stop()

	out := logs.String()
	for _, want := range []string{"level=WARN", "attempt=1", "attempt=2", "component=gitsource", "level=DEBUG msg=fetch"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Not-The-Right-One") {
		t.Errorf("password in logs:\n%s", out)
	}
}
