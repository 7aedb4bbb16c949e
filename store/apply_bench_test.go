package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
)

// BenchmarkLeadershipApply_10kPods is the leader's write of a revision that
// creates 10,000 pods of about 1.5 kB (JSON) each, bound to 1,000 nodes,
// with one transaction at a time and with up to txnsInFlight at once, on
// an embedded etcd with its default ticks and fsync.
func BenchmarkLeadershipApply_10kPods(b *testing.B) {
	s := NewTestWith(b, EmbeddedConfig{}) // default ticks and fsync, as a server runs it
	ctx := context.Background()
	lead := leadFor(b, s)
	var create, remove []Op
	for i := range 10000 {
		p := pod("default", fmt.Sprintf("app-%03d-5d8f7c6b9-%05d", i/60, i), fmt.Sprintf("uid-%d", i), fmt.Sprintf("sim-%04d", i%1000))
		p.Labels = map[string]string{"app": fmt.Sprintf("app-%03d", i/60), "pod-template-hash": "5d8f7c6b9"}
		p.Annotations = map[string]string{"bosun.dev/spec-hash": strings.Repeat("f", 64)}
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PADDING", Value: strings.Repeat("x", 1100)}}
		create = append(create, mustOp(PutPod(p)))
		remove = append(remove, DeletePod(p.Spec.NodeName, p.Namespace, p.Name))
	}
	defer func(n int) { txnsInFlight = n }(txnsInFlight)
	for _, inFlight := range []int{1, 4} {
		b.Run(fmt.Sprintf("inflight=%d", inFlight), func(b *testing.B) {
			txnsInFlight = inFlight
			for range b.N {
				if err := lead.Apply(ctx, create); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := lead.Apply(ctx, remove); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.N*len(create))/b.Elapsed().Seconds(), "pods/s")
		})
	}
}

// TestLeadership_concurrentPodWritesAreFenced: pod-only transactions sent
// at once are each fenced: a deposed leader's write of 1,000 pods (several
// transactions in flight) fails with ErrNotLeader and writes none.
func TestLeadership_concurrentPodWritesAreFenced(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	lead := leadFor(t, s)
	var ops []Op
	for i := range 1000 {
		ops = append(ops, mustOp(PutPod(pod("default", fmt.Sprintf("p%04d", i), "u", "n1"))))
	}
	if n := len(batches(ops)); n < txnsInFlight {
		t.Fatalf("%d transactions: the test wants more than %d in flight", n, txnsInFlight)
	}
	if err := lead.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lead.Apply(ctx, ops); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("deposed leader's Apply: %v, want ErrNotLeader", err)
	}
	if on, _, _ := s.PodsOnNode(ctx, "n1"); len(on) != 0 {
		t.Fatalf("a deposed leader wrote %d pods", len(on))
	}
	lead = leadFor(t, s)
	if err := lead.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if on, _, _ := s.PodsOnNode(ctx, "n1"); len(on) != 1000 {
		t.Fatalf("the leader wrote %d of 1,000 pods", len(on))
	}
}

// BenchmarkStoreSnapshot30kPods is one read of the whole state from etcd
// (Store.Snapshot) with the 30,000 pods and statuses of
// BenchmarkCacheSnapshot30kPods_afterOneStatusChange: what the leader did
// on every pass, and at least once a second, before it read from the
// Cache. Run them together:
//
//	go test -run '^$' -bench 'Snapshot30kPods' -benchmem ./store
func BenchmarkStoreSnapshot30kPods(b *testing.B) {
	s := NewTest(b)
	ctx := context.Background()
	lead := leadFor(b, s)
	const n = 30000
	var pods []Op
	var statuses []clientv3.Op
	for i := range n {
		p := pod(fmt.Sprintf("ns%d", i%500), fmt.Sprintf("web-%d", i), fmt.Sprintf("uid-%d", i), fmt.Sprintf("sim-%04d", i%1000))
		p.Labels = map[string]string{"app": fmt.Sprintf("web%d", i%500)}
		pods = append(pods, mustOp(PutPod(p)))
		sv, _ := json.Marshal(PodStatus{UID: p.UID, Node: p.Spec.NodeName, Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}})
		statuses = append(statuses, clientv3.OpPut(PodStatusKey(p.Spec.NodeName, p.Namespace, p.Name), string(sv)))
	}
	if err := lead.Apply(ctx, pods); err != nil {
		b.Fatal(err)
	}
	for len(statuses) > 0 {
		k := min(len(statuses), maxOpsPerTxn)
		if _, err := s.Client().Txn(ctx).Then(statuses[:k]...).Commit(); err != nil {
			b.Fatal(err)
		}
		statuses = statuses[k:]
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		snap, err := s.Snapshot(ctx)
		if err != nil || len(snap.Pods) != n {
			b.Fatal(err, len(snap.Pods))
		}
	}
}
