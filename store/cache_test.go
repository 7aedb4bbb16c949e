package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// currentRev is etcd's current revision.
func currentRev(t testing.TB, s *Store) int64 {
	t.Helper()
	resp, err := s.cli.Get(context.Background(), "/bosun/none")
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// sameState compares two snapshots but for their revision.
func sameState(a, b *Snapshot) bool {
	x, y := *a, *b
	x.Revision, y.Revision, x.index, y.index = 0, 0, nil, nil
	return reflect.DeepEqual(x, y)
}

func mustPut(t testing.TB, s *Store, key string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.cli.Put(context.Background(), key, string(b)); err != nil {
		t.Fatal(err)
	}
}

// TestCache_agreesWithSnapshotAfterRandomWrites is a property test: after
// any sequence of puts, deletes, bindings and status reports, the cache
// (list then watch) shows what a fresh read of etcd shows.
func TestCache_agreesWithSnapshotAfterRandomWrites(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	lead := leadFor(t, s)
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			// Some state before the cache lists, more after.
			randomWrites(t, s, lead, rng, 30)
			c := RunTestCache(t, s, CacheConfig{})
			for round := 0; round < 15; round++ {
				randomWrites(t, s, lead, rng, 1+rng.IntN(20))
				if err := c.WaitFor(ctx, currentRev(t, s)); err != nil {
					t.Fatal(err)
				}
				got, err := c.Snapshot(ctx)
				if err != nil {
					t.Fatal(err)
				}
				want, err := s.Snapshot(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !sameState(got, want) {
					t.Fatalf("round %d: cache and etcd differ:\ncache pods %d terminating %v\netcd  pods %d terminating %v",
						round, len(got.Pods), got.Terminating, len(want.Pods), want.Terminating)
				}
				for _, p := range want.Pods {
					if g := got.Pod(p.Namespace, p.Name); g == nil || g.UID != p.UID {
						t.Fatalf("round %d: Pod(%s/%s) = %v", round, p.Namespace, p.Name, g)
					}
				}
			}
		})
	}
}

