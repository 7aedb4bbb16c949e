package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/nodes/containerdtest"
)

// TestPodNetwork_nodesOnOneHostGetTheirOwnAddresses runs three nodes on this
// host (the server's and two `bosun agent`s) and, round after round, starts
// pods on all of them together while the previous round's pods stop. Every
// node must have a pod network of its own, every pod an address of its own,
// and every round must be ready within seconds.
//
// The harness once gave all the nodes of a test one bridge and one /24: each
// node's IPAM handed out the same addresses, and a new pod's probes went to
// the MAC of another node's pod that had the address before, stopped since,
// until the host's neighbour entry expired: readiness ~30 s late.
func TestPodNetwork_nodesOnOneHostGetTheirOwnAddresses(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("README.md", "pod network\n")
	repo.commit("empty")
	s := startStack(t, repo)
	newNodeAgent(t, s, "node-b")
	newNodeAgent(t, s, "node-c")
	var nodes []corev1.Node
	s.waitFor("three nodes", 60*time.Second, func() error {
		var list struct{ Items []corev1.Node }
		if err := s.getJSON("/api/v1/nodes", &list); err != nil || len(list.Items) != 3 {
			return fmt.Errorf("%d nodes, %v", len(list.Items), err)
		}
		nodes = list.Items
		return nil
	})
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			pa, pb := netip.MustParsePrefix(a.Spec.PodCIDR), netip.MustParsePrefix(b.Spec.PodCIDR)
			if pa.Overlaps(pb) {
				t.Errorf("nodes %s and %s share pod addresses: %s and %s", a.Name, b.Name, pa, pb)
			}
		}
	}

	// Unequal counts, so that each node's next addresses are ones another
	// node's previous pods had.
	replicas := []struct {
		node string
		n    int
	}{{"e2e-node", 1}, {"node-b", 2}, {"node-c", 3}}
	const rounds = 5
	var took []time.Duration
	for round := 1; round <= rounds; round++ {
		var docs []string
		for _, r := range replicas {
			docs = append(docs, placementDeployment(fmt.Sprintf("r%d-%s", round, r.node), r.n,
				"      nodeSelector: {kubernetes.io/hostname: "+r.node+"}\n"))
		}
		repo.write("app.yaml", strings.Join(docs, "---\n"))
		repo.commit(fmt.Sprintf("round %d", round))
		start := time.Now()
		prefix := fmt.Sprintf("r%d-", round)
		s.waitFor(fmt.Sprintf("round %d ready", round), 90*time.Second, func() error {
			if ready := readyPods(s.pods(), prefix); len(ready) != 6 {
				return fmt.Errorf("%d of 6 pods ready", len(ready))
			}
			return nil
		})
		took = append(took, time.Since(start))
		owner := map[string]string{}
		for _, p := range s.pods() {
			if ip := p.Status.PodIP; ip != "" {
				if other, ok := owner[ip]; ok {
					t.Errorf("round %d: pods %s and %s both have address %s", round, other, p.Name+" on "+p.Spec.NodeName, ip)
				}
				owner[ip] = p.Name + " on " + p.Spec.NodeName
			}
		}
	}
	var worst time.Duration
	for _, d := range took {
		worst = max(worst, d)
	}
	t.Logf("6 pods on 3 nodes, commit -> all ready, %d rounds: %v", rounds, took)
	// A round takes 2-4 s here; a probe that waits for a stale neighbour
	// entry takes 30 s or more.
	if worst > 20*time.Second {
		t.Errorf("a round took %s to be ready: %v", worst, took)
	}
}

// TestSubnet_neverHandsOutABridgeTwice: the nodes of one test each get a
// bridge and a /24 of their own, before any of them has started a pod.
func TestSubnet_neverHandsOutABridgeTwice(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("creates bridges")
	}
	bridges := map[string]bool{}
	var prefixes []netip.Prefix
	for range 3 {
		cidr, bridge := subnet(t)
		t.Cleanup(func() { removePodNetwork(t, t.TempDir(), bridge) })
		if bridges[bridge] {
			t.Errorf("bridge %s handed out twice", bridge)
		}
		bridges[bridge] = true
		p := netip.MustParsePrefix(cidr)
		for _, q := range prefixes {
			if p.Overlaps(q) {
				t.Errorf("%s handed out, overlapping %s", p, q)
			}
		}
		prefixes = append(prefixes, p)
	}
}

// TestPodNetwork_aSecondNodeWithTheSameAddressesIsRefused: `bosun agent` on
// the machine of a server's node, given the same pod CIDR (another bridge),
// is refused by the leader and stops at once, saying why; the server's node
// is unaffected.
func TestPodNetwork_aSecondNodeWithTheSameAddressesIsRefused(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("README.md", "pod network\n")
	repo.commit("empty")
	s := startStack(t, repo)
	s.waitFor("the server's node", 30*time.Second, func() error {
		var list struct{ Items []corev1.Node }
		if err := s.getJSON("/api/v1/nodes", &list); err != nil || len(list.Items) != 1 {
			return fmt.Errorf("%d nodes, %v", len(list.Items), err)
		}
		return nil
	})
	i := slices.Index(s.args, "--pod-cidr")
	cidr := s.args[i+1]
	_, bridge := subnet(t)
	netnsDir := t.TempDir()
	t.Cleanup(func() { removePodNetwork(t, netnsDir, bridge) })
	stateDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bosun(t), "agent",
		"--etcd-endpoints", "http://"+s.etcdAddr, "--node-name", "node-b",
		"--state-dir", stateDir, "--containerd-address", containerdtest.Start(t),
		"--pod-cidr", cidr, "--bridge", bridge, "--netns-dir", netnsDir, "--proxy=false").CombinedOutput()
	var ee *exec.ExitError
	// The leader refuses it (issue 11: it records every node's subnet).
	want := "bosun: node node-b: pod subnet refused: node node-b asks for pod subnet " + cidr + ", which overlaps the pod subnet of node e2e-node (" + cidr + ")"
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), want) {
		t.Fatalf("agent: %v, want exit status 1 and %q; output:\n%s", err, want, out)
	}
	// The refused node registered (waiting for its subnet) and left.
	s.waitFor("e2e-node alone after the refusal", 10*time.Second, func() error {
		var list struct{ Items []corev1.Node }
		if err := s.getJSON("/api/v1/nodes", &list); err != nil || len(list.Items) != 1 || list.Items[0].Name != "e2e-node" {
			return fmt.Errorf("nodes %+v, %v", list.Items, err)
		}
		return nil
	})
}
