package gitsource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// branchAt creates (or moves) branch to main's head and pushes it, with no
// commit of its own.
func (u *upstream) branchAt(branch string) string {
	u.t.Helper()
	u.git(u.work, "branch", "-f", branch, "main")
	u.git(u.work, "push", "-q", "-f", "origin", branch)
	return u.git(u.work, "rev-parse", branch)
}

// amendOn rewrites branch's last commit and force-pushes it.
func (u *upstream) amendOn(branch, msg string, files map[string]string) string {
	u.t.Helper()
	u.git(u.work, "checkout", "-q", branch)
	defer u.git(u.work, "checkout", "-q", "main")
	u.writeFiles(files)
	u.git(u.work, "add", "-A")
	u.git(u.work, "commit", "-q", "--amend", "-m", msg)
	u.git(u.work, "push", "-q", "-f", "origin", branch)
	return u.git(u.work, "rev-parse", "HEAD")
}

// deleteBranch deletes branch on the server and in the work clone.
func (u *upstream) deleteBranch(branch string) {
	u.t.Helper()
	u.git(u.work, "push", "-q", "origin", "--delete", branch)
	u.git(u.work, "branch", "-q", "-D", branch)
}

// receiveFrom returns the next revision, which must be of branch.
func receiveFrom(t *testing.T, ch <-chan Revision, branch string) Revision {
	t.Helper()
	rev := receive(t, ch)
	if rev.Branch != branch {
		t.Fatalf("revision of branch %q (%s, missing=%v %s), want one of %q", rev.Branch, rev.Commit, rev.Missing, rev.Err, branch)
	}
	return rev
}

// receiveBranches returns the next n revisions by branch, in any order.
func receiveBranches(t *testing.T, ch <-chan Revision, n int) map[string]Revision {
	t.Helper()
	got := make(map[string]Revision)
	for range n {
		rev := receive(t, ch)
		if _, dup := got[rev.Branch]; dup {
			t.Fatalf("two revisions of %q in a row: %+v", rev.Branch, rev)
		}
		got[rev.Branch] = rev
	}
	return got
}

// noRevision fails if a revision arrives within d.
func noRevision(t *testing.T, ch <-chan Revision, d time.Duration) {
	t.Helper()
	select {
	case rev := <-ch:
		t.Fatalf("unexpected revision of %q: commit %s missing=%v %s", rev.Branch, rev.Commit, rev.Missing, rev.Err)
	case <-time.After(d):
	}
}

func wantRevision(t *testing.T, rev Revision, branch, commit string, files map[string]string) {
	t.Helper()
	if rev.Branch != branch || rev.Commit != commit || rev.Missing || rev.Err != "" {
		t.Fatalf("revision = %+v, want %s at %s", rev, branch, commit)
	}
	for name, want := range files {
		if got := readRevFile(t, &rev, name); got != want {
			t.Errorf("%s at %s: %s = %q, want %q", branch, commit[:7], name, got, want)
		}
	}
}

