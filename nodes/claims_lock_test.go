package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"bosun/kube"
	"bosun/store"
)

// volumeAgent is an agent with only what local volumes need.
func volumeAgent(t *testing.T, st *store.Store) *Agent {
	return &Agent{cfg: Config{NodeName: "n1", StateDir: t.TempDir()}, st: st, log: slog.New(slog.DiscardHandler),
		vols: volumeSet{deleting: map[string]bool{}, m: newVolumeMetrics(nil)}}
}

func boundClaim(name, uid, policy string) *corev1.PersistentVolumeClaim {
	c := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(uid),
			Annotations: map[string]string{kube.AnnotationSelectedNode: "n1"}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			VolumeName:  kube.VolumeNamePrefix + uid,
		},
	}
	if policy != "" {
		c.Annotations[kube.AnnotationReclaimPolicy] = policy
	}
	return c
}

// unansweredStore is a store whose etcd accepts connections and never
// answers: every call waits for its context (a node cut off, or etcd slow).
func unansweredStore(t *testing.T) *store.Store {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ln.Addr().String()}, Logger: nil})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli.Close()
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return store.New(cli)
}

// TestAgent_claimPrepareHoldsNoSharedLock: while a worker waits on etcd
// making a volume's record, the bookkeeping the agent's loop and every
// teardown take (volumeSet.mu) stays free, and so does another volume's
// preparation; a worker waiting for the same volume stops on its context.
func TestAgent_claimPrepareHoldsNoSharedLock(t *testing.T) {
	a := volumeAgent(t, unansweredStore(t))
	claim := boundClaim("data", "u1", "")
	dir := a.claimDir("default", "data", claim.Spec.VolumeName)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.prepareClaimDir(ctx, claim, 1, dir) }()
	time.Sleep(300 * time.Millisecond) // it waits on etcd by now

	quick := func(what string, f func()) {
		t.Helper()
		start := time.Now()
		f()
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s waited %s for a worker's etcd call", what, d.Round(time.Millisecond))
		}
	}
	quick("the loop's collection start (inUse)", func() { a.vols.inUse() })
	quick("a teardown (release)", func() { a.vols.release("some-run") })
	quick("another volume taken", func() {
		if deleting, other := a.vols.take(a.claimDir("default", "other", kube.VolumeNamePrefix+"u2"), "r2", true); deleting || other != "" {
			t.Errorf("another volume: deleting %v, other user %q", deleting, other)
		}
	})
	var wg sync.WaitGroup // the deletion goes on in the background, on etcd
	defer wg.Wait()
	quick("a volume deletion's start", func() {
		a.deleteVolume(ctx, store.VolumeRecord{Node: "n1", Namespace: "default", Claim: "gone", VolumeName: kube.VolumeNamePrefix + "u3"}, &wg)
	})
	// A second worker on the same volume waits for the first, and no
	// longer than its context.
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	start := time.Now()
	if err := a.prepareClaimDir(short, claim, 1, dir); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second worker: %v, want its context's deadline", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("second worker stopped after %s", d)
	}
	select {
	case err := <-done:
		t.Fatalf("the first worker did not wait on etcd: %v", err)
	default:
	}
	if err := <-done; err == nil {
		t.Error("the first worker succeeded without etcd")
	}
	a.vols.mu.Lock()
	defer a.vols.mu.Unlock()
	if len(a.vols.dirs) != 0 {
		t.Errorf("directory locks left: %v", a.vols.dirs)
	}
}

