package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// etcd's embedded server and grpc keep package-level goroutines.
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("go.etcd.io/etcd/pkg/v3/traceutil.(*Trace).LogIfLong"),
		goleak.IgnoreTopFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		goleak.IgnoreTopFunction("go.etcd.io/etcd/client/pkg/v3/logutil.(*MergeLogger).outputLoop"),
	)
}

func pod(ns, name, uid, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: typesUID(uid)},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "img"}}},
	}
}

func TestSnapshot_mergesStatusOnlyForSameUID(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	lead := leadFor(t, s)
	var ops []Op
	for _, p := range []*corev1.Pod{pod("default", "a", "u1", "n1"), pod("default", "b", "u2", "n2")} {
		op, err := PutPod(p)
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, op)
	}
	if err := lead.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPodStatus(ctx, "default", "a", PodStatus{UID: "u1", Node: "n1", Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.88.0.2"}}); err != nil {
		t.Fatal(err)
	}
	// A stale report from an earlier incarnation of pod b must not be merged.
	if err := s.PutPodStatus(ctx, "default", "b", PodStatus{UID: "old", Node: "n2", Status: corev1.PodStatus{Phase: corev1.PodFailed}}); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Pods) != 2 {
		t.Fatalf("pods = %d, want 2", len(snap.Pods))
	}
	if got := snap.Pods[0].Status; got.Phase != corev1.PodRunning || got.PodIP != "10.88.0.2" {
		t.Errorf("pod a status = %+v, want Running 10.88.0.2", got)
	}
	if got := snap.Pods[1].Status.Phase; got != "" {
		t.Errorf("pod b phase = %q, want empty (stale UID)", got)
	}
	// The earlier incarnation is still being stopped by its node.
	if len(snap.Terminating) != 1 || snap.Terminating[0].Name != "b" || snap.Terminating[0].UID != "old" || snap.Terminating[0].Node != "n2" {
		t.Errorf("terminating = %+v, want the old b on n2", snap.Terminating)
	}
	onNode, _, err := s.PodsOnNode(ctx, "n2")
	if err != nil || len(onNode) != 1 || onNode[0].Name != "b" {
		t.Errorf("PodsOnNode(n2) = %v, %v; want [b]", onNode, err)
	}
}