func refExists(t *testing.T, s *Source, branch string) bool {
	t.Helper()
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	repo, err := s.open(false)
	if err != nil || repo == nil {
		t.Fatalf("open clone: %v", err)
	}
	_, err = repo.Reference(remoteRef(branch), false)
	if err != nil && !errors.Is(err, plumbing.ErrReferenceNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestFollow_extraBranchesMoveForcePushDisappearAndReturn(t *testing.T) {
	up := newUpstream(t)
	main1 := up.commit("main", map[string]string{"app.yaml": "stable"})
	a1 := up.commitOn("canary/a", "canary a", map[string]string{"app.yaml": "canary-1"})
	s := newSource(t, Config{URL: "file://" + up.bare, Poll: 50 * time.Millisecond})
	out, _ := runSource(t, s)
	wantRevision(t, receive(t, out), "main", main1, map[string]string{"app.yaml": "stable"})

	// Duplicates and main itself are ignored.
	s.Follow([]string{"canary/a", "canary/b", "main", "canary/a"})
	got := receiveBranches(t, out, 2)
	wantRevision(t, got["canary/a"], "canary/a", a1, map[string]string{"app.yaml": "canary-1"})
	b := got["canary/b"]
	if !b.Missing || b.Commit != "" || b.Dir != "" || b.Err != "branch canary/b does not exist in "+s.cfg.displayURL {
		t.Fatalf("canary/b = %+v, want Missing with the reason", b)
	}
	st := s.Status()
	if len(st.Branches) != 2 || st.Branches["canary/a"].Commit != a1 || st.Branches["canary/a"].Error != "" ||
		st.Branches["canary/a"].LastFetch.IsZero() || !st.Branches["canary/b"].Missing || st.Branches["canary/b"].Error != b.Err {
		t.Errorf("status branches = %+v", st.Branches)
	}
	if st.Revision.Branch != "main" || st.Revision.Commit != main1 {
		t.Errorf("status revision = %+v, want main's", st.Revision)
	}
	noRevision(t, out, 200*time.Millisecond) // Missing is sent once

	a2 := up.commitOn("canary/a", "canary a 2", map[string]string{"app.yaml": "canary-2"})
	wantRevision(t, receiveFrom(t, out, "canary/a"), "canary/a", a2, map[string]string{"app.yaml": "canary-2"})

	a3 := up.amendOn("canary/a", "canary a 2 rewritten", map[string]string{"app.yaml": "canary-2b"})
	wantRevision(t, receiveFrom(t, out, "canary/a"), "canary/a", a3, map[string]string{"app.yaml": "canary-2b"})

	up.deleteBranch("canary/a")
	gone := receiveFrom(t, out, "canary/a")
	if !gone.Missing || !strings.Contains(gone.Err, "branch canary/a does not exist in") {
		t.Fatalf("after delete: %+v, want Missing", gone)
	}
	if refExists(t, s, "canary/a") {
		t.Error("the deleted branch's remote-tracking ref is still in the clone")
	}

	a4 := up.commitOn("canary/a", "canary a again", map[string]string{"app.yaml": "canary-3"})
	wantRevision(t, receiveFrom(t, out, "canary/a"), "canary/a", a4, map[string]string{"app.yaml": "canary-3"})
	b1 := up.commitOn("canary/b", "canary b", map[string]string{"app.yaml": "b"})
	wantRevision(t, receiveFrom(t, out, "canary/b"), "canary/b", b1, map[string]string{"app.yaml": "b"})

	// Unfollow: refs and the snapshots only they kept go; main's stays.
	s.Follow(nil)
	eventually(t, "refs of unfollowed branches removed", func() bool {
		return !refExists(t, s, "canary/a") && !refExists(t, s, "canary/b")
	})
	eventually(t, "status without branches", func() bool { return len(s.Status().Branches) == 0 })
	entries, err := os.ReadDir(s.revDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != main1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("snapshots after unfollow = %v, want only main's %s", names, main1)
	}
	if !refExists(t, s, "main") {
		t.Error("main's ref removed")
	}
	noRevision(t, out, 200*time.Millisecond)
}

func TestFollow_busyBranchesNeverPruneEachOthersSnapshots(t *testing.T) {
	up := newUpstream(t)
	main1 := up.commit("main", map[string]string{"app.yaml": "stable"})
	shared := up.branchAt("canary/web") // same commit as main: one snapshot, two keepers
	if shared != main1 {
		t.Fatalf("branch at %s, want main's %s", shared, main1)
	}
	s := newSource(t, Config{URL: up.bare, Poll: 20 * time.Millisecond})
	out, _ := runSource(t, s)
	mainRev := receiveFrom(t, out, "main")
	s.Follow([]string{"canary/web"})
	if rev := receiveFrom(t, out, "canary/web"); rev.Dir != mainRev.Dir {
		t.Fatalf("shared commit exported twice: %s and %s", rev.Dir, mainRev.Dir)
	}

	var canary Revision
	for i := range 2 * keptRevisions {
		c := up.commitOn("canary/web", "busy", map[string]string{"app.yaml": "canary-" + string(rune('a'+i))})
		canary = receiveFrom(t, out, "canary/web")
		if canary.Commit != c {
			t.Fatalf("canary revision %s, want %s", canary.Commit, c)
		}
	}
	if got := readRevFile(t, &mainRev, "app.yaml"); got != "stable" {
		t.Errorf("main's current snapshot changed: %q", got)
	}

	// And the other way round: a busy main keeps the canary's snapshot.
	for i := range 2 * keptRevisions {
		c := up.commit("main busy", map[string]string{"app.yaml": "stable-" + string(rune('a'+i))})
		if rev := receiveFrom(t, out, "main"); rev.Commit != c {
			t.Fatalf("main revision %s, want %s", rev.Commit, c)
		}
	}
	if !exists(canary.Dir) {
		t.Errorf("canary's current snapshot %s pruned by main's commits", canary.Dir)
	}
	if exists(mainRev.Dir) {
		t.Errorf("the shared snapshot %s outlived both branches' windows", mainRev.Dir)
	}
	entries, _ := os.ReadDir(s.revDir())
	if len(entries) != 2*keptRevisions {
		t.Errorf("snapshots on disk = %d, want %d (each branch's window)", len(entries), 2*keptRevisions)
	}
}

func TestFollow_missingAndInvalidBranchesNeverDelayMain(t *testing.T) {
	up := newUpstream(t)
	up.commit("one", nil)
	s := newSource(t, Config{URL: up.bare, Poll: 20 * time.Millisecond})
	s.Follow([]string{"canary/nope", "bad..name", "x y", "refs/heads/z", ""}) // before Run: taken up by it
	out, _ := runSource(t, s)
	receiveFrom(t, out, "main")
	got := receiveBranches(t, out, 5)
	for name, want := range map[string]string{
		"canary/nope":  "branch canary/nope does not exist in " + up.bare,
		"bad..name":    `"bad..name" is not a valid branch name`,
		"x y":          `"x y" is not a valid branch name`,
		"refs/heads/z": `"refs/heads/z" is not a valid branch name`,
		"":             "empty branch name",
	} {
		if rev := got[name]; !rev.Missing || rev.Err != want || rev.Dir != "" {
			t.Errorf("%q: %+v, want Missing: %s", name, rev, want)
		}
	}
	for range 3 {
		c := up.commit("more", nil)
		if rev := receiveFrom(t, out, "main"); rev.Commit != c {
			t.Fatalf("main revision %s, want %s", rev.Commit, c)
		}
	}
	st := s.Status()
	if st.Failures != 0 || st.FetchError != "" {
		t.Errorf("main status counts the extra branches: failures=%d err=%q", st.Failures, st.FetchError)
	}
	if bs := st.Branches["canary/nope"]; !bs.Missing || bs.Error == "" {
		t.Errorf("status of canary/nope = %+v", bs)
	}
	if bs := st.Branches["bad..name"]; !bs.Missing || !strings.Contains(bs.Error, "not a valid branch name") {
		t.Errorf("status of bad..name = %+v", bs)
	}
	if n := s.extraFetches.Load(); n != 0 {
		t.Errorf("%d fetches of branches that do not exist", n)
	}
}

func TestFollow_pollWithNothingNewFetchesNoExtraBranch(t *testing.T) {
	up := newUpstream(t)
	up.commit("main", nil)
	a := up.commitOn("canary/a", "a", map[string]string{"f": "a"})
	b := up.commitOn("canary/b", "b", map[string]string{"f": "b"})
	s := newSource(t, Config{URL: up.bare, Poll: 20 * time.Millisecond})
	out, _ := runSource(t, s)
	receiveFrom(t, out, "main")
	s.Follow([]string{"canary/a", "canary/b"})
	got := receiveBranches(t, out, 2)
	wantRevision(t, got["canary/a"], "canary/a", a, nil)
	wantRevision(t, got["canary/b"], "canary/b", b, nil)
	if n := s.extraFetches.Load(); n != 1 {
		t.Errorf("fetches for two new branches = %d, want 1", n)
	}

	// Ten polls with nothing new.
	since := s.Status().Branches["canary/a"].LastFetch
	eventually(t, "ten more polls", func() bool {
		return s.Status().Branches["canary/a"].LastFetch.Sub(since) > 10*20*time.Millisecond
	})
	noRevision(t, out, 0)
	if n := s.extraFetches.Load(); n != 1 {
		t.Errorf("fetches after polls with nothing new = %d, want still 1", n)
	}

	// Both move: one fetch brings both.
	s.fetchMu.Lock() // hold the poll so both pushes land before it looks
	a2 := up.commitOn("canary/a", "a2", map[string]string{"f": "a2"})
	b2 := up.commitOn("canary/b", "b2", map[string]string{"f": "b2"})
	s.fetchMu.Unlock()
	got = receiveBranches(t, out, 2)
	wantRevision(t, got["canary/a"], "canary/a", a2, map[string]string{"f": "a2"})
	wantRevision(t, got["canary/b"], "canary/b", b2, map[string]string{"f": "b2"})
	if n := s.extraFetches.Load(); n != 2 {
		t.Errorf("fetches after both branches moved = %d, want 2", n)
	}
}

func TestFollow_newRunSendsFollowedBranchesAgain(t *testing.T) {
	up := newUpstream(t)
	up.commit("main", nil)
	a := up.commitOn("canary/a", "a", map[string]string{"f": "a"})
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := Config{URL: up.bare, Dir: dataDir, Poll: 20 * time.Millisecond}

	s := newSource(t, cfg)
	out, stop := runSource(t, s)
	receiveFrom(t, out, "main")
	s.Follow([]string{"canary/a"})
	wantRevision(t, receiveFrom(t, out, "canary/a"), "canary/a", a, map[string]string{"f": "a"})
	stop()

	// Same Source, new Run (a new leadership term): sent again, no fetch.
	out, stop = runSource(t, s)
	receiveFrom(t, out, "main")
	wantRevision(t, receiveFrom(t, out, "canary/a"), "canary/a", a, map[string]string{"f": "a"})
	stop()

	// New Source on the same clone (a restarted server): the clone has the
	// branch already, so it is exported and sent without a fetch.
	s = newSource(t, cfg)
	out, _ = runSource(t, s)
	receiveFrom(t, out, "main")
	s.Follow([]string{"canary/a"})
	wantRevision(t, receiveFrom(t, out, "canary/a"), "canary/a", a, map[string]string{"f": "a"})
	if n := s.extraFetches.Load(); n != 0 {
		t.Errorf("fetches of a branch the clone had = %d, want 0", n)
	}
}

func TestFollow_brokenBranchFetchIsTheBranchsAlone(t *testing.T) {
	up := newUpstream(t)
	up.commit("main", nil)
	a1 := up.commitOn("canary/a", "a", map[string]string{"f": "a"})
	const secret = "s3cr3t-Branch-Pa55"
	srv := startHTTPGit(t, up.root, "deployer", secret)
	url := strings.Replace(srv.URL, "http://", "http://deployer:"+secret+"@", 1) + "/repo.git"
	s := newSource(t, Config{URL: url, Poll: 20 * time.Millisecond})
	out, _ := runSource(t, s)
	receiveFrom(t, out, "main")
	s.Follow([]string{"canary/a"})
	wantRevision(t, receiveFrom(t, out, "canary/a"), "canary/a", a1, nil)

	// A commit whose blob is gone from the server: its ls-remote works, its
	// fetch fails, main's fetch does not care.
	s.fetchMu.Lock() // no poll between the push and the loss
	up.commitOn("canary/a", "broken", map[string]string{"broken.yaml": "lost blob"})
	blob := up.git(up.bare, "rev-parse", "canary/a:broken.yaml")
	if err := os.Remove(filepath.Join(up.bare, "objects", blob[:2], blob[2:])); err != nil {
		t.Fatalf("remove blob (was the push packed?): %v", err)
	}
	s.fetchMu.Unlock()
	eventually(t, "an error for the branch", func() bool {
		return s.Status().Branches["canary/a"].Error != ""
	})
	for range 2 {
		c := up.commit("main moves on", nil)
		if rev := receiveFrom(t, out, "main"); rev.Commit != c {
			t.Fatalf("main revision %s, want %s", rev.Commit, c)
		}
	}
	st := s.Status()
	bs := st.Branches["canary/a"]
	if bs.Commit != a1 || bs.Missing || !strings.Contains(bs.Error, "fetch") {
		t.Errorf("while failing: %+v, want the last commit kept and the fetch error", bs)
	}
	if strings.Contains(bs.Error, secret) {
		t.Errorf("password in the branch's error: %q", bs.Error)
	}
	if st.Failures != 0 || st.FetchError != "" {
		t.Errorf("main's status counts the branch's failure: failures=%d err=%q", st.Failures, st.FetchError)
	}

	// Force-pushed to a sound commit: followed again.
	fixed := up.amendOn("canary/a", "fixed", map[string]string{"broken.yaml": "fine"})
	s.Trigger() // cut the branch's backoff short, as a webhook would
	wantRevision(t, receiveFrom(t, out, "canary/a"), "canary/a", fixed, map[string]string{"broken.yaml": "fine"})
	if bs := s.Status().Branches["canary/a"]; bs.Error != "" || bs.Commit != fixed {
		t.Errorf("after recovery: %+v", bs)
	}
}

func TestFollow_mainFailingLeavesBranchesAloneAndSaysSo(t *testing.T) {
	up := newUpstream(t)
	up.commit("main", nil)
	a := up.commitOn("canary/a", "a", nil)
	d := startGitDaemon(t, up.root)
	s := newSource(t, Config{URL: d.url("repo.git"), Poll: 20 * time.Millisecond})
	out, _ := runSource(t, s)
	receiveFrom(t, out, "main")
	s.Follow([]string{"canary/a"})
	wantRevision(t, receiveFrom(t, out, "canary/a"), "canary/a", a, nil)

	d.stop()
	eventually(t, "the branch's status to show main's failure", func() bool {
		return strings.Contains(s.Status().Branches["canary/a"].Error, "not fetched while the fetch of main fails")
	})
	if bs := s.Status().Branches["canary/a"]; bs.Commit != a || bs.Missing {
		t.Errorf("while the server is down: %+v, want the last commit kept", bs)
	}
	noRevision(t, out, 100*time.Millisecond)
	d.start()
	s.Trigger()
	eventually(t, "the branch's status to recover", func() bool {
		return s.Status().Branches["canary/a"].Error == ""
	})
}

func TestFollow_concurrentWithRun(t *testing.T) {
	up := newUpstream(t)
	up.commit("main", nil)
	up.commitOn("canary/a", "a", nil)
	s := newSource(t, Config{URL: up.bare, Poll: 5 * time.Millisecond})
	out, stop := runSource(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case <-out:
			case <-ctx.Done():
				return
			}
		}
	}()
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 50 {
				if (i+g)%2 == 0 {
					s.Follow([]string{"canary/a", "canary/b"})
				} else {
					s.Follow([]string{"canary/b"})
				}
				_ = s.Status()
			}
		}()
	}
	for range 4 {
		<-done
	}
	s.Follow([]string{"canary/a"})
	eventually(t, "settled on canary/a", func() bool {
		st := s.Status().Branches
		return len(st) == 1 && st["canary/a"].Commit != ""
	})
	stop()
	cancel()
	<-drained
}

