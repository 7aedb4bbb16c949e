package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/moby/sys/mountinfo"
	corev1 "k8s.io/api/core/v1"

	"bosun/api"
	"bosun/kube"
	"bosun/nodes"
	"bosun/nodes/containerdtest"
	"bosun/podnet"
	"bosun/store"
)

var (
	buildOnce sync.Once
	bosunBin  string
	buildErr  error
)

// TestMain runs the tests and removes the bosun binary they built (a
// hundred megabytes a run, which used to pile up in the temporary
// directory of a machine that runs the suite often).
func TestMain(m *testing.M) {
	code := m.Run()
	if bosunBin != "" {
		os.RemoveAll(filepath.Dir(bosunBin))
	}
	os.Exit(code)
}

// bosun builds the bosun binary once per test run.
func bosun(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bosun-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		bosunBin = filepath.Join(dir, "bosun")
		cmd := exec.Command("go", "build", "-o", bosunBin, "bosun/cmd/bosun")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bosunBin
}

// freePort hands out a loopback address whose port is free, below the
// kernel's ephemeral range (32768 and up): tests run in parallel, and a
// port found free with ":0" sits in the range the kernel gives every
// outgoing connection and every ":0" listener of the other tests' processes,
// so it could be taken before the bosun process that is given it binds it.
// No port is handed out twice in one run.
func freePort(t testing.TB) string {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for range portRange {
		nextPort++
		if nextPort >= portBase+portRange {
			nextPort = portBase
		}
		addr := fmt.Sprintf("127.0.0.1:%d", nextPort)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", addr) // DNS listens on both
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return addr
	}
	t.Fatalf("no free port in %d-%d", portBase, portBase+portRange-1)
	return ""
}

// The ports freePort hands out: a window below the ephemeral range, started
// at a place of its own per process so two test runs rarely meet.
const (
	portBase  = 20000
	portRange = 12000
)

var (
	portMu   sync.Mutex
	nextPort = portBase + os.Getpid()%portRange
)

// gitRepo is a Git repository on disk that the test commits to.
type gitRepo struct {
	t   testing.TB
	dir string
}

func newGitRepo(t testing.TB) *gitRepo {
	r := &gitRepo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", r.dir, "-c", "user.name=e2e", "-c", "user.email=e2e@bosun.test"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (r *gitRepo) write(path, content string) {
	r.t.Helper()
	full := filepath.Join(r.dir, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// commit commits everything and returns the commit hash.
func (r *gitRepo) commit(msg string) string {
	r.t.Helper()
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

// copyDir copies a directory of the project (an example) into the repo.
func (r *gitRepo) copyDir(src string) {
	r.t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		r.write(rel, string(b))
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
}

// stack is a running bosun server process with its own containerd.
type stack struct {
	t          testing.TB
	containerd string
	dataDir    string
	repo       *gitRepo
	apiAddr    string
	hookAddr   string // --webhook-listen, when the test sets it
	dnsAddr    string
	etcdAddr   string
	proxyTable string // the nftables table of its agent's Service proxy
	// serviceCIDR and nodePorts are the stack's own Service addresses and
	// node ports: every stack's VIPs are programmed in the host's one
	// network namespace.
	serviceCIDR, nodePorts string
	args                   []string
	// home is the HOME of the server and of the CLI run against it: the
	// server writes its generated admin token to home/.config/bosun/token,
	// the harness pins its certificate in home/.config/bosun/known_servers,
	// and the test machine's own ~/.config/bosun is never touched.
	home string
	// token, when set, is the API token the harness and the CLI use (a
	// test with --tokens-file sets it); "" reads the generated one.
	token string
	// The harness's clients of the API, made at first use and dropped at
	// every start (a restart may bring a new certificate); tests use them
	// from several goroutines.
	clientMu    sync.Mutex
	httpc, tlsc *http.Client
	// wrap runs bosun through a command, e.g. ip netns exec NS for a
	// server on a test host of its own (see testHost).
	wrap []string
	// dial, when set, makes the harness's connections to the API (a server
	// reachable only inside a network namespace: see mhHost.dial).
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	cmd    *exec.Cmd
	exited chan struct{}
	log    *bytes.Buffer
	logMu  *sync.Mutex
}

// subnet reserves a pod network for one node of a test: a /24 and a bridge
// name that nothing on the machine uses. It creates the bridge (empty and
// down; the CNI bridge plugin sets it up with the first pod), and that is the
// reservation: the plugin would create it only when the node's first pod
// starts, so until then the next call (another node of the same test, or a
// test binary of another checkout) would be handed the same bridge and /24,
// and nodes sharing a bridge and a /24 hand out the same pod addresses. The
// caller deletes the bridge (removePodNetwork).
//
// The search starts after the last subnet this run handed out, so a /24 a
// test has just released is not handed out again at once, and a /24 some
// socket is still bound in (a process a failed test left behind, holding
// the node's DNS address) is never handed out: every later test would
// find its DNS address taken.
func subnet(t testing.TB) (cidr, bridge string) {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, i := range ifaces {
		used[i.Name] = true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	inUse := func(p netip.Prefix) bool {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && p.Contains(ip.Unmap()) {
					return true
				}
			}
		}
		return false
	}
	bound := boundAddrs(t)
	subnetMu.Lock()
	defer subnetMu.Unlock()
	first := os.Getpid()%200 + subnetNext
	for n := first; n < first+200; n++ {
		b := fmt.Sprintf("bosune2e%d", n%200)
		p := netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", 90+n%200/4, n%200))
		if used[b] || inUse(p) || slices.ContainsFunc(bound, p.Contains) {
			continue
		}
		out, err := exec.Command("ip", "link", "add", b, "type", "bridge").CombinedOutput()
		if err == nil {
			subnetNext = n + 1 - os.Getpid()%200
			return p.String(), b
		}
		if !strings.Contains(string(out), "File exists") {
			t.Fatalf("create bridge %s: %v: %s", b, err, out)
		}
		// Taken since we listed the interfaces: try the next.
	}
	t.Fatal("no free test bridge name")
	return "", ""
}

var (
	subnetMu   sync.Mutex
	subnetNext int // where subnet's next search starts, past pid%200
)

// boundAddrs lists the IPv4 addresses sockets of this network namespace
// are bound to (TCP and UDP, listening or not), from /proc/net.
func boundAddrs(t testing.TB) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for _, f := range []string{"/proc/net/tcp", "/proc/net/udp"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 2 {
				continue
			}
			// local_address: the address as a little-endian hex word, ":port".
			hexIP, _, _ := strings.Cut(fields[1], ":")
			v, err := strconv.ParseUint(hexIP, 16, 32)
			if err != nil {
				continue
			}
			out = append(out, netip.AddrFrom4([4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}))
		}
	}
	return out
}

