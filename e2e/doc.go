// Package e2e holds bosun's end-to-end tests: the real bosun binary, a
// private containerd, an embedded etcd, real Git repositories and a real
// DNS client. They need root and containerd; outside CI they are skipped
// when those are missing (and with -short), in CI they fail.
//
// Every test runs in parallel with the others (make test gives go test
// -parallel 4): each has its own containerd, bosun processes, ports, Git
// repositories, and a bridge and /24 of its own (subnet reserves the bridge
// by creating it).
//
// The multi-host tests (manymachines_test.go) run a cluster of hosts
// (multihost_test.go: newCluster): each host a network namespace with its
// own address on a test switch (a bridge in a namespace of its own, and a
// router namespace as every host's gateway, or between two segments), server
// hosts running bosun server --agent=false, node hosts their own containerd
// and bosun agent, joined with the join token. Faults: SIGKILL and restart of
// a server, an agent or a host's containerd, a host's cable pulled
// (mhHost.partition). Every scenario ends with the same invariant check
// (checkInvariant). Nothing is created in the test machine's own network
// namespace; the namespaces carry the test binary's pid, and the first
// cluster of a binary removes what binaries that are gone left behind.
package e2e
