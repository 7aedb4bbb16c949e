package nodes_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"bosun/nodes"
	"bosun/nodes/containerdtest"
	"bosun/store"
)

// The pod network of this test binary: derived from the process ID, so that
// test runs in several checkouts on one machine never share a bridge.
var (
	testNet    = os.Getpid() % 250
	testCIDR   = fmt.Sprintf("10.87.%d.0/24", testNet)
	testBridge = fmt.Sprintf("bosunt%d", testNet)
)

// harness runs agents against a private containerd and an embedded etcd.
type harness struct {
	t      testing.TB
	st     *store.Store
	ctd    *client.Client
	cfg    nodes.Config
	cancel context.CancelFunc
	done   chan error
}

// testNS is the containerd namespace of this test binary: runc keeps
// state under /run/containerd/runc/<namespace>, shared by every containerd,
// so a unique name keeps an aborted run from colliding with the next.
var testNS = fmt.Sprintf("bosun-test-%d", os.Getpid())

func newHarness(t testing.TB) *harness {
	addr := containerdtest.Start(t)
	archive := containerdtest.BuildHelloImage(t, "v1")
	start := time.Now()
	names, err := nodes.ImportImages(context.Background(), addr, testNS, archive)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("imported %v in %s", names, time.Since(start).Round(time.Millisecond))
	if len(names) != 1 || names[0] != containerdtest.HelloRef("v1") {
		t.Fatalf("imported %v", names)
	}
	ctd, err := client.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctd.Close() })
	t.Cleanup(func() { exec.Command("ip", "link", "del", testBridge).Run() })
	t.Cleanup(func() { nodes.CleanupLocalnet(testBridge) })
	t.Cleanup(func() { nodes.CleanupHostPorts(testBridge) })
	netnsDir, err := os.MkdirTemp("", "bosun-netns")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ents, _ := os.ReadDir(netnsDir)
		for _, e := range ents {
			p := filepath.Join(netnsDir, e.Name())
			_ = unix.Unmount(p, unix.MNT_DETACH)
			t.Errorf("netns left behind: %s", p)
		}
		os.RemoveAll(netnsDir)
	})
	h := &harness{t: t, st: store.NewTest(t), ctd: ctd}
	h.cfg = nodes.Config{
		NodeName:          "node-1",
		Labels:            map[string]string{"zone": "a"},
		ContainerdAddress: addr,
		Namespace:         testNS,
		StateDir:          t.TempDir(),
		NetnsDir:          netnsDir,
		PodCIDR:           testCIDR,
		BridgeName:        testBridge,
		RestartBackoff:    100 * time.Millisecond,
		MaxRestartBackoff: 400 * time.Millisecond,
		ResyncInterval:    time.Second,
		Logger:            testLogger(t),
	}
	return h
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("BOSUN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (h *harness) startAgent() {
	h.t.Helper()
	a, err := nodes.New(h.cfg, h.st)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- a.Run(ctx) }()
	h.t.Cleanup(func() {
		if h.cancel != nil {
			h.stopAgent()
		}
	})
}

func (h *harness) stopAgent() {
	h.t.Helper()
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Fatalf("agent: %v", err)
		}
	case <-time.After(30 * time.Second):
		h.t.Fatal("agent did not stop within 30s")
	}
}

func (h *harness) putPod(p *corev1.Pod) {
	h.t.Helper()
	p.Spec.NodeName = h.cfg.NodeName
	b, err := json.Marshal(p)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.st.Client().Put(context.Background(), store.PodKey(p.Spec.NodeName, p.Namespace, p.Name), string(b)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) deletePod(ns, name string) {
	h.t.Helper()
	if _, err := h.st.Client().Delete(context.Background(), store.PodKey(h.cfg.NodeName, ns, name)); err != nil {
		h.t.Fatal(err)
	}
}

// waitStatus polls the pod's status until ok accepts it.
func (h *harness) waitStatus(ns, name string, timeout time.Duration, what string, ok func(*store.PodStatus) bool) store.PodStatus {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	var last store.PodStatus
	for time.Now().Before(deadline) {
		all, err := h.st.PodStatuses(context.Background())
		if err != nil {
			h.t.Fatal(err)
		}
		if ps, found := all[ns+"/"+name]; found {
			last = ps
			if ok(&ps) {
				return ps
			}
		} else if ok(nil) {
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(last, "", "  ")
	h.t.Fatalf("pod %s/%s: not %s within %s; last status:\n%s", ns, name, what, timeout, b)
	return last
}

// containers lists containerd container IDs per pod name, sorted.
func (h *harness) containers() map[string][]string {
	h.t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	ctrs, err := h.ctd.Containers(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string][]string{}
	for _, c := range ctrs {
		l, err := c.Labels(ctx)
		if errdefs.IsNotFound(err) {
			continue // deleted since the list
		}
		if err != nil {
			h.t.Fatal(err)
		}
		out[l[nodes.LabelPodName]] = append(out[l[nodes.LabelPodName]], c.ID())
	}
	for _, ids := range out {
		sort.Strings(ids)
	}
	return out
}

// taskPid returns the pid of a running container's task.
func (h *harness) taskPid(id string) uint32 {
	h.t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	c, err := h.ctd.LoadContainer(ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return task.Pid()
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 3 * time.Second}
	var lastErr error
	for i := 0; i < 40; i++ {
		resp, err := c.Get(url)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == 200 {
				return string(b)
			}
			lastErr = fmt.Errorf("status %d: %s %v", resp.StatusCode, b, err)
		} else {
			lastErr = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, lastErr)
	return ""
}

func helloPod(name string, uid types.UID) *corev1.Pod {
	grace := int64(5)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: uid},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: "app", Image: containerdtest.HelloRef("v1"),
			}},
		},
	}
}

