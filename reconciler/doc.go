// Package reconciler keeps the cluster equal to the desired state from Git.
//
// Plan is the decision, and it is pure: a function of the desired Set, the
// Observed cluster and the time, with no I/O, no clock and no randomness. It
// returns the actions that make the cluster match Git; a Driver reads the
// cluster, calls Plan and applies the actions through the store.
//
//	manifest.Set ─┐
//	Observed ─────┼─> Plan ─> deployments ─> standalone pods ─> prune ─> schedule ─> status ─> []Action
//	now ──────────┘
//
// The contract Plan keeps:
//
//   - Convergence: applying the actions, in order, to Observed and planning
//     again yields no actions (as long as nothing else changed; a Recreate
//     rollout takes two plans: delete the old pods, then create). Statuses are
//     computed from the pods as they will be after the plan, and a pod that
//     cannot be scheduled is explained against the cluster as it will be, so
//     nothing flaps.
//   - Determinism: the same input yields the same actions in the same order.
//     A created pod's UID is derived from its name and now, so a pod recreated
//     under the same name never inherits the status of the one it replaces.
//     Deployment pods are named <deployment>-<template hash>-<suffix>, where
//     the suffix encodes the lowest free ordinal, bijectively.
//   - Deployments run spec.replicas pods of their template. Scale down removes
//     unbound, then not-ready, then not-yet-available, then newest (highest
//     ordinal) pods first. Failed or Succeeded pods, and pods on a node that is
//     no longer registered, are deleted and replaced under a new name.
//   - A changed template rolls out as Kubernetes' deployment controller does,
//     on pods instead of ReplicaSets (rollout.go). RollingUpdate (the default;
//     maxSurge and maxUnavailable absolute or a percentage of replicas, surge
//     rounded up, unavailable down, 25%/25% by default): after each plan at
//     most replicas+maxSurge pods exist, and an available pod is removed only
//     while replicas-maxUnavailable stay available. Old pods that are not
//     available go first and at once; available ones go oldest revision first.
//     New pods are added after the removals, in the room they leave, so each
//     plan is a fixpoint until a pod becomes available. A pod is available
//     once its Ready condition has been True for minReadySeconds. Recreate
//     deletes every old pod, and creates new ones in the next plan, once none
//     is left.
//   - Revisions are kept on the Deployment, like ReplicaSets: the
//     deployment.kubernetes.io/revision annotation and bosun.dev/revision-history
//     (JSON, newest first, revisionHistoryLimit old entries). A template seen
//     before (git revert) gets the next revision number and its surviving pods
//     are current again.
//   - Progress: the Progressing condition's LastUpdateTime moves when the
//     rollout progresses (more new, ready or available pods, fewer old ones).
//     With no progress for progressDeadlineSeconds (default 600) it turns
//     False, ProgressDeadlineExceeded, naming the template hash, and the
//     rollout stops: nothing more is added and only old pods that do not serve
//     are removed, until the template changes. A newer template always starts
//     at once; nothing of an older rollout holds it. Plan wakes on nothing by
//     itself: the driver must plan again as time passes (minReadySeconds, the
//     deadline), which its periodic resync does.
//   - Standalone Pods run as written. A pod spec is immutable, so a spec change
//     in Git (tracked by the bosun.dev/spec-hash annotation) is DeletePod then
//     CreatePod under the same name; label and annotation changes are updated in
//     place. As in Kubernetes, a pod with restartPolicy Never or OnFailure that
//     has finished stays finished; one with restartPolicy Always is recreated.
//     A pod on a lost node is recreated under the same name and rescheduled.
//     A pod whose spec names its node is never rescheduled: it waits for that node.
//   - Prune: pods, deployments and services that are not in Git are deleted.
//     Pods whose controller is of a kind the planner does not manage are
//     neither pruned nor replaced; they are scheduled like any other pod.
//   - Scheduling: every unbound pod that will exist goes through
//     scheduler.Schedule against each node's allocatable minus the requests of
//     the bound, unfinished pods that stay, with every placement rule of its
//     spec (scheduler.PodOf: taints and tolerations, node affinity, pod
//     (anti-)affinity, topology spread, the node's pod limit). A pod that fits
//     nowhere is stored Pending with PodScheduled=False, reason Unschedulable
//     and the scheduler's message, rewritten only when the message changes.
//   - Eviction (evict.go), as Kubernetes' taint manager does it: a bound,
//     unfinished pod on a node with a NoExecute taint it does not tolerate is
//     deleted; one that tolerates it with tolerationSeconds is deleted that
//     long after the taint's TimeAdded (or after the pod was bound, if later;
//     the most lenient of several matching tolerations counts). A Deployment
//     replaces an evicted pod under a new name, a standalone Pod is recreated
//     under its own, and both are scheduled again, so away from the node
//     unless they tolerate the taint. Pods whose spec names their node are not
//     evicted: they would only come back to it. Pods of controllers the
//     planner does not manage are deleted. Plan evicts when now reaches the
//     deadline; NextEviction says when the next one falls due, for a driver
//     that does not plan every second.
//   - Writes are minimal: PutDeployment and PutService only when the spec,
//     labels, annotations or (for deployments) computed status differ
//     semantically from what is stored. A condition's times move only when it
//     changes (LastTransitionTime only when its status flips), and every time
//     the planner writes is now.
package reconciler
