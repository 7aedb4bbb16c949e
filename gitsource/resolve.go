package gitsource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	git "github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// ErrRefNotFound is wrapped by Resolve's error when the server has no such
// branch or tag and no fetched branch reaches such a commit (an API answers
// 404 for it; other errors are the server's or ours).
var ErrRefNotFound = errors.New("ref not found")

// ErrAmbiguousRef is wrapped by Resolve's error when an abbreviated hash
// matches several commits.
var ErrAmbiguousRef = errors.New("ambiguous ref")

// refError is a failure to resolve that is the ref's, not the server's:
// its message reads well on its own and it unwraps to the sentinel.
type refError struct {
	msg  string
	kind error
}

func (e *refError) Error() string { return e.msg }
func (e *refError) Unwrap() error { return e.kind }

// keptResolved is how many snapshots made by Resolve stay on disk at most;
// the oldest is removed when a Resolve goes beyond it, released or not.
const keptResolved = 8

// resolveNamespace holds what Resolve fetches, apart from the
// refs/remotes/origin/<branch> ref that Run follows.
const resolveNamespace = "refs/bosun/resolve/"

// resolvedSnapshots tracks the snapshots under Dir/resolved. The zero value
// is ready; its fields are guarded by its mutex (taken after fetchMu).
type resolvedSnapshots struct {
	mu      sync.Mutex
	cleaned bool                              // leftovers of an earlier process removed
	holders map[string]map[*Revision]struct{} // by commit: revisions handed out and not released
	order   []string                          // commits on disk, least recently resolved first
}

// Resolve fetches ref — a branch name, "refs/heads/x", a tag name,
// "refs/tags/x", or a full or abbreviated (at least 7 hex digits) commit
// hash reachable from a branch of the repository — and returns its revision
// with Dir holding its files.
//
// A plain name is looked up as a branch, then as a tag, then (if it is hex)
// as a commit. The snapshot lives under Config.Dir/resolved, apart from
// Run's, and is removed by Release or once keptResolved newer Resolves have
// happened, whichever comes first. Resolve never changes what Run follows or
// reports; it is serialized with Fetch, so a Source may serve both, but a
// separate Source (with its own Dir) keeps plans from delaying polls.
//
// Errors name the ref and the (redacted) URL, and wrap ErrRefNotFound or
// ErrAmbiguousRef when that is the cause.
func (s *Source) Resolve(ctx context.Context, ref string) (*Revision, error) {
	q, err := parseRef(ref)
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w", ref, err)
	}

	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	defer cancel()

	hash, err := s.resolve(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w", ref, err)
	}
	rev, err := s.snapshot(hash)
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w", ref, err)
	}
	s.cfg.Logger.Info("resolved ref", append([]any{"ref", ref}, revisionAttrs(rev)...)...)
	return rev, nil
}

// Release says the caller is done with a revision returned by Resolve: its
// snapshot is removed unless another unreleased Resolve returned the same
// commit. Releasing a revision twice, one from Run or Fetch, a copy, or nil
// does nothing.
func (s *Source) Release(rev *Revision) {
	if rev == nil {
		return
	}
	r := &s.resolved
	r.mu.Lock()
	defer r.mu.Unlock()
	held, ok := r.holders[rev.Commit]
	if !ok {
		return
	}
	if _, ok := held[rev]; !ok {
		return
	}
	delete(held, rev)
	if len(held) == 0 {
		s.dropResolved(rev.Commit)
	}
}

// refQuery is a parsed ref: what to look for on the server.
type refQuery struct {
	branch string // look for refs/heads/<branch>
	tag    string // look for refs/tags/<tag>
	prefix string // look for a commit with this (lower-case hex) prefix
	full   string // how the user wrote it, for errors
}

