package e2e

// The multi-host harness: a test cluster whose every machine is a network
// namespace of its own.
//
//	        switch namespace (bosunmh<pid>c<n>sw)
//	   br0 (10.246.0.0/24)            br1 (10.246.1.0/24, segments: 2)
//	    |h0   |h1   |h2  ...  |r0       |hK ...   |r1
//	  eth0  eth0  eth0        router namespace: r0 10.246.0.1, r1 10.246.1.1
//	  host0 host1 host2 ...             hostK ...
//
// Each host is a network namespace (bosunmh<pid>c<n>h<i>) with one veth
// into a bridge of the switch namespace: one L2 segment per bridge. A
// router namespace (bosunmh<pid>c<n>rt) is every host's default gateway
// (10.246.<segment>.1); with clusterOpts.segments 2 the odd hosts sit on a
// second segment, reached only through the router (the VXLAN case: nodes
// that share no L2).
// Nothing is created in the test machine's own network namespace: no link,
// no address, no listener. The test process reaches a host by creating its
// sockets inside the host's namespace (mhHost.dial), and runs commands there
// with nsenter --net (only the network namespace: containerd, the agent and
// runc must share the machine's mount namespace, where the agent mounts the
// pods' network namespaces and volumes, which `ip netns exec` would hide in
// a mount namespace of its own).
//
// Server hosts run `bosun server --agent=false` on their own address (etcd
// with mutual TLS, API, DNS); node hosts run a containerd of their own and
// `bosun agent`, joined with the join token. Everything lives under
// /tmp/bosunmh/<pid>/c<n>; the namespaces carry the test binary's pid, and
// the first cluster of a test binary removes those of test binaries that are
// gone (their processes killed, their mounts undone), so that a run killed
// half-way never breaks the next.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	mdns "github.com/miekg/dns"
	"github.com/moby/sys/mountinfo"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"

	"bosun/kube"
	"bosun/nodes"
	"bosun/nodes/containerdtest"
)

// mhBase holds every multi-host cluster's files: mhBase/<pid>/c<n>.
const mhBase = "/tmp/bosunmh"

// The addresses of a cluster's hosts and pods; every cluster has namespaces
// of its own, so clusters of parallel tests reuse them.
const (
	mhClusterCIDR = "10.247.0.0/16"
	mhServiceCIDR = "10.246.128.0/20"
)

var (
	mhSeq       atomic.Int32
	mhSweepOnce sync.Once
)

// clusterOpts describe a test cluster.
type clusterOpts struct {
	servers int // server hosts (bosun server --agent=false); default 1
	agents  int // node hosts (containerd and bosun agent); default 3
	// backend is the pod network between nodes (host-gw, vxlan); "" leaves
	// the server's default.
	backend string
	// segments is the number of L2 segments (1 or 2); with 2, hosts
	// alternate between them and a router joins them.
	segments int
	// nodeGracePeriod is the servers' --node-grace-period; default 30 s.
	nodeGracePeriod time.Duration
	serverArgs      []string // more flags of every server
	agentArgs       []string // more flags of every agent
}

// mhCluster is a running test cluster.
type mhCluster struct {
	t       *testing.T
	opts    clusterOpts
	name    string // bosunmh<pid>c<n>: the prefix of its namespaces
	dir     string
	repo    *gitRepo
	sw      string // the switch namespace
	router  string // the router namespace, with two segments
	hosts   []*mhHost
	servers []*mhServer
	agents  []*mhAgent
	// images are the hello app's archives, imported into every containerd.
	images []string
}

// mhHost is one machine: a network namespace with one address.
type mhHost struct {
	name    string // h0, h1...
	ns      string
	ip      string
	segment int    // 0 or 1
	port    string // its veth's end in the switch namespace
	dir     string
	c       *mhCluster
}

// mhServer is a `bosun server --agent=false` on a host of its own.
type mhServer struct {
	*stack
	host *mhHost
}

// mhAgent is a node: a host with its own containerd and `bosun agent`.
type mhAgent struct {
	host       *mhHost
	node       string
	containerd *mhContainerd
	stateDir   string
	args       []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    *lockedBuffer
	logs   []*lockedBuffer // of earlier runs
}

// mhContainerd is a containerd daemon in a host's network namespace.
type mhContainerd struct {
	host    *mhHost
	dir     string
	address string
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
}