// removePodNetwork unmounts the network namespaces left in dir (the pods'
// processes are gone by now, so this frees their veths and addresses) and
// deletes the bridge.
func removePodNetwork(t testing.TB, dir, bridge string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if err := syscall.Unmount(path, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Logf("unmount %s: %v", path, err)
		}
		os.Remove(path)
	}
	if out, err := exec.Command("ip", "link", "del", bridge).CombinedOutput(); err != nil && !strings.Contains(string(out), "Cannot find device") {
		t.Logf("delete bridge %s: %v: %s", bridge, err, out)
	}
	exec.Command("nft", "delete", "table", "ip", podnet.TableName(bridge)).Run()    // the node's masquerade table, if it made one
	exec.Command("nft", "delete", "table", "ip", nodes.LocalnetTable(bridge)).Run() // the node's loopback guard
	// The pods' hostPort rules: their networks were never torn down (the
	// test kills the containers), and a rule left would capture its port
	// on the whole machine, another test's server included.
	if err := nodes.CleanupHostPorts(bridge); err != nil {
		t.Logf("host port rules of %s: %v", bridge, err)
	}
}

// unmountUnder unmounts whatever is mounted below dir.
func unmountUnder(t testing.TB, dir string) {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Logf("list mounts under %s: %v", dir, err)
		return
	}
	sort.Slice(ms, func(i, j int) bool { return len(ms[i].Mountpoint) > len(ms[j].Mountpoint) })
	for _, m := range ms {
		if err := syscall.Unmount(m.Mountpoint, syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", m.Mountpoint, err)
		}
	}
}

