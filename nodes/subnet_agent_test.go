package nodes_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/nodes"
	"bosun/store"
)

// TestAgent_waitsForItsSubnet: with a leader elected, an agent that asks
// for no subnet registers not Ready and tainted, waits for the leader's
// record, then builds its network in it and publishes it; one whose
// request the leader refuses stops with the refusal, having changed
// nothing on the machine.
func TestAgent_waitsForItsSubnet(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	lead, err := h.st.Campaign(ctx, "test-leader", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lead.Resign(ctx) })
	h.cfg.PodCIDR = ""
	h.startAgent()

	node := func(name string) (corev1.Node, bool) {
		ns, _ := h.st.Nodes(ctx)
		for _, n := range ns {
			if n.Name == name {
				return n, true
			}
		}
		return corev1.Node{}, false
	}
	waitUntil(t, "node-1 registered, waiting", func() bool {
		n, ok := node("node-1")
		return ok && n.Spec.PodCIDR == "" && slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == nodes.TaintNetworkUnavailable })
	})
	time.Sleep(300 * time.Millisecond)
	if _, err := os.Stat(h.cfg.StateDir + "/cni"); err == nil {
		t.Fatal("the network was built before the subnet was given")
	}
	op, _ := store.PutNodeSubnet(store.NodeSubnet{Node: "node-1", PodCIDR: testCIDR})
	if err := lead.Apply(ctx, []store.Op{op}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "node-1 Ready in its subnet", func() bool {
		n, ok := node("node-1")
		if !ok || n.Spec.PodCIDR != testCIDR || len(n.Spec.Taints) != 0 {
			return false
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue
			}
		}
		return false
	})

	// node-2 asks for node-1's subnet; the "leader" refuses it.
	cfg := h.cfg
	cfg.NodeName, cfg.StateDir, cfg.PodCIDR = "node-2", t.TempDir(), testCIDR
	a, err := nodes.New(cfg, h.st)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	waitUntil(t, "node-2 registered", func() bool { _, ok := node("node-2"); return ok })
	op, _ = store.PutNodeSubnet(store.NodeSubnet{Node: "node-2", Refused: "node node-2 asks for pod subnet " + testCIDR + ", which overlaps the pod subnet of node node-1", RefusedRequest: testCIDR})
	if err := lead.Apply(ctx, []store.Op{op}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, nodes.ErrSubnetRefused) {
			t.Fatalf("node-2: %v, want the refusal", err)
		}
		t.Logf("node-2: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("node-2 did not stop")
	}
	if ents, _ := os.ReadDir(cfg.StateDir); len(ents) != 0 {
		t.Errorf("the refused agent wrote to its state dir: %v", ents)
	}
	if _, ok := node("node-2"); ok {
		t.Error("the refused node is still registered")
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
