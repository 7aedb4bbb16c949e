package gitsource

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	git "github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
)

// Revision is one commit of a followed branch, exported to disk, or the news
// that a followed extra branch has no commit to give (Missing).
type Revision struct {
	// Branch is the branch this revision is the head of: Config.Branch for
	// main's revisions, one of the names given to Follow for the others, and
	// empty for revisions returned by Resolve.
	Branch string
	// Missing says that the extra branch Branch does not exist on the remote
	// (or that its name is invalid); Err says why, and Commit, Dir and the
	// commit's fields are empty. Main's revisions are never Missing: a main
	// branch that cannot be fetched is a fetch error (see Status).
	Missing bool
	Err     string

	Commit  string    // full hash
	Author  string    // "Name <email>"
	Message string    // full commit message (callers may take the first line)
	Time    time.Time // commit author time
	// Dir is the snapshot of this commit's tree. Callers must not write to
	// it; it is removed once keptRevisions newer revisions exist.
	Dir string

	// Verification is the verdict of Config.TrustedKeys on the commit's
	// signature (verify.go); nil when commits are not verified, and for
	// Missing revisions.
	Verification *Verification
	// Trigger says what made Run send the revision: TriggerStart,
	// TriggerPoll, TriggerRequested or a reason given to TriggerBy. Empty
	// for revisions returned by Fetch and Resolve.
	Trigger string
}

// Status is a point-in-time view of a Source.
type Status struct {
	Revision   *Revision // last revision handed out; nil before the first
	LastFetch  time.Time // end of the last successful fetch
	FetchError string    // last fetch error, redacted; empty after a success
	Failures   int       // consecutive failed fetches
	NextRetry  time.Time // when Run fetches next, backoff included (zero when Run is not running)
	// Branches is the health of the extra branches given to Follow, by
	// name, once Run has looked at them; main's is the fields above.
	Branches map[string]BranchStatus
}

// BranchStatus is the health of one followed extra branch.
type BranchStatus struct {
	Commit    string    // head last exported; empty while none (or Missing)
	Missing   bool      // not on the remote, or the name is invalid
	Error     string    // why it is Missing, or the last fetch error (redacted); empty after a success
	LastFetch time.Time // end of the last successful look at the remote for it
}

// Source follows one branch. Create it with New; all methods are safe for
// concurrent use and Fetch calls are serialized, but run at most one Run at
// a time.
type Source struct {
	cfg     *settings
	trigger chan struct{}

	fetchMu  sync.Mutex // serializes fetches; guards the fields below
	repo     *git.Repository
	current  *Revision
	branches map[string]*branch // extra branches Run has taken up (branches.go)
	snaps    retention          // snapshots under Dir/rev, by the branches keeping them
	// extraFailures counts consecutive failed looks at the extra branches;
	// they are not looked at again before extraNext (backoff), unless
	// triggered.
	extraFailures int
	extraNext     time.Time
	extraFetches  atomic.Int64 // fetches of extra branches (not the ls-remotes deciding them); read by tests

	follow follows       // extra branches asked for by Follow (branches.go)
	why    triggerReason // reason of the pending Trigger (trigger.go)

	resolved resolvedSnapshots // snapshots made by Resolve (resolve.go)

	mu     sync.Mutex // guards status
	status Status
}

const (
	remoteName = "origin"
	// keptRevisions is how many snapshots stay on disk: the current one and
	// the two before it, so a consumer still reading the previous revision
	// while a new one arrives is never pulled out from under.
	keptRevisions = 3
)

// New validates cfg and returns a Source. It does no network access; the
// SSH key and password files are read to fail early.
func New(cfg Config) (*Source, error) {
	s, err := validate(cfg)
	if err != nil {
		return nil, fmt.Errorf("gitsource config: %w", err)
	}
	return &Source{cfg: s, trigger: make(chan struct{}, 1)}, nil
}

