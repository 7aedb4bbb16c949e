// Package e2e holds bosun's end-to-end tests: the real bosun binary, a
// private containerd, an embedded etcd, real Git repositories and a real
// DNS client. They need root and containerd; outside CI they are skipped
// when those are missing (and with -short), in CI they fail.
//
// Every test runs in parallel with the others (make test gives go test
// -parallel 4): each has its own containerd, bosun processes, ports, Git
// repositories, and a bridge and /24 of its own (subnet reserves the bridge
// by creating it).
package e2e