func startStack(t testing.TB, repo *gitRepo, extra ...string) *stack {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	bin := bosun(t)
	cidr, bridge := subnet(t)
	netnsDir := t.TempDir()
	// Registered before containerd's cleanup, so it runs after it: the
	// pods' network namespaces and the bridge go once the pods are dead.
	t.Cleanup(func() { removePodNetwork(t, netnsDir, bridge) })
	s := &stack{
		t:          t,
		containerd: containerdtest.Start(t),
		dataDir:    t.TempDir(),
		home:       t.TempDir(),
		repo:       repo,
		apiAddr:    freePort(t),
		dnsAddr:    freePort(t),
		etcdAddr:   freePort(t),
		proxyTable: bridge, // reserved with the bridge: no other stack has it
	}
	s.serviceCIDR, s.nodePorts = serviceRanges(bridge)
	removeProxyTable(t, s.proxyTable) // runs after bosun stops
	// Runs after bosun stops and before the data dir is removed: pods'
	// secret and memory volumes are tmpfs mounts that outlive the agent.
	t.Cleanup(func() { unmountUnder(t, s.dataDir) })
	for _, v := range []string{"v1", "v2"} {
		archive := containerdtest.BuildHelloImage(t, v)
		out, err := exec.Command(bin, "image", "import", "--containerd-address", s.containerd, archive).CombinedOutput()
		if err != nil {
			t.Fatalf("bosun image import: %v\n%s", err, out)
		}
	}
	s.args = append([]string{"server",
		"--repo", repo.dir, "--poll", "300ms",
		"--data-dir", s.dataDir,
		"--etcd-listen", s.etcdAddr,
		"--api-listen", s.apiAddr,
		"--dns-listen", s.dnsAddr,
		"--containerd-address", s.containerd,
		"--node-name", "e2e-node",
		"--pod-cidr", cidr,
		"--bridge", bridge,
		"--netns-dir", netnsDir,
		"--proxy-table", s.proxyTable,
		"--service-cidr", s.serviceCIDR,
		"--node-port-range", s.nodePorts,
		"--restart-backoff", "200ms",
		"--max-restart-backoff", "1s",
		"--id", "e2e",
	}, withSharedKeyFile(extra)...)
	s.run()
	return s
}

// serviceRanges are the service CIDR and node port range of the stack
// whose bridge (see subnet) is given: a /24 and 10 node ports of its own.
func serviceRanges(bridge string) (cidr, nodePorts string) {
	var n int
	if _, err := fmt.Sscanf(bridge, "bosune2e%d", &n); err != nil {
		panic("not a test bridge: " + bridge)
	}
	return fmt.Sprintf("10.250.%d.0/24", n), fmt.Sprintf("%d-%d", 30000+10*n, 30000+10*n+9)
}

// removeProxyTable removes a stack's or agent's Service proxy table when
// the test ends (bosun leaves it in place when it stops, as it should),
// with `bosun agent --cleanup`, and fails the test if it is still there.
// Register it before the process that programs the table, so that it runs
// after that process has stopped.
func removeProxyTable(t testing.TB, table string) {
	t.Cleanup(func() {
		if out, err := exec.Command(bosun(t), "agent", "--cleanup", "--proxy-table", table).CombinedOutput(); err != nil {
			t.Errorf("bosun agent --cleanup --proxy-table %s: %v\n%s", table, err, out)
		}
		if out, err := exec.Command("nft", "list", "table", "ip", table).CombinedOutput(); err == nil {
			t.Errorf("table ip %s left behind after cleanup:\n%s", table, out)
		}
	})
}

