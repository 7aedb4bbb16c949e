// Package ipalloc gives Services their virtual addresses: a ClusterIP from
// the service CIDR (--service-cidr, default 10.96.0.0/16) for every Service
// that is not headless, and a node port from the node port range
// (--node-port-range, default 30000-32767) for every port of a NodePort
// Service.
//
// Allocate is the decision, and it is pure: desired Services, the Services
// as they were given before, and the ranges in; the Services with
// spec.clusterIP, spec.clusterIPs and spec.ports[].nodePort filled, or
// Errors, out. No clock, no randomness: a new Service's address is the
// first free one at or after an offset hashed (FNV-1a) from its
// namespace/name, so the same revision always gets the same addresses.
//
//	revision's Services ─┐
//	last good revision ──┼─> Allocate ─> Services with addresses ─> desired in etcd ─> reconciler ─> /bosun/services/
//	stored Services ─────┘            └> Errors (file:line via Fill) ─> revision rejected whole
//
// The leader fills a revision when it accepts it, before planning
// (server.finishRevision, the same path `bosun plan` previews through),
// and stores the result in the desired state and in each Service it
// writes; on taking over, a leader reads them back. So an address stays
// the same across restarts, failovers and unrelated commits, and it is
// read from etcd, never recomputed from scratch.
//
// What is never given: the network and broadcast addresses of the service
// CIDR (as Kubernetes' allocator), and its first address (10.96.0.1 by
// default), which Kubernetes gives to the `kubernetes` Service: bosun has
// no such Service yet, and keeping it free lets one come without moving
// anyone. A manifest that asks for one of them is refused.
//
// What a manifest may ask: spec.clusterIP (or spec.clusterIPs with one
// entry) and spec.ports[].nodePort are given when they are in range and
// free. An address or node port another Service keeps, or that two
// Services of one revision ask for, is an error on the one that asks (the
// first by namespace/name wins a tie in one revision). Unlike Kubernetes,
// a Service may change its address in Git: Git is the truth, and the data
// path follows it.
//
// Fill wraps Allocate for a manifest.Set: its errors name the file and
// line of the field at fault (manifest.Set.Where).
package ipalloc
