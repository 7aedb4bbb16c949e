// Package reconciler keeps the cluster equal to the desired state from Git.
//
// Plan is the decision, and it is pure: a function of the desired Set, the
// Observed cluster and the time, with no I/O, no clock and no randomness
// (scripts/check-imports.sh fails the build on os, net, time.Now or rand in
// this package). It returns a Result: the actions that make the cluster
// match Git, a summary of each Deployment's rollout, the next time it must
// plan again by itself (Wake), and the events of Jobs and CronJobs. A Driver
// reads the cluster, calls Plan with the time of the clock it is given and
// applies the actions through the store; its caller sleeps until Wake or a
// change, and never needs to poll. preview runs the same Plan over a
// simulated cluster to show what a revision would do.
//
//	manifest.Set ─┐
//	Observed ─────┼─> Plan ─> claims ─> deployments ─> daemonsets ─> statefulsets ─> claim deletes held ─> standalone pods
//	              │            ─> evict ─> jobs, cronjobs ─> prune ─> schedule ─> status ─> services ─> ingresses
//	now ──────────┘                      ─> Result{Actions, Rollouts, Wake, Events}
//
// Beside Plan, and as pure: NodeGrace decides which nodes the plan counts
// (absent ones stay, unschedulable and tainted unreachable:NoSchedule,
// taking no new pod, for a grace period; Observed carries
// when the next grace ends), and RevisionOutcome judges whether a whole
// revision runs as written (Deployments by RolloutStatus, the same rules
// as the summaries), which the server records in the history.
//
// The contract Plan keeps:
//
//   - Its input is read only. Observed.Pods are shared pointers (the store
//     cache's decoded pods, which the API, DNS and other plans read at the
//     same time): Plan copies a pod before it changes it (writable), and no
//     action carries an observed pod itself. TestPlan_sharedObservedIsNeverModified
//     and the server's TestCluster_planOnSharedSnapshotWhileCacheApplies
//     pin it under -race.
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
//   - PersistentVolumeClaims (claim.go): claims from Git (those without
//     bosun.dev/owner) are stored when new or changed and deleted when
//     removed from Git (after the pods), whatever their reclaim policy: the
//     node holding the volume deletes the data for Delete, keeps it for
//     Retain. The node decides from its record of the volume, so a claim's
//     delete (Git's or a StatefulSet's) is held back, with an event
//     (ClaimDeleteHeld) and a wake-up 5 s later, while that record says
//     another policy than the claim (holdClaimDeletes); a node that is down
//     keeps it held. Claims a StatefulSet makes are its own. A claim is Pending
//     until a pod using it is scheduled; the scheduler places that pod where
//     the claim fits the node's free volume capacity, and the same plan
//     writes the claim Bound there (spec.volumeName pvc-<uid>,
//     volume.kubernetes.io/selected-node, status capacity and access
//     modes). Pods of a bound claim go to its node only; while that node is
//     gone the claim is Lost and its pods stay Pending, saying where the
//     data is. A new claim whose name matches a volume a node kept (not
//     Delete, held by no claim) binds to it at once. A pod naming a claim
//     that does not exist stays Pending: persistentvolumeclaim "x" not found.
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
//     at once; nothing of an older rollout holds it. Both times are in
//     Result.Wake: a ready pod's Ready transition plus minReadySeconds, and
//     the first instant after LastUpdateTime plus progressDeadlineSeconds
//     (Kubernetes compares strictly; stored times are whole seconds).
//   - Rollout summaries (Result.Rollouts): per desired Deployment, the
//     template hashes from (the previous revision) and to, the replicas
//     desired, updated, ready and available and the old pods left as the
//     plan leaves them, the resolved maxSurge and maxUnavailable, and the
//     state (Progressing, Complete, Failed) with the Progressing condition's
//     reason and the message RolloutStatus gives for the status written.
//   - Standalone Pods run as written. A pod spec is immutable, so a spec change
//     in Git (tracked by the bosun.dev/spec-hash annotation) is DeletePod then
//     CreatePod under the same name; label and annotation changes are updated in
//     place. As in Kubernetes, a pod with restartPolicy Never or OnFailure that
//     has finished stays finished; one with restartPolicy Always is recreated.
//     A pod on a lost node is recreated under the same name and rescheduled.
//     A pod whose spec names its node is never rescheduled: it waits for that node.
//     One its node's agent refused for a port bosun listens on there (Failed,
//     HostPortReserved) is kept as it failed while that node still reserves
//     the port, and recreated once it does not (reserved.go): a replacement
//     would be refused again at once, several times a second.
//   - DaemonSets (daemonset.go), as Kubernetes' daemon controller runs
//     them: one pod per node whose labels, required node affinity and
//     NoSchedule/NoExecute taints admit the template (daemonFit, Kubernetes'
//     NodeShouldRunDaemonPod). Daemon pods get Kubernetes' default
//     tolerations (not-ready and unreachable NoExecute; disk, memory and PID
//     pressure and unschedulable NoSchedule; a template toleration of the
//     same key, operator, value and effect is replaced, as
//     AddOrUpdateTolerationInPodSpec does), so cordoned and drained nodes
//     keep them (drains ignore them, as kubectl --ignore-daemonsets does;
//     a draining node takes no other pod, whatever it tolerates:
//     scheduler.Node.Draining). A node gone but in its grace (NodeAbsent:
//     NodeGrace taints it unreachable:NoSchedule; a new leader's
//     placeholders know only a name) keeps its pod, unchecked against
//     selectors and affinity, gets none, and takes no part in a rollout
//     until it comes back; its pod counts misscheduled, as in Kubernetes.
//     Each pod is created unbound, pinned by required node affinity on
//     metadata.name (pinToNode, as Kubernetes does), and placed by the
//     scheduler like any pod: an unfit one stays Pending with its reason.
//     A node that joins gets its pod; a node that is gone, no longer
//     matches, or has a NoExecute taint the pod does not tolerate loses it;
//     a NoSchedule taint added later keeps the running pod (misscheduled).
//     Finished and evicted pods are replaced on their node. Pods are named
//     <ds>-<suffix> (suffix from namespace, name, node and template hash;
//     the next one on a clash) and labelled controller-revision-hash and
//     pod-template-generation. No pod starts on a node where one of the
//     DaemonSet is still stopping (Observed.Terminating): the node counts
//     unavailable and its room is held (planner.reserved) until it is gone.
//     Daemon pods are scheduled before other pending pods.
//     RollingUpdate (daemonStep): with maxSurge 0, an available old pod is
//     replaced (deleted, and its successor created once it has stopped)
//     only while fewer than maxUnavailable nodes (rounded up from a
//     percentage of the nodes that should run it) lack an available pod,
//     unavailable old pods at once; with maxSurge, the new pod starts beside the old one on
//     up to maxSurge nodes and the old one goes once the new one is
//     available. OnDelete leaves old pods until deleted by hand. Status
//     (desired, current, ready, available, unavailable, updated,
//     misscheduled, observedGeneration) is computed from the pods as they
//     will be, a node counted by its current-template pod if it has one;
//     PutDaemonSet only when it changes. DaemonSetRolloutStatus judges it as
//     kubectl rollout status does, and RevisionOutcome with it.
//     TestDaemonSet_propertyRollingUpdateBudgetAndConvergence pins the
//     budgets at every step.
//   - Jobs (job.go), as Kubernetes' job controller runs them: up to
//     parallelism pods (never more than the completions still missing) while
//     fewer than completions have succeeded; without completions, until one
//     succeeds and none runs. Pods are named <job>-<suffix> (the suffix
//     encodes an ordinal, seeded by the run's UID), labelled job-name and
//     batch.kubernetes.io/job-name, owned by the Job; finished pods stay
//     until the Job goes. A failed pod (restartPolicy Never) stays and is
//     replaced after a backoff (10 s, doubling to 6 min); with OnFailure the
//     node restarts containers in place and their restarts count. More than
//     backoffLimit failures (restarts reaching it) fail the Job,
//     BackoffLimitExceeded; activeDeadlineSeconds past its start fails it,
//     DeadlineExceeded; either stops its running pods, which count as failed.
//     A pod of a lost node, or evicted, counts as failed and is replaced at
//     once (bosun.dev/lost-pods keeps the count). suspend stops the running
//     pods (not failures); resuming restarts the deadline. A Job from Git runs
//     once per JobSpecHash (template, completions, completion mode): a new
//     hash is a new run, with a new UID, and the old run's pods go; other
//     fields change the run in place. ttlSecondsAfterFinished deletes a
//     finished Job's pods and leaves a record (bosun.dev/expired, no
//     template) that the API hides and that keeps the same spec from running
//     again while it stays in Git. The Job's status (active, ready,
//     succeeded, failed, start and completion time, Complete, Failed and
//     Suspended conditions) is computed from its pods as they will be.
//   - CronJobs (cronjob.go): the latest scheduled time after the latest of
//     status.lastScheduleTime, bosun.dev/scheduled-until (runs decided
//     without a run) and the CronJob's creation, if it is not after now, is
//     due. It runs as a Job <cronjob>-<minutes since the epoch>, carried by
//     the PutCronJob action that moves lastScheduleTime, so that one
//     transaction writes both; the Job's pods are created in the same plan.
//     Earlier missed times are skipped and said so (MissedRuns); a due run
//     later than startingDeadlineSeconds is skipped (MissSchedule);
//     concurrencyPolicy Forbid skips a run while a Job of the CronJob is
//     active, Replace deletes the active Jobs first. A suspended CronJob
//     starts nothing (its due runs count as missed, as in Kubernetes). The
//     newest successful and failed Jobs are kept by the history limits.
//     Schedules are read in spec.timeZone (UTC when unset); see
//     cronSchedule for daylight saving time. Result.Wake is the next
//     scheduled time, so the driver wakes for it.
//   - StatefulSets (statefulset.go), as Kubernetes' statefulset controller
//     runs them: pods <name>-<ordinal> with hostname = their name and
//     subdomain = serviceName (per-pod DNS through a headless Service of that
//     name); OrderedReady creates ordinal i only once the lower ones are
//     Running, Ready and available, and scales down from the highest, one at
//     a time, while the others are up; Parallel does both at once. A failed,
//     lost or evicted pod is deleted and created again under its name once
//     its node has stopped it (Observed.Terminating), with the same claims;
//     a drain leaves pods whose spec names the node or whose claim is bound
//     to it (volume.kubernetes.io/selected-node). RollingUpdate replaces
//     pods from the highest ordinal down to start+partition, one at a time,
//     each after the one above is ready; ordinals below the partition keep
//     (and are recreated with) the current revision, whose template the
//     stored StatefulSet keeps in bosun.dev/current-template while it
//     differs. An OrderedReady StatefulSet held only by pods that are not up
//     on a revision other than the update revision (a broken update
//     reverted in Git) replaces the highest of them, as kubectl delete pod
//     would. OnDelete replaces only deleted pods. An ordinal whose name a
//     pod of another owner holds is not created (status condition
//     PodNameTaken, event FailedCreate). Claims <template>-<name>-<ordinal>
//     are put before their pod (bosun.dev/owner, bosun.dev/reclaim-policy)
//     and deleted per persistentVolumeClaimRetentionPolicy once their pods
//     are gone (whenScaled: Delete covers every claim it owns of an
//     ordinal scaled away, whatever its template); a StatefulSet removed
//     from Git deletes its pods, then its record.
//   - Prune: pods, deployments, services, Jobs and CronJobs that are not in
//     Git are deleted, Jobs with their pods, CronJobs with their Jobs; pods
//     whose Job does not exist are deleted. Pods whose controller is of
//     another kind are neither pruned nor replaced; they are scheduled like
//     any other pod.
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
//   - Drain (drain.go; `bosun node drain`): a node in Observed.Drains is
//     also unschedulable in Observed.Nodes. Its Deployment pods are
//     replaced by the rolling-update step itself (rollingStep: they count
//     as old pods, whatever their template), so a replacement is placed on
//     another node first where maxSurge allows, and a pod on the node is
//     deleted only while replicas - maxUnavailable stay available; a
//     failed rollout still lets the drain go on within that budget.
//     Recreate Deployments replace them at once. Canary pods and pods of
//     other controllers are deleted at once. Standalone Pods and running
//     Jobs' pods stay unless the drain is forced (kubectl's rule): forced,
//     a standalone Pod is recreated on another node and a Job's pod counts
//     as failed. DrainStatus says how far a drain has come (pods left by
//     owner, what holds them); DrainRefusals lists the pods a drain without
//     force refuses. TestDrain_propertyNeverBelowBudgetAndEmptiesTheNode
//     pins the budget at every step.
//   - Writes are minimal: PutDeployment, PutService, PutJob and PutCronJob
//     only when the spec, labels, annotations or computed status differ
//     semantically from what is stored. A condition's times move only when it
//     changes (LastTransitionTime only when its status flips), and every time
//     the planner writes is now (Jobs and CronJobs: now in whole seconds, as
//     the store keeps it, so a plan decides alike from its own writes).
//   - Wake-up: Result.Wake is the earliest time after now at which planning
//     again, with nothing else changed, decides something new: a pod
//     becoming available (minReadySeconds), a rollout's progress deadline, a
//     CronJob's next run, a Job's deadline, the end of a pod backoff or of a
//     ttl, the next NoExecute eviction, the end of an absent node's grace
//     (Observed.NodeGraceExpires). Planning a moment before Wake decides
//     nothing new; planning at Wake does. Events (Result.Events) are
//     reported by the plan whose actions record them.
package reconciler
