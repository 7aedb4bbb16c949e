package gitsource

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// commitOn commits files on branch (creating it from main if needed) and
// pushes it; it returns the new head and leaves the work tree on main.
func (u *upstream) commitOn(branch, msg string, files map[string]string) string {
	u.t.Helper()
	u.git(u.work, "checkout", "-q", "-B", branch)
	if branch != "main" {
		// -B resets the branch to main's head each time; keep its history.
		if out := u.git(u.work, "ls-remote", "origin", "refs/heads/"+branch); out != "" {
			u.git(u.work, "fetch", "-q", "origin", branch)
			u.git(u.work, "reset", "-q", "--hard", "FETCH_HEAD")
		}
	}
	u.writeFiles(files)
	u.git(u.work, "add", "-A")
	u.git(u.work, "commit", "-q", "--allow-empty", "-m", msg)
	u.git(u.work, "push", "-q", "origin", branch)
	head := u.git(u.work, "rev-parse", "HEAD")
	u.git(u.work, "checkout", "-q", "main")
	return head
}

func resolveCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustResolve(t *testing.T, s *Source, ref string) *Revision {
	t.Helper()
	rev, err := s.Resolve(resolveCtx(t), ref)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", ref, err)
	}
	return rev
}

func TestResolve_branchByNameAndFullRef(t *testing.T) {
	up := newUpstream(t)
	main := up.commit("main", map[string]string{"app.yaml": "main"})
	feature := up.commitOn("feature-x", "feature", map[string]string{"app.yaml": "feature"})
	d := startGitDaemon(t, up.root)
	s := newSource(t, Config{URL: d.url("repo.git")})

	for _, ref := range []string{"feature-x", "refs/heads/feature-x"} {
		rev := mustResolve(t, s, ref)
		if rev.Commit != feature {
			t.Errorf("Resolve(%q) = %s, want %s", ref, rev.Commit, feature)
		}
		if got := readRevFile(t, rev, "app.yaml"); got != "feature" {
			t.Errorf("Resolve(%q): app.yaml = %q", ref, got)
		}
		if rev.Message != "feature\n" || rev.Author != "Ada Lovelace <ada@example.com>" {
			t.Errorf("Resolve(%q): message %q author %q", ref, rev.Message, rev.Author)
		}
	}
	if rev := mustResolve(t, s, "main"); rev.Commit != main {
		t.Errorf("Resolve(main) = %s, want %s", rev.Commit, main)
	}
	if st := s.Status(); st.Revision != nil || st.Failures != 0 {
		t.Errorf("Resolve changed the followed branch's status: %+v", st)
	}

	// A branch that moves is fetched again.
	moved := up.commitOn("feature-x", "feature 2", map[string]string{"app.yaml": "feature 2"})
	if rev := mustResolve(t, s, "feature-x"); rev.Commit != moved || readRevFile(t, rev, "app.yaml") != "feature 2" {
		t.Errorf("after the branch moved: %s, want %s", rev.Commit, moved)
	}
}

func TestResolve_abbreviatedAndFullCommitReachableFromAnyBranch(t *testing.T) {
	up := newUpstream(t)
	old := up.commit("old", map[string]string{"app.yaml": "old"})
	up.commit("new", map[string]string{"app.yaml": "new"})
	onFeature := up.commitOn("feature-x", "only on feature", map[string]string{"app.yaml": "feature"})
	s := newSource(t, Config{URL: "file://" + up.bare})

	for _, ref := range []string{old[:7], strings.ToUpper(old[:10]), old} {
		rev := mustResolve(t, s, ref)
		if rev.Commit != old || readRevFile(t, rev, "app.yaml") != "old" {
			t.Errorf("Resolve(%q) = %s, want %s", ref, rev.Commit, old)
		}
	}
	if rev := mustResolve(t, s, onFeature[:8]); rev.Commit != onFeature {
		t.Errorf("commit only on another branch: %s, want %s", rev.Commit, onFeature)
	}
}

func TestResolve_commitForcePushedAwayIsNotFound(t *testing.T) {
	up := newUpstream(t)
	up.commit("base", nil)
	gone := up.commit("to be rewritten", map[string]string{"a": "1"})
	s := newSource(t, Config{URL: up.bare})
	mustResolve(t, s, gone[:7]) // its objects are now in the clone

	up.amendForcePush("rewritten", map[string]string{"a": "2"})
	_, err := s.Resolve(resolveCtx(t), gone[:7])
	if !errors.Is(err, ErrRefNotFound) {
		t.Fatalf("commit no longer reachable: err = %v, want ErrRefNotFound", err)
	}
}