// Trigger asks Run for a fetch now. It never blocks; triggers that arrive
// while one is pending coalesce into one fetch.
func (s *Source) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Status returns a copy of the current status.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Revision = copyRevision(st.Revision)
	if st.Branches != nil {
		st.Branches = maps.Clone(st.Branches)
	}
	return st
}

func copyRevision(r *Revision) *Revision {
	if r == nil {
		return nil
	}
	c := *r
	return &c
}

// Run follows the branch until ctx is done, sending each new revision on
// out. See the package documentation for the contract.
func (s *Source) Run(ctx context.Context, out chan<- Revision) error {
	log := s.cfg.Logger
	defer func() {
		s.mu.Lock()
		s.status.NextRetry = time.Time{}
		s.mu.Unlock()
	}()

	send := func(rev *Revision) error {
		select {
		case out <- *rev:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	defer s.cfg.Metrics.running(s)()
	s.startRun()
	rev, err := s.resume()
	if err != nil {
		log.Warn("cannot reuse the existing clone; fetching afresh", "dir", s.cfg.Dir, "err", err)
	} else if rev != nil {
		rev.Trigger = TriggerStart
		if err := send(rev); err != nil {
			return err
		}
	}

	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		triggered, why := false, TriggerPoll
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		case <-s.trigger:
			why = s.takeReason()
			log.Debug("fetch triggered", "reason", why)
			timer.Stop()
			triggered = true
		}

		rev, changed, err := s.Fetch(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		st := s.Status()
		wait := backoff(s.cfg.Poll, st.Failures)
		s.mu.Lock()
		s.status.NextRetry = time.Now().Add(wait)
		s.mu.Unlock()
		timer.Reset(wait)

		if err != nil {
			log.Warn("fetch failed; keeping the last revision", "url", s.cfg.displayURL, "branch", s.cfg.Branch,
				"attempt", st.Failures, "retry_in", wait, "err", err)
		} else if changed {
			rev.Trigger = why
			if err := send(rev); err != nil {
				return err
			}
		}
		// Main first: the extra branches are looked at only once main's
		// revision is out, and not at all while its server fails.
		for _, rev := range s.syncBranches(ctx, err == nil, triggered) {
			rev.Trigger = why
			if err := send(&rev); err != nil {
				return err
			}
		}
	}
}

// Fetch fetches the branch once (cloning into Dir first if needed) and, if
// its head moved, exports the new commit. It returns the current revision and
// whether it differs from the last one this Source returned. On error the
// previous revision stays current and the failure is counted in Status.
func (s *Source) Fetch(ctx context.Context) (*Revision, bool, error) {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()

	start := time.Now()
	fctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	rev, changed, err := s.fetch(fctx)
	cancel()
	end := time.Now()
	s.cfg.Metrics.fetched(end.Sub(start), err, err != nil && ctx.Err() != nil)

	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		if s.status.Failures > 0 {
			s.cfg.Logger.Info("fetch recovered", "url", s.cfg.displayURL, "after_failures", s.status.Failures)
		}
		s.status.Failures = 0
		s.status.FetchError = ""
		s.status.LastFetch = end
		s.status.Revision = rev
	case ctx.Err() != nil:
		// Shutting down is not a failure of the Git server.
	default:
		s.status.Failures++
		s.status.FetchError = err.Error()
	}
	s.cfg.Logger.Debug("fetch", "url", s.cfg.displayURL, "branch", s.cfg.Branch,
		"took", end.Sub(start), "changed", changed, "ok", err == nil)
	if err != nil {
		// Reopen next time: cheap, and recovers from a clone removed or
		// damaged under us.
		s.repo = nil
		return copyRevision(s.current), false, err
	}
	return copyRevision(rev), changed, nil
}

