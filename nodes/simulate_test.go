package nodes_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"bosun/kube"
	"bosun/nodes"
	"bosun/store"
)

// simHarness runs a Simulation on an embedded etcd.
type simHarness struct {
	t    *testing.T
	st   *store.Store
	sim  *nodes.Simulation
	reg  *prometheus.Registry
	stop func()
}

func startSimulation(t *testing.T, cfg nodes.SimConfig) *simHarness {
	t.Helper()
	h := &simHarness{t: t, st: store.NewTest(t), reg: prometheus.NewRegistry()}
	cfg.Registerer = h.reg
	cfg.Logger = testLogger(t)
	sim, err := nodes.NewSimulation(cfg, h.st)
	if err != nil {
		t.Fatal(err)
	}
	h.sim = sim
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()
	stopped := false
	h.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("simulation: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("simulation did not stop within 30s")
			return
		}
		// Every node's loop, lease and watch, and every pod's worker, ended.
		// (etcd's client and server keep goroutines of their own; those of
		// bosun's code must be gone.)
		if left := bosunGoroutines(); left != "" {
			t.Errorf("goroutines left after the simulation stopped:\n%s", left)
		}
	}
	t.Cleanup(h.stop)
	return h
}

func (h *simHarness) nodes() []corev1.Node {
	h.t.Helper()
	snap, err := h.st.Snapshot(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return snap.Nodes
}

func (h *simHarness) putPod(p *corev1.Pod) {
	h.t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.st.Client().Put(context.Background(), store.PodKey(p.Spec.NodeName, p.Namespace, p.Name), string(b)); err != nil {
		h.t.Fatal(err)
	}
}

// status returns the pod's reported status, nil when there is none.
func (h *simHarness) status(ns, name string) *store.PodStatus {
	h.t.Helper()
	all, err := h.st.PodStatuses(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	if ps, ok := all[ns+"/"+name]; ok {
		return &ps
	}
	return nil
}

func (h *simHarness) waitFor(what string, timeout time.Duration, ok func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func simPod(name, node string, uid types.UID, policy corev1.RestartPolicy) *corev1.Pod {
	always := corev1.ContainerRestartPolicyAlways
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: uid},
		Spec: corev1.PodSpec{
			NodeName:      node,
			RestartPolicy: policy,
			InitContainers: []corev1.Container{
				{Name: "setup", Image: "hello:v1"},
				{Name: "proxy", Image: "hello:v1", RestartPolicy: &always},
			},
			Containers: []corev1.Container{{
				Name: "app", Image: "hello:v1",
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}},
			}},
		},
	}
}

func TestSimulation_registersNamedNodesWithLeases(t *testing.T) {
	h := startSimulation(t, nodes.SimConfig{Nodes: 12, Node: nodes.Config{MaxPods: 30, LeaseTTL: 2 * time.Second}})
	names := h.sim.NodeNames()
	if len(names) != 12 || names[0] != "sim-0001" || names[11] != "sim-0012" {
		t.Fatalf("node names %v", names)
	}
	h.waitFor("12 nodes", 10*time.Second, func() bool { return len(h.nodes()) == 12 })
	cidrs := map[string]bool{}
	for _, n := range h.nodes() {
		if n.Labels[nodes.LabelSimulated] != "true" || n.Status.NodeInfo.ContainerRuntimeVersion != nodes.SimulatedRuntimeVersion {
			t.Errorf("node %s: labels %v runtime %q: not marked simulated", n.Name, n.Labels, n.Status.NodeInfo.ContainerRuntimeVersion)
		}
		if got := n.Status.Allocatable.Cpu().String() + " " + n.Status.Allocatable.Memory().String() + " " + n.Status.Allocatable.Pods().String(); got != "8 32Gi 30" {
			t.Errorf("node %s: allocatable %s, want 8 32Gi 30", n.Name, got)
		}
		p := netip.MustParsePrefix(n.Spec.PodCIDR)
		if p.Bits() != 24 || !netip.MustParsePrefix(nodes.DefaultSimulatedPodCIDRs).Contains(p.Addr()) || cidrs[p.String()] {
			t.Errorf("node %s: pod CIDR %s: not a /24 of its own in %s", n.Name, p, nodes.DefaultSimulatedPodCIDRs)
		}
		cidrs[p.String()] = true
	}
	h.waitFor("bosun_simulated_nodes 12", 10*time.Second, func() bool { return metricValue(t, h.reg, "bosun_simulated_nodes") == 12 })
	// A lost lease (revoked behind the node's back) registers the node again.
	resp, err := h.st.Client().Get(context.Background(), store.NodeKey("sim-0003"))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("node key: %v %v", resp, err)
	}
	if _, err := h.st.Client().Revoke(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	h.waitFor("sim-0003 registered again", 10*time.Second, func() bool {
		r, err := h.st.Client().Get(context.Background(), store.NodeKey("sim-0003"))
		return err == nil && len(r.Kvs) == 1 && r.Kvs[0].Lease != resp.Kvs[0].Lease
	})
	// Stopping deregisters every node.
	h.stop()
	if n := h.nodes(); len(n) != 0 {
		t.Errorf("%d nodes left after the simulation stopped", len(n))
	}
}