func TestFollow_restartWithServerDownSendsBranchesFromTheClone(t *testing.T) {
	up := newUpstream(t)
	main1 := up.commit("main", nil)
	a := up.commitOn("canary/a", "a", map[string]string{"f": "a"})
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := Config{URL: up.bare, Dir: dataDir, Poll: 20 * time.Millisecond}
	s := newSource(t, cfg)
	out, stop := runSource(t, s)
	receiveFrom(t, out, "main")
	s.Follow([]string{"canary/a", "canary/gone"})
	receiveBranches(t, out, 2)
	stop()

	if err := os.Rename(up.bare, up.bare+".gone"); err != nil {
		t.Fatal(err)
	}
	s = newSource(t, cfg)
	out, _ = runSource(t, s)
	if rev := receiveFrom(t, out, "main"); rev.Commit != main1 {
		t.Fatalf("main resumed at %s, want %s", rev.Commit, main1)
	}
	s.Follow([]string{"canary/a", "canary/gone"})
	wantRevision(t, receiveFrom(t, out, "canary/a"), "canary/a", a, map[string]string{"f": "a"})
	noRevision(t, out, 200*time.Millisecond) // nothing known of canary/gone until the server answers
	bs := s.Status().Branches
	if bs["canary/a"].Commit != a || !strings.Contains(bs["canary/a"].Error, "not fetched while the fetch of main fails") {
		t.Errorf("canary/a status = %+v", bs["canary/a"])
	}

	if err := os.Rename(up.bare+".gone", up.bare); err != nil {
		t.Fatal(err)
	}
	s.Trigger()
	if rev := receiveFrom(t, out, "canary/gone"); !rev.Missing {
		t.Errorf("canary/gone = %+v, want Missing once the server answers", rev)
	}
}