func TestLeadership_deposedLeaderCannotWrite(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	first, err := s.Campaign(ctx, "r1", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := s.Leader(ctx); id != "r1" {
		t.Fatalf("leader = %q, want r1", id)
	}
	// Revoke r1's session behind its back, as an expired TTL would.
	if _, err := s.cli.Revoke(ctx, first.session.Lease()); err != nil {
		t.Fatal(err)
	}
	second, err := s.Campaign(ctx, "r2", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Resign(ctx)
	op, _ := PutPod(pod("default", "x", "u", ""))
	if err := first.Apply(ctx, []Op{op}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("deposed Apply err = %v, want ErrNotLeader", err)
	}
	snap, _ := s.Snapshot(ctx)
	if len(snap.Pods) != 0 {
		t.Fatalf("deposed leader wrote %d pods", len(snap.Pods))
	}
	if err := second.Apply(ctx, []Op{op}); err != nil {
		t.Fatalf("new leader Apply: %v", err)
	}
	if id, _ := s.Leader(ctx); id != "r2" {
		t.Fatalf("leader = %q, want r2", id)
	}
}

func TestLeadership_applySplitsLargePlans(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	lead := leadFor(t, s)
	var ops []Op
	for i := 0; i < 500; i++ {
		op, _ := PutPod(pod("default", "p"+itoa(i), "u", ""))
		ops = append(ops, op)
	}
	if err := lead.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	snap, _ := s.Snapshot(ctx)
	if len(snap.Pods) != 500 {
		t.Fatalf("pods = %d, want 500", len(snap.Pods))
	}
}

// TestLeadership_applyRecreatesUnderTheSameKey: a pod deleted and created
// again under its name in one plan is one write of the new pod (etcd
// refuses a transaction that names a key twice).
func TestLeadership_applyRecreatesUnderTheSameKey(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	lead := leadFor(t, s)
	old, _ := PutPod(pod("default", "tool", "uid-1", ""))
	if err := lead.Apply(ctx, []Op{old}); err != nil {
		t.Fatal(err)
	}
	fresh, _ := PutPod(pod("default", "tool", "uid-2", ""))
	other, _ := PutPod(pod("default", "other", "uid-3", ""))
	if err := lead.Apply(ctx, []Op{DeletePod("", "default", "tool"), other, fresh}); err != nil {
		t.Fatalf("delete then put of one key: %v", err)
	}
	snap, _ := s.Snapshot(ctx)
	if len(snap.Pods) != 2 || snap.Pods[1].Name != "tool" || snap.Pods[1].UID != "uid-2" {
		t.Fatalf("pods = %+v", snap.Pods)
	}
	// The last write wins the other way round too.
	if err := lead.Apply(ctx, []Op{fresh, DeletePod("", "default", "tool")}); err != nil {
		t.Fatal(err)
	}
	if snap, _ = s.Snapshot(ctx); len(snap.Pods) != 1 {
		t.Fatalf("pods = %d, want 1", len(snap.Pods))
	}
}

func TestNodeLease_closeRemovesNode(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	l, err := s.RegisterNode(ctx, n, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The lease is kept alive past its TTL.
	time.Sleep(1500 * time.Millisecond)
	snap, _ := s.Snapshot(ctx)
	if len(snap.Nodes) != 1 {
		t.Fatalf("nodes = %d after TTL, want 1 (keepalive)", len(snap.Nodes))
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	snap, _ = s.Snapshot(ctx)
	if len(snap.Nodes) != 0 {
		t.Fatalf("nodes = %d after Close, want 0", len(snap.Nodes))
	}
}

func TestNodeLease_lostWhenRevoked(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	l, err := s.RegisterNode(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	if _, err := s.cli.Revoke(ctx, l.lease); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("Lost not closed after the lease was revoked")
	}
}

func TestChanges_coalescesAndFilters(t *testing.T) {
	s := NewTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch := s.Changes(ctx, ServicesPrefix)
	lead := leadFor(t, s)
	// The first notification says the watch is established.
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no notification when the watch was established")
	}
	// A pod write is not under services/: no notification.
	op, _ := PutPod(pod("default", "a", "u", ""))
	if err := lead.Apply(ctx, []Op{op}); err != nil {
		t.Fatal(err)
	}
	select {
	case rev := <-ch:
		t.Fatalf("notified (rev %d) for a key outside the prefix", rev)
	case <-time.After(300 * time.Millisecond):
	}
	for i := 0; i < 20; i++ {
		op, _ := PutService(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "s" + itoa(i)}})
		if err := lead.Apply(ctx, []Op{op}); err != nil {
			t.Fatal(err)
		}
	}
	want := int64(0)
	snap, _ := s.Snapshot(ctx)
	want = snap.Revision
	deadline := time.After(5 * time.Second)
	for {
		select {
		case rev := <-ch:
			if rev == want {
				cancel()
				for range ch {
				}
				return
			}
		case <-deadline:
			t.Fatalf("never notified of revision %d", want)
		}
	}
}

func TestDeletePodStatus_onlyForTheSameInstance(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	if err := s.PutPodStatus(ctx, "default", "a", PodStatus{UID: "new", Node: "n2"}); err != nil {
		t.Fatal(err)
	}
	// The old instance's node finishes its teardown late: the new
	// instance's status must survive, whether the old instance ran on
	// another node or on the same one.
	if err := s.DeletePodStatus(ctx, "n1", "default", "a", "old"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePodStatus(ctx, "n2", "default", "a", "old"); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.PodStatuses(ctx); st["default/a"].UID != "new" {
		t.Fatalf("statuses = %v, want the new instance's kept", st)
	}
	if err := s.DeletePodStatus(ctx, "n2", "default", "a", "new"); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.PodStatuses(ctx); len(st) != 0 {
		t.Fatalf("statuses = %v, want none", st)
	}
}

func TestDesiredAndHistory_roundTrip(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	lead := leadFor(t, s)
	if d, err := s.Desired(ctx); d != nil || err != nil {
		t.Fatalf("Desired before any = %v, %v; want nil, nil", d, err)
	}
	want := &Desired{Revision: Revision{Commit: "abc"}, Pods: []corev1.Pod{*pod("default", "a", "u", "")}}
	dop, err := PutDesired(want)
	if err != nil {
		t.Fatal(err)
	}
	var ops []Op
	ops = append(ops, dop)
	for seq := int64(1); seq <= 3; seq++ {
		op, _ := PutHistory(&HistoryEntry{Seq: seq, Revision: Revision{Commit: "c" + itoa(int(seq))}, Result: ResultApplied, ReadyAfter: Duration(1500 * time.Millisecond)})
		ops = append(ops, op)
	}
	if err := lead.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if err := lead.Apply(ctx, []Op{DeleteHistory(1)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Desired(ctx)
	if err != nil || got.Revision.Commit != "abc" || len(got.Pods) != 1 || got.Pods[0].Name != "a" {
		t.Fatalf("Desired = %+v, %v", got, err)
	}
	h, err := s.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].Seq != 3 || h[1].Seq != 2 || h[0].Commit != "c3" || h[0].ReadyAfter != Duration(1500*time.Millisecond) {
		t.Fatalf("History = %+v, want seq 3 then 2", h)
	}
	// Neither shows up in a snapshot.
	snap, err := s.Snapshot(ctx)
	if err != nil || len(snap.Pods) != 0 {
		t.Fatalf("Snapshot = %+v, %v", snap, err)
	}
}

// leadFor makes s's test replica the leader until the test ends.
func leadFor(t testing.TB, s *Store) *Leadership {
	t.Helper()
	// A 10 s session: a loaded test machine must not expire it mid-test
	// (a test of failover resigns instead).
	lead, err := s.Campaign(context.Background(), "r1", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lead.Resign(context.Background()) })
	return lead
}

// A node writes statuses only under its own name (AllowNode); a status
// another node reports for a pod that is not bound to it is never merged
// into the pod, by the Snapshot or by the Cache.
func TestStatus_onlyFromThePodsOwnNode(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	lead := leadFor(t, s)
	if err := lead.Apply(ctx, []Op{mustOp(PutPod(pod("default", "a", "u1", "n1")))}); err != nil {
		t.Fatal(err)
	}
	forged := PodStatus{UID: "u1", Node: "n1", Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.9.9.9"}}
	b, _ := json.Marshal(forged)
	if _, err := s.Client().Put(ctx, PodStatusKey("n2", "default", "a"), string(b)); err != nil {
		t.Fatal(err)
	}
	c := NewCache(s, CacheConfig{})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); c.Run(rctx) }()
	defer func() { cancel(); <-done }()
	rev, _ := s.Revision(ctx)
	if err := c.WaitFor(ctx, rev); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cached, _ := c.Snapshot(ctx)
	for what, sn := range map[string]*Snapshot{"snapshot": snap, "cache": cached} {
		if len(sn.Pods) != 1 || sn.Pods[0].Status.PodIP != "" {
			t.Errorf("%s: pod a got n2's status: %+v", what, sn.Pods[0].Status)
		}
		if len(sn.Terminating) != 1 || sn.Terminating[0].Node != "n2" {
			t.Errorf("%s: terminating = %+v, want n2's report alone", what, sn.Terminating)
		}
	}
}