// newCluster starts a test cluster: hosts first, then in parallel the
// servers and every node host's containerd (with the test images), then the
// agents, joined with the first server's join token; it returns when every
// node is Ready. Everything is removed when the test ends, failed or not.
func newCluster(t *testing.T, repo *gitRepo, opts clusterOpts) *mhCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	if os.Geteuid() != 0 {
		t.Skip("multi-host tests need root")
	}
	if opts.servers == 0 {
		opts.servers = 1
	}
	if opts.agents == 0 {
		opts.agents = 3
	}
	if opts.segments == 0 {
		opts.segments = 1
	}
	if opts.nodeGracePeriod == 0 {
		opts.nodeGracePeriod = 30 * time.Second
	}
	mhSweepOnce.Do(func() { mhSweepStale(t) })
	began := time.Now()
	n := mhSeq.Add(1)
	c := &mhCluster{t: t, opts: opts, repo: repo,
		name: fmt.Sprintf("bosunmh%dc%d", os.Getpid(), n),
		dir:  filepath.Join(mhBase, strconv.Itoa(os.Getpid()), fmt.Sprintf("c%d", n)),
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	c.network()
	phases := []string{fmt.Sprintf("network %v", time.Since(began).Round(time.Millisecond))}
	phase := func(name string, since time.Time) {
		phases = append(phases, fmt.Sprintf("%s %v", name, time.Since(since).Round(time.Millisecond)))
	}

	// The binary and the images: built once per test binary.
	at := time.Now()
	bosun(t)
	for _, v := range []string{"v1", "v2"} {
		c.images = append(c.images, containerdtest.BuildHelloImage(t, v))
	}
	phase("builds", at)
	at = time.Now()
	// Every node host's containerd, in parallel with the servers.
	var wg sync.WaitGroup
	errs := make([]error, opts.agents)
	for i := range opts.agents {
		h := c.hosts[opts.servers+i]
		a := &mhAgent{host: h, node: "node-" + strconv.Itoa(i), stateDir: filepath.Join(h.dir, "state")}
		a.containerd = &mhContainerd{host: h, dir: filepath.Join(h.dir, "ctd")}
		c.agents = append(c.agents, a)
		wg.Go(func() {
			if errs[i] = a.containerd.start(); errs[i] == nil {
				errs[i] = a.containerd.importImages(c.images)
			}
		})
	}
	for i := range opts.servers {
		c.servers = append(c.servers, c.startServer(c.hosts[i], i))
	}
	phase("servers", at)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	phase("containerds and images", at)
	at = time.Now()
	for _, a := range c.agents {
		c.startAgent(a)
	}
	c.waitNodesReady(60 * time.Second)
	phase("agents Ready", at)
	t.Logf("cluster %s: %d servers, %d agents up in %v (%s)", c.name, opts.servers, opts.agents,
		time.Since(began).Round(time.Millisecond), strings.Join(phases, ", "))
	return c
}

