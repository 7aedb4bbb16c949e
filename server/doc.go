// Package server assembles a bosun control-plane replica: etcd (embedded
// or external), the API, the DNS server, the node agent for this machine,
// and, while this replica leads, the Git source and the reconcile loop.
//
//	campaign ──won──> gitsource ─revision─> manifest.LoadDir ─valid─> desired
//	                                              │invalid: status, keep last good
//	     cache.Changes / tick / wake ──> reconciler.Driver.Reconcile(desired) ──> fenced etcd writes
//	                              ^──────── Decision.Wake (next CronJob run, Job deadline, ttl) ──┘
//
// The leader plans on every change of pods and nodes, every second, and at
// the time its last plan said it would decide something new by itself, so
// that a CronJob's run starts at its scheduled time rather than up to a
// second late. A run's Job and the CronJob status that records it are
// written in one fenced transaction (cluster.Apply), so a failover neither
// skips nor doubles a run. Runs, skipped runs and Job outcomes are counted
// in bosun_cronjob_runs_total, bosun_job_outcomes_total and
// bosun_cronjob_start_delay_seconds.
//
// Each replica runs one store.Cache of the cluster state; the leader, DNS,
// the API and logs read it. Before planning, the leader waits until the
// cache shows its own last write (Leadership.Revision), so a plan never
// repeats the creations of the one before.
//
// Losing the leadership stops the leader's work and campaigns again; the
// API, DNS and the agent keep running on every replica throughout.
package server
