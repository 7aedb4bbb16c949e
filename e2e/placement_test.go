package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/nodes/containerdtest"
)

// nodeAgent is a `bosun agent` that can be restarted with other flags on
// the same containerd, state and pod network, so its containers are
// adopted across the restart.
type nodeAgent struct {
	t                                         *testing.T
	s                                         *stack
	name, address, stateDir, cidr, bridge, ns string

	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	log    strings.Builder
}

func newNodeAgent(t *testing.T, s *stack, name string, flags ...string) *nodeAgent {
	t.Helper()
	a := &nodeAgent{t: t, s: s, name: name, stateDir: t.TempDir(), ns: t.TempDir()}
	a.cidr, a.bridge = subnet(t)
	t.Cleanup(func() { removePodNetwork(t, a.ns, a.bridge) })
	a.address = containerdtest.Start(t)
	if out, err := exec.Command(bosun(t), "image", "import", "--containerd-address", a.address, containerdtest.BuildHelloImage(t, "v1")).CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			t.Logf("agent %s log:\n%s", name, a.logText())
		}
		if dir := os.Getenv("BOSUN_E2E_LOGDIR"); dir != "" {
			os.WriteFile(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"-agent-"+name+".log"), []byte(a.logText()), 0o644)
		}
	})
	a.start(flags...)
	return a
}

func (a *nodeAgent) start(flags ...string) {
	a.t.Helper()
	args := append([]string{"agent",
		"--etcd-endpoints", "http://" + a.s.etcdAddr,
		"--node-name", a.name, "--node-ip", "127.0.0.1", "--listen", "127.0.0.1:0",
		"--state-dir", a.stateDir, "--containerd-address", a.address,
		"--pod-cidr", a.cidr, "--bridge", a.bridge, "--netns-dir", a.ns,
		"--restart-backoff", "200ms",
		// Placement needs no Service VIPs, and these extra nodes share the
		// host's network namespace with every other stack's agents.
		"--proxy=false"}, flags...)
	a.cmd = exec.Command(bosun(a.t), args...)
	w := &lockedWriter{mu: &a.mu, w: &a.log}
	a.cmd.Stdout, a.cmd.Stderr = w, w
	if err := a.cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	a.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(a.cmd, a.exited)
}

func (a *nodeAgent) stop() {
	if a.cmd == nil {
		return
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	<-a.exited
	a.cmd = nil
}

func (a *nodeAgent) logText() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.log.String()
}