func TestResolve_lightweightAndAnnotatedTags(t *testing.T) {
	up := newUpstream(t)
	v1 := up.commit("v1", map[string]string{"app.yaml": "v1"})
	up.git(up.work, "tag", "v1")
	v2 := up.commit("v2", map[string]string{"app.yaml": "v2"})
	up.git(up.work, "tag", "-a", "v2", "-m", "release 2")
	up.git(up.work, "tag", "-a", "v2-again", "-m", "tag of a tag", "v2")
	up.commit("v3", map[string]string{"app.yaml": "v3"})
	up.git(up.work, "push", "-q", "origin", "--tags")
	s := newSource(t, Config{URL: up.bare})

	for ref, want := range map[string]string{"v1": v1, "refs/tags/v1": v1, "v2": v2, "refs/tags/v2-again": v2} {
		rev := mustResolve(t, s, ref)
		if rev.Commit != want {
			t.Errorf("Resolve(%q) = %s, want %s", ref, rev.Commit, want)
		}
		if got, wantFile := readRevFile(t, rev, "app.yaml"), ref[strings.LastIndex(ref, "/")+1:][:2]; got != wantFile {
			t.Errorf("Resolve(%q): app.yaml = %q, want %q", ref, got, wantFile)
		}
	}
}

func TestResolve_missingRefNamesRefAndURL(t *testing.T) {
	up := newUpstream(t)
	up.commit("x", nil)
	up.git(up.work, "tag", "v1")
	up.git(up.work, "push", "-q", "origin", "v1")
	s := newSource(t, Config{URL: "file://" + up.bare})

	cases := []struct {
		ref, want string
		sentinel  error
	}{
		{"feature-x", `resolve "feature-x": branch not found on file://` + up.bare, ErrRefNotFound},
		{"refs/heads/v1", `resolve "refs/heads/v1": branch not found on file://`, ErrRefNotFound},
		{"refs/tags/main", `resolve "refs/tags/main": tag not found on file://`, ErrRefNotFound},
		{"deadbeef", `resolve "deadbeef": no branch, tag or commit reachable from a branch matches it on file://`, ErrRefNotFound},
		{"refs/pull/1/head", `resolve "refs/pull/1/head": only refs/heads/ and refs/tags/`, nil},
		{"a..b", `resolve "a..b": not a valid branch, tag or commit name`, nil},
		{"", `resolve "": empty ref`, nil},
	}
	for _, tc := range cases {
		_, err := s.Resolve(resolveCtx(t), tc.ref)
		if err == nil {
			t.Errorf("Resolve(%q) succeeded", tc.ref)
			continue
		}
		if !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Resolve(%q) = %q, want it to start with %q", tc.ref, err, tc.want)
		}
		if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
			t.Errorf("Resolve(%q): %v does not wrap %v", tc.ref, err, tc.sentinel)
		}
	}
}

func TestResolve_emptyRepositoryIsNotFound(t *testing.T) {
	up := newUpstream(t)
	s := newSource(t, Config{URL: up.bare})
	for _, ref := range []string{"main", "abcdef1"} {
		if _, err := s.Resolve(resolveCtx(t), ref); !errors.Is(err, ErrRefNotFound) {
			t.Errorf("Resolve(%q) on an empty repository: %v, want ErrRefNotFound", ref, err)
		}
	}
}

func TestResolve_unreachableServerNamesRefAndHidesPassword(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now

	for _, url := range []string{
		"git://" + addr + "/repo.git",
		"http://ada:hunter2-secret@" + addr + "/repo.git",
	} {
		s := newSource(t, Config{URL: url, FetchTimeout: 10 * time.Second})
		_, err := s.Resolve(resolveCtx(t), "feature-x")
		if err == nil {
			t.Fatalf("Resolve against %s succeeded", url)
		}
		msg := err.Error()
		t.Log(msg)
		if !strings.HasPrefix(msg, `resolve "feature-x": list refs of `) || !strings.Contains(msg, addr) {
			t.Errorf("error = %q, want it to name the ref and the server", msg)
		}
		if strings.Contains(msg, "hunter2") {
			t.Errorf("error leaks the password: %q", msg)
		}
		if errors.Is(err, ErrRefNotFound) {
			t.Errorf("a down server is not a missing ref: %v", err)
		}
	}
}

