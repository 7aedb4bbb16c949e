package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"bosun/canary"
	"bosun/reconciler"
	"bosun/store"
)

// The servers' events: what the leader decided (revisions, scheduling,
// rollouts, canaries, node health, cordons and drains), written under
// /bosun/events/-/ with source "leader" (store.Recorder: never blocking
// the leader's loop). Messages name objects, commits, nodes and
// manifest errors (file:line), never a Secret's value.

// Event reasons of the leader.
const (
	EventScheduled          = "Scheduled"
	EventFailedScheduling   = "FailedScheduling"
	EventRolloutStep        = "RolloutStep"
	EventRolloutComplete    = "RolloutComplete"
	EventRolloutFailed      = "RolloutFailed"
	EventRevisionApplied    = "RevisionApplied"
	EventRevisionRejected   = "RevisionRejected"
	EventNodeReady          = "NodeReady"
	EventNodeNotReady       = "NodeNotReady"
	EventNodeNotSchedulable = "NodeNotSchedulable"
	EventNodeSchedulable    = "NodeSchedulable"
	EventDraining           = "Draining"
	EventDrained            = "Drained"
)

// serverEvents records the leader's events. Its memory (rollouts, node
// controls) belongs to the leader's goroutine and starts empty with each
// leadership (lead): what a new leader first sees is its baseline, not
// news. A nil *serverEvents records nothing (tests of the leader alone).
type serverEvents struct {
	rec *store.Recorder

	rollouts map[string]reconciler.RolloutSummary // by namespace/name
	baseline bool                                 // set until the first pass of a leadership
	controls map[string]store.NodeControl         // by node; nil until the first pass
	drained  map[string]bool
}

// newServerEvents makes the replica's recorder; run writes its events.
func newServerEvents(st *store.Store, reg prometheus.Registerer, log *slog.Logger) *serverEvents {
	rec, err := store.NewRecorder(st, store.RecorderConfig{Source: store.ServerEventSource, Registerer: reg,
		Logger: log.With("component", "events")})
	if err != nil {
		return nil
	}
	return &serverEvents{rec: rec}
}

// run writes the recorded events until ctx ends.
func (e *serverEvents) run(ctx context.Context) error {
	if e != nil {
		e.rec.Run(ctx)
	}
	return nil
}

// lead forgets what a previous leadership saw.
func (e *serverEvents) lead() {
	if e == nil {
		return
	}
	e.rollouts, e.controls, e.drained = map[string]reconciler.RolloutSummary{}, nil, map[string]bool{}
	e.baseline = true
}

func (e *serverEvents) record(obj store.ObjectRef, typ, reason, format string, args ...any) {
	if e != nil {
		e.rec.Eventf(obj, typ, reason, format, args...)
	}
}

// revisionRef names a revision's events: kind Revision, the short commit.
func revisionRef(commit string) store.ObjectRef {
	return store.ObjectRef{Kind: "Revision", Name: short(commit)}
}

// revision records a main revision the leader accepted or rejected (its
// errors name file:line).
func (e *serverEvents) revision(r store.Revision, entry store.HistoryEntry) {
	subject := firstLine(r.Message)
	if entry.Result == store.ResultRejected {
		more := ""
		if n := len(entry.Errors) - 1; n > 0 {
			more = fmt.Sprintf(" (and %d more)", n)
		}
		first := ""
		if len(entry.Errors) > 0 {
			first = entry.Errors[0]
		}
		e.record(revisionRef(r.Commit), store.EventWarning, EventRevisionRejected,
			"commit %s %q rejected; the last good revision keeps running: %s%s", short(r.Commit), subject, first, more)
		return
	}
	e.record(revisionRef(r.Commit), store.EventNormal, EventRevisionApplied,
		"commit %s %q applied: %d objects changed", short(r.Commit), subject, len(entry.Changes))
}

// pass records what one reconcile pass decided, once its writes are
// done: pods scheduled or not, rollout steps and outcomes, canary events.
func (e *serverEvents) pass(res reconciler.Result) {
	if e == nil {
		return
	}
	for _, a := range res.Actions {
		if a.Pod == nil || (a.Type != reconciler.CreatePod && a.Type != reconciler.UpdatePod) {
			continue
		}
		ref := store.ObjectRef{Kind: "Pod", Namespace: a.Pod.Namespace, Name: a.Pod.Name}
		cond := podScheduled(a.Pod)
		switch {
		case cond == nil:
		case cond.Status == corev1.ConditionTrue && a.Pod.Spec.NodeName != "" &&
			(a.Type == reconciler.CreatePod || strings.HasPrefix(a.Reason, "scheduled to ")):
			e.record(ref, store.EventNormal, EventScheduled, "Successfully assigned %s/%s to %s", a.Pod.Namespace, a.Pod.Name, a.Pod.Spec.NodeName)
		case cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable:
			e.record(ref, store.EventWarning, EventFailedScheduling, "%s", cond.Message)
		}
	}
	for _, s := range res.Rollouts {
		e.rollout(s)
	}
	e.baseline = false
	for _, ce := range res.CanaryEvents {
		e.canary(ce)
	}
}

