package server

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"bosun/canary"
	"bosun/gitsource"
	"bosun/manifest"
	"bosun/reconciler"
	"bosun/store"
)

// canaries is the leader's knowledge of the canary branches: what each
// holds (as last fetched) and the latest measurement of each canary's
// query. It lives in memory only: a new leader fetches the branches again
// and measures again, while the canaries' state, in etcd, keeps them
// where they were (canary.Decide decides nothing from a branch not
// fetched yet).
type canaries struct {
	revs       map[string]gitsource.Revision // by branch
	loaded     map[string]loadedBranch       // by commit
	candidates map[string]canary.Candidate   // by "<ns>/<deployment>"
	measured   map[string]canary.Measurement // by "<ns>/<deployment>"
}

// loadedBranch is a branch commit's manifests, or why they do not load.
type loadedBranch struct {
	set *manifest.Set
	err error
}

func newCanaries() *canaries {
	return &canaries{revs: map[string]gitsource.Revision{}, loaded: map[string]loadedBranch{},
		candidates: map[string]canary.Candidate{}, measured: map[string]canary.Measurement{}}
}

// branchesOf lists the canary branches a revision names.
func branchesOf(set *manifest.Set) []string {
	var out []string
	if set == nil {
		return nil
	}
	for i := range set.Deployments {
		if spec, _ := canary.Parse(set.Deployments[i].Annotations); spec != nil && !slices.Contains(out, spec.Branch) {
			out = append(out, spec.Branch)
		}
	}
	slices.Sort(out)
	return out
}

// follow makes the Git source follow the branches the desired revision
// names, forgets the others, and works out the candidates again.
func (l *leader) follow() {
	if l.canary == nil {
		return // not running (tests of accept alone)
	}
	branches := branchesOf(l.desired)
	l.src.Follow(branches)
	for b := range l.canary.revs {
		if !slices.Contains(branches, b) {
			delete(l.canary.revs, b)
		}
	}
	l.updateCandidates()
}

// branchRevision takes a new head (or the absence) of a canary branch.
func (l *leader) branchRevision(ctx context.Context, rev gitsource.Revision) {
	if !slices.Contains(branchesOf(l.desired), rev.Branch) {
		return // no longer named
	}
	if rev.Missing {
		l.log.Warn("canary branch missing", "branch", rev.Branch, "reason", rev.Err)
	} else {
		l.log.Info("canary branch revision", "branch", rev.Branch, "commit", short(rev.Commit), "message", firstLine(rev.Message))
	}
	l.canary.revs[rev.Branch] = rev
	l.updateCandidates()
	if !rev.Missing {
		// One audit line per head: rejected if it cannot run for any of
		// the Deployments that name its branch.
		result, reason := "accepted", ""
		for _, k := range slices.Sorted(maps.Keys(l.canary.candidates)) {
			if c := l.canary.candidates[k]; c.Branch == rev.Branch && c.Err != "" {
				result, reason = "rejected", c.Err
				break
			}
		}
		auditRevision(ctx, l.log, rev, true, result, reason)
	}
}

// updateCandidates works out what each canary branch holds for the
// Deployment that names it, against the desired revision.
func (l *leader) updateCandidates() {
	c := l.canary
	clear(c.candidates)
	used := map[string]bool{}
	if l.desired != nil {
		for i := range l.desired.Deployments {
			d := &l.desired.Deployments[i]
			spec, _ := canary.Parse(d.Annotations)
			if spec == nil {
				continue
			}
			rev, ok := c.revs[spec.Branch]
			if !ok {
				continue // not fetched yet
			}
			used[rev.Commit] = true
			c.candidates[d.Namespace+"/"+d.Name] = l.candidate(d, rev)
		}
	}
	for commit := range c.loaded {
		if !used[commit] {
			delete(c.loaded, commit)
		}
	}
}

// candidate is what rev holds for main's Deployment d (canaryCandidate),
// the branch's manifests loaded once per commit.
func (l *leader) candidate(d *appsv1.Deployment, rev gitsource.Revision) canary.Candidate {
	return canaryCandidate(l.cfg.Policy, l.cfg.Path, l.key, l.desired, d, rev, l.canary.loaded)
}

// canaryCandidate is what rev, the head of a canary branch, holds for
// main's Deployment d of the desired revision: its pod template as main
// would run it (configuration hash from main's ConfigMaps and Secrets,
// which are what the canary's pods mount), or why it cannot run (the
// branch is missing, its manifests are invalid, it has no such Deployment,
// its template does not match main's selector). loaded caches the
// branch's manifests by commit; a commit not in it is loaded from rev.Dir
// (under path) with policy and added. The leader and `bosun plan --ref
// BRANCH` both call it.
func canaryCandidate(policy manifest.Policy, path string, key []byte, desired *manifest.Set, d *appsv1.Deployment,
	rev gitsource.Revision, loaded map[string]loadedBranch) canary.Candidate {
	cand := canary.Candidate{Branch: rev.Branch, Commit: rev.Commit, Subject: firstLine(rev.Message)}
	if rev.Missing {
		cand.Err = cmp.Or(rev.Err, "branch "+rev.Branch+" does not exist")
		return cand
	}
	if why := untrusted(rev); why != "" {
		cand.Err = "branch " + rev.Branch + ": " + why // its manifests are not read
		return cand
	}
	at := fmt.Sprintf("branch %s at %s", rev.Branch, short(rev.Commit))
	lb, ok := loaded[rev.Commit]
	if !ok {
		set, err := policy.LoadDir(rev.Dir, path)
		lb = loadedBranch{set: set, err: err}
		loaded[rev.Commit] = lb
	}
	if lb.err != nil {
		lines := strings.Split(lb.err.Error(), "\n")
		cand.Err = at + " is invalid: " + lines[0]
		if len(lines) > 1 {
			cand.Err += fmt.Sprintf(" (and %d more)", len(lines)-1)
		}
		return cand
	}
	var bd *appsv1.Deployment
	for i := range lb.set.Deployments {
		if x := &lb.set.Deployments[i]; x.Namespace == d.Namespace && x.Name == d.Name {
			bd = x
		}
	}
	if bd == nil {
		cand.Err = fmt.Sprintf("%s has no Deployment %s/%s", at, d.Namespace, d.Name)
		return cand
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(bd.Spec.Template.Labels)) {
		cand.Err = fmt.Sprintf("%s: the pod template's labels do not match main's selector of Deployment %s/%s (%s): its pods would not be the Deployment's", at, d.Namespace, d.Name, metav1.FormatLabelSelector(d.Spec.Selector))
		return cand
	}
	// Stamp as main would: main's configuration, this template.
	md := d.DeepCopy()
	md.Spec.Template = *bd.Spec.Template.DeepCopy()
	stamp := *desired
	stamp.Deployments, stamp.Pods = []appsv1.Deployment{*md}, nil
	stamp.StampConfigHashes(key)
	t := stamp.Deployments[0].Spec.Template
	cand.Template, cand.Hash = &t, manifest.TemplateHash(&t)
	return cand
}