func TestResolve_releaseAndRetention(t *testing.T) {
	up := newUpstream(t)
	var commits []string
	for i := range keptResolved + 1 {
		commits = append(commits, up.commit(fmt.Sprint("c", i), map[string]string{"n": fmt.Sprint(i)}))
	}
	s := newSource(t, Config{URL: up.bare})

	a := mustResolve(t, s, commits[0])
	b := mustResolve(t, s, commits[0][:9])
	if a.Dir != b.Dir {
		t.Fatalf("same commit, two snapshots: %s %s", a.Dir, b.Dir)
	}
	s.Release(a)
	s.Release(a) // twice: must not release b's hold
	if _, err := os.Stat(b.Dir); err != nil {
		t.Fatalf("snapshot removed while still held: %v", err)
	}
	copyOfB := *b
	s.Release(&copyOfB) // a copy is not a holder
	s.Release(nil)
	if _, err := os.Stat(b.Dir); err != nil {
		t.Fatalf("snapshot removed by releasing a copy: %v", err)
	}
	s.Release(b)
	if _, err := os.Stat(b.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("snapshot still on disk after its last Release: %v", err)
	}

	// Unreleased snapshots beyond keptResolved go, oldest first.
	var revs []*Revision
	for _, c := range commits {
		revs = append(revs, mustResolve(t, s, c))
	}
	if _, err := os.Stat(revs[0].Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("oldest snapshot kept beyond retention: %v", err)
	}
	for _, r := range revs[1:] {
		if _, err := os.Stat(r.Dir); err != nil {
			t.Errorf("snapshot within retention removed: %v", err)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(s.cfg.Dir, "resolved"))
	if len(entries) != keptResolved {
		t.Errorf("%d snapshots on disk, want %d", len(entries), keptResolved)
	}
	s.Release(revs[0]) // already evicted: no-op, no panic

	// A new Source on the same Dir (a restarted server) clears leftovers.
	s2 := newSource(t, Config{URL: up.bare, Dir: s.cfg.Dir})
	last := mustResolve(t, s2, commits[len(commits)-1])
	entries, _ = os.ReadDir(filepath.Join(s.cfg.Dir, "resolved"))
	if len(entries) != 1 || entries[0].Name() != last.Commit {
		t.Errorf("after restart, resolved snapshots = %v, want only %s", entries, last.Commit)
	}
}

func TestResolve_concurrentWithFetchLeavesFollowedBranchAlone(t *testing.T) {
	up := newUpstream(t)
	head := up.commit("main", map[string]string{"app.yaml": "main"})
	feature := up.commitOn("feature-x", "feature", map[string]string{"app.yaml": "feature"})
	s := newSource(t, Config{URL: up.bare})

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			rev, err := s.Resolve(context.Background(), "feature-x")
			if err == nil && rev.Commit != feature {
				err = fmt.Errorf("Resolve = %s, want %s", rev.Commit, feature)
			}
			errs <- err
		}()
		go func() {
			defer wg.Done()
			rev, _, err := s.Fetch(context.Background())
			if err == nil && rev.Commit != head {
				err = fmt.Errorf("Fetch = %s, want %s", rev.Commit, head)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if rev, changed := mustFetch(t, s); changed || rev.Commit != head {
		t.Errorf("followed branch after resolves: changed=%v %s, want %s", changed, rev.Commit, head)
	}
}

func TestParseRef(t *testing.T) {
	cases := []struct {
		ref                 string
		branch, tag, prefix string
		wantErr             bool
	}{
		{ref: "main", branch: "main", tag: "main"},
		{ref: "refs/heads/feature/x", branch: "feature/x"},
		{ref: "refs/tags/v1.2", tag: "v1.2"},
		{ref: "1a2b3c4", branch: "1a2b3c4", tag: "1a2b3c4", prefix: "1a2b3c4"},
		{ref: "1A2B3C4D", branch: "1A2B3C4D", tag: "1A2B3C4D", prefix: "1a2b3c4d"},
		{ref: "1a2b3c", branch: "1a2b3c", tag: "1a2b3c"}, // too short to be a hash
		{ref: "cafe-babe1", branch: "cafe-babe1", tag: "cafe-babe1"},
		{ref: strings.Repeat("a", 41), branch: strings.Repeat("a", 41), tag: strings.Repeat("a", 41)},
		{ref: "", wantErr: true},
		{ref: "refs/remotes/origin/main", wantErr: true},
		{ref: "a b", wantErr: true},
		{ref: "x..y", wantErr: true},
		{ref: "refs/heads/", wantErr: true},
	}
	for _, tc := range cases {
		q, err := parseRef(tc.ref)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseRef(%q) err = %v, want error %v", tc.ref, err, tc.wantErr)
			continue
		}
		if err == nil && (q.branch != tc.branch || q.tag != tc.tag || q.prefix != tc.prefix) {
			t.Errorf("parseRef(%q) = branch %q tag %q prefix %q, want %q %q %q", tc.ref, q.branch, q.tag, q.prefix, tc.branch, tc.tag, tc.prefix)
		}
	}
}
