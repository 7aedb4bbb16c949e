package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/nodes/containerdtest"
)

// agentProc is a `bosun agent` process: a second node with its own
// containerd, bridge and subnet.
type agentProc struct {
	cmd        *exec.Cmd
	exited     chan struct{}
	proxyTable string // its Service proxy's nftables table
	stateDir   string
	log        lockedBuffer
}

func startAgent(t *testing.T, s *stack, name string) *agentProc {
	t.Helper()
	return startAgentWith(t, name, "--etcd-endpoints", "http://"+s.etcdAddr, "--node-ip", "127.0.0.1", "--listen", "127.0.0.1:0")
}

// startAgentWith starts a node with how it reaches the cluster given by
// args (--etcd-endpoints, or --server and --token), and where it serves
// logs.
func startAgentWith(t *testing.T, name string, args ...string) *agentProc {
	t.Helper()
	cidr, bridge := subnet(t)
	netnsDir := t.TempDir()
	t.Cleanup(func() { removePodNetwork(t, netnsDir, bridge) })
	address := containerdtest.Start(t)
	for _, v := range []string{"v1", "v2"} {
		if out, err := exec.Command(bosun(t), "image", "import", "--containerd-address", address, containerdtest.BuildHelloImage(t, v)).CombinedOutput(); err != nil {
			t.Fatalf("import: %v\n%s", err, out)
		}
	}
	a := &agentProc{exited: make(chan struct{}), proxyTable: bridge}
	removeProxyTable(t, a.proxyTable) // runs after the agent stops
	stateDir := t.TempDir()
	a.stateDir = stateDir
	t.Cleanup(func() { unmountUnder(t, stateDir) }) // after the agent stops
	a.cmd = exec.Command(bosun(t), append([]string{"agent",
		"--node-name", name,
		"--state-dir", stateDir, "--containerd-address", address,
		"--pod-cidr", cidr, "--bridge", bridge, "--netns-dir", netnsDir,
		"--proxy-table", a.proxyTable,
		"--restart-backoff", "200ms"}, args...)...)
	a.cmd.Stdout, a.cmd.Stderr = &a.log, &a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.cmd.Wait(); close(a.exited) }()
	t.Cleanup(func() {
		a.cmd.Process.Signal(syscall.SIGTERM)
		<-a.exited
		if t.Failed() {
			t.Logf("agent %s log:\n%s", name, a.log.String())
		}
	})
	return a
}

// TestTwoNodes: pods spread over a second node run by `bosun agent`; their
// logs are proxied through the server; when that node dies, its pods are
// replaced on the node that is left.
func TestTwoNodes(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("README.md", "nothing to run yet\n")
	repo.commit("empty")
	s := startStack(t, repo, "--node-grace-period", "2s")
	b := startAgent(t, s, "node-b")
	s.waitFor("two nodes", 30*time.Second, func() error {
		var list struct{ Items []corev1.Node }
		if err := s.getJSON("/api/v1/nodes", &list); err != nil || len(list.Items) != 2 {
			return fmt.Errorf("%d nodes, %v", len(list.Items), err)
		}
		return nil
	})
	repo.write("web/deployment.yaml", rolloutDeployment("localhost/bosun-hello:v1"))
	repo.write("web/service.yaml", webService)
	repo.commit("web on two nodes")
	waitAllOn(s, "localhost/bosun-hello:v1", "v1", 60*time.Second)

	perNode := map[string][]corev1.Pod{}
	for _, p := range readyPods(s.pods(), "web-") {
		perNode[p.Spec.NodeName] = append(perNode[p.Spec.NodeName], p)
	}
	if len(perNode["e2e-node"]) != 2 || len(perNode["node-b"]) != 2 {
		t.Fatalf("pods per node: e2e-node %d, node-b %d; want 2 and 2 (spread)", len(perNode["e2e-node"]), len(perNode["node-b"]))
	}

	t.Run("logs of a pod on another node", func(t *testing.T) {
		name := perNode["node-b"][0].Name
		out, err := s.cli("logs", name)
		if err != nil || !strings.Contains(out, "pod "+name+" listening") {
			t.Errorf("bosun logs %s: %v\n%s", name, err, out)
		}
	})

	t.Run("a dead node's pods are replaced on the live one", func(t *testing.T) {
		killed := time.Now()
		b.cmd.Process.Signal(syscall.SIGKILL)
		s.waitFor("every pod on e2e-node", 60*time.Second, func() error {
			all := withPrefix(s.pods(), "web-")
			ready := readyPods(all, "web-")
			if len(all) != 4 || len(ready) != 4 {
				return fmt.Errorf("%d pods, %d ready", len(all), len(ready))
			}
			for _, p := range ready {
				if p.Spec.NodeName != "e2e-node" {
					return fmt.Errorf("pod %s still on %s", p.Name, p.Spec.NodeName)
				}
			}
			return nil
		})
		t.Logf("node-b SIGKILLed -> its pods ready again on e2e-node: %v (lease TTL 10 s + grace 2 s)", time.Since(killed))
	})
}