func TestSimulation_podRunningAndReadyAfterDelayThenStatusDeleted(t *testing.T) {
	const delay = 700 * time.Millisecond
	h := startSimulation(t, nodes.SimConfig{Nodes: 2, StartDelay: delay, PodCIDRs: "10.250.0.0/16"})
	h.waitFor("2 nodes", 10*time.Second, func() bool { return len(h.nodes()) == 2 })

	bound := time.Now()
	h.putPod(simPod("web", "sim-0002", "uid-1", corev1.RestartPolicyAlways))
	h.waitFor("a status", 5*time.Second, func() bool { return h.status("default", "web") != nil })
	ps := h.status("default", "web")
	if time.Since(bound) < delay {
		if ps.Status.Phase != corev1.PodPending || podReady(ps) {
			t.Errorf("before the start delay: phase %s ready %v, want Pending and not ready", ps.Status.Phase, podReady(ps))
		}
		if cs := ps.Status.ContainerStatuses; len(cs) != 1 || cs[0].State.Waiting == nil || cs[0].State.Waiting.Reason != nodes.ReasonPodInitializing {
			t.Errorf("before the start delay: container statuses %+v, want waiting, PodInitializing (the pod has init containers)", cs)
		}
	}
	h.waitFor("Running and Ready", 5*time.Second, func() bool {
		ps = h.status("default", "web")
		return ps.Status.Phase == corev1.PodRunning && podReady(ps)
	})
	if took := time.Since(bound); took < delay {
		t.Errorf("ready after %s, before the start delay %s", took, delay)
	}
	if ps.UID != "uid-1" || ps.Node != "sim-0002" || ps.Status.PodIP != "10.250.1.2" || ps.Status.HostIP == "" {
		t.Errorf("status uid %s node %s podIP %s hostIP %s; want uid-1 on sim-0002 at 10.250.1.2 (the node's first pod address)",
			ps.UID, ps.Node, ps.Status.PodIP, ps.Status.HostIP)
	}
	for _, cs := range append(ps.Status.InitContainerStatuses, ps.Status.ContainerStatuses...) {
		switch cs.Name {
		case "setup":
			if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
				t.Errorf("init container: %+v, want completed", cs.State)
			}
		default:
			if cs.State.Running == nil || !cs.Ready || cs.Started == nil || !*cs.Started {
				t.Errorf("container %s: %+v ready %v, want running, started and ready", cs.Name, cs.State, cs.Ready)
			}
		}
	}

	// A Job's pod (restartPolicy Never) succeeds.
	h.putPod(simPod("job-x", "sim-0002", "uid-2", corev1.RestartPolicyNever))
	h.waitFor("the job's pod Succeeded", 5*time.Second, func() bool {
		ps := h.status("default", "job-x")
		return ps != nil && ps.Status.Phase == corev1.PodSucceeded
	})

	// Gone from the store: its status is deleted, and its address free.
	if _, err := h.st.Client().Delete(context.Background(), store.PodKey("sim-0002", "default", "web")); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the status deleted", 5*time.Second, func() bool { return h.status("default", "web") == nil })
	h.putPod(simPod("web2", "sim-0002", "uid-3", corev1.RestartPolicyAlways))
	h.waitFor("web2 Ready", 5*time.Second, func() bool {
		ps := h.status("default", "web2")
		return ps != nil && podReady(ps)
	})
	if ip := h.status("default", "web2").Status.PodIP; ip != "10.250.1.2" {
		t.Errorf("web2 got %s, want the address web gave back, 10.250.1.2", ip)
	}
	// Replaced under the same name (new UID): reported anew.
	h.putPod(simPod("web2", "sim-0002", "uid-4", corev1.RestartPolicyAlways))
	h.waitFor("the new web2 Ready", 5*time.Second, func() bool {
		ps := h.status("default", "web2")
		return ps != nil && ps.UID == "uid-4" && podReady(ps)
	})
	if got := metricValue(t, h.reg, "bosun_simulated_pods_started_total"); got != 4 {
		t.Errorf("pods started = %v, want 4", got)
	}
	if got := metricValue(t, h.reg, "bosun_simulated_pods_stopped_total"); got != 2 {
		t.Errorf("pods stopped = %v, want 2", got)
	}
}

