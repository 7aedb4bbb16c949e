// Package kubeproxy measures bosun's Service rule engine (bosun/proxy)
// side by side with kube-proxy's nftables proxier
// (k8s.io/kubernetes/pkg/proxy/nftables), both run in this process on the
// same inputs, each in a fresh network namespace: a full sync of 1,000
// Services x 10 endpoints, an incremental sync after one endpoint of one
// Service was replaced, the rules each table holds and the heap each
// engine keeps. `make bench-kubeproxy` runs it (5 runs, benchstat);
// README.md says how, and what it measured.
//
// It is a module of its own so that bosun's go.mod does not carry
// Kubernetes; `go test ./...` at bosun's root does not enter it.
//
// # How kube-proxy runs here
//
// kube-proxy's proxier needs no API server: nftables.NewProxier is given
// kube-proxy's default configuration for what it reads (masquerade bit
// 14, detect-local by the pod CIDR 10.244.0.0/16 as with --cluster-cidr),
// no event recorder and no healthz server. Services and EndpointSlices
// reach it through the handlers its informers would call (OnServiceAdd,
// OnEndpointSliceAdd/Update, OnServiceSynced, OnEndpointSlicesSynced). Its
// exported Sync only queues a run of its sync loop, which does not run
// here; OnEndpointSlicesSynced calls the sync function (syncProxyRules)
// directly on the calling goroutine, so every sync is driven that way:
// the first is the full sync kube-proxy does at start, later ones are
// the partial syncs its loop would run for the pending changes.
//
// knftables writes every transaction by running `nft -f -` (and, with the
// NFTablesNetlink feature gate, on by default in v1.37, lists chains and
// sets over netlink). A process started by a thread inherits that
// thread's network namespace, so each engine runs on one locked OS thread
// moved into a new namespace (netns.New) and never moved back; the
// benchmarks check that kube-proxy's table is in that namespace and not in
// the host's. bosun's Table gets the namespace's handle
// (proxy.Config.NetNS) and runs on such a thread too.
package kubeproxy