func running(ps *store.PodStatus) bool {
	if ps == nil || ps.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range ps.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func containerStatus(ps store.PodStatus, name string) corev1.ContainerStatus {
	for _, cs := range ps.Status.ContainerStatuses {
		if cs.Name == name {
			return cs
		}
	}
	return corev1.ContainerStatus{}
}

// TestAgent_podLifecycle runs one agent (then its successor) through the
// life of several pods on a real containerd: networking, sidecars, restarts,
// failure, adoption, orphans and deletion.
func TestAgent_podLifecycle(t *testing.T) {
	h := newHarness(t)
	h.startAgent()

	// The node registers with its capacity and labels.
	var node corev1.Node
	deadline := time.Now().Add(10 * time.Second)
	for {
		snap, err := h.st.Snapshot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Nodes) == 1 {
			node = snap.Nodes[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node not registered")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if node.Name != "node-1" || node.Labels["zone"] != "a" || node.Labels["kubernetes.io/hostname"] != "node-1" ||
		node.Status.Capacity.Pods().Value() != 110 || node.Status.Capacity.Cpu().IsZero() ||
		!strings.HasPrefix(node.Status.NodeInfo.ContainerRuntimeVersion, "containerd://") {
		t.Fatalf("node = %+v", node)
	}

	// A pod with an app and a sidecar that reaches the app on localhost.
	web := helloPod("web", "11111111-aaaa")
	web.Spec.Containers = append(web.Spec.Containers, corev1.Container{
		Name: "sidecar", Image: containerdtest.HelloRef("v1"),
		Env: []corev1.EnvVar{{Name: "PORT", Value: "9090"}, {Name: "UPSTREAM", Value: "http://127.0.0.1:8080/"}},
		Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("64Mi"), corev1.ResourceCPU: resource.MustParse("500m"),
		}},
	})
	start := time.Now()
	h.putPod(web)
	ps := h.waitStatus("default", "web", 30*time.Second, "running", running)
	t.Logf("web running after %s", time.Since(start).Round(time.Millisecond))
	ip, err := netip.ParseAddr(ps.Status.PodIP)
	if err != nil || !netip.MustParsePrefix(testCIDR).Contains(ip) {
		t.Fatalf("pod IP %q not in %s", ps.Status.PodIP, testCIDR)
	}
	if ps.UID != web.UID || ps.Node != "node-1" {
		t.Errorf("status uid/node = %s/%s", ps.UID, ps.Node)
	}
	if got := httpGet(t, "http://"+ip.String()+":8080/"); got != "hello from web version v1\n" {
		t.Errorf("GET app = %q", got)
	}
	if got := httpGet(t, "http://"+ip.String()+":9090/upstream"); got != "hello from web version v1\n" {
		t.Errorf("GET sidecar /upstream = %q", got)
	}
	app := containerStatus(ps, "app")
	appID := strings.TrimPrefix(app.ContainerID, "containerd://")
	pid := h.taskPid(appID)
	resolv, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/resolv.conf", pid))
	if err != nil || !strings.Contains(string(resolv), "search default.svc.cluster.local svc.cluster.local cluster.local") ||
		!strings.Contains(string(resolv), fmt.Sprintf("nameserver 10.87.%d.1", testNet)) {
		t.Errorf("resolv.conf in container = %q, %v", resolv, err)
	}
	hosts, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/hosts", pid))
	if err != nil || !strings.Contains(string(hosts), ip.String()+"\tweb") {
		t.Errorf("hosts in container = %q, %v", hosts, err)
	}
	logPath := nodes.LogPath(h.cfg.StateDir, "default", "web", "app", false)
	if b, err := os.ReadFile(logPath); err != nil || !strings.Contains(string(b), "bosun-hello v1 pod web listening") {
		t.Errorf("log %s = %q, %v", logPath, b, err)
	}
	netnsPath := ""
	if ls, err := h.ctd.LoadContainer(namespaces.WithNamespace(context.Background(), testNS), appID); err == nil {
		l, _ := ls.Labels(namespaces.WithNamespace(context.Background(), testNS))
		netnsPath = l[nodes.LabelNetns]
	}
	if _, err := os.Stat(netnsPath); err != nil {
		t.Fatalf("netns %q: %v", netnsPath, err)
	}

	// The sidecar's limits reach its OCI spec.
	sideID := strings.TrimPrefix(containerStatus(ps, "sidecar").ContainerID, "containerd://")
	nsCtx := namespaces.WithNamespace(context.Background(), testNS)
	if side, err := h.ctd.LoadContainer(nsCtx, sideID); err != nil {
		t.Error(err)
	} else if spec, err := side.Spec(nsCtx); err != nil {
		t.Error(err)
	} else if r := spec.Linux.Resources; r.Memory == nil || *r.Memory.Limit != 64<<20 || r.CPU == nil || *r.CPU.Quota != 50000 || *r.CPU.Shares != 512 {
		t.Errorf("sidecar resources = %+v", r)
	}

	// SIGKILL the app's process: it is restarted, count 1, exit 137 kept.
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ps = h.waitStatus("default", "web", 20*time.Second, "restarted", func(ps *store.PodStatus) bool {
		return running(ps) && containerStatus(*ps, "app").RestartCount == 1
	})
	app = containerStatus(ps, "app")
	if lt := app.LastTerminationState.Terminated; lt == nil || lt.ExitCode != 137 || lt.ContainerID != "containerd://"+appID {
		t.Errorf("last termination = %+v", lt)
	}
	if got := httpGet(t, "http://"+ip.String()+":8080/"); got != "hello from web version v1\n" {
		t.Errorf("GET app after restart = %q", got)
	}
	if b, err := os.ReadFile(logPath + ".1"); err != nil || !strings.Contains(string(b), "listening") {
		t.Errorf("previous log = %q, %v", b, err)
	}

	// restartPolicy Never and a crash: Failed with exit code 1.
	crash := helloPod("crash", "22222222-bbbb")
	crash.Spec.RestartPolicy = corev1.RestartPolicyNever
	crash.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "CRASH_AFTER", Value: "300ms"}}
	h.putPod(crash)
	ps = h.waitStatus("default", "crash", 20*time.Second, "failed", func(ps *store.PodStatus) bool {
		return ps != nil && ps.Status.Phase == corev1.PodFailed
	})
	if term := containerStatus(ps, "app").State.Terminated; term == nil || term.ExitCode != 1 || term.Reason != "Error" {
		t.Errorf("crash state = %+v", containerStatus(ps, "app").State)
	}

	// restartPolicy Always and a crash loop: restarts with backoff.
	loop := helloPod("loop", "33333333-cccc")
	loop.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "CRASH_AFTER", Value: "200ms"}}
	h.putPod(loop)
	h.waitStatus("default", "loop", 20*time.Second, "restarted twice", func(ps *store.PodStatus) bool {
		return ps != nil && containerStatus(*ps, "app").RestartCount >= 2 && ps.Status.Phase == corev1.PodRunning
	})

	// imagePullPolicy Never with a missing image.
	never := helloPod("never", "44444444-dddd")
	never.Spec.Containers[0].Image = "localhost/missing:v1"
	never.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
	h.putPod(never)
	h.waitStatus("default", "never", 10*time.Second, "ErrImageNeverPull", func(ps *store.PodStatus) bool {
		w := ps
		return w != nil && containerStatus(*w, "app").State.Waiting != nil &&
			containerStatus(*w, "app").State.Waiting.Reason == nodes.ReasonErrImageNeverPull && w.Status.Phase == corev1.PodPending
	})

	// A failing pull is reported and retried with backoff.
	pull := helloPod("pull", "55555555-eeee")
	pull.Spec.Containers[0].Image = "127.0.0.1:1/nope:v1"
	h.putPod(pull)
	h.waitStatus("default", "pull", 20*time.Second, "ImagePullBackOff", func(ps *store.PodStatus) bool {
		return ps != nil && containerStatus(*ps, "app").State.Waiting != nil &&
			containerStatus(*ps, "app").State.Waiting.Reason == nodes.ReasonImagePullBackOff
	})
	// Replacing a pod (same name, new UID) tears the old one down and runs
	// the new one.
	pull = helloPod("pull", "66666666-ffff")
	h.putPod(pull)
	ps = h.waitStatus("default", "pull", 20*time.Second, "running as the new UID", func(ps *store.PodStatus) bool {
		return ps != nil && ps.UID == "66666666-ffff" && running(ps)
	})
	if ids := h.containers()["pull"]; len(ids) != 1 || !strings.Contains(ids[0], "66666666") {
		t.Errorf("containers of replaced pod: %v", ids)
	}

	// A new agent adopts the running containers: same IDs, no duplicates;
	// the pod deleted while no agent ran is torn down.
	h.deletePod("default", "loop")
	h.waitStatus("default", "loop", 20*time.Second, "gone", func(ps *store.PodStatus) bool { return ps == nil })
	before := h.containers()
	h.stopAgent()
	if got := httpGet(t, "http://"+ip.String()+":8080/"); got != "hello from web version v1\n" {
		t.Errorf("GET app with the agent stopped = %q", got)
	}
	if snap, _ := h.st.Snapshot(context.Background()); len(snap.Nodes) != 0 {
		t.Errorf("node still registered after stop: %d", len(snap.Nodes))
	}
	h.deletePod("default", "crash")
	adoptStart := time.Now()
	h.startAgent()
	h.waitStatus("default", "crash", 20*time.Second, "torn down as orphan", func(ps *store.PodStatus) bool { return ps == nil })
	t.Logf("orphan torn down %s after agent start", time.Since(adoptStart).Round(time.Millisecond))
	after := h.containers()
	if strings.Join(after["web"], ",") != strings.Join(before["web"], ",") || len(after["web"]) != 2 {
		t.Errorf("web containers before %v, after adoption %v", before["web"], after["web"])
	}
	if len(after["crash"]) != 0 {
		t.Errorf("orphaned crash containers left: %v", after["crash"])
	}
	ps = h.waitStatus("default", "web", 10*time.Second, "running", running)
	if containerStatus(ps, "app").RestartCount != 1 || ps.Status.PodIP != ip.String() {
		t.Errorf("after adoption: restarts %d, ip %s", containerStatus(ps, "app").RestartCount, ps.Status.PodIP)
	}
	// The adopted app is still watched: a kill restarts it.
	pid = h.taskPid(strings.TrimPrefix(containerStatus(ps, "app").ContainerID, "containerd://"))
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("default", "web", 20*time.Second, "restarted by the new agent", func(ps *store.PodStatus) bool {
		return running(ps) && containerStatus(*ps, "app").RestartCount == 2
	})

	// Deleting the pod stops it gracefully and frees everything.
	delStart := time.Now()
	h.deletePod("default", "web")
	h.waitStatus("default", "web", 20*time.Second, "deleted", func(ps *store.PodStatus) bool { return ps == nil })
	took := time.Since(delStart)
	t.Logf("web deleted in %s", took.Round(time.Millisecond))
	if took > 4*time.Second {
		t.Errorf("deletion took %s: SIGTERM should end the app well before its 5s grace", took)
	}
	if ids := h.containers()["web"]; len(ids) != 0 {
		t.Errorf("web containers left: %v", ids)
	}
	if _, err := os.Stat(netnsPath); !os.IsNotExist(err) {
		t.Errorf("netns %s still there: %v", netnsPath, err)
	}
	ipam := filepath.Join(h.cfg.StateDir, "cni", "networks", testBridge, ip.String())
	if _, err := os.Stat(ipam); !os.IsNotExist(err) {
		t.Errorf("IP %s still allocated (%s): %v", ip, ipam, err)
	}
	for _, name := range []string{"never", "pull"} {
		h.deletePod("default", name)
		h.waitStatus("default", name, 10*time.Second, "deleted", func(ps *store.PodStatus) bool { return ps == nil })
	}
	h.stopAgent()
	if n := len(h.containers()); n != 0 {
		t.Errorf("containers left: %v", h.containers())
	}
	checkNoGoroutines(t)
}

// checkNoGoroutines fails if goroutines of the agent, containerd's client
// or go-cni outlive the agent. (etcd's server and client goroutines belong
// to the test's store and are not counted.)
func checkNoGoroutines(t *testing.T) {
	t.Helper()
	var leaked []string
	for i := 0; i < 50; i++ {
		leaked = leaked[:0]
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "bosun/nodes.") || strings.Contains(g, "containerd/containerd/") || strings.Contains(g, "go-cni") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("%d goroutines outlived the agent:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
}
