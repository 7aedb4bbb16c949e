package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"bosun/kube"
	"bosun/nodes"
	"bosun/nodes/containerdtest"
)

// afNode is a second node on a host of its own: a network namespace
// (bosunaf<n>, joined to the test machine by a veth pair in 10.245.<n>.0/30)
// where `bosun agent` runs (entered with nsenter: only its network
// namespace differs, so the pods' namespaces it bind-mounts are seen by
// its containerd), with its own containerd, pod bridge and pod addresses
// (10.245.<100+n>.0/24). Its pods are reachable only inside the namespace:
// the test dials them there (dial).
type afNode struct {
	t              *testing.T
	name           string
	ns, nsPath     string
	hostIf, nsIf   string
	hostIP, nodeIP string
	podCIDR        string
	containerd     string
	ctd            *client.Client
	stateDir       string
	netnsDir       string
	args           []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    *lockedBuffer
}

func newAFHost(t *testing.T) *afNode {
	t.Helper()
	for i := 0; i < 100; i++ {
		n := (os.Getpid() + i) % 100
		h := &afNode{t: t, ns: fmt.Sprintf("bosunaf%d", n), hostIf: fmt.Sprintf("bosunafh%d", n), nsIf: fmt.Sprintf("bosunafp%d", n),
			hostIP: fmt.Sprintf("10.245.%d.1", n), nodeIP: fmt.Sprintf("10.245.%d.2", n), podCIDR: fmt.Sprintf("10.245.%d.0/24", 100+n)}
		h.nsPath = "/run/netns/" + h.ns
		if out, err := exec.Command("ip", "netns", "add", h.ns).CombinedOutput(); err != nil {
			if strings.Contains(string(out), "exists") {
				continue
			}
			t.Fatalf("ip netns add: %v: %s", err, out)
		}
		t.Cleanup(func() {
			exec.Command("ip", "netns", "del", h.ns).Run()
			exec.Command("ip", "link", "del", h.hostIf).Run()
		})
		for _, c := range [][]string{
			{"ip", "link", "add", h.hostIf, "type", "veth", "peer", "name", h.nsIf},
			{"ip", "link", "set", h.nsIf, "netns", h.ns},
			{"ip", "addr", "add", h.hostIP + "/30", "dev", h.hostIf},
			{"ip", "link", "set", h.hostIf, "up"},
			{"ip", "netns", "exec", h.ns, "ip", "addr", "add", h.nodeIP + "/30", "dev", h.nsIf},
			{"ip", "netns", "exec", h.ns, "ip", "link", "set", h.nsIf, "up"},
			{"ip", "netns", "exec", h.ns, "ip", "link", "set", "lo", "up"},
		} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v: %s", strings.Join(c, " "), err, out)
			}
		}
		return h
	}
	t.Fatal("no free bosunaf namespace")
	return nil
}

// startAFAgent runs a node named name on host h, reaching etcd at
// endpoint in plain text, stopping its pods once cut off for
// cutOffStopAfter (the servers' --node-grace-period).
func startAFAgent(t *testing.T, h *afNode, name, endpoint, cutOffStopAfter string) {
	t.Helper()
	h.name = name
	// Registered before containerd starts, so that it runs after
	// containerdtest's cleanup: a containerd restarted by the test (see
	// restartContainerd) serves that cleanup, then stops.
	t.Cleanup(h.stopRestartedContainerd)
	h.containerd = containerdtest.Start(t)
	for _, v := range []string{"v1", "v2"} {
		if out, err := exec.Command(bosun(t), "image", "import", "--containerd-address", h.containerd, containerdtest.BuildHelloImage(t, v)).CombinedOutput(); err != nil {
			t.Fatalf("import: %v\n%s", err, out)
		}
	}
	ctd, err := client.New(h.containerd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctd.Close() })
	h.ctd = ctd
	h.stateDir, h.netnsDir = t.TempDir(), t.TempDir()
	t.Cleanup(func() { removePodNetwork(t, h.netnsDir, "bosunafnone") })
	t.Cleanup(func() { unmountUnder(t, h.stateDir) })
	h.args = []string{"--net=" + h.nsPath, bosun(t), "agent", "--insecure",
		"--etcd-endpoints", endpoint,
		"--node-name", name, "--node-ip", h.nodeIP,
		"--state-dir", h.stateDir, "--containerd-address", h.containerd,
		"--pod-cidr", h.podCIDR, "--bridge", strings.Replace(h.ns, "bosunaf", "bosunafb", 1), "--netns-dir", h.netnsDir,
		"--proxy=false", "--restart-backoff", "200ms", "--cut-off-stop-after", cutOffStopAfter}
	h.startAgent()
	t.Cleanup(func() {
		h.signalAgent(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("agent %s log (tail):\n%s", name, tailLines(h.log.String(), 120))
		}
	})
}