func TestNewSimulation_refusesBadConfig(t *testing.T) {
	st := store.NewTest(t)
	for _, tc := range []struct {
		cfg  nodes.SimConfig
		want string
	}{
		{nodes.SimConfig{}, "want at least 1"},
		{nodes.SimConfig{Nodes: 300, PodCIDRs: "10.1.0.0/16"}, "room for 256 nodes"},
		{nodes.SimConfig{Nodes: 1, PodCIDRs: "10.1.0.0/25"}, "/24 or wider"},
		{nodes.SimConfig{Nodes: 1, Node: nodes.Config{MaxPods: 300}}, "253 pod addresses"},
		{nodes.SimConfig{Nodes: 1, Prefix: "Bad_Name"}, "node name"},
	} {
		_, err := nodes.NewSimulation(tc.cfg, st)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one saying %q", tc.cfg, err, tc.want)
		}
	}
}

func podReady(ps *store.PodStatus) bool {
	p := corev1.Pod{Status: ps.Status}
	return kube.PodReady(&p)
}

// metricValue reads a gauge or counter without labels from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.Metric) != 1 {
			continue
		}
		m := mf.Metric[0]
		if m.Gauge != nil {
			return m.Gauge.GetValue()
		}
		return m.Counter.GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// BenchmarkSimulation_start1000Nodes: the time from Run to 1,000 simulated
// nodes registered and watching their pods, on an embedded etcd in this
// process (go test -run '^$' -bench Simulation_start -benchtime 3x ./nodes).
func BenchmarkSimulation_start1000Nodes(b *testing.B) {
	for range b.N {
		b.StopTimer()
		st := store.NewTest(b)
		reg := prometheus.NewRegistry()
		sim, err := nodes.NewSimulation(nodes.SimConfig{Nodes: 1000, Registerer: reg}, st)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		go func() { done <- sim.Run(ctx) }()
		for {
			mfs, _ := reg.Gather()
			if len(mfs) > 0 && mfs[0].GetName() == "bosun_simulated_nodes" && mfs[0].Metric[0].Gauge.GetValue() == 1000 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

// bosunGoroutines returns the stacks of goroutines running bosun's code
// other than the caller's, after giving them a moment to end.
func bosunGoroutines() string {
	var left []string
	for range 50 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		left = nil
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "bosun/") && !strings.Contains(g, "bosunGoroutines") && !strings.Contains(g, "testing.tRunner") {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return ""
		}
		time.Sleep(20 * time.Millisecond)
	}
	return strings.Join(left, "\n\n")
}