// network creates the switch, the hosts and (with two segments) the router.
func (c *mhCluster) network() {
	t := c.t
	c.sw = c.name + "sw"
	mustRun(t, "ip", "netns", "add", c.sw)
	for s := range c.opts.segments {
		br := fmt.Sprintf("br%d", s)
		c.swRun("ip", "link", "add", br, "type", "bridge")
		c.swRun("ip", "link", "set", br, "up")
	}
	c.swRun("ip", "link", "set", "lo", "up")
	total := c.opts.servers + c.opts.agents
	for i := range total {
		h := &mhHost{c: c, name: fmt.Sprintf("h%d", i), ns: fmt.Sprintf("%sh%d", c.name, i), port: fmt.Sprintf("h%d", i),
			dir: filepath.Join(c.dir, fmt.Sprintf("h%d", i))}
		h.segment = i % c.opts.segments
		h.ip = fmt.Sprintf("10.246.%d.%d", h.segment, 10+i)
		if err := os.MkdirAll(h.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		mustRun(t, "ip", "netns", "add", h.ns)
		mustRun(t, "ip", "link", "add", "eth0", "netns", h.ns, "type", "veth", "peer", "name", h.port, "netns", c.sw)
		c.swRun("ip", "link", "set", h.port, "master", fmt.Sprintf("br%d", h.segment))
		c.swRun("ip", "link", "set", h.port, "up")
		h.mustRun("ip", "link", "set", "lo", "up")
		h.mustRun("ip", "addr", "add", h.ip+"/24", "dev", "eth0")
		h.mustRun("ip", "link", "set", "eth0", "up")
		// A default route, as every machine has: through the router.
		h.mustRun("ip", "route", "add", "default", "via", fmt.Sprintf("10.246.%d.1", h.segment))
		c.hosts = append(c.hosts, h)
	}
	{
		c.router = c.name + "rt"
		mustRun(t, "ip", "netns", "add", c.router)
		nsRun(t, c.router, "ip", "link", "set", "lo", "up")
		nsRun(t, c.router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
		for s := range c.opts.segments {
			mustRun(t, "ip", "link", "add", fmt.Sprintf("r%d", s), "netns", c.router, "type", "veth", "peer", "name", fmt.Sprintf("r%d", s), "netns", c.sw)
			c.swRun("ip", "link", "set", fmt.Sprintf("r%d", s), "master", fmt.Sprintf("br%d", s))
			c.swRun("ip", "link", "set", fmt.Sprintf("r%d", s), "up")
			nsRun(t, c.router, "ip", "addr", "add", fmt.Sprintf("10.246.%d.1/24", s), "dev", fmt.Sprintf("r%d", s))
			nsRun(t, c.router, "ip", "link", "set", fmt.Sprintf("r%d", s), "up")
		}
	}
}

// startServer starts server i on host h: its own etcd member, API and DNS
// on the host's address. Servers after the first join the first one's
// cluster (their etcd members join the first's).
func (c *mhCluster) startServer(h *mhHost, i int) *mhServer {
	t := c.t
	s := &mhServer{host: h, stack: &stack{t: t, repo: c.repo,
		dataDir: filepath.Join(h.dir, "data"), home: filepath.Join(h.dir, "home"),
		apiAddr: h.ip + ":7070", dnsAddr: h.ip + ":53", etcdAddr: h.ip + ":2379",
		proxyTable: "bosunmh", wrap: h.wrap(), dial: h.dial,
	}}
	s.args = []string{"server", "--agent=false",
		"--repo", c.repo.dir, "--poll", "300ms",
		"--data-dir", s.dataDir,
		"--etcd-listen", s.etcdAddr,
		"--api-listen", s.apiAddr,
		"--dns-listen", s.dnsAddr,
		"--proxy-table", s.proxyTable,
		"--service-cidr", mhServiceCIDR,
		"--node-grace-period", c.opts.nodeGracePeriod.String(),
		"--cluster-cidr", mhClusterCIDR,
		"--id", fmt.Sprintf("server-%d", i),
	}
	if c.opts.backend != "" {
		s.args = append(s.args, "--backend", c.opts.backend)
	}
	s.args = append(s.args, c.opts.serverArgs...)
	if i > 0 {
		// The others join the first's cluster: etcd members of one
		// cluster, through its API with the server token.
		first := c.servers[0]
		s.args = append(s.args, "--server", "https://"+first.apiAddr,
			"--token-file", filepath.Join(first.dataDir, "pki", "server-token"))
	}
	s.start()
	return s
}

// startAgent starts a node's agent, joined through the first server.
func (c *mhCluster) startAgent(a *mhAgent) {
	srv := c.servers[0]
	a.args = []string{"agent",
		"--node-name", a.node,
		"--server", "https://" + srv.apiAddr,
		"--token-file", filepath.Join(srv.dataDir, "pki", "join-token"),
		"--node-ip", a.host.ip,
		"--listen", a.host.ip + ":10250",
		"--state-dir", a.stateDir,
		"--containerd-address", a.containerd.address,
		"--bridge", "bosunmh0",
		"--netns-dir", filepath.Join(a.host.dir, "netns"),
		"--proxy-table", "bosunmh",
		"--restart-backoff", "200ms",
		"--max-restart-backoff", "1s",
	}
	a.args = append(a.args, c.opts.agentArgs...)
	if err := a.start(); err != nil {
		c.t.Fatal(err)
	}
}

// wrap is the command prefix that runs a program on the host: in its
// network namespace only (see the package comment above).
func (h *mhHost) wrap() []string { return []string{"nsenter", "--net=" + netnsPath(h.ns), "--"} }

func netnsPath(ns string) string { return filepath.Join("/run/netns", ns) }

// run runs a command on the host and returns its combined output.
func (h *mhHost) run(args ...string) (string, error) {
	argv := append(h.wrap(), args...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s on %s: %w: %s", strings.Join(args, " "), h.name, err, out)
	}
	return string(out), nil
}

func (h *mhHost) mustRun(args ...string) string {
	h.c.t.Helper()
	out, err := h.run(args...)
	if err != nil {
		h.c.t.Fatal(err)
	}
	return out
}

func (c *mhCluster) swRun(args ...string) { c.t.Helper(); nsRun(c.t, c.sw, args...) }

func nsRun(t testing.TB, ns string, args ...string) {
	t.Helper()
	mustRun(t, append([]string{"nsenter", "--net=" + netnsPath(ns), "--"}, args...)...)
}

func mustRun(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// do runs fn on an OS thread that is in the host's network namespace:
// sockets fn creates belong to the host and keep working afterwards.
func (h *mhHost) do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromPath(netnsPath(h.ns))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("host %s: %w", h.name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter host %s: %w", h.name, err)
	}
	defer func() {
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked, and dies with the goroutine
	}()
	return fn()
}

// dial connects from the host.
func (h *mhHost) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := h.do(func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// get GETs url from the host, with a short timeout.
func (h *mhHost) get(url string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: h.dial, DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s from %s: %s: %s", url, h.name, resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), err
}

// lookup asks the DNS server at addr (host:port) from the host.
func (h *mhHost) lookup(addr, name string, qtype uint16) (*mdns.Msg, error) {
	conn, err := h.dial(context.Background(), "udp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	c := &mdns.Client{Timeout: 2 * time.Second}
	r, _, err := c.ExchangeWithConn(m, &mdns.Conn{Conn: conn})
	return r, err
}

// podGet asks a pod, from its node's host, to GET url (the hello app's
// /fetch): what the pod reaches, through the pod's own network and
// resolver.
func (c *mhCluster) podGet(p corev1.Pod, url string) (string, error) {
	h := c.hostOfNode(p.Spec.NodeName)
	if h == nil {
		return "", fmt.Errorf("pod %s: no host for node %q", p.Name, p.Spec.NodeName)
	}
	return h.get("http://" + net.JoinHostPort(p.Status.PodIP, "8080") + "/fetch?url=" + queryEscape(url))
}

// podResolve asks a pod to resolve name with its resolv.conf (the hello
// app's /resolve) and returns the addresses, sorted.
func (c *mhCluster) podResolve(p corev1.Pod, name string) ([]string, error) {
	h := c.hostOfNode(p.Spec.NodeName)
	if h == nil {
		return nil, fmt.Errorf("pod %s: no host for node %q", p.Name, p.Spec.NodeName)
	}
	out, err := h.get("http://" + net.JoinHostPort(p.Status.PodIP, "8080") + "/resolve?name=" + queryEscape(name))
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

func queryEscape(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "?", "%3F", "#", "%23", " ", "%20", "=", "%3D")
	return r.Replace(s)
}

func (c *mhCluster) hostOfNode(node string) *mhHost {
	for _, a := range c.agents {
		if a.node == node {
			return a.host
		}
	}
	return nil
}

func (c *mhCluster) agent(node string) *mhAgent {
	for _, a := range c.agents {
		if a.node == node {
			return a
		}
	}
	c.t.Fatalf("no agent %q", node)
	return nil
}

// running says whether the server's process runs.
func (s *mhServer) running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// api is a server to ask: the first one that runs.
func (c *mhCluster) api() *mhServer {
	for _, s := range c.servers {
		if s.running() {
			return s
		}
	}
	c.t.Fatal("no server is running")
	return nil
}

// waitFor polls cond until it returns nil or the timeout passes.
func (c *mhCluster) waitFor(what string, timeout time.Duration, cond func() error) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
}

// nodes returns the nodes the API knows.
func (c *mhCluster) nodes() ([]corev1.Node, error) {
	var list struct{ Items []corev1.Node }
	err := c.api().getJSON("/api/v1/nodes", &list)
	return list.Items, err
}

// nodeReady says whether the node is registered and Ready.
func nodeReady(n corev1.Node) bool {
	for _, cd := range n.Status.Conditions {
		if cd.Type == corev1.NodeReady {
			return cd.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitNodesReady waits until every agent's node is Ready.
func (c *mhCluster) waitNodesReady(timeout time.Duration) {
	c.t.Helper()
	c.waitFor("every node Ready", timeout, func() error {
		for _, a := range c.agents {
			select {
			case <-a.exited:
				return fmt.Errorf("agent %s exited:\n%s", a.node, a.log.String())
			default:
			}
		}
		ns, err := c.nodes()
		if err != nil {
			return err
		}
		ready := map[string]bool{}
		for _, n := range ns {
			ready[n.Name] = nodeReady(n)
		}
		for _, a := range c.agents {
			if !ready[a.node] {
				return fmt.Errorf("node %s not Ready (nodes: %v)", a.node, ready)
			}
		}
		return nil
	})
}

// service returns the Service default/name.
func (c *mhCluster) service(name string) corev1.Service {
	c.t.Helper()
	var list struct{ Items []corev1.Service }
	if err := c.api().getJSON("/api/v1/services/"+name, &list); err != nil {
		c.t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Spec.ClusterIP == "" {
		c.t.Fatalf("service %s: %+v", name, list.Items)
	}
	return list.Items[0]
}

// pods returns the pods in the store, through the API.
func (c *mhCluster) pods() []corev1.Pod { return c.api().pods() }

// start starts the agent process.
func (a *mhAgent) start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.log != nil {
		a.logs = append(a.logs, a.log)
	}
	a.log = &lockedBuffer{}
	argv := append(a.host.wrap(), append([]string{bosunBin}, a.args...)...)
	a.cmd = exec.Command(argv[0], argv[1:]...)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	a.cmd.Env = append(os.Environ(), "HOME="+filepath.Join(a.host.dir, "home"))
	if err := a.cmd.Start(); err != nil {
		return fmt.Errorf("start agent %s: %w", a.node, err)
	}
	exited := make(chan struct{})
	a.exited = exited
	cmd := a.cmd
	go func() { cmd.Wait(); close(exited) }()
	return nil
}

// kill signals the agent and waits for it to exit.
func (a *mhAgent) kill(sig syscall.Signal) {
	a.mu.Lock()
	cmd, exited := a.cmd, a.exited
	a.mu.Unlock()
	signalAndWait(cmd, exited, sig, 30*time.Second)
}

// signalAndWait sends sig to a process started by the harness (nil: none)
// unless it has exited, and waits for it to exit; after grace it kills it.
func signalAndWait(cmd *exec.Cmd, exited <-chan struct{}, sig syscall.Signal, grace time.Duration) {
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-exited
	}
}

// restart SIGKILLs the agent and starts it again, with its state.
func (a *mhAgent) restart() error {
	a.kill(syscall.SIGKILL)
	return a.start()
}

// start runs containerd on the host, with its own root, state and socket
// (kept across restarts, as a machine's are).
func (d *mhContainerd) start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return err
	}
	d.address = filepath.Join(d.dir, "c.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(d.dir, "root"), filepath.Join(d.dir, "state"), d.address, d.address+".ttrpc")
	cfgPath := filepath.Join(d.dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(d.dir, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	argv := append(d.host.wrap(), "containerd", "--config", cfgPath)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	// Its own process group: a ^C on the test does not stop it before the
	// cleanup does.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start containerd on %s: %w", d.host.name, err)
	}
	exited := make(chan struct{})
	d.exited = exited
	cmd := d.cmd
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("unix", d.address); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(d.dir, "containerd.log"))
			return fmt.Errorf("containerd on %s exited early:\n%s", d.host.name, tail(string(log), 20))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd on %s: socket not ready after 15 s", d.host.name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (d *mhContainerd) importImages(archives []string) error {
	args := append([]string{"image", "import", "--containerd-address", d.address}, archives...)
	if out, err := exec.Command(bosunBin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("bosun image import on %s: %v\n%s", d.host.name, err, out)
	}
	return nil
}

// kill signals containerd and waits for it to exit; its shims, and so the
// containers, keep running (SIGKILL is a crash of the daemon only).
func (d *mhContainerd) kill(sig syscall.Signal) {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	signalAndWait(cmd, exited, sig, 15*time.Second)
}

// restart SIGKILLs containerd and starts it again on the same root.
func (d *mhContainerd) restart() error {
	d.kill(syscall.SIGKILL)
	return d.start()
}

// mhTask is a container of bosun's that has a running task.
type mhTask struct {
	node, id               string
	podNS, podName, podUID string
	container              string
}

// tasks lists the running tasks of bosun's containers in this containerd.
func (d *mhContainerd) tasks(ctx context.Context, node string) ([]mhTask, error) {
	c, err := client.New(d.address)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx = namespaces.WithNamespace(ctx, "bosun")
	ctrs, err := c.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("containerd of %s: %w", node, err)
	}
	var out []mhTask
	for _, ctr := range ctrs {
		l, err := ctr.Labels(ctx)
		if err != nil {
			continue // deleted meanwhile
		}
		task, err := ctr.Task(ctx, nil)
		if err != nil {
			continue // no task: a container that has exited
		}
		st, err := task.Status(ctx)
		if err != nil || st.Status != client.Running && st.Status != client.Paused && st.Status != client.Pausing {
			continue
		}
		out = append(out, mhTask{node: node, id: ctr.ID(), podNS: l[nodes.LabelPodNamespace], podName: l[nodes.LabelPodName],
			podUID: l[nodes.LabelPodUID], container: l[nodes.LabelContainer]})
	}
	return out, nil
}

// stopAll kills every task and deletes every container, so no shim
// outlives the test.
func (d *mhContainerd) stopAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(d.address)
	if err != nil {
		return
	}
	defer c.Close()
	nss, _ := c.NamespaceService().List(ctx)
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		ctrs, _ := c.Containers(nctx)
		for _, ctr := range ctrs {
			if task, err := ctr.Task(nctx, nil); err == nil {
				_, _ = task.Delete(nctx, client.WithProcessKill)
			}
			_ = ctr.Delete(nctx, client.WithSnapshotCleanup)
		}
	}
}

// cli runs the bosun CLI against this server from the server's host (its
// address is reachable only from the cluster's network namespaces).
func (s *mhServer) cli(args ...string) (string, error) {
	out, err := s.cliCmd(args...).CombinedOutput()
	return string(out), err
}

// cliCmd is the stack's CLI command, run on the server's host.
func (s *mhServer) cliCmd(args ...string) *exec.Cmd {
	cmd := s.stack.cliCmd(args...)
	argv := append(s.host.wrap(), cmd.Args...)
	wrapped := exec.Command(argv[0], argv[1:]...)
	wrapped.Env = cmd.Env
	return wrapped
}

// restart SIGKILLs the server and starts it again on its data.
func (s *mhServer) restart() {
	s.stop(syscall.SIGKILL)
	s.start()
}

// taskIDs lists the ids of the containers running on every node, sorted.
func (c *mhCluster) taskIDs() []string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []string
	for _, a := range c.agents {
		ts, err := a.containerd.tasks(ctx, a.node)
		if err != nil {
			c.t.Fatal(err)
		}
		for _, tk := range ts {
			out = append(out, a.node+"/"+tk.id)
		}
	}
	sort.Strings(out)
	return out
}