// resume opens an existing clone in Dir and makes its fetched head the
// current revision, without network access. It returns nil, nil when there is
// nothing to resume.
func (s *Source) resume() (*Revision, error) {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	if s.current != nil {
		return copyRevision(s.current), nil
	}
	repo, err := s.open(false)
	if err != nil || repo == nil {
		return nil, err
	}
	s.repo = repo
	ref, err := repo.Reference(s.remoteRef(), true)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.remoteRef(), err)
	}
	rev, err := s.checkout(s.cfg.Branch, ref.Hash())
	if err != nil {
		return nil, err
	}
	s.current = rev
	s.cfg.Logger.Info("resuming revision from existing clone", revisionAttrs(rev)...)
	s.mu.Lock()
	s.status.Revision = rev
	s.mu.Unlock()
	return copyRevision(rev), nil
}

func (s *Source) fetch(ctx context.Context) (*Revision, bool, error) {
	acc, err := s.cfg.access()
	if err != nil {
		return nil, false, err
	}
	defer acc.release()

	if s.repo == nil {
		repo, err := s.open(true)
		if err != nil {
			return nil, false, err
		}
		s.repo = repo
	}

	err = s.repo.FetchContext(ctx, acc.fetchOptions([]gitconfig.RefSpec{branchRefSpec(s.cfg.Branch)}))
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil, false, acc.wrap("fetch", err)
	}
	ref, err := s.repo.Reference(s.remoteRef(), true)
	if err != nil {
		return nil, false, acc.wrap("fetch", fmt.Errorf("branch %s: %w", s.cfg.Branch, err))
	}
	if s.current != nil && s.current.Commit == ref.Hash().String() {
		return s.current, false, nil
	}
	rev, err := s.checkout(s.cfg.Branch, ref.Hash())
	if err != nil {
		return nil, false, err
	}
	s.current = rev
	s.cfg.Logger.Info("new revision", revisionAttrs(rev)...)
	return rev, true, nil
}

func (s *Source) remoteRef() plumbing.ReferenceName {
	return remoteRef(s.cfg.Branch)
}

// remoteRef is where a branch is fetched to in the clone.
func remoteRef(branch string) plumbing.ReferenceName {
	return plumbing.NewRemoteReferenceName(remoteName, branch)
}

// branchRefSpec is the forcing refspec that fetches branch.
func branchRefSpec(branch string) gitconfig.RefSpec {
	return gitconfig.RefSpec(fmt.Sprintf("+%s:%s", plumbing.NewBranchReferenceName(branch), remoteRef(branch)))
}

func (s *Source) repoDir() string { return filepath.Join(s.cfg.Dir, "repo") }
func (s *Source) revDir() string  { return filepath.Join(s.cfg.Dir, "rev") }

// open opens the clone in Dir. A clone of another URL is removed. When none
// is usable, open returns nil, nil unless create is set, in which case it
// initializes an empty bare repository with the remote (the first fetch then
// is the clone).
func (s *Source) open(create bool) (*git.Repository, error) {
	repo, err := git.PlainOpen(s.repoDir())
	switch {
	case err == nil:
		remote, rerr := repo.Remote(remoteName)
		if rerr == nil && len(remote.Config().URLs) == 1 && remote.Config().URLs[0] == s.cfg.URL {
			return repo, nil
		}
		s.cfg.Logger.Info("existing clone is of another repository; recloning", "dir", s.repoDir(), "url", s.cfg.displayURL)
		if err := os.RemoveAll(s.repoDir()); err != nil {
			return nil, fmt.Errorf("remove stale clone: %w", err)
		}
	case errors.Is(err, git.ErrRepositoryNotExists):
	default:
		// Dir/repo is ours alone: a clone that cannot be opened is rebuilt
		// rather than left to fail every poll.
		s.cfg.Logger.Warn("existing clone is unreadable; recloning", "dir", s.repoDir(), "err", err)
		if err := os.RemoveAll(s.repoDir()); err != nil {
			return nil, fmt.Errorf("remove unreadable clone: %w", err)
		}
	}
	if !create {
		return nil, nil
	}
	if err := os.MkdirAll(s.cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create dir: %w", err)
	}
	repo, err = git.PlainInit(s.repoDir(), true)
	if err != nil {
		return nil, fmt.Errorf("init clone %s: %w", s.repoDir(), err)
	}
	if _, err := repo.CreateRemote(&gitconfig.RemoteConfig{
		Name:  remoteName,
		URLs:  []string{s.cfg.URL},
		Fetch: []gitconfig.RefSpec{branchRefSpec(s.cfg.Branch)},
	}); err != nil {
		return nil, fmt.Errorf("init clone %s: %w", s.repoDir(), err)
	}
	return repo, nil
}

