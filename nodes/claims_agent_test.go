package nodes_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/moby/sys/mountinfo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"bosun/kube"
	"bosun/store"
)

// putClaim stores a claim bound to the harness's node, as the leader
// writes it.
func (h *harness) putClaim(name, uid, policy string) *corev1.PersistentVolumeClaim {
	h.t.Helper()
	c := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(uid),
			Annotations: map[string]string{kube.AnnotationSelectedNode: h.cfg.NodeName}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			VolumeName:  kube.VolumeNamePrefix + uid,
		},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
	}
	if policy != "" {
		c.Annotations[kube.AnnotationReclaimPolicy] = policy
	}
	b, _ := json.Marshal(c)
	if _, err := h.st.Client().Put(context.Background(), store.ClaimKey("default", name), string(b)); err != nil {
		h.t.Fatal(err)
	}
	return c
}

func claimPod(name string, uid types.UID, claim string) *corev1.Pod {
	p := helloPod(name, uid)
	p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}
	p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	return p
}

func waitClaim(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAgent_claimVolumes: a pod writes to its claim's volume; the data
// outlives the pod, a new pod and an agent restart; deleting a claim
// that says Delete deletes its directory (and record), one that says
// Retain keeps them, Released.
func TestAgent_claimVolumes(t *testing.T) {
	h := newHarness(t)
	h.cfg.VolumeCapacity = 5 << 30
	h.startAgent()
	ctx := context.Background()

	// The node offers its volume capacity.
	waitClaim(t, 20*time.Second, "node registered", func() bool {
		snap, err := h.st.Snapshot(ctx)
		return err == nil && len(snap.Nodes) == 1
	})
	snap, _ := h.st.Snapshot(ctx)
	if q := snap.Nodes[0].Status.Allocatable[kube.ResourceLocalStorage]; q.String() != "5Gi" {
		t.Errorf("allocatable local storage %q, want 5Gi", q.String())
	}

	h.putClaim("keep", "u-keep", "Retain")
	h.putClaim("scratch", "u-scratch", "Delete")
	h.putPod(claimPod("writer", "w1", "keep"))
	h.putPod(claimPod("scratcher", "s1", "scratch"))
	ps := h.waitStatus("default", "writer", 60*time.Second, "running", running)
	base := "http://" + ps.Status.PodIP + ":8080"
	httpGet(t, base+"/healthz") // listening
	if code, body := httpPost(t, base+"/write?path=/data/note", "kept"); code != 200 {
		t.Fatalf("write: %d %s", code, body)
	}
	ps = h.waitStatus("default", "scratcher", 60*time.Second, "running", running)
	httpGet(t, "http://"+ps.Status.PodIP+":8080/healthz")
	if code, body := httpPost(t, "http://"+ps.Status.PodIP+":8080/write?path=/data/tmp", "scratch"); code != 200 {
		t.Fatalf("write: %d %s", code, body)
	}
	keepDir := filepath.Join(h.cfg.StateDir, "volumes", "default", "keep-u-keep")
	scratchDir := filepath.Join(h.cfg.StateDir, "volumes", "default", "scratch-u-scratch")
	if b, err := os.ReadFile(filepath.Join(keepDir, "note")); err != nil || string(b) != "kept" {
		t.Fatalf("on the node: %q, %v", b, err)
	}
	recs, err := h.st.Volumes(ctx, h.cfg.NodeName)
	if err != nil || len(recs) != 2 || recs[0].Claim != "keep" || recs[0].State != store.VolumeBound || recs[0].Size != 1<<30 || recs[0].Path != keepDir {
		t.Fatalf("records: %+v, %v", recs, err)
	}

	// The pod goes; a new one (another UID) finds the data.
	h.deletePod("default", "writer")
	waitClaim(t, 30*time.Second, "writer torn down", func() bool { _, ok := h.containers()["writer"]; return !ok })
	h.putPod(claimPod("writer", "w2", "keep"))
	ps = h.waitStatus("default", "writer", 60*time.Second, "running again", func(s *store.PodStatus) bool { return s != nil && s.UID == "w2" && running(s) })
	if got := httpGet(t, "http://"+ps.Status.PodIP+":8080/file?path=/data/note"); got != "kept" {
		t.Errorf("after the pod was recreated: %q", got)
	}

	// The agent restarts: the pod is adopted, the data is there.
	h.stopAgent()
	h.startAgent()
	ps = h.waitStatus("default", "writer", 60*time.Second, "adopted", func(s *store.PodStatus) bool { return s != nil && s.UID == "w2" && running(s) })
	if got := httpGet(t, "http://"+ps.Status.PodIP+":8080/file?path=/data/note"); got != "kept" {
		t.Errorf("after the agent restarted: %q", got)
	}

	// Both claims are deleted with their pods. The Delete one's data goes
	// (once its pod is gone), the Retain one's stays, Released.
	h.deletePod("default", "writer")
	h.deletePod("default", "scratcher")
	for _, name := range []string{"keep", "scratch"} {
		if _, err := h.st.Client().Delete(ctx, store.ClaimKey("default", name)); err != nil {
			t.Fatal(err)
		}
	}
	waitClaim(t, 60*time.Second, "the Delete volume deleted", func() bool {
		_, err := os.Stat(scratchDir)
		return os.IsNotExist(err)
	})
	waitClaim(t, 30*time.Second, "records: the Retain one Released, the Delete one gone", func() bool {
		recs, err := h.st.Volumes(ctx, h.cfg.NodeName)
		return err == nil && len(recs) == 1 && recs[0].Claim == "keep" && recs[0].State == store.VolumeReleased
	})
	if b, err := os.ReadFile(filepath.Join(keepDir, "note")); err != nil || string(b) != "kept" {
		t.Errorf("retained data: %q, %v", b, err)
	}
	// A claim of the same name bound to the same volume finds it again.
	h.putClaim("keep", "u-keep", "")
	h.putPod(claimPod("reader", "r1", "keep"))
	ps = h.waitStatus("default", "reader", 60*time.Second, "running", running)
	if got := httpGet(t, "http://"+ps.Status.PodIP+":8080/file?path=/data/note"); got != "kept" {
		t.Errorf("the claim that came back: %q", got)
	}
	waitClaim(t, 30*time.Second, "record Bound again", func() bool {
		recs, err := h.st.Volumes(ctx, h.cfg.NodeName)
		return err == nil && len(recs) == 1 && recs[0].State == store.VolumeBound
	})

	// A pod whose claim is bound elsewhere does not start, and says why.
	c := h.putClaim("elsewhere", "u-else", "")
	c.Annotations[kube.AnnotationSelectedNode] = "node-2"
	b, _ := json.Marshal(c)
	h.st.Client().Put(ctx, store.ClaimKey("default", "elsewhere"), string(b))
	h.putPod(claimPod("lost", "l1", "elsewhere"))
	h.waitStatus("default", "lost", 30*time.Second, "says the claim is elsewhere", func(s *store.PodStatus) bool {
		if s == nil {
			return false
		}
		if strings.Contains(s.Status.Message, `persistentvolumeclaim "elsewhere" is bound to node node-2`) {
			return true
		}
		for _, cs := range s.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && strings.Contains(w.Message, `persistentvolumeclaim "elsewhere" is bound to node node-2`) {
				return true
			}
		}
		for _, cond := range s.Status.Conditions {
			if strings.Contains(cond.Message, `persistentvolumeclaim "elsewhere" is bound to node node-2`) {
				return true
			}
		}
		return false
	})

	for _, name := range []string{"reader", "lost"} {
		h.deletePod("default", name)
	}
	waitClaim(t, 60*time.Second, "pods torn down", func() bool {
		ents, err := os.ReadDir(filepath.Join(h.cfg.StateDir, "pods"))
		return err == nil && len(ents) == 0 && len(h.containers()) == 0
	})
}