// partition cuts the host off the network, as a pulled cable does: its
// port on the switch goes down (its own link, routes and addresses stay).
func (h *mhHost) partition() { h.c.swRun("ip", "link", "set", h.port, "down") }

// heal plugs the cable back in.
func (h *mhHost) heal() { h.c.swRun("ip", "link", "set", h.port, "up") }

// close stops and removes everything the cluster made, in order: agents,
// servers, the containers, containerd, whatever process is left in the
// cluster's namespaces, mounts, files, namespaces.
func (c *mhCluster) close() {
	t := c.t
	var wg sync.WaitGroup
	for _, a := range c.agents {
		wg.Go(func() { a.kill(syscall.SIGTERM) })
	}
	wg.Wait()
	for _, s := range c.servers {
		wg.Go(func() { s.stop(syscall.SIGTERM) })
	}
	wg.Wait()
	if t.Failed() {
		for _, s := range c.servers {
			if s.log != nil {
				t.Logf("server on %s, log (tail):\n%s", s.host.name, s.logTail(60))
			}
		}
		for _, a := range c.agents {
			if a.log != nil {
				t.Logf("agent %s, log (tail):\n%s", a.node, tail(a.log.String(), 60))
			}
		}
	}
	for _, a := range c.agents {
		if a.containerd.cmd == nil {
			continue
		}
		wg.Go(func() {
			a.containerd.stopAll()
			a.containerd.kill(syscall.SIGTERM)
		})
	}
	wg.Wait()
	var names []string
	for _, h := range c.hosts {
		names = append(names, h.ns)
	}
	names = append(names, c.sw)
	if c.router != "" {
		names = append(names, c.router)
	}
	if err := mhRemove(names, c.dir); err != nil {
		t.Errorf("cleanup of cluster %s: %v", c.name, err)
	}
	os.Remove(filepath.Dir(c.dir)) // the test binary's directory, once its last cluster is gone
}