// TestAgent_claimRecordFromAChangedClaim: a worker that read a claim
// saying Delete, and writes its volume record after the claim said Retain
// and was deleted (the leader deleted it trusting the record that said
// Retain), writes nothing and makes no directory; read again, the claim
// is gone. A claim that changed and is still there is read again and its
// record says what it says now.
func TestAgent_claimRecordFromAChangedClaim(t *testing.T) {
	st := store.NewTest(t)
	a := volumeAgent(t, st)
	ctx := context.Background()
	put := func(c *corev1.PersistentVolumeClaim) {
		t.Helper()
		b, _ := json.Marshal(c)
		if _, err := st.Client().Put(ctx, store.ClaimKey(c.Namespace, c.Name), string(b)); err != nil {
			t.Fatal(err)
		}
	}
	record := func() *store.VolumeRecord {
		t.Helper()
		rec, err := st.Volume(ctx, "n1", "default", kube.VolumeNamePrefix+"u1")
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	del := boundClaim("data", "u1", "Delete")
	put(del)
	read, rev, err := st.ClaimRevision(ctx, "default", "data")
	if err != nil || read == nil {
		t.Fatal(read, err)
	}
	dir := a.claimDir("default", "data", del.Spec.VolumeName)

	// Meanwhile: the claim says Retain, then is deleted.
	put(boundClaim("data", "u1", "Retain"))
	if _, err := st.Client().Delete(ctx, store.ClaimKey("default", "data")); err != nil {
		t.Fatal(err)
	}
	if err := a.prepareClaimDir(ctx, read, rev, dir); !errors.Is(err, errClaimChanged) {
		t.Fatalf("prepare from the stale claim: %v, want %v", err, errClaimChanged)
	}
	if rec := record(); rec != nil {
		t.Errorf("record written from the stale claim: %+v", rec)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("directory made from the stale claim: %v", err)
	}
	if _, err := a.takeClaimVolume(ctx, "default", "data", "r1", "/nowhere"); err == nil || !strings.Contains(err.Error(), `persistentvolumeclaim "data" not found`) {
		t.Errorf("taken again: %v, want not found", err)
	}
	if len(a.vols.inUse()) != 0 {
		t.Errorf("users left: %v", a.vols.inUse())
	}

	// The claim comes back saying Retain: read again, its record says so.
	put(del)
	_, rev, _ = st.ClaimRevision(ctx, "default", "data")
	put(boundClaim("data", "u1", "Retain"))
	if err := a.prepareClaimDir(ctx, del, rev, dir); !errors.Is(err, errClaimChanged) {
		t.Fatalf("prepare from the stale claim: %v, want %v", err, errClaimChanged)
	}
	got, err := a.takeClaimVolume(ctx, "default", "data", "r1", "/nowhere")
	if err != nil || got != dir {
		t.Fatalf("take: %q, %v", got, err)
	}
	if rec := record(); rec == nil || rec.ReclaimPolicy != "Retain" || !rec.Made || rec.State != store.VolumeBound {
		t.Errorf("record %+v", rec)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Errorf("directory: %v", err)
	}
	if !a.vols.inUse()[dir] {
		t.Errorf("run r1 is no user of %s: %v", dir, a.vols.inUse())
	}
}

// TestVolumeSet_usersByVolume: users are counted per volume (directory),
// not per claim name; a volume being deleted is taken by no run, and one
// a run took is not deleted; ReadWriteOncePod refuses a second run.
func TestVolumeSet_usersByVolume(t *testing.T) {
	a := volumeAgent(t, nil)
	old := a.claimDir("default", "data", kube.VolumeNamePrefix+"u1")
	cur := a.claimDir("default", "data", kube.VolumeNamePrefix+"u2")
	if deleting, other := a.vols.take(cur, "new-run", true); deleting || other != "" {
		t.Fatalf("take: %v %q", deleting, other)
	}
	if a.vols.inUse()[old] {
		t.Errorf("the old volume of the claim is in use by the new volume's run")
	}
	if _, other := a.vols.take(cur, "another-run", true); other != "new-run" {
		t.Errorf("ReadWriteOncePod taken twice (other %q)", other)
	}
	if _, other := a.vols.take(cur, "new-run", true); other != "" {
		t.Errorf("the same run again: other %q", other)
	}
	// A deletion of a volume a run took does not start.
	var wg sync.WaitGroup
	a.deleteVolume(context.Background(), store.VolumeRecord{Node: "n1", Namespace: "default", Claim: "data", VolumeName: kube.VolumeNamePrefix + "u2"}, &wg)
	wg.Wait()
	if a.vols.isDeleting(cur) {
		t.Error("deleting a volume a run took")
	}
	// One being deleted is taken by none.
	a.vols.mu.Lock()
	a.vols.deleting[old] = true
	a.vols.mu.Unlock()
	if deleting, _ := a.vols.take(old, "late-run", false); !deleting {
		t.Error("a volume being deleted was taken")
	}
	a.vols.drop(cur, "new-run")
	if u := a.vols.inUse(); len(u) != 0 {
		t.Errorf("after drop: %v", u)
	}
}