// parseRef classifies ref without network access.
func parseRef(ref string) (refQuery, error) {
	q := refQuery{full: ref}
	if ref == "" {
		return q, errors.New("empty ref")
	}
	switch {
	case strings.HasPrefix(ref, "refs/heads/"):
		q.branch = strings.TrimPrefix(ref, "refs/heads/")
	case strings.HasPrefix(ref, "refs/tags/"):
		q.tag = strings.TrimPrefix(ref, "refs/tags/")
	case strings.HasPrefix(ref, "refs/"):
		return q, errors.New("only refs/heads/ and refs/tags/ refs can be resolved")
	default:
		q.branch, q.tag = ref, ref
		if isHexPrefix(ref) {
			q.prefix = strings.ToLower(ref)
		}
	}
	if q.branch == "" && q.tag == "" {
		return q, errors.New("not a valid branch, tag or commit name")
	}
	for _, name := range []string{q.branch, q.tag} {
		if name == "" {
			continue
		}
		if err := plumbing.ReferenceName("refs/heads/" + name).Validate(); err != nil {
			return q, errors.New("not a valid branch, tag or commit name")
		}
	}
	return q, nil
}

func isHexPrefix(s string) bool {
	if len(s) < 7 || len(s) > 40 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// resolve finds q on the server, fetches what it needs and returns the
// commit. It runs under fetchMu.
func (s *Source) resolve(ctx context.Context, q refQuery) (plumbing.Hash, error) {
	acc, err := s.cfg.access()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	defer acc.release()
	url := acc.url

	if s.repo == nil {
		repo, err := s.open(true)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		s.repo = repo
	}
	remote, err := s.repo.Remote(remoteName)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("clone %s: %w", s.repoDir(), err)
	}
	refs, err := remote.ListContext(ctx, acc.listOptions())
	if err != nil && !errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return plumbing.ZeroHash, acc.wrap("list refs of", err)
	}
	listed := make(map[plumbing.ReferenceName]plumbing.Hash, len(refs))
	var heads []plumbing.Hash
	for _, r := range refs {
		if r.Type() != plumbing.HashReference {
			continue
		}
		listed[r.Name()] = r.Hash()
		if r.Name().IsBranch() {
			heads = append(heads, r.Hash())
		}
	}

	fetch := func(specs ...gitconfig.RefSpec) error {
		return s.fetchRefs(ctx, acc, specs)
	}
	fetchOne := func(name plumbing.ReferenceName) (plumbing.Hash, error) {
		local := plumbing.ReferenceName(resolveNamespace + strings.TrimPrefix(name.String(), "refs/"))
		if err := fetch(gitconfig.RefSpec("+" + name.String() + ":" + local.String())); err != nil {
			return plumbing.ZeroHash, err
		}
		ref, err := s.repo.Reference(local, true)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("fetch %s: %s: %w", url, name, err)
		}
		return ref.Hash(), nil
	}

	if q.branch != "" {
		name := plumbing.NewBranchReferenceName(q.branch)
		if _, ok := listed[name]; ok {
			return fetchOne(name)
		}
	}
	if q.tag != "" {
		name := plumbing.NewTagReferenceName(q.tag)
		if _, ok := listed[name]; ok {
			h, err := fetchOne(name)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			return s.peel(h, q.tag)
		}
	}
	switch {
	case q.prefix == "" && q.tag == "":
		return plumbing.ZeroHash, &refError{"branch not found on " + url, ErrRefNotFound}
	case q.prefix == "" && q.branch == "":
		return plumbing.ZeroHash, &refError{"tag not found on " + url, ErrRefNotFound}
	case q.prefix == "":
		return plumbing.ZeroHash, &refError{"branch not found on " + url + " (nor a tag of that name)", ErrRefNotFound}
	}
	if len(heads) > 0 {
		if err := fetch(gitconfig.RefSpec("+refs/heads/*:" + resolveNamespace + "heads/*")); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	matches, err := s.findCommits(ctx, heads, q.prefix)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	switch len(matches) {
	case 0:
		return plumbing.ZeroHash, &refError{"no branch, tag or commit reachable from a branch matches it on " + url, ErrRefNotFound}
	case 1:
		return matches[0], nil
	default:
		var short []string
		for _, m := range matches {
			short = append(short, m.String()[:12])
		}
		msg := fmt.Sprintf("abbreviated hash matches %d commits on %s: %s", len(matches), url, strings.Join(short, ", "))
		return plumbing.ZeroHash, &refError{msg, ErrAmbiguousRef}
	}
}

