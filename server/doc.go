// Package server assembles a bosun control-plane replica: etcd (embedded
// or external), the API, the DNS server, the node agent for this machine,
// and, while this replica leads, the Git source and the reconcile loop.
//
//	campaign ──won──> gitsource ─revision─> manifest.LoadDir ─valid─> ipalloc (ClusterIPs, node ports) ─> desired
//	                                              │invalid: status, keep last good
//	     cache.Changes / wake ──> reconciler.Driver.Reconcile(desired) ──> fenced etcd writes
//	                      ^──────── Result.Wake (minReadySeconds, deadlines, backoffs, CronJob runs, node grace) ──┘
//
// The leader does not poll: it plans on every change of pods, nodes and the
// objects it writes, and at the time its last plan said it would decide
// something new by itself (reconciler.Result.Wake), so that a CronJob's run
// starts at its scheduled time and a pod becomes available at
// minReadySeconds, not at the next tick. A failed pass is retried after a
// second. The Git source's fetch health is copied into the status every
// few seconds without a pass. A run's Job and the CronJob status that records it are
// written in one fenced transaction (cluster.Apply), so a failover neither
// skips nor doubles a run. Runs, skipped runs and Job outcomes are counted
// in bosun_cronjob_runs_total, bosun_job_outcomes_total and
// bosun_cronjob_start_delay_seconds.
//
// When it accepts a revision, the leader gives its Services their
// addresses (finishRevision, ipalloc.Fill: --service-cidr,
// --node-port-range) before anything is planned, keeping those of the last
// good revision, else those of the Services stored in etcd; an address a
// manifest asks for that is out of range or kept by another Service
// rejects the revision with file:line. The addresses are part of the
// desired state in etcd and of every Service the leader writes, and a new
// leader reads them back (restore), so they survive restarts and
// failovers. `bosun plan` goes through the same finishRevision.
//
// What a canary branch holds for a Deployment of main (its template
// stamped with main's configuration, or why it cannot run) is worked out
// in one place, canaryCandidate, which the leader calls for the branches
// it follows and `bosun plan --ref BRANCH` for a branch the running
// revision names in bosun.dev/canary-branch: the plan then runs
// reconciler.Plan once over the observed cluster with that candidate, as
// the leader's next plan would, and shows the canary's template changes
// (env names, never values), pods, node and weights (canaryPlans).
//
// Signed commits (signing.go): with --verify-commits the keys of
// --trusted-keys are loaded once, when Run starts (a bad directory stops
// the start), and given to the Git source, which verifies each head it
// exports. The leader rejects a main head that is not trusted whole,
// before reading its manifests (accept: status and history say why, the
// last good revision keeps running), and canaryCandidate fails a canary
// whose branch head is not trusted. Revisions record their signer
// (store.Revision.Signer); a rejected head sent again, e.g. after a
// restart with other keys, is judged again when the keys' verdict on it
// changed. Every revision accepted or rejected, on main or a canary
// branch, writes one audit line (auditRevision, package audit) naming its
// commit, branch, author, signer and trigger (poll, start, or the sync
// request's reason: the leader passes the reason of each new request to
// gitsource.TriggerBy).
//
// Sync windows (syncwindow.go, package syncwindow): a valid revision whose
// own .bosun/windows.yaml blocks it now is held, not applied: a history
// entry with store.ResultHeld ("held (sync window until <time>): <why>"),
// SyncStatus.Held, and its objects in etcd (store.Held) so that a new
// leader holds it too. Reconcile passes go on with the applied revision
// (self-heal is never held). A timer of the loop applies it when the block
// ends; a sync request may apply it at once (`bosun sync --force`, which
// names the held commit, or a manual sync its windows allow); a newer
// valid revision supersedes it. An invalid windows file rejects the
// revision like an invalid manifest.
//
// Nodes (nodehealth.go): the leader plans with the registered nodes (and,
// unschedulable, those absent for less than --node-grace-period:
// reconciler.NodeGrace) merged with the operators' records
// (store.NodeControl: cordoned nodes unschedulable, drains in
// Observed.Drains), and plans again when a record changes. Each pass also
// decides the node health records (healthChanges: Ready since, or
// NotReady since the registration went, and what becomes of the node's
// pods), written after the plan's actions. bosun_nodes{state},
// bosun_node_not_ready_total, bosun_node_drains_total{event} and
// bosun_node_drain_evictions_total count them; a new leader counts the
// drains in progress as started again.
//
// Each replica runs one store.Cache of the cluster state; the leader, DNS,
// the API and logs read it. Before planning, the leader waits until the
// cache shows its own last write (Leadership.Revision), so a plan never
// repeats the creations of the one before.
//
// The API's credentials live in DataDir/api unless flags name files
// (apiSecurity): "tokens", a tokens file created at the first start with
// one generated admin token (only its hash; the token goes to
// Config.OnAdminToken once, which the CLI prints and saves to
// ~/.config/bosun/token), and "tls.crt"/"tls.key", the API's
// certificate, issued by the cluster CA at the first start (again when a
// third of its validity is left, or when the CA did not sign it) and
// reused, served with the CA, whose fingerprint the API logs. Replicas generate their own:
// a cluster of several shares one --tokens-file.
//
// Losing the leadership stops the leader's work and campaigns again; the
// API, DNS and the agent keep running on every replica throughout.
//
// # Several servers, one etcd (ha.go, quorum.go)
//
// A server whose embedded etcd listens beyond loopback on a given address
// (--etcd-listen 10.0.0.1:2379) is a member that can have peers: it listens
// for them on --etcd-peer-listen (default that host, port 2380), over
// mutual TLS with peer certificates of the cluster CA (pki/etcd-peer.crt),
// names its member --etcd-name (default --id), and prints, once, the server
// token (pki/server-token), distinct from the agents' join token. Another
// server joins with `bosun server --server https://10.0.0.1:7070 --token
// SERVER_TOKEN --etcd-listen 10.0.0.2:2379 ...`: POST /api/v1/join/server
// (join.ServerPath, on any server) checks the token, adds its member as a
// raft learner (store.AddLearner: a member added but not started never
// costs the cluster its quorum) and answers the CA with its key, both
// tokens, the keys of Secrets at rest and the initial cluster. The new
// member starts with initial-cluster-state existing and promotes itself
// to a voter once it has caught up (store.Promote); a restart in between
// promotes it then. Restarting any server keeps its member (its data
// directory); --server and --token are needed at the first start only.
// Members of several use raft ticks of 50 ms and an election timeout of
// 500 ms (failover is bounded by them when bosun's leader and etcd's raft
// leader were on the same machine). A single server on loopback is the
// single member it always was.
//
// Each server's etcd client dials every voting member's client URL (the
// member list, read again every 30 s: store.DialMembers), so a server
// whose own member is down works while a quorum exists; agents that join
// through such a server get every member's URL too.
//
// Every replica checks the members every second (quorumMonitor,
// store.HealthChecker): a status request to each, in parallel, with a 1 s
// timeout. The API shows the result in `bosun status` (a table of members,
// with the raft leader, and a line when one is unreachable) and, without
// a quorum, answers at once instead of after etcd's timeouts: /readyz is
// 503, changes (Admin routes) are refused with 503, and status leaves the
// leader out and says "etcd has no quorum: 1 of 3 members reachable (s2, s3
// unreachable); changes are held until a quorum returns". Nothing is lost:
// the leader's writes are fenced and the leader, with no session, stops;
// every replica serves its cache; all resumes when a member returns.
// Metrics: bosun_etcd_members, bosun_etcd_members_reachable,
// bosun_etcd_quorum, bosun_etcd_leader_changes_total,
// bosun_etcd_health_checks_total, and the election's
// bosun_leader_elections_total and bosun_leader_lost_total.
//
// The leader's loop (metrics.go): bosun_reconcile_passes_total,
// bosun_reconcile_duration_seconds (a pass), bosun_plan_duration_seconds
// (reconciler.Plan alone, through Driver.Planning), bosun_actions_total{type},
// bosun_revisions_total{result}, bosun_rollouts_total{outcome} (complete,
// failed, aborted: a progressing history entry settled, or superseded) and
// bosun_rollout_duration_seconds; the scheduler's results, read from the
// plan's actions: bosun_scheduler_placements_total and
// bosun_scheduler_unschedulable_total{reason} (the scheduler's explanation
// mapped to a bounded set of reasons); and the Git source's bosun_git_*
// (gitsource.Metrics, one for every leadership's Source).
// examples/monitoring holds a Grafana dashboard and alert rules on them,
// checked by monitoring_test.go with promtool.
//
// Fencing under a partition is the store's (Leadership: the deadline of its
// own lease renewals, fenced transactions stamped with the leadership):
// a leader cut off from the etcd majority stops acting before its session
// can expire in etcd, and none of its writes lands after.
package server