// BenchmarkFollow_triggerToBranchRevision measures a webhook's path for a
// canary branch: from Trigger after a push to the branch to its revision on
// Run's channel, with main and two other followed branches unchanged (so
// one fetch of main, one ls-remote and one fetch of the moved branch, plus
// the export of its tree).
//
//	go test -run '^$' -bench Follow_triggerToBranchRevision -benchtime 20x ./gitsource
func BenchmarkFollow_triggerToBranchRevision(b *testing.B) {
	up := newUpstream(b)
	files := map[string]string{}
	for i := range 20 {
		files[fmt.Sprintf("deploy/app-%02d.yaml", i)] = strings.Repeat("kind: Deployment\n", 50)
	}
	up.commit("main", files)
	for _, br := range []string{"canary/a", "canary/b", "canary/c"} {
		up.commitOn(br, br, nil)
	}
	s := newSource(b, Config{URL: "file://" + up.bare, Poll: time.Hour})
	out, _ := runSource(b, s)
	receive(b, out)
	s.Follow([]string{"canary/a", "canary/b", "canary/c"})
	for range 3 {
		receive(b, out)
	}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		want := up.commitOn("canary/b", "move", map[string]string{"deploy/app-00.yaml": fmt.Sprint("n: ", i)})
		b.StartTimer()
		s.Trigger()
		if rev := receive(b, out); rev.Branch != "canary/b" || rev.Commit != want {
			b.Fatalf("revision %+v, want canary/b at %s", rev, want)
		}
	}
}
