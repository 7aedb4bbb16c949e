package nodes_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bosun/nodes"
)

// TestAgent_refusesPodAddressesAnotherNodeHas: a second node on this
// machine given the pod CIDR of a registered one (two agents with the
// default --pod-cidr) does not start, says why, and changes nothing: its
// pods would get the addresses of the first node's pods.
func TestAgent_refusesPodAddressesAnotherNodeHas(t *testing.T) {
	h := newHarness(t)
	h.startAgent()
	deadline := time.Now().Add(10 * time.Second)
	for {
		snap, err := h.st.Snapshot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Nodes) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node-1 not registered")
		}
		time.Sleep(50 * time.Millisecond)
	}

	cfg := h.cfg
	cfg.NodeName, cfg.StateDir = "node-2", t.TempDir()
	a, err := nodes.New(cfg, h.st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = a.Run(ctx)
	want := "node node-2: pod CIDR " + testCIDR + " overlaps node node-1's " + testCIDR + ", on this machine"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second agent: err = %v, want %q", err, want)
	}
	snap, err := h.st.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Nodes) != 1 || snap.Nodes[0].Name != "node-1" {
		t.Errorf("nodes after the refusal: %d, want node-1 alone", len(snap.Nodes))
	}
	if ents, _ := os.ReadDir(cfg.StateDir); len(ents) != 0 {
		t.Errorf("the refused agent wrote to its state dir: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "cni")); err == nil {
		t.Error("the refused agent wrote a CNI network")
	}
}
