package server

import (
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/manifest"
	"bosun/preview"
	"bosun/reconciler"
	"bosun/store"
)

// book is the leader's copy of the revision history: it decides what each
// new revision and each rollout outcome writes, and keeps the history
// bounded. The leader writes the ops it returns.
type book struct {
	limit   int
	entries []store.HistoryEntry // newest first
}

// clone returns a copy whose changes leave b as it is: the leader changes
// a copy and keeps it once the copy's writes are done.
func (b *book) clone() book {
	return book{limit: b.limit, entries: slices.Clone(b.entries)}
}

// newest returns the newest entry, or nil.
func (b *book) newest() *store.HistoryEntry {
	if len(b.entries) == 0 {
		return nil
	}
	return &b.entries[0]
}

// add records a new revision. An applied revision supersedes a previous one
// whose rollout has not finished: a newer commit always wins.
func (b *book) add(e store.HistoryEntry) []store.Op {
	var ops []store.Op
	if e.Result != store.ResultRejected {
		for i := range b.entries {
			if b.entries[i].Result == store.ResultProgressing {
				b.entries[i].Result = store.ResultSuperseded
				ops = append(ops, put(&b.entries[i]))
			}
		}
	}
	e.Seq = 1
	if n := b.newest(); n != nil {
		e.Seq = n.Seq + 1
	}
	b.entries = append([]store.HistoryEntry{e}, b.entries...)
	ops = append(ops, put(&b.entries[0]))
	for len(b.entries) > b.limit {
		last := b.entries[len(b.entries)-1]
		ops = append(ops, store.DeleteHistory(last.Seq))
		b.entries = b.entries[:len(b.entries)-1]
	}
	return ops
}

// settle records the outcome of the progressing revision, if it is known.
func (b *book) settle(set *manifest.Set, observed reconciler.Observed, now time.Time) []store.Op {
	var e *store.HistoryEntry
	for i := range b.entries {
		if b.entries[i].Result == store.ResultProgressing {
			e = &b.entries[i]
			break
		}
	}
	if e == nil {
		return nil
	}
	done, failed, msg := rolloutOutcome(set, observed)
	switch {
	case failed:
		e.Result, e.Errors = store.ResultRolloutFailed, []string{msg}
	case done:
		e.Result, e.ReadyAfter = store.ResultApplied, store.Duration(now.Sub(e.SeenAt))
	default:
		return nil
	}
	return []store.Op{put(e)}
}

func put(e *store.HistoryEntry) store.Op {
	op, _ := store.PutHistory(e) // a HistoryEntry always encodes
	return op
}

// rolloutOutcome says whether every object of set runs as written: each
// Deployment's rollout of its current template complete, each standalone
// pod ready, each Job and CronJob stored as written (their runs are not
// the revision's rollout). failed reports a Deployment whose rollout missed
// its deadline.
func rolloutOutcome(set *manifest.Set, observed reconciler.Observed) (done, failed bool, msg string) {
	deployments := byName(observed.Deployments)
	done = true
	for i := range set.Deployments {
		want := &set.Deployments[i]
		got, ok := deployments[want.Namespace+"/"+want.Name]
		// Until the planner has written the new spec, the stored status is
		// the previous template's.
		if !ok || manifest.TemplateHash(&got.Spec.Template) != manifest.TemplateHash(&want.Spec.Template) ||
			!equality.Semantic.DeepEqual(got.Spec.Replicas, want.Spec.Replicas) {
			done = false
			continue
		}
		complete, fail, m := reconciler.RolloutStatus(got)
		if fail {
			return false, true, "Deployment " + want.Namespace + "/" + want.Name + ": " + m
		}
		done = done && complete
	}
	pods := byName(observed.Pods)
	for i := range set.Pods {
		want := &set.Pods[i]
		got, ok := pods[want.Namespace+"/"+want.Name]
		if !ok || got.Annotations[reconciler.AnnotationSpecHash] != reconciler.SpecHash(want) {
			done = false // not (yet) the pod this revision asks for
			continue
		}
		if got.Status.Phase == corev1.PodFailed && want.Spec.RestartPolicy != corev1.RestartPolicyAlways {
			// It ran as written and failed: it will not run again.
			return false, true, "Pod " + want.Namespace + "/" + want.Name + " failed" + podFailure(got)
		}
		done = done && (got.Status.Phase == corev1.PodSucceeded || podReady(got))
	}
	// A Job or CronJob is carried out once the planner has stored it as
	// written: a Job's run then has its own outcome (bosun get jobs, bosun
	// status), which may come long after, or never for a suspended one.
	jobs := byName(observed.Jobs)
	for i := range set.Jobs {
		want := &set.Jobs[i]
		got, ok := jobs[want.Namespace+"/"+want.Name]
		done = done && ok && got.Annotations[reconciler.AnnotationSpecHash] == reconciler.JobSpecHash(&want.Spec)
	}
	cronJobs := byName(observed.CronJobs)
	for i := range set.CronJobs {
		want := &set.CronJobs[i]
		got, ok := cronJobs[want.Namespace+"/"+want.Name]
		done = done && ok && equality.Semantic.DeepEqual(got.Spec, want.Spec)
	}
	return done, false, ""
}

// byName indexes objects by namespace/name, pointing into items.
func byName[T any, PT interface {
	*T
	metav1.Object
}](items []T) map[string]PT {
	m := make(map[string]PT, len(items))
	for i := range items {
		o := PT(&items[i])
		m[o.GetNamespace()+"/"+o.GetName()] = o
	}
	return m
}

// podFailure says why a failed pod failed, from its first container that
// terminated with an error: ": container app exited with 1 (Error)".
func podFailure(p *corev1.Pod) string {
	for _, cs := range append(slices.Clip(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return fmt.Sprintf(": container %s exited with %d (%s)", cs.Name, t.ExitCode, t.Reason)
		}
	}
	return ""
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// changesBetween summarises what a revision changes: objects created (+),
// changed (~) and deleted (-), by what Git says of them.
func changesBetween(prev, next *manifest.Set) []store.ObjectChange {
	objs := preview.Objects(prev, next)
	out := make([]store.ObjectChange, len(objs))
	for i, o := range objs {
		op := map[string]string{preview.OpCreate: "+", preview.OpChange: "~", preview.OpDelete: "-"}[o.Op]
		out[i] = store.ObjectChange{Op: op, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name}
	}
	return out
}