func (h *afNode) startAgent() {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log = &lockedBuffer{}
	h.cmd = exec.Command("nsenter", h.args...)
	var out io.Writer = h.log
	if dir := os.Getenv("BOSUN_E2E_LOGDIR"); dir != "" {
		if f, err := os.CreateTemp(dir, "agentfaults-"+h.name+"-*.log"); err == nil {
			h.t.Cleanup(func() { f.Close() })
			out = io.MultiWriter(h.log, f)
		}
	}
	h.cmd.Stdout, h.cmd.Stderr = out, out
	if err := h.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	exited := make(chan struct{})
	h.exited = exited
	cmd := h.cmd
	go func() { cmd.Wait(); close(exited) }()
}

// signalAgent signals the agent process (nsenter execs it: same pid) and
// waits for it to exit.
func (h *afNode) signalAgent(sig syscall.Signal) {
	h.mu.Lock()
	cmd, exited := h.cmd, h.exited
	h.mu.Unlock()
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// link sets the node's link to the test machine up or down: down cuts the
// node off from etcd and the servers (its pods keep running in its
// namespace, where the test still reaches them).
func (h *afNode) link(state string) {
	h.t.Helper()
	if out, err := exec.Command("ip", "netns", "exec", h.ns, "ip", "link", "set", h.nsIf, state).CombinedOutput(); err != nil {
		h.t.Fatalf("ip link set %s %s: %v: %s", h.nsIf, state, err, out)
	}
}

// dialer dials from inside the node's network namespace: a socket made on
// a thread that entered the namespace stays in it.
func (h *afNode) dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		defer orig.Close()
		target, err := os.Open(h.nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("setns: %w", err)
		}
		d := net.Dialer{Timeout: 2 * time.Second}
		c, derr := d.DialContext(ctx, network, addr)
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread is left in the namespace: it dies with the
			// goroutine (no UnlockOSThread).
			return c, derr
		}
		runtime.UnlockOSThread()
		return c, derr
	}
}

// copyOf is one copy of the app: a pod's container whose task runs on a
// node's containerd.
type copyOf struct {
	node, pod, uid, ip, id string
	pid                    uint32
}