// drainingClaimPod is claimPod whose app keeps running 8 s after SIGTERM
// (grace 30 s): a pod that still uses its volume while it stops.
func drainingClaimPod(name string, uid types.UID, claim string) *corev1.Pod {
	p := claimPod(name, uid, claim)
	grace := int64(30)
	p.Spec.TerminationGracePeriodSeconds = &grace
	p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "DRAIN_FOR", Value: "8s"}}
	return p
}

// TestAgent_claimVolumeKeptWhileAPodUsesIt: a claim that says Delete is
// deleted while a pod still has its volume mounted; the data stays until
// that pod is gone: an old incarnation stopping beside a new one of the
// same name (the runs that mounted it count), and a pod adopted after an
// agent restart (its mount counts).
func TestAgent_claimVolumeKeptWhileAPodUsesIt(t *testing.T) {
	h := newHarness(t)
	h.startAgent()
	ctx := context.Background()
	check := func(t *testing.T, pod string, uid types.UID, claim, dir string, restart bool) {
		t.Helper()
		h.putClaim(claim, "u-"+claim, "Delete")
		h.putPod(drainingClaimPod(pod, uid, claim))
		ps := h.waitStatus("default", pod, 60*time.Second, "running", running)
		httpGet(t, "http://"+ps.Status.PodIP+":8080/healthz")
		if code, body := httpPost(t, "http://"+ps.Status.PodIP+":8080/write?path=/data/note", "in use"); code != 200 {
			t.Fatalf("write: %d %s", code, body)
		}
		if restart {
			h.stopAgent()
		}
		// A new incarnation of the pod, without the claim, and the claim
		// deleted: the old one drains, its volume mounted.
		h.putPod(helloPod(pod, uid+"-next"))
		if _, err := h.st.Client().Delete(ctx, store.ClaimKey("default", claim)); err != nil {
			t.Fatal(err)
		}
		if restart {
			h.startAgent()
		}
		// Several passes over the volumes (resync 1 s) while it drains.
		time.Sleep(4 * time.Second)
		if b, err := os.ReadFile(filepath.Join(dir, "note")); err != nil || string(b) != "in use" {
			t.Fatalf("the volume of a pod still running: %q, %v", b, err)
		}
		waitClaim(t, 90*time.Second, "the volume deleted once the old pod is gone", func() bool {
			_, err := os.Stat(dir)
			return os.IsNotExist(err)
		})
		h.waitStatus("default", pod, 60*time.Second, "the new incarnation running", func(s *store.PodStatus) bool {
			return s != nil && s.UID == uid+"-next" && running(s)
		})
		h.deletePod("default", pod)
		waitPodsGone(t, h)
	}
	t.Run("a new incarnation beside the old one", func(t *testing.T) {
		check(t, "busy", "b1", "busy", filepath.Join(h.cfg.StateDir, "volumes", "default", "busy-u-busy"), false)
	})
	t.Run("adopted after an agent restart", func(t *testing.T) {
		check(t, "adopted", "a1", "adopted", filepath.Join(h.cfg.StateDir, "volumes", "default", "adopted-u-adopted"), true)
	})
	waitPodsGone(t, h)
}

