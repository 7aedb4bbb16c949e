package nodes_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"bosun/nodes"
	"bosun/store"
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

// TestAgent_reusedAddressIsReachableAtOnce: a pod network of one address
// (a /30) makes the next pod take the address of the one before; its
// readiness probe must reach it at once, not after the host's neighbour
// entry for the old pod's MAC expires (15-45 s). The CNI bridge plugin's
// gratuitous ARP updates that entry when the address is free before it is
// used again; two live pods with one address (nodes sharing a pod CIDR on
// one machine, refused above) are what left it stale.
func TestAgent_reusedAddressIsReachableAtOnce(t *testing.T) {
	h := newHarness(t)
	h.cfg.PodCIDR = fmt.Sprintf("10.86.%d.0/30", testNet)
	h.startAgent()
	probed := func(name string, uid types.UID) *corev1.Pod {
		p := helloPod(name, uid)
		p.Spec.TerminationGracePeriodSeconds = new(int64)
		p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1,
		}
		return p
	}
	h.putPod(probed("first", "11111111-aaaa"))
	first := h.waitStatus("default", "first", 60*time.Second, "ready", running)
	h.deletePod("default", "first")
	h.waitStatus("default", "first", 30*time.Second, "gone", func(ps *store.PodStatus) bool { return ps == nil })

	start := time.Now()
	h.putPod(probed("second", "22222222-bbbb"))
	second := h.waitStatus("default", "second", 60*time.Second, "ready", running)
	took := time.Since(start)
	if second.Status.PodIP != first.Status.PodIP {
		t.Fatalf("the second pod got %s, the first had %s: the test needs the address reused", second.Status.PodIP, first.Status.PodIP)
	}
	t.Logf("%s reused: the second pod was ready %s after it was bound", second.Status.PodIP, took.Round(time.Millisecond))
	if took > 8*time.Second {
		t.Errorf("the pod on a reused address was ready only after %s", took.Round(time.Millisecond))
	}
	h.deletePod("default", "second")
	h.waitStatus("default", "second", 30*time.Second, "gone", func(ps *store.PodStatus) bool { return ps == nil })
}