// mhRemove kills every process in the network namespaces named and in the
// network namespaces mounted under dir (pods'), then unmounts everything
// under dir, removes it and deletes the namespaces.
func mhRemove(netnsNames []string, dir string) error {
	inodes := map[uint64]bool{}
	for _, n := range netnsNames {
		var st syscall.Stat_t
		if syscall.Stat(netnsPath(n), &st) == nil {
			inodes[st.Ino] = true
		}
	}
	ms, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	for _, m := range ms {
		var st syscall.Stat_t
		if m.FSType == "nsfs" && syscall.Stat(m.Mountpoint, &st) == nil {
			inodes[st.Ino] = true
		}
	}
	for range 3 {
		if killIn(inodes) == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	var errs []error
	ms, _ = mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	sort.Slice(ms, func(i, j int) bool { return len(ms[i].Mountpoint) > len(ms[j].Mountpoint) })
	for _, m := range ms {
		if err := syscall.Unmount(m.Mountpoint, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.Mountpoint, err))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	for _, n := range netnsNames {
		if out, err := exec.Command("ip", "netns", "del", n).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such file") {
			errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", n, err, out))
		}
	}
	return errors.Join(errs...)
}

// killIn SIGKILLs the processes whose network namespace is one of inodes,
// and returns how many it found.
func killIn(inodes map[uint64]bool) int {
	if len(inodes) == 0 {
		return 0
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
	n := 0
	for _, p := range procs {
		var st syscall.Stat_t
		if syscall.Stat(p, &st) != nil || !inodes[st.Ino] {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		if err != nil || pid == os.Getpid() {
			continue
		}
		syscall.Kill(pid, syscall.SIGKILL)
		n++
	}
	return n
}

// mhSweepStale removes what test binaries that are gone left behind: their
// namespaces (named bosunmh<pid>...) and their files under mhBase/<pid>.
// Namespaces with this binary's pid are stale too: none is made yet.
func mhSweepStale(t testing.TB) {
	alive := func(pid int) bool {
		if pid == os.Getpid() {
			return false
		}
		return syscall.Kill(pid, 0) == nil
	}
	byPid := map[int][]string{}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "bosunmh")
		if !ok {
			continue
		}
		digits := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if digits <= 0 {
			continue
		}
		pid, _ := strconv.Atoi(rest[:digits])
		byPid[pid] = append(byPid[pid], e.Name())
	}
	dirs, _ := os.ReadDir(mhBase)
	for _, d := range dirs {
		if pid, err := strconv.Atoi(d.Name()); err == nil {
			if _, ok := byPid[pid]; !ok {
				byPid[pid] = nil
			}
		}
	}
	for pid, names := range byPid {
		if alive(pid) {
			continue
		}
		if err := mhRemove(names, filepath.Join(mhBase, strconv.Itoa(pid))); err != nil {
			t.Logf("removing what test binary %d left: %v", pid, err)
		} else {
			t.Logf("removed what test binary %d left: %d namespaces", pid, len(names))
		}
	}
}