// TestAgent_claimVolumeDirectoryMissing: a volume whose directory was made
// and is gone (data disk not mounted, --data-dir changed) is not made
// again, empty: the pod does not start, and says why.
func TestAgent_claimVolumeDirectoryMissing(t *testing.T) {
	h := newHarness(t)
	h.startAgent()
	h.putClaim("data", "u-data", "")
	h.putPod(claimPod("first", "f1", "data"))
	h.waitStatus("default", "first", 60*time.Second, "running", running)
	h.deletePod("default", "first")
	waitPodsGone(t, h)
	dir := filepath.Join(h.cfg.StateDir, "volumes", "default", "data-u-data")
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	h.putPod(claimPod("second", "s1", "data"))
	h.waitStatus("default", "second", 30*time.Second, "says the volume directory is missing", func(s *store.PodStatus) bool {
		if s == nil {
			return false
		}
		msgs := []string{s.Status.Message}
		for _, cs := range s.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil {
				msgs = append(msgs, w.Message)
			}
		}
		for _, c := range s.Status.Conditions {
			msgs = append(msgs, c.Message)
		}
		return strings.Contains(strings.Join(msgs, "\n"), "volume directory missing")
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the directory was made again: %v", err)
	}
	h.deletePod("default", "second")
	waitPodsGone(t, h)
}