// runningCopies lists the running containers of pods named prefix* on the
// containerd at ctd (the agent's namespace "bosun").
func runningCopies(ctd *client.Client, node, prefix string) ([]copyOf, error) {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "bosun"), 5*time.Second)
	defer cancel()
	ctrs, err := ctd.Containers(ctx)
	if err != nil {
		return nil, err
	}
	var out []copyOf
	for _, c := range ctrs {
		l, err := c.Labels(ctx)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(l[nodes.LabelPodName], prefix) {
			continue
		}
		task, err := c.Task(ctx, nil)
		if err != nil {
			continue // no task: not running
		}
		st, err := task.Status(ctx)
		if err != nil || st.Status != client.Running {
			continue
		}
		out = append(out, copyOf{node: node, pod: l[nodes.LabelPodName], uid: l[nodes.LabelPodUID], ip: l[nodes.LabelPodIP], id: c.ID(), pid: task.Pid()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
}

// afCluster is the stack of a test: the server's node (e2e-node, on the
// test machine) and the second node on its own host.
type afCluster struct {
	t       *testing.T
	s       *stack
	b       *afNode
	ctd     *client.Client // the server node's containerd
	inNS    *http.Client   // reaches pods of b
	onHost  *http.Client
	replica int
}

// copies lists the running copies of web on both nodes.
func (c *afCluster) copies() ([]copyOf, error) {
	a, err := runningCopies(c.ctd, "e2e-node", "web-")
	if err != nil {
		return nil, fmt.Errorf("e2e-node containerd: %w", err)
	}
	b, err := runningCopies(c.b.ctd, c.b.name, "web-")
	if err != nil {
		return nil, fmt.Errorf("%s containerd: %w", c.b.name, err)
	}
	return append(a, b...), nil
}

// ask GETs / of a copy from where it can be reached.
func (c *afCluster) ask(cp copyOf) (string, error) {
	hc := c.onHost
	if cp.node == c.b.name {
		hc = c.inNS
	}
	resp, err := hc.Get("http://" + cp.ip + ":8080/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// nodeRegistered says whether the node is registered (its lease held).
func (c *afCluster) nodeRegistered(name string) bool {
	var list struct{ Items []corev1.Node }
	if err := c.s.getJSON("/api/v1/nodes", &list); err != nil {
		return false
	}
	for _, n := range list.Items {
		if n.Name == name {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady {
					return cond.Status == corev1.ConditionTrue
				}
			}
		}
	}
	return false
}

// waitVersion waits until web runs exactly its replicas, ready, every one
// of image and answering version (asked where it runs).
func (c *afCluster) waitVersion(image, version string, timeout time.Duration) {
	c.t.Helper()
	c.s.waitFor(fmt.Sprintf("%d ready pods of %s", c.replica, image), timeout, func() error {
		all := withPrefix(c.s.pods(), "web-")
		ready := readyPods(all, "web-")
		if len(all) != c.replica || len(ready) != c.replica {
			return fmt.Errorf("%d pods, %d ready", len(all), len(ready))
		}
		for _, p := range ready {
			if imageOf(&p) != image {
				return fmt.Errorf("pod %s runs %s", p.Name, imageOf(&p))
			}
			body, err := c.ask(copyOf{node: p.Spec.NodeName, ip: p.Status.PodIP})
			if err != nil || !strings.Contains(body, "version "+version) {
				return fmt.Errorf("pod %s on %s answers %q, %v", p.Name, p.Spec.NodeName, body, err)
			}
		}
		return nil
	})
}

// checkInvariant: the Deployment runs exactly its replicas, each pod one
// running container (the one its status names) on the node it is bound
// to, nothing else runs, and the second node keeps no network namespace
// of a pod it does not run.
func (c *afCluster) checkInvariant() {
	c.t.Helper()
	var last error
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if last = c.invariant(); last == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Errorf("invariant: %v", last)
}

func (c *afCluster) invariant() error {
	pods := withPrefix(c.s.pods(), "web-")
	ready := readyPods(pods, "web-")
	if len(pods) != c.replica || len(ready) != c.replica {
		return fmt.Errorf("%d pods, %d ready; want %d", len(pods), len(ready), c.replica)
	}
	cps, err := c.copies()
	if err != nil {
		return err
	}
	byPod := map[string][]copyOf{}
	for _, cp := range cps {
		byPod[cp.pod] = append(byPod[cp.pod], cp)
	}
	onB := 0
	for _, p := range pods {
		got := byPod[p.Name]
		if len(got) != 1 {
			return fmt.Errorf("pod %s: %d running containers %v", p.Name, len(got), got)
		}
		cp := got[0]
		if cp.node != p.Spec.NodeName || cp.uid != string(p.UID) || len(p.Status.ContainerStatuses) != 1 ||
			p.Status.ContainerStatuses[0].ContainerID != "containerd://"+cp.id {
			return fmt.Errorf("pod %s (uid %s) bound to %s, status %v; running: %+v", p.Name, p.UID, p.Spec.NodeName, p.Status.ContainerStatuses, cp)
		}
		if cp.node == c.b.name {
			onB++
		}
		delete(byPod, p.Name)
	}
	if len(byPod) != 0 {
		return fmt.Errorf("copies of no pod: %v", byPod)
	}
	entries, err := os.ReadDir(c.b.netnsDir)
	if err != nil {
		return err
	}
	if len(entries) != onB {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return fmt.Errorf("%s: %d pods, network namespaces %v", c.b.name, onB, names)
	}
	return nil
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// containerdPid finds the containerd serving the socket at address: the
// daemon containerdtest started with the config file beside it.
func containerdPid(t *testing.T, address string) int {
	t.Helper()
	cfg := filepath.Join(filepath.Dir(address), "config.toml")
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 3 && filepath.Base(args[0]) == "containerd" && args[1] == "--config" && args[2] == cfg {
			return pid
		}
	}
	t.Fatalf("no containerd with --config %s", cfg)
	return 0
}

// restartedContainerd is the daemon restartContainerd started, stopped by
// stopRestartedContainerd.
var (
	restartedMu sync.Mutex
	restarted   = map[*afNode]*exec.Cmd{}
)

// restartContainerd SIGKILLs the node's containerd and starts it again
// with the same config (root, state, socket). The shims, and so the
// containers, live on.
func (h *afNode) restartContainerd(down time.Duration) {
	h.t.Helper()
	pid := containerdPid(h.t, h.containerd)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := syscall.Kill(pid, 0); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(down)
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(h.containerd), "containerd.log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", filepath.Join(filepath.Dir(h.containerd), "config.toml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	logf.Close()
	restartedMu.Lock()
	restarted[h] = cmd
	restartedMu.Unlock()
	if err := waitListeningUnix(h.containerd, 15*time.Second); err != nil {
		h.t.Fatal(err)
	}
}

func (h *afNode) stopRestartedContainerd() {
	restartedMu.Lock()
	cmd := restarted[h]
	delete(restarted, h)
	restartedMu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func waitListeningUnix(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAgentFaults: a second node on a host of its own runs half of a
// Deployment. Cut off for longer than the grace period, its pods are
// replaced on the server's node and it stops its copies by itself
// (--cut-off-stop-after); when it returns it fences (its copies' teardown
// completes, statuses removed) before it reports Ready, and no sampled
// instant after healing has more than replicas + maxSurge copies running
// or answering. (Fencing of copies still running when the node returns,
// the default, is TestAgent_fence in nodes.) Its containerd is
// SIGKILLed and restarted under the running agent: the same containers run
// on, none duplicated, statuses unchanged. Its agent is SIGKILLed in the
// middle of a rollout and comes back: the rollout completes, nothing is
// duplicated or left behind. Each part ends with the invariant: the
// Deployment's replicas, one running container per pod.
func TestAgentFaults(t *testing.T) {
	t.Parallel()
	h := newAFHost(t)
	repo := newGitRepo(t)
	repo.write("README.md", "nothing to run yet\n")
	repo.commit("empty")
	_, port, _ := net.SplitHostPort(freePort(t))
	etcdAddr := net.JoinHostPort(h.hostIP, port)
	s := startStack(t, repo, "--node-grace-period", "3s", "--etcd-listen", etcdAddr, "--insecure")
	startAFAgent(t, h, "node-af", "http://"+etcdAddr, "3s")
	ctd, err := client.New(s.containerd)
	if err != nil {
		t.Fatal(err)
	}
	defer ctd.Close()
	c := &afCluster{t: t, s: s, b: h, ctd: ctd, replica: 4,
		inNS:   &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: h.dialer(), DisableKeepAlives: true}},
		onHost: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	s.waitFor("node-af Ready", 60*time.Second, func() error {
		if !c.nodeRegistered("node-af") {
			return fmt.Errorf("not registered")
		}
		return nil
	})
	repo.write("web/deployment.yaml", afDeployment("localhost/bosun-hello:v1"))
	repo.commit("web on two nodes")
	c.waitVersion("localhost/bosun-hello:v1", "v1", 90*time.Second)
	c.checkInvariant()

	onB := func() []corev1.Pod {
		var out []corev1.Pod
		for _, p := range readyPods(s.pods(), "web-") {
			if p.Spec.NodeName == "node-af" {
				out = append(out, p)
			}
		}
		return out
	}

	t.Run("partition longer than the grace period", func(t *testing.T) {
		if n := len(onB()); n == 0 {
			t.Fatal("no pod on node-af to partition away")
		}
		cut := time.Now()
		h.link("down")
		healed := false
		defer func() {
			if !healed {
				h.link("up")
			}
		}()
		s.waitFor("every pod replaced on e2e-node", 90*time.Second, func() error {
			all := withPrefix(s.pods(), "web-")
			ready := readyPods(all, "web-")
			if len(all) != 4 || len(ready) != 4 {
				return fmt.Errorf("%d pods, %d ready", len(all), len(ready))
			}
			for _, p := range all {
				if p.Spec.NodeName != "e2e-node" {
					return fmt.Errorf("pod %s on %s", p.Name, p.Spec.NodeName)
				}
			}
			return nil
		})
		t.Logf("node-af cut off -> its pods replaced and ready on e2e-node: %s (lease TTL 10 s + grace 3 s)", time.Since(cut).Round(time.Millisecond))
		// Cut off for --cut-off-stop-after (the grace period), the node
		// stops its copies by itself.
		s.waitFor("node-af's copies stopped while it is cut off", 30*time.Second, func() error {
			stale, err := runningCopies(h.ctd, "node-af", "web-")
			if err != nil || len(stale) != 0 {
				return fmt.Errorf("running on node-af: %v, %v", stale, err)
			}
			return nil
		})
		t.Logf("node-af cut off -> its copies stopped by itself: %s", time.Since(cut).Round(time.Millisecond))

		// Heal, and sample until the node is Ready again and a while
		// after: copies running, and copies answering HTTP.
		h.link("up")
		healed = true
		healAt := time.Now()
		most, mostAnswering, samples := 0, 0, 0
		var readyAt time.Time
		deadline := time.Now().Add(90 * time.Second)
		for time.Now().Before(deadline) {
			registered := c.nodeRegistered("node-af")
			cps, err := c.copies()
			if err != nil {
				t.Fatal(err)
			}
			samples++
			most = max(most, len(cps))
			answering := 0
			for _, cp := range cps {
				if _, err := c.ask(cp); err == nil {
					answering++
				}
			}
			mostAnswering = max(mostAnswering, answering)
			if len(cps) > 5 || answering > 5 {
				t.Errorf("%s after healing: %d copies running, %d answering: more than replicas + maxSurge (5): %v", time.Since(healAt).Round(time.Millisecond), len(cps), answering, cps)
			}
			if registered && readyAt.IsZero() {
				readyAt = time.Now()
				for _, cp := range cps {
					if cp.node == "node-af" {
						t.Errorf("node-af Ready again with a stale copy running: %+v", cp)
					}
				}
			}
			if !readyAt.IsZero() && time.Since(readyAt) > 3*time.Second {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if readyAt.IsZero() {
			t.Fatalf("node-af not Ready within 90 s of healing")
		}
		t.Logf("healed -> node-af Ready again: %s; %d samples, at most %d copies running, %d answering",
			readyAt.Sub(healAt).Round(time.Millisecond), samples, most, mostAnswering)
		// The agent's own account: it fenced before registering.
		logs := h.log.String()
		stopped, fenced, registered := strings.LastIndex(logs, "stopping every pod of the node"), strings.LastIndex(logs, "fencing: stopping pods no longer bound"), strings.LastIndex(logs, "node registered")
		// (The fence finds the copies' teardown still under way, unless
		// it completed first: their statuses are removed as etcd answers.)
		if stopped < 0 || registered < stopped || fenced >= 0 && (fenced < stopped || registered < fenced) {
			t.Errorf("agent log: cut-off stop at %d, fencing at %d, registered at %d; want them in that order", stopped, fenced, registered)
		}
		c.checkInvariant()
	})

	t.Run("containerd restarted under a running agent", func(t *testing.T) {
		// Bring pods back to node-af: a rollout places them on both nodes.
		repo.write("web/deployment.yaml", afDeployment("localhost/bosun-hello:v2"))
		repo.commit("web v2")
		c.waitVersion("localhost/bosun-hello:v2", "v2", 90*time.Second)
		c.checkInvariant()
		if len(onB()) == 0 {
			t.Skip("the rollout placed no pod on node-af")
		}
		before, err := runningCopies(h.ctd, "node-af", "web-")
		if err != nil {
			t.Fatal(err)
		}
		h.restartContainerd(time.Second)
		// Long enough for the agent to notice (its waits on the tasks
		// broke) and to act, if it were to act wrongly.
		time.Sleep(5 * time.Second)
		after, err := runningCopies(h.ctd, "node-af", "web-")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("node-af's containers before the containerd restart:\n%v\nafter:\n%v", before, after)
		}
		for _, p := range onB() {
			if cs := p.Status.ContainerStatuses; len(cs) != 1 || cs[0].RestartCount != 0 || !kube.PodReady(&p) {
				t.Errorf("pod %s after the containerd restart: %+v", p.Name, cs)
			}
		}
		c.checkInvariant()
		t.Logf("containerd SIGKILLed and restarted: %d containers on node-af, same IDs and task PIDs", len(after))
	})

	t.Run("agent SIGKILLed mid-rollout", func(t *testing.T) {
		repo.write("web/deployment.yaml", afDeployment("localhost/bosun-hello:v1"))
		repo.commit("web back to v1")
		// Mid-rollout: the first pod of the new template exists.
		s.waitFor("the rollout under way", 60*time.Second, func() error {
			for _, p := range withPrefix(s.pods(), "web-") {
				if imageOf(&p) == "localhost/bosun-hello:v1" {
					return nil
				}
			}
			return fmt.Errorf("no v1 pod yet")
		})
		h.signalAgent(syscall.SIGKILL)
		killed := time.Now()
		time.Sleep(2 * time.Second)
		h.startAgent()
		c.waitVersion("localhost/bosun-hello:v1", "v1", 120*time.Second)
		t.Logf("agent SIGKILLed mid-rollout and started again 2 s later: rollout complete %s after the kill", time.Since(killed).Round(time.Millisecond))
		c.checkInvariant()
	})
}

// afDeployment is the rollout tests' Deployment with a progress deadline
// these faults cannot miss: an agent SIGKILLed mid-rollout and started again
// holds the rollout for its restart, which on a loaded machine outlasts the
// rollout tests' 6 s, and a rollout past its deadline stops for good (by
// design: it waits for a new template, see reconciler.conditions).
func afDeployment(image string) string {
	return strings.Replace(rolloutDeployment(image), "progressDeadlineSeconds: 6\n", "progressDeadlineSeconds: 300\n", 1)
}