// sharedEtcd starts an etcd in the test process (with fast ticks), standing
// in for an external cluster that several bosun replicas share, and
// returns its client URL.
func sharedEtcd(t testing.TB) string {
	t.Helper()
	etcd, err := store.StartEmbedded(context.Background(), store.EmbeddedConfig{Dir: t.TempDir(), FastTicks: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(etcd.Close)
	keys := filepath.Join(t.TempDir(), "secrets.key")
	if _, err := store.CreateKeyFile(keys, time.Now()); err != nil {
		t.Fatal(err)
	}
	sharedKeyFiles.Store(etcd.Endpoints()[0], keys)
	return etcd.Endpoints()[0]
}

// sharedKeyFiles maps a shared etcd's endpoint to the key file of Secrets
// at rest that every replica on it is given: the servers of a cluster
// share one (a replica whose file lacks the key etcd's values need refuses
// to start).
var sharedKeyFiles sync.Map

// withSharedKeyFile adds --encryption-key-file to a replica's flags that
// name a shared etcd, unless they name a key file.
func withSharedKeyFile(extra []string) []string {
	if slices.Contains(extra, "--encryption-key-file") {
		return extra
	}
	for i, a := range extra {
		if a != "--etcd-endpoints" || i+1 == len(extra) {
			continue
		}
		if f, ok := sharedKeyFiles.Load(extra[i+1]); ok {
			return append(slices.Clone(extra), "--encryption-key-file", f.(string))
		}
	}
	return extra
}

// startControlPlane runs bosun without a node agent: etcd, the leader,
// the API and DNS only.
func startControlPlane(t testing.TB, repoURL string, extra ...string) *stack {
	t.Helper()
	s := &stack{t: t, dataDir: t.TempDir(), home: t.TempDir(), apiAddr: freePort(t), dnsAddr: freePort(t), etcdAddr: freePort(t)}
	// Without an agent there is no Service proxy; a table of its own all
	// the same, in case a test turns the agent on.
	_, port, _ := net.SplitHostPort(s.apiAddr)
	s.proxyTable = "bosune2ecp" + port
	removeProxyTable(t, s.proxyTable)
	s.args = append([]string{"server", "--agent=false", "--proxy-table", s.proxyTable,
		"--repo", repoURL, "--poll", "200ms",
		"--data-dir", s.dataDir,
		"--etcd-listen", s.etcdAddr,
		"--api-listen", s.apiAddr,
		"--dns-listen", s.dnsAddr,
		"--id", "e2e-cp",
	}, withSharedKeyFile(extra)...)
	s.run()
	return s
}

// run starts bosun and stops it when the test ends. The stop is
// registered first: a start that fails (the API not answering in time on
// a loaded machine) must not leave the process running past its test,
// holding its addresses.
func (s *stack) run() {
	s.t.Cleanup(func() {
		s.stop(syscall.SIGTERM)
		if s.t.Failed() && s.log != nil {
			s.t.Logf("bosun log (tail):\n%s", s.logTail(80))
		}
	})
	s.start()
}

func (s *stack) start() {
	s.t.Helper()
	if s.home == "" {
		s.home = s.t.TempDir()
	}
	s.log, s.logMu = &bytes.Buffer{}, &sync.Mutex{}
	argv := append(append(slices.Clone(s.wrap), bosun(s.t)), s.args...)
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Env = s.env()
	s.resetClients()
	var out io.Writer = s.log
	if dir := os.Getenv("BOSUN_E2E_LOGDIR"); dir != "" {
		// Keep every server's whole log, for debugging a run.
		f, err := os.CreateTemp(dir, strings.ReplaceAll(s.t.Name(), "/", "_")+"-*.log")
		if err != nil {
			s.t.Fatal(err)
		}
		s.t.Cleanup(func() { f.Close() })
		out = io.MultiWriter(s.log, f)
	}
	w := &lockedWriter{mu: s.logMu, w: out}
	s.cmd.Stdout, s.cmd.Stderr = w, w
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.exited) }()
	s.waitFor("the API to answer", 30*time.Second, func() error {
		resp, err := s.tlsClient().Get(s.url("/readyz"))
		if err != nil {
			s.resetClients() // the certificate may not have been written yet
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /readyz: %s", resp.Status)
		}
		return nil
	})
	s.pin()
}

// env is the environment of the processes of this stack: its own HOME
// (see stack.home).
func (s *stack) env() []string {
	return append(os.Environ(), "HOME="+s.home, "XDG_CONFIG_HOME="+filepath.Join(s.home, ".config"))
}

// url is the API's URL of path.
func (s *stack) url(path string) string { return "https://" + s.apiAddr + path }

// certFile is the certificate the API serves: --tls-cert when the test
// gives one, else the self-signed one in the data directory.
func (s *stack) certFile() string {
	for i, a := range s.args {
		if (a == "--tls-cert" || a == "-tls-cert") && i+1 < len(s.args) {
			return s.args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--tls-cert="); ok {
			return v
		}
	}
	return filepath.Join(s.dataDir, "api", api.GeneratedCertFile)
}

// tlsClient trusts the API's certificate (and nothing else) and sends no
// token: for public routes (webhooks, /readyz) and tests of refusals.
func (s *stack) tlsClient() *http.Client {
	s.clientMu.Lock()
	defer s.clientMu.Unlock()
	return s.tlsClientLocked()
}

func (s *stack) tlsClientLocked() *http.Client {
	if s.tlsc != nil {
		return s.tlsc
	}
	pool := x509.NewCertPool()
	if b, err := os.ReadFile(s.certFile()); err == nil {
		pool.AppendCertsFromPEM(b)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DialContext: s.dial}
	s.tlsc = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	return s.tlsc
}

// client is tlsClient sending the stack's admin token (stack.token).
func (s *stack) client() *http.Client {
	s.clientMu.Lock()
	defer s.clientMu.Unlock()
	if s.httpc == nil {
		base := s.tlsClientLocked()
		s.httpc = &http.Client{Timeout: base.Timeout, Transport: bearer{s.apiToken(), base.Transport}}
	}
	return s.httpc
}

