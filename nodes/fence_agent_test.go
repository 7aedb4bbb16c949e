package nodes_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"bosun/store"
)

// slowStopPod is helloPod with a preStop hook that sleeps: its teardown
// takes a second, long enough for a node that registered before stopping
// it to be seen doing so.
func slowStopPod(name string, uid types.UID) *corev1.Pod {
	p := helloPod(name, uid)
	p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1}}}
	return p
}

// watchRegistrations reports, at each registration of the node (a put of
// its key), the containers the node has at that instant.
func (h *harness) watchRegistrations(ctx context.Context) <-chan map[string][]string {
	out := make(chan map[string][]string, 16)
	wch := h.st.Client().Watch(ctx, store.NodeKey(h.cfg.NodeName))
	go func() {
		defer close(out)
		for resp := range wch {
			for _, ev := range resp.Events {
				if ev.Type == mvccpb.PUT && ev.Kv.Version == 1 { // created: registered, not a status update
					out <- h.containers()
				}
			}
		}
	}()
	return out
}

// TestAgent_fence: a node reports Ready only once it has stopped every
// pod no longer bound to it, whether its agent restarted (pods deleted
// while no agent ran) or it lost its lease (cut off from etcd); pods still
// bound keep running untouched (same containers).
func TestAgent_fence(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	regs := h.watchRegistrations(ctx)
	h.startAgent()
	<-regs
	h.putPod(slowStopPod("keep", "11111111-aaaa"))
	h.putPod(slowStopPod("gone", "22222222-bbbb"))
	h.waitStatus("default", "keep", 30*time.Second, "running", running)
	h.waitStatus("default", "gone", 30*time.Second, "running", running)
	before := h.containers()

	t.Run("agent restart", func(t *testing.T) {
		h.stopAgent()
		h.deletePod("default", "gone")
		start := time.Now()
		h.startAgent()
		var got map[string][]string
		select {
		case got = <-regs:
		case <-time.After(30 * time.Second):
			t.Fatal("node not registered again")
		}
		t.Logf("registered %s after the agent started", time.Since(start).Round(time.Millisecond))
		if len(got["gone"]) != 0 {
			t.Errorf("registered with the deleted pod's containers still there: %v", got["gone"])
		}
		if !slices.Equal(got["keep"], before["keep"]) {
			t.Errorf("bound pod's containers %v, before the restart %v: it must not restart", got["keep"], before["keep"])
		}
	})

	t.Run("lease lost", func(t *testing.T) {
		h.putPod(slowStopPod("moved", "33333333-cccc"))
		h.waitStatus("default", "moved", 30*time.Second, "running", running)
		keep := h.containers()["keep"]
		// The leader binds the pod elsewhere and the node's lease is
		// revoked (as if it had expired): the agent must stop the pod
		// before it registers again, whichever it learns first.
		resp, err := h.st.Client().Get(ctx, store.NodeKey(h.cfg.NodeName))
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("node key: %v %v", resp, err)
		}
		if _, err := h.st.Client().Txn(ctx).Then(
			clientv3.OpDelete(store.PodKey(h.cfg.NodeName, "default", "moved")),
			clientv3.OpPut(store.PodKey("node-2", "default", "moved"), `{}`),
		).Commit(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := h.st.Client().Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
			t.Fatal(err)
		}
		var got map[string][]string
		select {
		case got = <-regs:
		case <-time.After(30 * time.Second):
			t.Fatal("node not registered again after its lease was lost")
		}
		t.Logf("registered again %s after the lease was revoked", time.Since(start).Round(time.Millisecond))
		if len(got["moved"]) != 0 {
			t.Errorf("registered with the moved pod's containers still there: %v", got["moved"])
		}
		if !slices.Equal(got["keep"], keep) {
			t.Errorf("bound pod's containers %v, before %v", got["keep"], keep)
		}
		h.waitStatus("default", "moved", 10*time.Second, "status gone", func(ps *store.PodStatus) bool { return ps == nil })
	})

	for _, name := range []string{"keep"} {
		h.deletePod("default", name)
		h.waitStatus("default", name, 20*time.Second, "deleted", func(ps *store.PodStatus) bool { return ps == nil })
	}
	h.stopAgent()
	if left := h.containers(); len(left) != 0 {
		t.Errorf("containers left: %v", left)
	}
	checkNoGoroutines(t)
}