// TestAgent_claimVolumeOfAnInterruptedTeardown: an agent stopped in the
// middle of a pod's teardown, after its containers were deleted and before
// its pod directory (with the bind mount of its claim's volume) and network
// were released (a server restarted while a rollout tore its old pod
// down), leaves a run that has no container. The next agent finishes that
// teardown: the claim, deleted with reclaim policy Delete, loses its data;
// no mount, pod directory or network namespace is left.
func TestAgent_claimVolumeOfAnInterruptedTeardown(t *testing.T) {
	h := newHarness(t)
	h.startAgent()
	ctx := context.Background()
	h.putClaim("scratch", "u-scratch", "Delete")
	h.putPod(claimPod("cut", "c1", "scratch"))
	ps := h.waitStatus("default", "cut", 60*time.Second, "running", running)
	httpGet(t, "http://"+ps.Status.PodIP+":8080/healthz")
	dir := filepath.Join(h.cfg.StateDir, "volumes", "default", "scratch-u-scratch")
	podDir := filepath.Join(h.cfg.StateDir, "pods", "c1")
	if _, err := os.Stat(filepath.Join(podDir, "volumes", "data")); err != nil {
		t.Fatal(err)
	}

	// The agent stops; the teardown it was doing had deleted the
	// containers, and nothing else.
	h.stopAgent()
	cctx := namespaces.WithNamespace(ctx, testNS)
	for _, id := range h.containers()["cut"] {
		c, err := h.ctd.LoadContainer(cctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if task, err := c.Task(cctx, nil); err == nil {
			exited, err := task.Wait(cctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := task.Kill(cctx, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-exited
			if _, err := task.Delete(cctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Delete(cctx, client.WithSnapshotCleanup); err != nil {
			t.Fatal(err)
		}
	}
	h.deletePod("default", "cut")
	if _, err := h.st.Client().Delete(ctx, store.ClaimKey("default", "scratch")); err != nil {
		t.Fatal(err)
	}

	h.startAgent()
	waitClaim(t, 60*time.Second, "the Delete volume deleted", func() bool {
		_, err := os.Stat(dir)
		return os.IsNotExist(err)
	})
	if _, err := os.Stat(podDir); !os.IsNotExist(err) {
		t.Errorf("pod directory of the interrupted teardown left: %v", err)
	}
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(h.cfg.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		t.Errorf("mount left: %s", m.Mountpoint)
	}
	if ents, err := os.ReadDir(h.cfg.NetnsDir); err != nil || len(ents) != 0 {
		t.Errorf("network namespaces left: %v, %v", ents, err)
	}
}

func waitPodsGone(t *testing.T, h *harness) {
	t.Helper()
	waitClaim(t, 60*time.Second, "pods torn down", func() bool {
		ents, err := os.ReadDir(filepath.Join(h.cfg.StateDir, "pods"))
		return err == nil && len(ents) == 0 && len(h.containers()) == 0
	})
}

// TestAgent_claimRecreatedUnderItsName: a claim deleted with reclaim
// policy Delete and made again under the same name (a new UID, so a new
// volume: a StatefulSet scaled down and up with retention Delete, a claim
// removed from Git and added back) while a new pod uses the new one: the
// old volume's data goes once the pod that mounted it is gone, whatever
// the new pod of the same claim name does (users are counted per volume,
// not per claim name).
func TestAgent_claimRecreatedUnderItsName(t *testing.T) {
	h := newHarness(t)
	h.startAgent()
	ctx := context.Background()
	h.putClaim("data", "u1", "Delete")
	h.putPod(drainingClaimPod("old", "o1", "data"))
	ps := h.waitStatus("default", "old", 60*time.Second, "running", running)
	httpGet(t, "http://"+ps.Status.PodIP+":8080/healthz")
	if code, body := httpPost(t, "http://"+ps.Status.PodIP+":8080/write?path=/data/note", "old"); code != 200 {
		t.Fatalf("write: %d %s", code, body)
	}
	oldDir := filepath.Join(h.cfg.StateDir, "volumes", "default", "data-u1")
	newDir := filepath.Join(h.cfg.StateDir, "volumes", "default", "data-u2")

	// The claim is made again (a new volume), a new pod uses it, the old
	// pod goes.
	h.putClaim("data", "u2", "Delete")
	h.putPod(claimPod("new", "n1", "data"))
	h.deletePod("default", "old")
	ps = h.waitStatus("default", "new", 60*time.Second, "running", running)
	httpGet(t, "http://"+ps.Status.PodIP+":8080/healthz")
	if code, body := httpPost(t, "http://"+ps.Status.PodIP+":8080/write?path=/data/note", "new"); code != 200 {
		t.Fatalf("write: %d %s", code, body)
	}
	waitClaim(t, 60*time.Second, "the old volume deleted (directory and record) while the new pod runs", func() bool {
		_, err := os.Stat(oldDir)
		rec, rerr := h.st.Volume(ctx, h.cfg.NodeName, "default", kube.VolumeNamePrefix+"u1")
		return os.IsNotExist(err) && rerr == nil && rec == nil
	})
	if b, err := os.ReadFile(filepath.Join(newDir, "note")); err != nil || string(b) != "new" {
		t.Errorf("the new volume: %q, %v", b, err)
	}
	if rec, err := h.st.Volume(ctx, h.cfg.NodeName, "default", kube.VolumeNamePrefix+"u2"); err != nil || rec == nil || !rec.Made || rec.State != store.VolumeBound {
		t.Errorf("the new volume's record: %+v, %v", rec, err)
	}
	h.waitStatus("default", "new", 5*time.Second, "still running", func(s *store.PodStatus) bool { return s != nil && s.UID == "n1" && running(s) })
	h.deletePod("default", "new")
	waitPodsGone(t, h)
}