// checkout exports hash (unless a snapshot already exists) as the head of
// branch, records that branch keeps it, and drops the snapshots no branch
// keeps any more (see retention).
func (s *Source) checkout(branch string, hash plumbing.Hash) (*Revision, error) {
	commit, err := s.repo.CommitObject(hash)
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", hash, err)
	}
	dir := filepath.Join(s.revDir(), hash.String())
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := exportTree(commit, s.revDir(), hash.String(), s.cfg.Logger); err != nil {
			return nil, fmt.Errorf("export commit %s: %w", hash, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("export commit %s: %w", hash, err)
	}
	rev := &Revision{
		Branch:  branch,
		Commit:  hash.String(),
		Author:  fmt.Sprintf("%s <%s>", commit.Author.Name, commit.Author.Email),
		Message: commit.Message,
		Time:    commit.Author.When,
		Dir:     dir,

		Verification: s.verify(commit),
	}
	s.keep(branch, rev.Commit)
	return rev, nil
}

// retention says which snapshots under Dir/rev stay: each branch (main and
// every followed extra) keeps its newest keptRevisions commits, and a
// snapshot goes once no branch keeps it. So a busy branch never prunes the
// current snapshot of another, and one commit shared by two branches stays
// while either keeps it.
type retention struct {
	cleaned bool                // leftovers of an earlier process removed
	kept    map[string][]string // by branch: commits, oldest first
}

// keep records commit as branch's newest snapshot and removes the snapshots
// that no branch keeps any more. The first call (e.g. after a restart)
// removes every snapshot on disk but commit's.
func (s *Source) keep(branch, commit string) {
	r := &s.snaps
	if r.kept == nil {
		r.kept = make(map[string][]string)
	}
	old := r.kept[branch]
	kept := append(removeString(old, commit), commit)
	var dropped []string
	if n := len(kept) - keptRevisions; n > 0 {
		dropped = kept[:n]
		kept = append([]string(nil), kept[n:]...)
	}
	r.kept[branch] = kept
	if !r.cleaned {
		r.cleaned = true
		entries, _ := os.ReadDir(s.revDir())
		for _, e := range entries {
			dropped = append(dropped, e.Name())
		}
	}
	s.dropUnkept(dropped)
}

// forget drops everything branch keeps.
func (s *Source) forget(branch string) {
	dropped := s.snaps.kept[branch]
	delete(s.snaps.kept, branch)
	s.dropUnkept(dropped)
}

// dropUnkept removes the snapshots among names that no branch keeps.
func (s *Source) dropUnkept(names []string) {
	for _, name := range names {
		if s.kept(name) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.revDir(), name)); err != nil {
			s.cfg.Logger.Warn("cannot remove old revision snapshot", "dir", name, "err", err)
		}
	}
}

func (s *Source) kept(commit string) bool {
	for _, kept := range s.snaps.kept {
		if slices.Contains(kept, commit) {
			return true
		}
	}
	return false
}

func removeString(list []string, v string) []string {
	out := list[:0:0]
	for _, x := range list {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

func revisionAttrs(rev *Revision) []any {
	short := rev.Commit
	if len(short) > 12 {
		short = short[:12]
	}
	subject, _, _ := strings.Cut(rev.Message, "\n")
	return []any{"commit", short, "author", rev.Author, "message", subject}
}
