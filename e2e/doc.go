// Package e2e holds bosun's end-to-end tests: the real bosun binary, a
// private containerd, an embedded etcd, real Git repositories and a real
// DNS client. They need root and containerd; outside CI they are skipped
// when those are missing (and with -short), in CI they fail.
package e2e