// resetClients drops the clients: the next use reads the certificate and
// the token again.
func (s *stack) resetClients() {
	s.clientMu.Lock()
	defer s.clientMu.Unlock()
	s.httpc, s.tlsc = nil, nil
}

// apiToken is stack.token, or the admin token the server generated at its
// first start into home/.config/bosun/token.
func (s *stack) apiToken() string {
	if s.token != "" {
		return s.token
	}
	b, err := os.ReadFile(filepath.Join(s.home, ".config", "bosun", "token"))
	if err != nil {
		s.t.Fatalf("the stack's API token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// bearer adds an Authorization header to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// pin writes the API's fingerprint into the CLI's known_servers, so that
// the CLI of this stack trusts it without a first-use notice in the
// output tests read.
func (s *stack) pin() {
	s.t.Helper()
	b, err := os.ReadFile(s.certFile())
	if err != nil {
		s.t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		s.t.Fatalf("%s: not PEM", s.certFile())
	}
	dir := filepath.Join(s.home, ".config", "bosun")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		s.t.Fatal(err)
	}
	line := s.apiAddr + " " + api.Fingerprint(block.Bytes) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "known_servers"), []byte(line), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// stop signals the server and waits for it to exit.
func (s *stack) stop(sig syscall.Signal) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

func (s *stack) logTail(lines int) string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	all := strings.Split(s.log.String(), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// cli runs the bosun CLI against this stack.
func (s *stack) cli(args ...string) (string, error) {
	out, err := s.cliCmd(args...).CombinedOutput()
	return string(out), err
}

// cliCmd is the command of the bosun CLI against this stack: its server,
// its HOME (where the CLI finds the token and the pinned certificate) and,
// when the test set one, stack.token.
func (s *stack) cliCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(bosun(s.t), args...)
	cmd.Env = append(s.env(), "BOSUN_SERVER=https://"+s.apiAddr)
	if s.token != "" {
		cmd.Env = append(cmd.Env, "BOSUN_TOKEN="+s.token)
	}
	return cmd
}

// get answers GET path of the API with the stack's token.
func (s *stack) get(path string) (*http.Response, error) {
	return s.client().Get(s.url(path))
}

// getText returns the body of GET path (the API's /metrics).
func (s *stack) getText(path string) (string, error) {
	resp, err := s.get(path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return string(b), err
}

func (s *stack) getJSON(path string, out any) error {
	resp, err := s.get(path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (s *stack) status() (*api.Status, error) {
	var st api.Status
	return &st, s.getJSON("/api/v1/status", &st)
}

func (s *stack) pods() []corev1.Pod {
	s.t.Helper()
	var list struct{ Items []corev1.Pod }
	if err := s.getJSON("/api/v1/pods", &list); err != nil {
		s.t.Fatal(err)
	}
	return list.Items
}

// waitFor polls cond until it returns nil or the timeout passes.
func (s *stack) waitFor(what string, timeout time.Duration, cond func() error) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		select {
		case <-s.exited:
			s.t.Fatalf("bosun exited while waiting for %s; log:\n%s", what, s.logTail(60))
		case <-time.After(100 * time.Millisecond):
		}
	}
	s.t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
}

// readyPods returns the Running, Ready pods whose name has the prefix.
func readyPods(pods []corev1.Pod, prefix string) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if strings.HasPrefix(p.Name, prefix) && p.Status.Phase == corev1.PodRunning && kube.PodReady(&p) && p.Status.PodIP != "" {
			out = append(out, p)
		}
	}
	return out
}

func withPrefix(pods []corev1.Pod, prefix string) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if strings.HasPrefix(p.Name, prefix) {
			out = append(out, p)
		}
	}
	return out
}

func ips(pods []corev1.Pod) []string {
	out := make([]string, 0, len(pods))
	for _, p := range pods {
		out = append(out, p.Status.PodIP)
	}
	sort.Strings(out)
	return out
}

// lookup queries the stack's DNS server with a real client.
func (s *stack) lookup(name string, qtype uint16) (*mdns.Msg, error) {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	c := &mdns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, s.dnsAddr)
	return r, err
}

func aRecords(r *mdns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	sort.Strings(out)
	return out
}

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// waitListening waits until something accepts TCP connections on addr.
func waitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.Dial("tcp", addr)
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

// lockedBuffer is an io.Writer safe for a process's stdout and stderr at
// once.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
