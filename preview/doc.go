// Package preview computes what `bosun plan` shows: what applying a new
// revision would do to the cluster, before it is merged.
//
//	current Set ─┐                  ┌─> Objects   (create / change with a unified diff / delete)
//	next Set ────┼─> Compute ───────┼─> Pods      (reconciler.Plan's first step: start / stop)
//	Observed ────┤     │            ├─> Rollouts  (each rollout as the planner takes it, to the end)
//	now ─────────┘     │            └─> Fits, Verdict (the real scheduler's, at every step)
//	                   └─> simulate: Plan ─> apply to a copy ─> pods start, Ready ─> clock + tick ─> Plan ...
//
// # One model
//
// preview has no rollout or placement rules of its own. Compute runs
// reconciler.Plan (which runs scheduler.Schedule) over a copy of the
// observed cluster, step after step, as the leader and the node agents
// would: each step applies the plan's actions to the copy (pods the plan
// deletes are gone at once; created and bound pods start, Running and Ready
// from the step's time), then moves the simulated clock on by one second
// plus the longest minReadySeconds of the next revision, so the pods are
// available to the next plan. It stops when a plan has nothing left to do,
// or after MaxSteps plans. A property test pins that what it predicts is
// what driving reconciler.Plan step by step gives.
//
// # Contract
//
// Compute is pure: no I/O, no clock (now is where the simulated clock
// starts), no randomness; the same input gives the same Result, every list
// sorted. observed is never modified: its pods are shared (the store
// cache's), so the simulation replaces the pods it binds, starts or stops
// by copies in a slice of its own (TestCompute_neverModifiesObservedPods).
//
// Objects compare the current revision (nil: nothing applied yet) with the
// next one, per kind, namespace and name, on what comes from Git only:
// apiVersion, kind, metadata name, namespace, labels and annotations (less
// the bookkeeping annotations bosun writes itself), and spec; never status.
// The comparison is semantic (map order, quantity spelling and defaults
// written or not do not count: both Sets come defaulted from manifest). A
// change carries a unified diff of the object's YAML (sigs.k8s.io/yaml, keys
// sorted) with three lines of context, as `kubectl diff` shows, and the
// changed field paths; a creation carries its whole YAML as "+" lines.
// A created or changed Service also carries its Address ("10.96.4.7
// 80:30080/TCP"): the server gives the next revision's Services their
// addresses (ipalloc) before it previews, as the leader does before it
// plans, so a plan shows the address a new Service will get.
//
// Pods are the first step reconciler.Plan takes towards next from observed:
// its CreatePod actions as "start", DeletePod as "stop". UpdatePod (binding,
// status, metadata) starts and stops nothing and is left out. A rolling
// update takes several steps; Rollouts says how the planner takes it, per
// Deployment whose template differs between current and next: the pods of
// other templates it stops, the replicas of the new one, the most pods that
// run at once (Peak) and the number of steps that start or stop its pods,
// the strategy as the planner resolves it, and where the rollout ends
// (reconciler.RolloutSummary's state and message: Complete, or Progressing
// when a pod that does not fit stalls it).
//
// The verdict is the real scheduler's: the revision does not fit when a plan
// of the simulation leaves a pod unschedulable (PodScheduled False), in the
// cluster as that step leaves it. The verdict names the pods ("web-7f9c4d2a1b-x2b
// and 2 more cannot be scheduled: ...", with the scheduler's message), says
// when old pods of the Deployment still ran ("(at step 1 of the rolling
// update of web, old pods still running)"), and gives the shortfall in the
// resource short of most relative to the largest node: the requests of the
// pods that do not fit minus the most any one schedulable node has free,
// for example
//
//	does not fit: needs 2.5 CPU more than is free on any node; web-7f9c4d2a1b-x2b and 2 more cannot be scheduled: 0/1 nodes are available: 1 insufficient cpu
//
// When everything fits it counts the pods that start (go from absent or
// unbound to bound to a registered node) over the whole simulation, and on
// how many nodes: "fits: 4 pods start on 1 node".
package preview