func podScheduled(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodScheduled {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// rollout compares a Deployment's rollout with the last pass's (a new
// Deployment's with nothing): a step
// (pods of the new template or old ones counted differently), then its
// completion or failure (progress deadline).
func (e *serverEvents) rollout(s reconciler.RolloutSummary) {
	if e.rollouts == nil {
		e.rollouts = map[string]reconciler.RolloutSummary{}
	}
	key := s.Namespace + "/" + s.Name
	prev, seen := e.rollouts[key]
	e.rollouts[key] = s
	if !seen && e.baseline {
		return // what a new leadership finds is not news
	}
	ref := store.ObjectRef{Kind: "Deployment", Namespace: s.Namespace, Name: s.Name}
	newTemplate := prev.ToHash != s.ToHash
	if newTemplate || prev.Updated != s.Updated || prev.OldPods != s.OldPods {
		e.record(ref, store.EventNormal, EventRolloutStep, "revision %d (template %s): %d of %d replicas updated, %d old pods left, %d available",
			s.Revision, s.ToHash, s.Updated, s.Replicas, s.OldPods, s.Available)
	}
	if s.State == prev.State && !newTemplate {
		return
	}
	switch s.State {
	case reconciler.RolloutComplete:
		e.record(ref, store.EventNormal, EventRolloutComplete, "revision %d (template %s) rolled out: %d replicas available", s.Revision, s.ToHash, s.Available)
	case reconciler.RolloutFailed:
		e.record(ref, store.EventWarning, EventRolloutFailed, "revision %d (template %s): %s: %s", s.Revision, s.ToHash, s.Reason, s.Message)
	}
}

// canary records a canary event (canary.Decide's) on its Deployment.
func (e *serverEvents) canary(ce canary.Event) {
	typ := store.EventNormal
	if ce.Reason == canary.EventAborted || ce.Reason == canary.EventFailed {
		typ = store.EventWarning
	}
	e.record(store.ObjectRef{Kind: "Deployment", Namespace: ce.Namespace, Name: ce.Name}, typ, ce.Reason,
		"branch %s commit %s: %s", ce.Branch, short(ce.Commit), ce.Message)
}

// nodeHealth records a node health record the leader writes: the node
// became NotReady (its lease expired), or is Ready (registered, or back).
func (e *serverEvents) nodeHealth(h store.NodeHealth, now time.Time) {
	ref := store.ObjectRef{Kind: "Node", Name: h.Node}
	switch {
	case h.Ready:
		e.record(ref, store.EventNormal, EventNodeReady, "node %s is ready: %s", h.Node, h.Message)
	case h.Since.Equal(now):
		e.record(ref, store.EventWarning, EventNodeNotReady, "node %s is not ready: %s", h.Node, h.Message)
	}
}

// nodeControls records cordons, uncordons and drains as the leader first
// plans with them, and drains once done.
func (e *serverEvents) nodeControls(controls []store.NodeControl, o reconciler.Observed) {
	if e == nil {
		return
	}
	now := make(map[string]store.NodeControl, len(controls))
	for _, c := range controls {
		now[c.Node] = c
	}
	if e.drained == nil {
		e.drained = map[string]bool{}
	}
	first := e.controls == nil
	prev := e.controls
	e.controls = now
	if first {
		for name, d := range o.Drains {
			e.drained[name] = reconciler.DrainStatus(name, o, d).Done
		}
		return
	}
	by := func(c store.NodeControl) string {
		if c.Who == "" {
			return ""
		}
		return " by " + c.Who
	}
	for name, c := range now {
		p := prev[name]
		ref := store.ObjectRef{Kind: "Node", Name: name}
		switch {
		case c.Drain != nil && p.Drain == nil:
			e.record(ref, store.EventNormal, EventDraining, "node %s cordoned and draining%s: its pods are replaced elsewhere", name, by(c))
		case c.Unschedulable && !p.Unschedulable:
			e.record(ref, store.EventNormal, EventNodeNotSchedulable, "node %s cordoned%s", name, by(c))
		case !c.Unschedulable && c.Drain == nil && (p.Unschedulable || p.Drain != nil):
			e.record(ref, store.EventNormal, EventNodeSchedulable, "node %s uncordoned%s", name, by(c))
		}
	}
	for name, p := range prev {
		if _, ok := now[name]; !ok && (p.Unschedulable || p.Drain != nil) {
			e.record(store.ObjectRef{Kind: "Node", Name: name}, store.EventNormal, EventNodeSchedulable, "node %s uncordoned", name)
		}
	}
	for name, d := range o.Drains {
		done := reconciler.DrainStatus(name, o, d).Done
		if done && !e.drained[name] {
			e.record(store.ObjectRef{Kind: "Node", Name: name}, store.EventNormal, EventDrained, "node %s drained: none of its pods is left to move", name)
		}
		e.drained[name] = done
	}
	for name := range e.drained {
		if _, ok := o.Drains[name]; !ok {
			delete(e.drained, name)
		}
	}
}