// randomWrites makes n random changes of the kinds the cache serves.
func randomWrites(t testing.TB, s *Store, lead *Leadership, rng *rand.Rand, n int) {
	t.Helper()
	ctx := context.Background()
	snap, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nodes := []string{"", "n1", "n2", "n3"}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("p%d", rng.IntN(12))
		ns := []string{"default", "prod"}[rng.IntN(2)]
		uid := fmt.Sprintf("u%d", rng.IntN(3))
		var ops []Op
		switch rng.IntN(9) {
		case 0, 1: // create or replace a pod
			var from *corev1.Pod
			for j := range snap.Pods {
				if snap.Pods[j].Namespace == ns && snap.Pods[j].Name == name {
					from = snap.Pods[j]
				}
			}
			p := pod(ns, name, uid, nodes[rng.IntN(len(nodes))])
			p.OwnerReferences = []metav1.OwnerReference{{Kind: "Deployment", Name: "web", Controller: new(bool)}}
			*p.OwnerReferences[0].Controller = true
			op, err := PutPod(p)
			if from != nil {
				op, err = MovePod(from.Spec.NodeName, p)
			}
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, op)
		case 2: // delete a pod
			for _, p := range snap.Pods {
				if p.Namespace == ns && p.Name == name {
					ops = append(ops, DeletePod(p.Spec.NodeName, ns, name))
				}
			}
		case 3, 4: // a status report
			st := PodStatus{UID: typesUID(uid), Node: nodes[1+rng.IntN(3)], Owner: "Deployment/" + ns + "/web",
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.0.0.%d", rng.IntN(200)),
					Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
			if err := s.PutPodStatus(ctx, ns, name, st); err != nil {
				t.Fatal(err)
			}
		case 5:
			if err := s.DeletePodStatus(ctx, nodes[1+rng.IntN(3)], ns, name, typesUID(uid)); err != nil {
				t.Fatal(err)
			}
		case 6:
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "s" + name[1:]},
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": uid}}}
			op, _ := PutService(svc)
			if rng.IntN(3) == 0 {
				op = DeleteService(ns, svc.Name)
			}
			ops = append(ops, op)
		case 7:
			d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web", Generation: int64(rng.IntN(5))}}
			op, _ := PutDeployment(d)
			ops = append(ops, op, mustOp(PutSyncStatus(&SyncStatus{Leader: uid})))
		case 8:
			node := nodes[1+rng.IntN(3)]
			if rng.IntN(2) == 0 {
				if _, err := s.cli.Delete(ctx, NodeKey(node)); err != nil {
					t.Fatal(err)
				}
			} else {
				mustPut(t, s, NodeKey(node), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{"v": uid}}})
			}
		}
		if len(ops) > 0 {
			if err := lead.Apply(ctx, ops); err != nil {
				t.Fatal(err)
			}
			if snap, err = s.Snapshot(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func mustOp(op Op, err error) Op {
	if err != nil {
		panic(err)
	}
	return op
}

// TestCache_relistsAfterCompaction: a watch that cannot resume because
// the revisions it missed were compacted lists again, swaps in the new
// state and says so in bosun_cache_relists_total.
func TestCache_relistsAfterCompaction(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	lead := leadFor(t, s)
	reg := prometheus.NewRegistry()
	c := NewCache(s, CacheConfig{Registerer: reg})
	gate := make(chan struct{})
	atGate := make(chan struct{}, 1)
	var armed sync.Mutex
	var hold bool
	c.watchGate = func(ctx context.Context) {
		armed.Lock()
		h := hold
		armed.Unlock()
		if h {
			select {
			case atGate <- struct{}{}:
			default:
			}
			select {
			case <-gate:
			case <-ctx.Done():
			}
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); c.Run(rctx) }()
	defer func() { cancel(); <-done }()

	first := mustOp(PutPod(pod("default", "a", "u1", "n1")))
	if err := lead.Apply(ctx, []Op{first}); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, lead.Revision()); err != nil {
		t.Fatal(err)
	}
	changes := c.Changes(rctx, PodsPrefix)
	<-changes // the initial notification

	// Break the watch and hold it closed while etcd moves on and compacts.
	armed.Lock()
	hold = true
	armed.Unlock()
	select {
	case c.restart <- struct{}{}:
	default: // a restart is already pending
	}
	// Only once the watch is down may etcd move on: a watch still open
	// would receive the writes below and never need to relist.
	select {
	case <-atGate:
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not stop")
	}
	second := mustOp(PutPod(pod("default", "b", "u2", "n2")))
	if err := lead.Apply(ctx, []Op{DeletePod("n1", "default", "a"), second}); err != nil {
		t.Fatal(err)
	}
	// Compaction keeps the revision it is given: write once more, so that
	// the revision the watch resumes from is gone.
	if err := lead.Apply(ctx, []Op{mustOp(PutSyncStatus(&SyncStatus{Leader: "r1"}))}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cli.Compact(ctx, lead.Revision()); err != nil {
		t.Fatal(err)
	}
	armed.Lock()
	hold = false
	armed.Unlock()
	close(gate)

	if err := c.WaitFor(ctx, lead.Revision()); err != nil {
		t.Fatal(err)
	}
	snap, _ := c.Snapshot(ctx)
	if len(snap.Pods) != 1 || snap.Pods[0].Name != "b" {
		t.Fatalf("pods after relist = %+v, want only b", snap.Pods)
	}
	select {
	case <-changes:
	case <-time.After(5 * time.Second):
		t.Fatal("no notification after the relist")
	}
	if got := testutil.ToFloat64(c.m.relists.WithLabelValues("compacted")); got != 1 {
		t.Errorf("relists{compacted} = %v, want 1", got)
	}
}

// TestCache_waitForAndChanges: WaitFor returns once the cache shows a
// write; notifications are per kind and coalesce; both end with ctx.
func TestCache_waitForAndChanges(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	lead := leadFor(t, s)
	c := RunTestCache(t, s, CacheConfig{})
	cctx, cancel := context.WithCancel(ctx)
	pods := c.Changes(cctx, PodsPrefix, PodStatusPrefix)
	svcs := c.Changes(cctx, ServicesPrefix)
	<-pods
	<-svcs

	if err := lead.Apply(ctx, []Op{mustOp(PutPod(pod("default", "a", "u1", "")))}); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, lead.Revision()); err != nil {
		t.Fatal(err)
	}
	if snap, _ := c.Snapshot(ctx); snap.Pod("default", "a") == nil || snap.Revision < lead.Revision() {
		t.Fatalf("after WaitFor(%d): snapshot at %d without the pod", lead.Revision(), snap.Revision)
	}
	if rev := <-pods; rev != lead.Revision() {
		t.Errorf("pods notification = %d, want %d", rev, lead.Revision())
	}
	select {
	case rev := <-svcs:
		t.Errorf("services notified of a pod write (rev %d)", rev)
	default:
	}
	// Unchanged state: the same snapshot.
	a, _ := c.Snapshot(ctx)
	b, _ := c.Snapshot(ctx)
	if a != b {
		t.Error("two snapshots of an unchanged cache differ")
	}
	// A revision not yet written: WaitFor ends with its ctx.
	wctx, wcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer wcancel()
	if err := c.WaitFor(wctx, lead.Revision()+100); err == nil {
		t.Error("WaitFor of a future revision returned nil")
	}
	cancel()
	for range pods {
	}
	for range svcs {
	}
}

// TestCache_nodePrefixSeesOnlyItsPods: an agent's cache of its node's
// prefix sees the pods bound to it, a binding as it happens, and nothing of
// other nodes.
func TestCache_nodePrefixSeesOnlyItsPods(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	lead := leadFor(t, s)
	c := RunTestCache(t, s, CacheConfig{Prefixes: []string{NodePodsPrefix("n1")}, Name: "node"})
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := c.Changes(cctx)
	<-ch
	unbound := pod("default", "a", "u1", "")
	if err := lead.Apply(ctx, []Op{mustOp(PutPod(unbound)), mustOp(PutPod(pod("default", "b", "u2", "n2")))}); err != nil {
		t.Fatal(err)
	}
	bound := unbound.DeepCopy()
	bound.Spec.NodeName = "n1"
	if err := lead.Apply(ctx, []Op{mustOp(MovePod("", bound))}); err != nil {
		t.Fatal(err)
	}
	<-ch
	snap, _ := c.Snapshot(ctx)
	if len(snap.Pods) != 1 || snap.Pods[0].Name != "a" || snap.Pods[0].Spec.NodeName != "n1" {
		t.Fatalf("node n1's pods = %+v", snap.Pods)
	}
	all, _ := s.Snapshot(ctx)
	if len(all.Pods) != 2 {
		t.Fatalf("pods in etcd = %d, want 2 (the binding must move, not copy)", len(all.Pods))
	}
}

// TestLeadership_migratesOldPodKeys: pods at /bosun/pods/<ns>/<name> (the
// layout before pods were grouped by node) are read as they are, and moved
// under their node by MigratePodKeys.
func TestLeadership_migratesOldPodKeys(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	lead := leadFor(t, s)
	mustPut(t, s, legacyPodKey("default", "a"), pod("default", "a", "u1", "n1"))
	mustPut(t, s, legacyPodKey("default", "b"), pod("default", "b", "u2", ""))
	c := RunTestCache(t, s, CacheConfig{})
	if snap, _ := c.Snapshot(ctx); len(snap.Pods) != 2 {
		t.Fatalf("cache reads %d old-layout pods, want 2", len(snap.Pods))
	}
	n, err := lead.MigratePodKeys(ctx)
	if err != nil || n != 2 {
		t.Fatalf("MigratePodKeys = %d, %v; want 2", n, err)
	}
	if on, _, _ := s.PodsOnNode(ctx, "n1"); len(on) != 1 || on[0].Name != "a" {
		t.Errorf("n1's prefix holds %v", on)
	}
	resp, _ := s.cli.Get(ctx, Prefix+PodsPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if len(resp.Kvs) != 2 || string(resp.Kvs[0].Key) != PodKey("", "default", "b") || string(resp.Kvs[1].Key) != PodKey("n1", "default", "a") {
		t.Errorf("pod keys after migration: %v", resp.Kvs)
	}
	if err := c.WaitFor(ctx, lead.Revision()); err != nil {
		t.Fatal(err)
	}
	if snap, _ := c.Snapshot(ctx); len(snap.Pods) != 2 {
		t.Fatalf("cache shows %d pods after migration, want 2", len(snap.Pods))
	}
	if n, err := lead.MigratePodKeys(ctx); n != 0 || err != nil {
		t.Errorf("second MigratePodKeys = %d, %v; want 0", n, err)
	}
}

// TestBatches_neverSplitAnOpNorExceedTheLimit pins the batching: a binding
// (delete + put) always shares a transaction, and no transaction has more
// than maxOpsPerTxn operations.
func TestBatches_neverSplitAnOpNorExceedTheLimit(t *testing.T) {
	var ops []Op
	for i := 0; i < 1000; i++ {
		p := pod("default", "p"+itoa(i), "u", "n1")
		if i%3 == 0 {
			ops = append(ops, mustOp(PutPod(p)))
		} else {
			ops = append(ops, mustOp(MovePod("", p)))
		}
	}
	total := 0
	for _, b := range batches(ops) {
		writes := 0
		for _, o := range b {
			writes += o.writes()
		}
		if writes > maxOpsPerTxn {
			t.Fatalf("a transaction of %d operations", writes)
		}
		total += len(b)
	}
	if total != len(ops) {
		t.Fatalf("batches hold %d ops, want %d", total, len(ops))
	}
}

// TestLeadership_tenThousandPodsWithinMaxTxnOps creates and then binds
// 10,000 pods against an etcd with --max-txn-ops 128 (its default): no
// transaction may be refused as too large.
func TestLeadership_tenThousandPodsWithinMaxTxnOps(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 20,000 pods")
	}
	s := NewTestWith(t, EmbeddedConfig{FastTicks: true, MaxTxnOps: 128})
	ctx := context.Background()
	lead := leadFor(t, s)
	var create, bind []Op
	for i := 0; i < 10000; i++ {
		p := pod("default", fmt.Sprintf("p%05d", i), "u", "")
		create = append(create, mustOp(PutPod(p)))
		p.Spec.NodeName = fmt.Sprintf("n%d", i%100)
		bind = append(bind, mustOp(MovePod("", p)))
	}
	start := time.Now()
	if err := lead.Apply(ctx, create); err != nil {
		t.Fatalf("create 10,000 pods: %v", err)
	}
	t.Logf("created 10,000 pods in %v", time.Since(start))
	start = time.Now()
	if err := lead.Apply(ctx, bind); err != nil {
		t.Fatalf("bind 10,000 pods: %v", err)
	}
	t.Logf("bound 10,000 pods in %v", time.Since(start))
	if on, _, _ := s.PodsOnNode(ctx, "n7"); len(on) != 100 {
		t.Errorf("pods on n7 = %d, want 100", len(on))
	}
	if on, _, _ := s.PodsOnNode(ctx, ""); len(on) != 0 {
		t.Errorf("unbound pods = %d, want 0", len(on))
	}
}

// BenchmarkCacheSnapshot30kPods_afterOneStatusChange is the leader's cost
// per plan at 30,000 pods when one pod reported a new status: applying
// the event and publishing a new snapshot.
func BenchmarkCacheSnapshot30kPods_afterOneStatusChange(b *testing.B) {
	st := newCacheState()
	const n = 30000
	for i := 0; i < n; i++ {
		p := pod(fmt.Sprintf("ns%d", i%500), fmt.Sprintf("web-%d", i), fmt.Sprintf("uid-%d", i), fmt.Sprintf("sim-%04d", i%1000))
		p.Labels = map[string]string{"app": fmt.Sprintf("web%d", i%500)}
		v, _ := json.Marshal(p)
		if err := st.apply(PodKey(p.Spec.NodeName, p.Namespace, p.Name), v, false); err != nil {
			b.Fatal(err)
		}
		sv, _ := json.Marshal(PodStatus{UID: p.UID, Node: p.Spec.NodeName, Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}})
		if err := st.apply(PodStatusKey(p.Spec.NodeName, p.Namespace, p.Name), sv, false); err != nil {
			b.Fatal(err)
		}
	}
	st.snapshot(1)
	sv, _ := json.Marshal(PodStatus{UID: "uid-7", Node: "sim-0007", Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.2"}})
	key := PodStatusKey("sim-0007", "ns7", "web-7")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := st.apply(key, sv, false); err != nil {
			b.Fatal(err)
		}
		if s := st.snapshot(int64(i + 2)); len(s.Pods) != n {
			b.Fatal(len(s.Pods))
		}
	}
}

// TestCacheState_podOrderFollowsAddsAndRemoves is a property test of the
// published pod list: after random creations, deletions, bindings (a pod
// moving to its node's key) and status reports, merged into the kept order
// a few at a time or re-sorted, it is every merged pod sorted by
// namespace/name then key, and pods that did not change keep their pointer.
func TestCacheState_podOrderFollowsAddsAndRemoves(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		st := newCacheState()
		put := func(ns, name, node string) {
			p := pod(ns, name, "u-"+name, node)
			v, _ := json.Marshal(p)
			if err := st.apply(PodKey(node, ns, name), v, false); err != nil {
				t.Fatal(err)
			}
		}
		nodeOf := map[string]string{} // ns/name -> node ("" unbound)
		var last []*corev1.Pod
		lastBy := map[string]*corev1.Pod{}
		changed := map[string]bool{}
		for step := 0; step < 60; step++ {
			for range 1 + rng.IntN(1+rng.IntN(40)) {
				ns, name := fmt.Sprintf("ns%d", rng.IntN(3)), fmt.Sprintf("p%02d", rng.IntN(60))
				nn := ns + "/" + name
				node, exists := nodeOf[nn]
				switch op := rng.IntN(4); {
				case !exists || op == 0 && node == "": // create, or create anew
					put(ns, name, "")
					nodeOf[nn] = ""
				case op == 0: // delete
					if err := st.apply(PodKey(node, ns, name), nil, true); err != nil {
						t.Fatal(err)
					}
					delete(nodeOf, nn)
				case op == 1 && node == "": // bind: put under the node, delete the unbound key
					n := fmt.Sprintf("n%d", rng.IntN(3))
					put(ns, name, n)
					if rng.IntN(2) == 0 { // sometimes seen between the two writes
						checkPodOrder(t, seed, st, st.snapshot(int64(step)), nil, nil)
					}
					if err := st.apply(PodKey("", ns, name), nil, true); err != nil {
						t.Fatal(err)
					}
					nodeOf[nn] = n
				default: // a status report
					sv, _ := json.Marshal(PodStatus{UID: typesUID("u-" + name), Node: node,
						Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.0.0.%d", rng.IntN(250))}})
					if err := st.apply(PodStatusPrefix+nn, sv, false); err != nil {
						t.Fatal(err)
					}
				}
				changed[nn] = true
			}
			snap := st.snapshot(int64(step))
			checkPodOrder(t, seed, st, snap, lastBy, changed)
			last = snap.Pods
			clear(lastBy)
			for _, p := range last {
				lastBy[p.Namespace+"/"+p.Name] = p
			}
			clear(changed)
		}
	}
}

// checkPodOrder checks snap.Pods against st's merged pods, and that pods
// not changed since the last snapshot (lastBy) kept their pointer.
func checkPodOrder(t *testing.T, seed uint64, st *cacheState, snap *Snapshot, lastBy map[string]*corev1.Pod, changed map[string]bool) {
	t.Helper()
	var keys []string
	for k := range st.pods {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := st.pods[keys[i]], st.pods[keys[j]]
		if a.Namespace+"/"+a.Name != b.Namespace+"/"+b.Name {
			return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
		}
		return keys[i] < keys[j]
	})
	if len(keys) != len(snap.Pods) {
		t.Fatalf("seed %d: %d pods published, %d stored", seed, len(snap.Pods), len(keys))
	}
	for i, k := range keys {
		if snap.Pods[i] != st.merged[k] {
			t.Fatalf("seed %d: pod %d is %s/%s, want %s", seed, i, snap.Pods[i].Namespace, snap.Pods[i].Name, k)
		}
		nn := snap.Pods[i].Namespace + "/" + snap.Pods[i].Name
		if p, ok := lastBy[nn]; ok && !changed[nn] && p != snap.Pods[i] {
			t.Fatalf("seed %d: unchanged pod %s was replaced", seed, nn)
		}
	}
}

// BenchmarkCacheSnapshot30kPods_afterOnePodAdded is the leader's cost per
// plan at 30,000 pods during a rollout: one pod created and one deleted
// since the last snapshot.
func BenchmarkCacheSnapshot30kPods_afterOnePodAdded(b *testing.B) {
	st := newCacheState()
	const n = 30000
	put := func(i int) string {
		p := pod(fmt.Sprintf("ns%d", i%500), fmt.Sprintf("web-%d", i), fmt.Sprintf("uid-%d", i), fmt.Sprintf("sim-%04d", i%1000))
		v, _ := json.Marshal(p)
		key := PodKey(p.Spec.NodeName, p.Namespace, p.Name)
		if err := st.apply(key, v, false); err != nil {
			b.Fatal(err)
		}
		return key
	}
	for i := 0; i < n; i++ {
		put(i)
	}
	st.snapshot(1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := put(n + i)
		if err := st.apply(key, nil, true); err != nil {
			b.Fatal(err)
		}
		put(n + i + 1)
		if s := st.snapshot(int64(i + 2)); len(s.Pods) != n+1 {
			b.Fatal(len(s.Pods))
		}
		if err := st.apply(PodKey(fmt.Sprintf("sim-%04d", (n+i+1)%1000), fmt.Sprintf("ns%d", (n+i+1)%500), fmt.Sprintf("web-%d", n+i+1)), nil, true); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCache_snapshotsAreSafeToShare: readers walk published snapshots
// while the cache applies writes to the same pods (under -race, any write
// into a published object fails this test).
func TestCache_snapshotsAreSafeToShare(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	lead := leadFor(t, s)
	c := RunTestCache(t, s, CacheConfig{})
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rctx.Err() == nil {
				snap, err := c.Snapshot(rctx)
				if err != nil {
					return
				}
				n := 0
				for _, p := range snap.Pods {
					n += len(p.Status.Conditions) + len(p.Labels)
				}
				for _, p := range snap.PodsOnNode("n1") {
					n += len(p.Status.PodIP)
				}
				_ = n
			}
		}()
	}
	rng := rand.New(rand.NewPCG(9, 9))
	randomWrites(t, s, lead, rng, 150)
	if err := c.WaitFor(ctx, currentRev(t, s)); err != nil {
		t.Fatal(err)
	}
	stop()
	wg.Wait()
	got, _ := c.Snapshot(ctx)
	want, _ := s.Snapshot(ctx)
	if !sameState(got, want) {
		t.Fatal("cache and etcd differ after concurrent reads")
	}
}