// The invariant every scenario ends with.

// checkInvariant checks, once the cluster has settled (it retries for up to
// timeout): each Deployment has exactly its replicas, Running and Ready;
// each pod's containers run exactly once, on the pod's node, and nothing
// else runs (counted through every node's containerd); DNS answers, on every
// node, exactly the ready pods' addresses for each headless Service and the
// virtual IP for the others; and each Service's virtual IP, from every node,
// reaches only its ready pods.
func (c *mhCluster) checkInvariant(timeout time.Duration) {
	c.t.Helper()
	c.waitFor("the cluster invariant", timeout, c.invariant)
}

func (c *mhCluster) invariant() error {
	var deps struct{ Items []mhDeployment }
	if err := c.api().getJSON("/api/v1/deployments", &deps); err != nil {
		return err
	}
	var svcs struct{ Items []corev1.Service }
	if err := c.api().getJSON("/api/v1/services", &svcs); err != nil {
		return err
	}
	pods := c.pods()
	byName := map[string]corev1.Pod{}
	for _, p := range pods {
		byName[p.Namespace+"/"+p.Name] = p
	}
	// Deployments: exactly their replicas, every one Ready.
	for _, d := range deps.Items {
		var mine, ready []corev1.Pod
		for _, p := range pods {
			if p.Namespace == d.Namespace && ownedBy(p, d.Name) && p.DeletionTimestamp == nil {
				mine = append(mine, p)
				if p.Status.Phase == corev1.PodRunning && kube.PodReady(&p) && p.Status.PodIP != "" {
					ready = append(ready, p)
				}
			}
		}
		want := 1
		if d.Spec.Replicas != nil {
			want = int(*d.Spec.Replicas)
		}
		if len(mine) != want || len(ready) != want {
			return fmt.Errorf("deployment %s/%s: %d pods, %d ready; want %d", d.Namespace, d.Name, len(mine), len(ready), want)
		}
	}
	// Containers: one running set per pod, on its node, no orphan.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	running := map[string]map[string][]mhTask{} // pod uid -> container -> tasks
	for _, a := range c.agents {
		ts, err := a.containerd.tasks(ctx, a.node)
		if err != nil {
			return err
		}
		for _, tk := range ts {
			key := tk.container
			if running[tk.podUID] == nil {
				running[tk.podUID] = map[string][]mhTask{}
			}
			running[tk.podUID][key] = append(running[tk.podUID][key], tk)
		}
	}
	live := map[string]corev1.Pod{}
	onNode := map[string]int{}
	for _, p := range pods {
		if p.Status.Phase == corev1.PodRunning {
			live[string(p.UID)] = p
			onNode[p.Spec.NodeName]++
		}
	}
	for uid, byCtr := range running {
		p, ok := live[uid]
		if !ok {
			for _, ts := range byCtr {
				return fmt.Errorf("orphan container %s (pod %s/%s uid %s) runs on %s", ts[0].id, ts[0].podNS, ts[0].podName, uid, ts[0].node)
			}
		}
		for ctr, ts := range byCtr {
			if len(ts) != 1 {
				return fmt.Errorf("pod %s container %s runs %d times: %v", p.Name, ctr, len(ts), ts)
			}
			if ts[0].node != p.Spec.NodeName {
				return fmt.Errorf("pod %s (bound to %s) runs container %s on %s", p.Name, p.Spec.NodeName, ctr, ts[0].node)
			}
		}
	}
	for uid, p := range live {
		for _, ctr := range p.Spec.Containers {
			if len(running[uid][ctr.Name]) != 1 {
				return fmt.Errorf("running pod %s: container %s has %d running tasks", p.Name, ctr.Name, len(running[uid][ctr.Name]))
			}
		}
	}
	// Services: DNS on every node, and the virtual IP from every node.
	for _, svc := range svcs.Items {
		if len(svc.Spec.Selector) == 0 || len(svc.Spec.Ports) == 0 {
			continue
		}
		var readyIPs []string
		readyNames := map[string]bool{}
		for _, p := range pods {
			if p.Namespace == svc.Namespace && selects(svc.Spec.Selector, p.Labels) &&
				p.Status.Phase == corev1.PodRunning && kube.PodReady(&p) && p.Status.PodIP != "" && p.DeletionTimestamp == nil {
				readyIPs = append(readyIPs, p.Status.PodIP)
				readyNames[p.Name] = true
			}
		}
		sort.Strings(readyIPs)
		want := readyIPs
		headless := svc.Spec.ClusterIP == corev1.ClusterIPNone
		if !headless {
			want = []string{svc.Spec.ClusterIP}
		}
		fqdn := svc.Name + "." + svc.Namespace + ".svc.cluster.local"
		// The DNS of every node that runs pods (at their nameserver: the
		// pod network's gateway, which exists from the node's first pod
		// on), and of every server.
		type resolver struct {
			name string
			host *mhHost
			addr string
		}
		var resolvers []resolver
		for _, a := range c.agents {
			if onNode[a.node] == 0 {
				continue
			}
			addr, err := a.dnsAddr()
			if err != nil {
				return err
			}
			resolvers = append(resolvers, resolver{"node " + a.node, a.host, addr})
		}
		for _, s := range c.servers {
			if s.running() {
				resolvers = append(resolvers, resolver{"server on " + s.host.name, s.host, s.dnsAddr})
			}
		}
		for _, r := range resolvers {
			m, err := r.host.lookup(r.addr, fqdn, mdns.TypeA)
			if err != nil {
				return fmt.Errorf("DNS of %s (%s): %s: %w", r.name, r.addr, fqdn, err)
			}
			if got := aRecords(m); !slices.Equal(got, want) {
				return fmt.Errorf("DNS of %s: %s = %v, want %v", r.name, fqdn, got, want)
			}
		}
		if headless {
			continue
		}
		port := svc.Spec.Ports[0].Port
		for _, a := range c.agents {
			seen := map[string]bool{}
			for range 3 * len(readyIPs) {
				out, err := a.host.get(fmt.Sprintf("http://%s/", net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(port)))))
				if err != nil {
					return fmt.Errorf("service %s VIP from node %s: %w", svc.Name, a.node, err)
				}
				pod := helloPod(out)
				if !readyNames[pod] {
					return fmt.Errorf("service %s VIP from node %s reached %q, not a ready pod of it: %q", svc.Name, a.node, pod, out)
				}
				seen[pod] = true
			}
		}
	}
	return nil
}

