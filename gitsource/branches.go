package gitsource

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// follows is the set of extra branches asked for by Follow. Its own mutex
// (never held with another) lets Follow return at once while a fetch runs.
type follows struct {
	mu  sync.Mutex
	set []string // sorted, without duplicates or Config.Branch
}

// branch is Run's state of one followed extra branch; guarded by fetchMu.
type branch struct {
	name    string
	invalid string    // why the name is refused; empty for a valid name
	rev     *Revision // head exported; nil while none
	missing string    // why it has no head (not on the remote); empty when it has one
	sent    string    // what this Run last sent for it: a commit, sentMissing, or "" for nothing yet
	status  BranchStatus
}

// sentMissing marks a branch whose last revision sent was Missing.
const sentMissing = "(missing)"

// Follow sets the extra branches Run follows besides Config.Branch, which is
// ignored in branches like duplicates are. It never blocks on a fetch and may
// be called from any goroutine, before or while Run runs. A change triggers
// a fetch at once: a newly followed branch gets its revision sent (or a
// Missing one when it does not exist on the remote or its name is invalid);
// a branch no longer followed has its remote-tracking ref and the snapshots
// only it kept removed, and nothing more is sent for it.
func (s *Source) Follow(branches []string) {
	set := make([]string, 0, len(branches))
	for _, b := range branches {
		if b != s.cfg.Branch {
			set = append(set, b)
		}
	}
	slices.Sort(set)
	set = slices.Compact(set)

	f := &s.follow
	f.mu.Lock()
	changed := !slices.Equal(f.set, set)
	f.set = set
	f.mu.Unlock()
	if changed {
		s.cfg.Logger.Info("following branches", "branch", s.cfg.Branch, "extra", set)
		s.Trigger()
	}
}

func (s *Source) followed() []string {
	s.follow.mu.Lock()
	defer s.follow.mu.Unlock()
	return s.follow.set
}

// validBranchName returns why name cannot be followed, or "".
func validBranchName(name string) string {
	if name == "" {
		return "empty branch name"
	}
	if err := plumbing.NewBranchReferenceName(name).Validate(); err != nil || strings.HasPrefix(name, "refs/") {
		return fmt.Sprintf("%q is not a valid branch name", name)
	}
	return ""
}

// startRun forgets what an earlier Run sent: a new Run (a new leader) sends
// every followed branch once again.
func (s *Source) startRun() {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	for _, b := range s.branches {
		b.sent = ""
	}
}

// syncBranches brings the extra branches up to date with Follow and, when
// network is set (main's fetch succeeded), with the remote: one ls-remote
// sees which exist and which moved, and one fetch brings the moved ones; this
// happens at once for a newly followed branch or when triggered, else when
// the extra branches' own backoff allows. It returns the revisions to
// send, in branch order. Failures are the extra branches' own (recorded in
// Status.Branches and logged); they never touch main's status.
func (s *Source) syncBranches(ctx context.Context, network, triggered bool) []Revision {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()

	want := s.followed()
	for name := range s.branches {
		if !slices.Contains(want, name) {
			s.unfollow(name)
		}
	}
	if s.branches == nil {
		s.branches = make(map[string]*branch)
	}
	var valid []*branch
	fresh := false // a branch taken up now is fetched at once, backoff or not
	for _, name := range want {
		b := s.branches[name]
		if b == nil {
			fresh = true
			b = &branch{name: name, invalid: validBranchName(name)}
			if b.invalid != "" {
				b.status = BranchStatus{Missing: true, Error: b.invalid}
			}
			s.branches[name] = b
			s.cfg.Logger.Info("following branch", "branch", name)
		}
		if b.invalid == "" {
			valid = append(valid, b)
		}
	}
	now := time.Now()
	if !network {
		// Not looked at; say so rather than show a stale health.
		s.mu.Lock()
		mainErr := s.status.FetchError
		s.mu.Unlock()
		for _, b := range valid {
			if mainErr != "" {
				b.status.Error = "not fetched while the fetch of " + s.cfg.Branch + " fails: " + mainErr
			}
			if b.rev == nil && b.missing == "" {
				// As main resumes from the clone while its server is down,
				// so does a branch the clone already has.
				if s.repo == nil {
					if s.repo, _ = s.open(false); s.repo == nil {
						continue
					}
				}
				if _, err := s.repo.Reference(remoteRef(b.name), true); err == nil {
					if err := s.takeHead(b); err == nil {
						b.status.Commit = b.rev.Commit
					}
				}
			}
		}
	}
	if network && len(valid) > 0 && (triggered || fresh || !now.Before(s.extraNext)) {
		fctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
		err := s.fetchBranches(fctx, valid)
		cancel()
		switch {
		case err == nil:
			s.extraFailures = 0
			s.extraNext = time.Time{}
		case ctx.Err() != nil:
		default:
			s.extraFailures++
			wait := backoff(s.cfg.Poll, s.extraFailures)
			s.extraNext = time.Now().Add(wait)
			s.cfg.Logger.Warn("fetch of extra branches failed; keeping their last revisions", "url", s.cfg.displayURL,
				"attempt", s.extraFailures, "retry_in", wait, "err", err)
		}
	}

	var out []Revision
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status.Branches = nil
	if len(want) > 0 {
		s.status.Branches = make(map[string]BranchStatus, len(want))
	}
	for _, name := range want {
		b := s.branches[name]
		s.status.Branches[name] = b.status
		switch {
		case b.invalid != "" || b.missing != "":
			if b.sent != sentMissing {
				b.sent = sentMissing
				out = append(out, Revision{Branch: name, Missing: true, Err: b.invalid + b.missing})
			}
		case b.rev != nil && b.sent != b.rev.Commit:
			b.sent = b.rev.Commit
			out = append(out, *b.rev)
		}
	}
	return out
}