// peel follows an annotated tag (or a chain of them) to its commit.
func (s *Source) peel(h plumbing.Hash, tag string) (plumbing.Hash, error) {
	for range 10 {
		obj, err := s.repo.Object(plumbing.AnyObject, h)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("tag %s: %w", tag, err)
		}
		switch o := obj.(type) {
		case *object.Commit:
			return o.Hash, nil
		case *object.Tag:
			h = o.Target
		default:
			return plumbing.ZeroHash, fmt.Errorf("tag %s points to a %s, not a commit", tag, obj.Type())
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("tag %s: too many nested tags", tag)
}

// findCommits walks the history of heads and returns the commits whose hash
// starts with prefix. A full hash stops the walk at its match.
func (s *Source) findCommits(ctx context.Context, heads []plumbing.Hash, prefix string) ([]plumbing.Hash, error) {
	seen := make(map[plumbing.Hash]bool)
	stack := append([]plumbing.Hash(nil), heads...)
	var matches []plumbing.Hash
	for len(stack) > 0 {
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[h] {
			continue
		}
		seen[h] = true
		if len(seen)%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if strings.HasPrefix(h.String(), prefix) {
			matches = append(matches, h)
			if len(prefix) == len(h.String()) {
				return matches, nil
			}
		}
		c, err := object.GetCommit(s.repo.Storer, h)
		if err != nil {
			return nil, fmt.Errorf("read commit %s: %w", h, err)
		}
		stack = append(stack, c.ParentHashes...)
	}
	return matches, nil
}

// snapshot exports hash under Dir/resolved (unless a held snapshot of it is
// there) and hands out a new Revision for it.
func (s *Source) snapshot(hash plumbing.Hash) (*Revision, error) {
	commit, err := s.repo.CommitObject(hash)
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", hash, err)
	}
	r := &s.resolved
	r.mu.Lock()
	defer r.mu.Unlock()
	root := s.resolvedDir()
	if !r.cleaned {
		// Snapshots of an earlier process have no holders any more.
		if err := os.RemoveAll(root); err != nil {
			return nil, fmt.Errorf("clean %s: %w", root, err)
		}
		r.cleaned = true
		r.holders = make(map[string]map[*Revision]struct{})
	}
	name := hash.String()
	if _, ok := r.holders[name]; !ok {
		if err := exportTree(commit, root, name, s.cfg.Logger); err != nil {
			return nil, fmt.Errorf("export commit %s: %w", hash, err)
		}
		r.holders[name] = make(map[*Revision]struct{})
	}
	rev := &Revision{
		Commit:  name,
		Author:  fmt.Sprintf("%s <%s>", commit.Author.Name, commit.Author.Email),
		Message: commit.Message,
		Time:    commit.Author.When,
		Dir:     filepath.Join(root, name),

		Verification: s.verify(commit),
	}
	r.holders[name][rev] = struct{}{}
	r.order = append(removeString(r.order, name), name)
	for len(r.order) > keptResolved {
		s.dropResolved(r.order[0])
	}
	return rev, nil
}

// dropResolved removes a resolved snapshot; the caller holds resolved.mu.
func (s *Source) dropResolved(commit string) {
	r := &s.resolved
	delete(r.holders, commit)
	r.order = removeString(r.order, commit)
	if err := os.RemoveAll(filepath.Join(s.resolvedDir(), commit)); err != nil {
		s.cfg.Logger.Warn("cannot remove resolved revision snapshot", "commit", commit, "err", err)
	}
}

func (s *Source) resolvedDir() string { return filepath.Join(s.cfg.Dir, "resolved") }

// fetchRefs fetches specs (forcing refspecs) from the remote into the
// clone; "already up to date" is no error, and an error names the URL (safe
// to show) and is scrubbed of secrets.
func (s *Source) fetchRefs(ctx context.Context, acc *access, specs []gitconfig.RefSpec) error {
	err := s.repo.FetchContext(ctx, acc.fetchOptions(specs))
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return acc.wrap("fetch", err)
	}
	return nil
}