// dnsAddr is where the node's pods send their DNS queries: the nameserver
// of their resolv.conf (the node's pod gateway), port 53.
func (a *mhAgent) dnsAddr() (string, error) {
	b, err := os.ReadFile(filepath.Join(a.stateDir, "cni", "10-bosunmh0.conflist"))
	if err != nil {
		return "", fmt.Errorf("node %s: its pod network: %w", a.node, err)
	}
	var conf struct {
		Plugins []struct {
			IPAM struct {
				Ranges [][]struct{ Gateway string }
			}
		}
	}
	if err := json.Unmarshal(b, &conf); err != nil || len(conf.Plugins) == 0 || len(conf.Plugins[0].IPAM.Ranges) == 0 || len(conf.Plugins[0].IPAM.Ranges[0]) == 0 {
		return "", fmt.Errorf("node %s: its pod network's gateway: %v", a.node, err)
	}
	return net.JoinHostPort(conf.Plugins[0].IPAM.Ranges[0][0].Gateway, "53"), nil
}

// helloPod is the pod name in the hello app's answer to /.
func helloPod(out string) string {
	rest, ok := strings.CutPrefix(strings.TrimSpace(out), "hello from ")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, " ")
	return name
}

// mhDeployment is what the invariant reads of a Deployment.
type mhDeployment struct {
	Name, Namespace string
	Spec            struct{ Replicas *int32 }
}

func (d *mhDeployment) UnmarshalJSON(b []byte) error {
	var v struct {
		Metadata struct{ Name, Namespace string }
		Spec     struct{ Replicas *int32 }
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	d.Name, d.Namespace, d.Spec.Replicas = v.Metadata.Name, v.Metadata.Namespace, v.Spec.Replicas
	if d.Namespace == "" {
		d.Namespace = "default"
	}
	return nil
}

func ownedBy(p corev1.Pod, deployment string) bool {
	for _, o := range p.OwnerReferences {
		if o.Kind == "Deployment" && o.Name == deployment {
			return true
		}
	}
	return false
}

func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}