// fetchBranches lists the remote's refs, marks the branches that are not
// there as missing, fetches the ones whose head moved and exports their new
// heads. It runs under fetchMu.
func (s *Source) fetchBranches(ctx context.Context, bs []*branch) error {
	acc, err := s.cfg.access()
	if err != nil {
		s.branchesFailed(bs, err)
		return err
	}
	defer acc.release()
	url := s.cfg.displayURL
	if s.repo == nil {
		repo, err := s.open(true)
		if err != nil {
			s.branchesFailed(bs, err)
			return err
		}
		s.repo = repo
	}
	remote, err := s.repo.Remote(remoteName)
	if err != nil {
		err = fmt.Errorf("clone %s: %w", s.repoDir(), err)
		s.branchesFailed(bs, err)
		return err
	}
	refs, err := remote.ListContext(ctx, acc.listOptions())
	if err != nil && !errors.Is(err, transport.ErrEmptyRemoteRepository) {
		err = acc.wrap("list refs of", err)
		s.branchesFailed(bs, err)
		s.repo = nil
		return err
	}
	listed := make(map[plumbing.ReferenceName]plumbing.Hash, len(refs))
	for _, r := range refs {
		if r.Type() == plumbing.HashReference {
			listed[r.Name()] = r.Hash()
		}
	}
	listedAt := time.Now()

	var specs []gitconfig.RefSpec
	var moved []*branch
	for _, b := range bs {
		head, ok := listed[plumbing.NewBranchReferenceName(b.name)]
		if !ok {
			if b.missing == "" {
				s.cfg.Logger.Warn("followed branch does not exist", "branch", b.name, "url", url)
			}
			b.missing = fmt.Sprintf("branch %s does not exist in %s", b.name, url)
			b.rev = nil
			b.status = BranchStatus{Missing: true, Error: b.missing, LastFetch: listedAt}
			// A restarted server must not take a deleted branch's old head
			// for its current one.
			s.removeRef(b.name)
			continue
		}
		b.missing = ""
		if local, err := s.repo.Reference(remoteRef(b.name), true); err == nil && local.Hash() == head {
			continue
		}
		specs = append(specs, branchRefSpec(b.name))
		moved = append(moved, b)
	}
	var fetchErr error
	if len(specs) > 0 {
		s.extraFetches.Add(1)
		if fetchErr = s.fetchRefs(ctx, acc, specs); fetchErr != nil {
			s.branchesFailed(moved, fetchErr)
		}
	}
	end := time.Now()
	errs := []error{fetchErr}
	for _, b := range bs {
		if b.missing != "" || fetchErr != nil && slices.Contains(moved, b) {
			continue
		}
		if err := s.takeHead(b); err != nil {
			err = fmt.Errorf("branch %s: %w", b.name, err)
			b.status.Error = err.Error()
			errs = append(errs, err)
			continue
		}
		b.status = BranchStatus{Commit: b.rev.Commit, LastFetch: end}
	}
	if fetchErr != nil {
		s.repo = nil // reopen next time, as Fetch does
	}
	return errors.Join(errs...)
}

// takeHead makes the fetched head of b its revision, exporting it if new.
func (s *Source) takeHead(b *branch) error {
	ref, err := s.repo.Reference(remoteRef(b.name), true)
	if err != nil {
		return fmt.Errorf("read %s: %w", remoteRef(b.name), err)
	}
	if b.rev != nil && b.rev.Commit == ref.Hash().String() {
		return nil
	}
	rev, err := s.checkout(b.name, ref.Hash())
	if err != nil {
		return err
	}
	b.rev = rev
	s.cfg.Logger.Info("new revision", append([]any{"branch", b.name}, revisionAttrs(rev)...)...)
	return nil
}

// branchesFailed records err for each branch; their revisions stay.
func (s *Source) branchesFailed(bs []*branch, err error) {
	for _, b := range bs {
		b.status.Error = err.Error()
	}
}

// unfollow forgets a branch: its remote-tracking ref and the snapshots only
// it kept go. It runs under fetchMu.
func (s *Source) unfollow(name string) {
	delete(s.branches, name)
	s.forget(name)
	s.removeRef(name)
	s.cfg.Logger.Info("stopped following branch", "branch", name)
}

// removeRef deletes the remote-tracking ref of an extra branch, if any.
func (s *Source) removeRef(name string) {
	if s.repo == nil {
		repo, err := s.open(false)
		if err != nil || repo == nil {
			return
		}
		s.repo = repo
	}
	ref := remoteRef(name)
	if _, err := s.repo.Reference(ref, false); err != nil {
		return
	}
	if err := s.repo.Storer.RemoveReference(ref); err != nil {
		s.cfg.Logger.Warn("cannot remove the ref of a branch", "ref", ref, "err", err)
	}
}