// canaryInput is what the planner is given of the canaries.
func (l *leader) canaryInput() (map[string]canary.Candidate, map[string]canary.Measurement) {
	return maps.Clone(l.canary.candidates), maps.Clone(l.canary.measured)
}

// Measurer evaluates a canary's query: one number, or an error whose text
// goes into the canary's status.
type Measurer func(ctx context.Context, query string, at time.Time) (float64, error)

// analyzer evaluates the canaries' queries when they are due, off the
// leader's loop, and hands the measurements back on Results.
type analyzer struct {
	measure Measurer // nil: no Prometheus configured
	log     *slog.Logger
	results chan measurement

	timer   *time.Timer
	due     map[string]measureRequest // by "<ns>/<deployment>"
	running map[string]bool
	wg      sync.WaitGroup
}

type measureRequest struct {
	query, commit string
	at            time.Time
}

type measurement struct {
	key string
	m   canary.Measurement
}

// measureTimeout bounds one query.
const measureTimeout = 10 * time.Second

func newAnalyzer(measure Measurer, log *slog.Logger) *analyzer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &analyzer{measure: measure, log: log, results: make(chan measurement, 16), timer: t,
		due: map[string]measureRequest{}, running: map[string]bool{}}
}

// plan takes what the last plan said of the canaries: which queries are
// due when. It arms the timer for the earliest.
func (a *analyzer) plan(sums []reconciler.CanarySummary) {
	clear(a.due)
	for _, s := range sums {
		if s.MeasureAt.IsZero() || s.Spec == nil || s.State == nil {
			continue
		}
		a.due[s.Namespace+"/"+s.Name] = measureRequest{query: s.Spec.Query, commit: s.State.Commit, at: s.MeasureAt}
	}
	a.arm()
}

func (a *analyzer) arm() {
	a.timer.Stop()
	var next time.Time
	for k, r := range a.due {
		if !a.running[k] && (next.IsZero() || r.at.Before(next)) {
			next = r.at
		}
	}
	if !next.IsZero() {
		a.timer.Reset(max(time.Until(next), 0))
	}
}

// fire starts the queries that are due.
func (a *analyzer) fire(ctx context.Context) {
	now := time.Now()
	for k, r := range a.due {
		if a.running[k] || r.at.After(now) {
			continue
		}
		a.running[k] = true
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			m := canary.Measurement{Commit: r.commit}
			if a.measure == nil {
				m.Err = "no Prometheus to ask: start bosun server with --prometheus-url"
			} else {
				qctx, cancel := context.WithTimeout(ctx, measureTimeout)
				v, err := a.measure(qctx, r.query, time.Now())
				cancel()
				if err != nil {
					m.Err = err.Error()
				}
				m.Value = v
			}
			m.At = time.Now()
			select {
			case a.results <- measurement{key: k, m: m}:
			case <-ctx.Done():
			}
		}()
	}
	a.arm()
}

// measured records a measurement handed back by the analyzer.
func (l *leader) measured(r measurement) {
	delete(l.analyzer.running, r.key)
	l.canary.measured[r.key] = r.m
	l.m.canaryChecks.WithLabelValues(map[bool]string{true: "error", false: "ok"}[r.m.Err != ""]).Inc()
	l.log.Info("canary measured", "canary", r.key, "value", r.m.Value, "err", r.m.Err)
}

// branchStatus is the health of the canary branches set names, as the
// Git source last fetched them, for the sync status.
func (l *leader) branchStatus(set *manifest.Set, gs gitsource.Status) []store.BranchStatus {
	var out []store.BranchStatus
	for _, b := range branchesOf(set) {
		st := gs.Branches[b]
		out = append(out, store.BranchStatus{Name: b, Commit: st.Commit, Error: st.Error})
	}
	return out
}

// canaryBranch tells the webhook receiver whether a pushed branch is a
// canary's: one that the applied revision names (the sync status, written
// with the revision) or a stored canary follows.
func canaryBranch(cache *store.Cache) func(branch string) bool {
	return func(branch string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		snap, err := cache.Snapshot(ctx)
		if err != nil {
			return false
		}
		for _, b := range snap.Sync.Branches {
			if b.Name == branch {
				return true
			}
		}
		for _, c := range snap.Canaries {
			if c.Branch == branch {
				return true
			}
		}
		return false
	}
}
