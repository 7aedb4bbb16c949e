// Package server assembles a bosun control-plane replica: etcd (embedded
// or external), the API, the DNS server, the node agent for this machine,
// and, while this replica leads, the Git source and the reconcile loop.
//
//	campaign ──won──> gitsource ─revision─> manifest.LoadDir ─valid─> desired
//	                                              │invalid: status, keep last good
//	     store.Changes / tick ──> reconciler.Driver.Reconcile(desired) ──> fenced etcd writes
//
// Losing the leadership stops the leader's work and campaigns again; the
// API, DNS and the agent keep running on every replica throughout.
package server
