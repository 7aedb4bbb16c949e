package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"

	"bosun/nodes/containerdtest"
)

// Pod networking across hosts (issue 11, parts 1 and 2). Every host is a
// network namespace the test creates (bosunpn<pid>-<role>), joined by a
// router namespace: segment 0 holds the server and the test machine's end
// of a veth (the harness reaches the API there), and nodes sit on segments
// 1 and 2. Addresses are 10.241.<5k+segment>.0/24, k from the test's pid;
// pod subnets come from the cluster CIDR 10.242.0.0/16.

// pnNet is the test's hosts.
type pnNet struct {
	t      *testing.T
	k      int
	router string
	names  []string
}

func newPNNet(t *testing.T) *pnNet {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	n := &pnNet{t: t, k: os.Getpid() % 50}
	n.router = n.netns("r")
	n.ip(n.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	for s := range 3 {
		br := fmt.Sprintf("seg%d", s)
		n.ip(n.router, "ip", "link", "add", br, "type", "bridge")
		n.ip(n.router, "ip", "addr", "add", n.addr(s, 1)+"/24", "dev", br)
		n.ip(n.router, "ip", "link", "set", br, "up")
	}
	// The test machine's end, on segment 0.
	root := fmt.Sprintf("bosunpn%d", n.k)
	exec.Command("ip", "link", "del", root).Run() // a leftover of a killed run
	pnRun(t, "ip", "link", "add", root, "type", "veth", "peer", "name", "up0", "netns", n.router)
	t.Cleanup(func() { exec.Command("ip", "link", "del", root).Run() })
	pnRun(t, "ip", "addr", "add", n.addr(0, 254)+"/24", "dev", root)
	pnRun(t, "ip", "link", "set", root, "up")
	n.ip(n.router, "ip", "link", "set", "up0", "master", "seg0")
	n.ip(n.router, "ip", "link", "set", "up0", "up")
	return n
}

func (n *pnNet) addr(seg, host int) string { return fmt.Sprintf("10.241.%d.%d", 5*n.k+seg, host) }

func pnRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (n *pnNet) netns(role string) string {
	name := fmt.Sprintf("bosunpn%d-%s", os.Getpid()%100000, role)
	exec.Command("ip", "netns", "del", name).Run()
	pnRun(n.t, "ip", "netns", "add", name)
	n.t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	pnRun(n.t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

func (n *pnNet) ip(ns string, args ...string) {
	n.t.Helper()
	pnRun(n.t, append([]string{"nsenter", "--net=/run/netns/" + ns}, args...)...)
}

// host creates a host namespace on segment seg with address .host.
func (n *pnNet) host(role string, seg, host int) (ns, addr string) {
	ns, addr = n.netns(role), n.addr(seg, host)
	peer := "v" + role // "a" alone would read as a keyword of ip link
	pnRun(n.t, "ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", peer, "netns", n.router)
	n.ip(ns, "ip", "addr", "add", addr+"/24", "dev", "eth0")
	n.ip(ns, "ip", "link", "set", "eth0", "up")
	n.ip(ns, "ip", "route", "add", "default", "via", n.addr(seg, 1))
	n.ip(n.router, "ip", "link", "set", peer, "master", fmt.Sprintf("seg%d", seg))
	n.ip(n.router, "ip", "link", "set", peer, "up")
	return ns, addr
}

// server runs bosun server (no agent) in its own namespace on segment 0.
func (n *pnNet) server(repo *gitRepo, extra ...string) *stack {
	ns, addr := n.host("srv", 0, 2)
	s := &stack{t: n.t, dataDir: n.t.TempDir(), repo: repo, wrap: []string{"nsenter", "--net=/run/netns/" + ns},
		apiAddr: addr + ":7070", dnsAddr: "127.0.0.1:5353", etcdAddr: addr + ":2379", proxyTable: "bosunpnt"}
	s.args = append([]string{"server", "--agent=false", "--insecure",
		"--repo", repo.dir, "--poll", "200ms", "--data-dir", s.dataDir,
		"--etcd-listen", s.etcdAddr, "--api-listen", s.apiAddr, "--dns-listen", s.dnsAddr,
		"--cluster-cidr", "10.242.0.0/16", "--node-grace-period", "1h", "--id", "e2e-podnet",
	}, extra...)
	s.run()
	return s
}

// pnAgent is `bosun agent` in a host namespace, with its own containerd.
type pnAgent struct {
	name, ns, ip string
	cmd          *exec.Cmd
	exited       chan struct{}
	log          lockedBuffer
}

// agent starts a node on a host namespace. It enters only the network
// namespace (nsenter, not ip netns exec, which also makes a mount
// namespace): containerd must see the pods' namespaces it mounts.
func (n *pnNet) agent(s *stack, name, ns, ip string, args ...string) *pnAgent {
	t := n.t
	address := containerdtest.Start(t)
	if out, err := exec.Command(bosun(t), "image", "import", "--containerd-address", address, containerdtest.BuildHelloImage(t, "v1")).CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	netnsDir, stateDir := t.TempDir(), t.TempDir()
	t.Cleanup(func() { unmountUnder(t, netnsDir); unmountUnder(t, stateDir) })
	a := &pnAgent{name: name, ns: ns, ip: ip, exited: make(chan struct{})}
	a.cmd = exec.Command("nsenter", append([]string{"--net=/run/netns/" + ns, bosun(t), "agent",
		"--etcd-endpoints", "http://" + s.etcdAddr, "--insecure", "--node-name", name, "--node-ip", ip,
		"--state-dir", stateDir, "--containerd-address", address, "--bridge", "bosunpn0",
		"--netns-dir", netnsDir, "--proxy=false", "--restart-backoff", "200ms"}, args...)...)
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

// inNetns runs f on a thread in the named namespace (thrown away after).
func inNetns(name string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(name)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// fetchVia asks the pod at podIP (reached from its host namespace ns) to
// GET url from inside the pod. The connection is made on the thread in
// ns (an http.Client would dial from another goroutine, elsewhere).
func fetchVia(ns, podIP, url string) (string, error) {
	var conn net.Conn
	if err := inNetns(ns, func() (err error) {
		conn, err = net.DialTimeout("tcp4", podIP+":8080", 5*time.Second)
		return err
	}); err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req, err := http.NewRequest("GET", "http://"+podIP+":8080/fetch?url="+url, nil)
	if err != nil {
		return "", err
	}
	if err := req.Write(conn); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: %s", resp.Status, b)
	}
	return string(b), nil
}

func pinnedPod(name, node string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
spec:
  nodeSelector:
    kubernetes.io/hostname: %s
  containers:
  - name: app
    image: localhost/bosun-hello:v1
    env:
    - name: POD_NAME
      value: %s
`, name, node, name)
}

func nodeList(s *stack) map[string]corev1.Node {
	var list struct{ Items []corev1.Node }
	s.getJSON("/api/v1/nodes", &list)
	out := map[string]corev1.Node{}
	for _, n := range list.Items {
		out[n.Name] = n
	}
	return out
}

// TestPodNetwork_acrossHosts: two hosts, each with its own containerd and
// agent, get pod subnets from the cluster CIDR; a pod on each reaches the
// other by IP, on one segment with host-gw and across a router with
// vxlan; `bosun node delete` frees a subnet and every route to it goes;
// an agent asking for a subnet another node holds is refused before it
// changes anything, naming that node.
func TestPodNetwork_acrossHosts(t *testing.T) {
	for _, tc := range []struct {
		backend  string
		segments [2]int
	}{{"host-gw", [2]int{1, 1}}, {"vxlan", [2]int{1, 2}}} {
		t.Run(tc.backend, func(t *testing.T) {
			n := newPNNet(t)
			repo := newGitRepo(t)
			repo.write("README.md", "pods pinned to nodes\n")
			repo.write("pods.yaml", pinnedPod("pa", "node-a")+"---\n"+pinnedPod("pb", "node-b"))
			repo.commit("two pods")
			s := n.server(repo, "--backend", tc.backend)
			nsA, ipA := n.host("a", tc.segments[0], 11)
			nsB, ipB := n.host("b", tc.segments[1], 12)
			n.agent(s, "node-a", nsA, ipA)
			b := n.agent(s, "node-b", nsB, ipB)

			var pa, pb corev1.Pod
			s.waitFor("both pods ready, one per node", 90*time.Second, func() error {
				ready := readyPods(s.pods(), "p")
				if len(ready) != 2 {
					return fmt.Errorf("%d ready", len(ready))
				}
				for _, p := range ready {
					switch p.Name {
					case "pa":
						pa = p
					case "pb":
						pb = p
					}
				}
				return nil
			})
			nodes := nodeList(s)
			for _, name := range []string{"node-a", "node-b"} {
				if c := nodes[name].Spec.PodCIDR; !strings.HasPrefix(c, "10.242.") || !strings.HasSuffix(c, "/24") {
					t.Errorf("%s: pod CIDR %q, want a /24 of 10.242.0.0/16", name, c)
				}
			}
			if nodes["node-a"].Spec.PodCIDR == nodes["node-b"].Spec.PodCIDR {
				t.Errorf("both nodes have %s", nodes["node-a"].Spec.PodCIDR)
			}
			out, err := s.cli("get", "nodes")
			if err != nil || !strings.Contains(out, "POD-CIDR") || !strings.Contains(out, nodes["node-a"].Spec.PodCIDR) {
				t.Errorf("bosun get nodes: %v\n%s", err, out)
			}
			start := time.Now()
			for _, c := range []struct{ ns, from, to, want string }{
				{nsA, pa.Status.PodIP, pb.Status.PodIP, "hello from pb"},
				{nsB, pb.Status.PodIP, pa.Status.PodIP, "hello from pa"},
			} {
				s.waitFor("pod "+c.from+" -> pod "+c.to, 20*time.Second, func() error {
					body, err := fetchVia(c.ns, c.from, "http://"+c.to+":8080/")
					if err != nil || !strings.Contains(body, c.want) {
						return fmt.Errorf("%q %v", body, err)
					}
					return nil
				})
			}
			t.Logf("%s: pods on two hosts reach each other (%s)", tc.backend, time.Since(start).Round(time.Millisecond))

			t.Run("an overlapping --pod-cidr is refused", func(t *testing.T) {
				nsC, ipC := n.host("c", tc.segments[0], 13)
				c := n.agent(s, "node-c", nsC, ipC, "--pod-cidr", nodes["node-a"].Spec.PodCIDR)
				select {
				case <-c.exited:
				case <-time.After(30 * time.Second):
					t.Fatal("the agent asking for node-a's subnet did not exit")
				}
				if code := c.cmd.ProcessState.ExitCode(); code == 0 {
					t.Errorf("exit code 0")
				}
				if log := c.log.String(); !strings.Contains(log, "overlaps the pod subnet of node node-a") {
					t.Errorf("the refusal does not name node-a:\n%s", log)
				}
				if out, _ := exec.Command("nsenter", "--net=/run/netns/"+nsC, "ip", "link", "show", "bosunpn0").CombinedOutput(); !strings.Contains(string(out), "does not exist") {
					t.Errorf("the refused agent made a bridge: %s", out)
				}
			})

			t.Run("node delete frees the subnet and the route goes", func(t *testing.T) {
				cidrB := nodes["node-b"].Spec.PodCIDR
				if out, err := s.cli("node", "delete", "node-b"); err == nil || !strings.Contains(out, "registered and Ready") {
					t.Errorf("deleting a Ready node without --force: %v\n%s", err, out)
				}
				b.cmd.Process.Signal(syscall.SIGTERM)
				<-b.exited
				out, err := s.cli("node", "delete", "node-b")
				if err != nil || !strings.Contains(out, "pod subnet "+cidrB+" freed") {
					t.Fatalf("bosun node delete node-b: %v\n%s", err, out)
				}
				s.waitFor("node-a's route to node-b's pods gone", 20*time.Second, func() error {
					out, _ := exec.Command("nsenter", "--net=/run/netns/"+nsA, "ip", "route", "show", "proto", "98").CombinedOutput()
					if strings.Contains(string(out), strings.TrimSuffix(cidrB, "/24")) {
						return fmt.Errorf("routes:\n%s", out)
					}
					return nil
				})
				// pb is replaced at once, not after the hour of grace; it
				// stays pending (only node-a is left, and it is pinned).
				s.waitFor("pb off node-b", 20*time.Second, func() error {
					for _, p := range s.pods() {
						if p.Name == "pb" && p.Spec.NodeName == "node-b" {
							return fmt.Errorf("pb still bound to node-b")
						}
					}
					return nil
				})
			})
		})
	}
}

// TestPodNetwork_singleMachineWithoutPodCIDR: `bosun server` on one
// machine without --pod-cidr (the default, as `make demo` runs it): its
// own agent waits for the leader, gets the first /24 of the cluster CIDR,
// runs pods in it and publishes it, and the pods' nameserver (the
// subnet's gateway) answers.
func TestPodNetwork_singleMachineWithoutPodCIDR(t *testing.T) {
	t.Parallel()
	cidr, bridge := subnet(t) // a /24 and a bridge of this test's own
	netnsDir := t.TempDir()
	t.Cleanup(func() { removePodNetwork(t, netnsDir, bridge) })
	repo := newGitRepo(t)
	repo.write("web/deployment.yaml", rolloutDeployment("localhost/bosun-hello:v1"))
	repo.write("web/service.yaml", webService)
	repo.commit("web")
	s := startStack(t, repo, "--pod-cidr", "", "--cluster-cidr", cidr, "--node-cidr-mask-size", "24",
		"--bridge", bridge, "--netns-dir", netnsDir)
	waitAllOn(s, "localhost/bosun-hello:v1", "v1", 90*time.Second)
	if c := nodeList(s)["e2e-node"].Spec.PodCIDR; c != cidr {
		t.Errorf("e2e-node's pod CIDR %q, want %s (the cluster CIDR's first /24)", c, cidr)
	}
	pods := readyPods(s.pods(), "web-")
	prefix := netip.MustParsePrefix(cidr)
	for _, p := range pods {
		if !prefix.Contains(netip.MustParseAddr(p.Status.PodIP)) {
			t.Errorf("pod %s has %s, outside %s", p.Name, p.Status.PodIP, cidr)
		}
	}
	s.waitFor("the pods' nameserver to answer", 20*time.Second, func() error {
		body, err := httpGet("http://" + pods[0].Status.PodIP + ":8080/resolve?name=web")
		if err != nil || !strings.Contains(body, ".") {
			return fmt.Errorf("%q %v", body, err)
		}
		return nil
	})
}