// placementDeployment is a Deployment of the hello app with extra pod spec
// fields (indented as spec's children) and a readiness probe.
func placementDeployment(name string, replicas int, specFields string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: %[2]d
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      terminationGracePeriodSeconds: 2
%[3]s      containers:
      - name: app
        image: localhost/bosun-hello:v1
        env:
        - {name: PORT, value: "8080"}
        ports:
        - {name: http, containerPort: 8080}
        resources:
          requests: {cpu: 10m, memory: 16Mi}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
`, name, replicas, specFields)
}

// placed waits until the pods named prefix* are want ready and pending
// (unbound), and returns the ready ones by node and the pending ones'
// scheduling messages.
func (s *stack) placed(prefix string, ready, pending int, timeout time.Duration) (map[string][]string, []string) {
	s.t.Helper()
	var byNode map[string][]string
	var reasons []string
	s.waitFor(fmt.Sprintf("%d ready and %d pending %s pods", ready, pending, prefix), timeout, func() error {
		byNode, reasons = map[string][]string{}, nil
		all := withPrefix(s.pods(), prefix)
		r := readyPods(all, prefix)
		for _, p := range r {
			byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p.Name)
		}
		for _, p := range all {
			if p.Spec.NodeName != "" {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
					reasons = append(reasons, c.Message)
				}
			}
		}
		if len(r) != ready || len(reasons) != pending || len(all) != ready+pending {
			return fmt.Errorf("%d pods, %d ready, pending: %q", len(all), len(r), reasons)
		}
		return nil
	})
	return byNode, reasons
}

// TestPlacement runs the scheduler's rules on three real nodes: the
// server's own (e2e-node), node-b tainted dedicated=db:NoSchedule, and
// node-c, which takes 2 pods at most and later gets a NoExecute taint.
func TestPlacement(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("README.md", "placement\n")
	repo.commit("empty")
	s := startStack(t, repo)
	newNodeAgent(t, s, "node-b", "--taints", "dedicated=db:NoSchedule")
	c := newNodeAgent(t, s, "node-c", "--max-pods", "2")
	s.waitFor("three nodes", 60*time.Second, func() error {
		var list struct{ Items []corev1.Node }
		if err := s.getJSON("/api/v1/nodes", &list); err != nil || len(list.Items) != 3 {
			return fmt.Errorf("%d nodes, %v", len(list.Items), err)
		}
		for _, n := range list.Items {
			if n.Name == "node-b" && (len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != "dedicated") {
				return fmt.Errorf("node-b taints %v", n.Spec.Taints)
			}
			if n.Name == "node-c" && n.Status.Allocatable.Pods().Value() != 2 {
				return fmt.Errorf("node-c allocatable %v", n.Status.Allocatable)
			}
		}
		return nil
	})
	onNode := func(name string) string {
		return "      nodeSelector: {kubernetes.io/hostname: " + name + "}\n"
	}
	const tolerateDB = "      tolerations:\n      - {key: dedicated, operator: Equal, value: db, effect: NoSchedule}\n"

	t.Run("a tainted node takes only pods that tolerate its taint", func(t *testing.T) {
		repo.write("app.yaml", placementDeployment("web", 3, "")+"---\n"+
			placementDeployment("db", 1, tolerateDB+onNode("node-b"))+"---\n"+
			placementDeployment("stray", 1, onNode("node-b")))
		repo.commit("web anywhere, db and stray on node-b")
		byNode, _ := s.placed("web-", 3, 0, 90*time.Second)
		if len(byNode["node-b"]) != 0 {
			t.Errorf("web pods on the tainted node: %v", byNode)
		}
		if byNode, _ := s.placed("db-", 1, 0, 60*time.Second); len(byNode["node-b"]) != 1 {
			t.Errorf("db, which tolerates the taint, not on node-b: %v", byNode)
		}
		want := "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 2 node(s) didn't match node selector"
		if _, reasons := s.placed("stray-", 0, 1, 30*time.Second); reasons[0] != want {
			t.Errorf("stray pending for %q, want %q", reasons[0], want)
		}
	})

	t.Run("--max-pods limits a node", func(t *testing.T) {
		repo.write("app.yaml", placementDeployment("fill", 4, onNode("node-c")))
		repo.commit("four pods for node-c")
		byNode, reasons := s.placed("fill-", 2, 2, 90*time.Second)
		// Each node counts for the first filter it fails, in
		// kube-scheduler's order: taints before selectors before resources.
		want := "0/3 nodes are available: 1 Too many pods, 1 node(s) didn't match node selector, 1 node(s) had untolerated taint {dedicated: db}"
		if len(byNode["node-c"]) != 2 || reasons[0] != want || reasons[1] != want {
			t.Errorf("fill: ready %v, pending %q; want 2 on node-c and %q", byNode, reasons, want)
		}
	})

	t.Run("pod anti-affinity spreads 3 replicas over 3 nodes and leaves a fourth pending", func(t *testing.T) {
		repo.write("app.yaml", placementDeployment("spread", 4, `      tolerations:
      - {key: dedicated, operator: Exists}
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels: {app: spread}
`))
		repo.commit("one spread pod per node")
		byNode, reasons := s.placed("spread-", 3, 1, 90*time.Second)
		want := "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules"
		if len(byNode) != 3 || reasons[0] != want {
			t.Errorf("spread: ready %v, pending %q; want one per node and %q", byNode, reasons, want)
		}
		out, err := s.cli("status")
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("bosun status does not give the reason: %v\n%s", err, out)
		}
		out, err = s.cli("get", "pods", "-o", "wide")
		if err != nil || !strings.Contains(out, "Pending(Unschedulable)") {
			t.Errorf("bosun get pods -o wide shows no pending pod: %v\n%s", err, out)
		}
	})

	t.Run("a NoExecute taint evicts the pods that do not tolerate it", func(t *testing.T) {
		repo.write("app.yaml", placementDeployment("spread", 4, `      tolerations:
      - {key: dedicated, operator: Exists}
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels: {app: spread}
`)+"---\n"+placementDeployment("linger", 1, onNode("node-c")+`      tolerations:
      - {key: maint, operator: Exists, effect: NoExecute, tolerationSeconds: 5}
`))
		repo.commit("linger on node-c, tolerating maintenance for 5s")
		s.placed("spread-", 3, 1, 60*time.Second)
		byNode, _ := s.placed("linger-", 1, 0, 60*time.Second)
		lingerer := byNode["node-c"][0]
		var victim string
		for _, p := range readyPods(s.pods(), "spread-") {
			if p.Spec.NodeName == "node-c" {
				victim = p.Name
			}
		}

		c.stop()
		tainted := time.Now()
		c.start("--max-pods", "2", "--taints", "maint=now:NoExecute")
		s.waitFor("the spread pod on node-c evicted", 30*time.Second, func() error {
			for _, p := range s.pods() {
				if p.Name == victim {
					return fmt.Errorf("%s still there, on %s", victim, p.Spec.NodeName)
				}
			}
			return nil
		})
		evicted := time.Since(tainted)
		_, reasons := s.placed("spread-", 2, 2, 30*time.Second)
		want := "0/3 nodes are available: 1 node(s) had untolerated taint {maint: now}, 2 node(s) didn't match pod anti-affinity rules"
		if reasons[0] != want {
			t.Errorf("spread's replacement pending for %q, want %q", reasons[0], want)
		}
		s.waitFor("linger evicted after its tolerationSeconds", 30*time.Second, func() error {
			for _, p := range s.pods() {
				if p.Name == lingerer {
					return fmt.Errorf("%s still there", lingerer)
				}
			}
			return nil
		})
		lingered := time.Since(tainted)
		// The taint's TimeAdded has whole seconds: up to 1s before the agent
		// started.
		if lingered < 4*time.Second {
			t.Errorf("linger evicted %s after the taint, before its tolerationSeconds (5s)", lingered)
		}
		t.Logf("agent restarted with a NoExecute taint -> untolerating pod deleted: %s; pod tolerating it for 5s deleted: %s",
			evicted.Round(10*time.Millisecond), lingered.Round(10*time.Millisecond))
	})
}
