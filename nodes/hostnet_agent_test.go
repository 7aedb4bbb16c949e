package nodes_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"bosun/nodes"
	"bosun/store"
)

// freePort returns a TCP port nothing listens on at the moment.
func freePort(t *testing.T) int32 {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return int32(ln.Addr().(*net.TCPAddr).Port)
}

// unreachable reports whether GET url fails (the connection is refused or
// times out) within a few tries.
func unreachable(url string) bool {
	c := &http.Client{Timeout: 500 * time.Millisecond}
	for i := 0; i < 20; i++ {
		resp, err := c.Get(url)
		if err != nil {
			return true
		}
		resp.Body.Close()
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// TestAgent_hostNetworkAndHostPort: a hostNetwork pod listens on the
// host's network (the test process reaches it on 127.0.0.1), its IP is the
// node's, its probes pass on that IP and it gets the node's resolv.conf
// and hosts; a hostPort pod is reached on <node IP>:hostPort through the
// CNI portmap plugin, keeps its mapping across an agent restart, and the
// mapping goes with the pod. Without --allow-host-network neither runs.
func TestAgent_hostNetworkAndHostPort(t *testing.T) {
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("the CNI portmap plugin needs iptables")
	}
	h := newHarness(t)
	h.cfg.AllowHostNetwork = true
	h.startAgent()

	// A hostNetwork pod on a free port of the host, with a readiness probe.
	port := freePort(t)
	hn := helloPod("hostnet", "11111111-host")
	hn.Spec.HostNetwork = true
	hn.Spec.DNSPolicy = corev1.DNSClusterFirst
	hn.Spec.HostAliases = []corev1.HostAlias{{IP: "10.1.2.3", Hostnames: []string{"db.example"}}}
	hn.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PORT", Value: strconv.Itoa(int(port))}}
	hn.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: port, HostPort: port, Protocol: corev1.ProtocolTCP}}
	hn.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(port)}},
		PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1,
	}
	h.putPod(hn)
	ps := h.waitStatus("default", "hostnet", 60*time.Second, "ready", running)
	nodeIP := ps.Status.HostIP
	if nodeIP == "" || ps.Status.PodIP != nodeIP || len(ps.Status.PodIPs) != 1 || ps.Status.PodIPs[0].IP != nodeIP {
		t.Fatalf("hostNetwork pod IP %q (%v), want the node's %q", ps.Status.PodIP, ps.Status.PodIPs, nodeIP)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if env := httpGet(t, base+"/env"); !strings.Contains(env, "POD_IP="+nodeIP) {
		t.Errorf("the pod on the host's network: env does not say POD_IP=%s:\n%s", nodeIP, env)
	}
	nodeResolv, _ := os.ReadFile("/etc/resolv.conf")
	if got := httpGet(t, base+"/file?path=/etc/resolv.conf"); strings.TrimSpace(got) != strings.TrimSpace(string(nodeResolv)) {
		t.Errorf("dnsPolicy ClusterFirst on the host network is Default: resolv.conf =\n%s\nwant the node's\n%s", got, nodeResolv)
	}
	if got := httpGet(t, base+"/file?path=/etc/hosts"); !strings.Contains(got, "10.1.2.3\tdb.example") || !strings.Contains(got, "localhost") {
		t.Errorf("hosts of a hostNetwork pod:\n%s", got)
	}

	// A pod on the bridge whose port 8080 the node forwards from hostPort.
	hp := freePort(t)
	web := helloPod("web", "22222222-port")
	web.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: hp, Protocol: corev1.ProtocolTCP}}
	h.putPod(web)
	ps = h.waitStatus("default", "web", 60*time.Second, "running", running)
	if ps.Status.PodIP == nodeIP {
		t.Fatalf("a hostPort pod has its own IP, got the node's")
	}
	url := fmt.Sprintf("http://%s:%d/env", nodeIP, hp)
	if env := httpGet(t, url); !strings.Contains(env, "POD_NAME=web") {
		t.Errorf("GET %s reached another pod:\n%s", url, env)
	}
	before := h.containers()["web"]

	// An agent restart adopts both pods and the mapping: same containers.
	h.stopAgent()
	h.startAgent()
	h.waitStatus("default", "hostnet", 60*time.Second, "ready", running)
	if got := h.containers()["web"]; strings.Join(got, ",") != strings.Join(before, ",") {
		t.Errorf("after the restart web runs %v, before %v", got, before)
	}
	if env := httpGet(t, url); !strings.Contains(env, "POD_NAME=web") {
		t.Errorf("after the agent's restart GET %s:\n%s", url, env)
	}
	httpGet(t, base+"/healthz")

	// Deleting the pods removes the mapping and frees the host's port.
	h.deletePod("default", "web")
	h.deletePod("default", "hostnet")
	h.waitStatus("default", "web", 30*time.Second, "gone", func(ps *store.PodStatus) bool { return ps == nil })
	h.waitStatus("default", "hostnet", 30*time.Second, "gone", func(ps *store.PodStatus) bool { return ps == nil })
	if !unreachable(url) {
		t.Errorf("%s still answers after the pod went", url)
	}
	if !unreachable(base + "/healthz") {
		t.Errorf("%s still answers after the hostNetwork pod went", base)
	}
	if out, _ := exec.Command("iptables", "-t", "nat", "-S").CombinedOutput(); strings.Contains(string(out), fmt.Sprintf("--dport %d ", hp)) {
		t.Errorf("a rule for host port %d is left:\n%s", hp, out)
	}

	// A node without --allow-host-network keeps such pods Pending, saying why.
	h.stopAgent()
	h.cfg.AllowHostNetwork = false
	h.startAgent()
	hn.UID = "33333333-host"
	h.putPod(hn)
	ps = h.waitStatus("default", "hostnet", 30*time.Second, "pending with a reason", func(ps *store.PodStatus) bool {
		return ps != nil && strings.Contains(ps.Status.Message, "--allow-host-network")
	})
	if ps.Status.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", ps.Status.Phase)
	}
	h.deletePod("default", "hostnet")
	h.waitStatus("default", "hostnet", 30*time.Second, "gone", func(ps *store.PodStatus) bool { return ps == nil })
}

// bridgePeer is a network namespace on the node's pod bridge with an
// address of the pod subnet (not one CNI hands out) that sends packets to
// 127.0.0.0/8 out through the bridge, as a pod that forges them would
// (lo down, route_localnet on): CVE-2020-8558's attacker.
type bridgePeer struct {
	t  *testing.T
	ns string
}

func newBridgePeer(t *testing.T) *bridgePeer {
	t.Helper()
	ns, veth := fmt.Sprintf("bosunlt%d", testNet), fmt.Sprintf("bosunltv%d", testNet)
	exec.Command("ip", "netns", "del", ns).Run() // an aborted run's
	exec.Command("ip", "link", "del", veth).Run()
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", ns).Run()
		exec.Command("ip", "link", "del", veth).Run()
	})
	for _, args := range [][]string{
		{"netns", "add", ns},
		{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"link", "set", veth, "master", testBridge, "up"},
		{"-n", ns, "addr", "add", fmt.Sprintf("10.87.%d.250/24", testNet), "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "route", "add", "default", "via", fmt.Sprintf("10.87.%d.1", testNet)},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1", "net.ipv4.conf.eth0.route_localnet=1").CombinedOutput(); err != nil {
		t.Fatalf("sysctl in %s: %v\n%s", ns, err, out)
	}
	return &bridgePeer{t: t, ns: ns}
}

// get fetches url from the peer's namespace; err when nothing answers
// within 3 s.
func (p *bridgePeer) get(url string) (string, error) {
	out, err := exec.Command("ip", "netns", "exec", p.ns, "curl", "-sS", "-m", "3", url).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, out)
	}
	return string(out), nil
}

// TestAgent_hostNetworkLoopbackGuardAndPortAdmission, on the review's
// findings: (1) once portmap has set route_localnet on the bridge, a
// packet from the bridge to the node's 127.0.0.1 is dropped (the agent's
// nftables table), while hostPort through the node's 127.0.0.1 and
// through its address from the bridge still work; (8) a pod bound by
// nodeName to a host port another run holds stays Pending saying
// "HostPort conflict" and starts once that one is gone; (9) a corrupt
// port-map file does not keep a pod's teardown (and its rules) forever;
// (10) an agent restarted without --allow-host-network stops the
// hostPort run it finds.
func TestAgent_hostNetworkLoopbackGuardAndPortAdmission(t *testing.T) {
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("the CNI portmap plugin needs iptables")
	}
	for _, tool := range []string{"curl", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	h := newHarness(t)
	h.cfg.AllowHostNetwork = true
	h.startAgent()
	hp := freePort(t)
	withHostPort := func(name string, uid types.UID) *corev1.Pod {
		p := helloPod(name, uid)
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: hp, Protocol: corev1.ProtocolTCP}}
		return p
	}
	h.putPod(withHostPort("web", "44444444-web"))
	ps := h.waitStatus("default", "web", 60*time.Second, "running", running)
	nodeIP, webIP := ps.Status.HostIP, ps.Status.PodIP

	// (1) The guard is there, portmap made the bridge route 127/8.
	if out, err := exec.Command("nft", "list", "table", "ip", nodes.LocalnetTable(testBridge)).CombinedOutput(); err != nil {
		t.Errorf("the agent's loopback guard: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/conf/" + testBridge + "/route_localnet"); strings.TrimSpace(string(b)) != "1" {
		t.Logf("route_localnet on %s is %q: the guard is not what stops the peer below", testBridge, b)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "node-only secret") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	peer := newBridgePeer(t)
	if got, err := peer.get(fmt.Sprintf("http://%s:%d/env", nodeIP, hp)); err != nil || !strings.Contains(got, "POD_NAME=web") {
		t.Errorf("from the bridge, the hostPort on the node's address: %v\n%s", err, got)
	}
	if got, err := peer.get("http://" + ln.Addr().String() + "/"); err == nil {
		t.Errorf("from the bridge, %s (a listener on the node's loopback) answered: %q", ln.Addr(), got)
	}
	if env := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/env", hp)); !strings.Contains(env, "POD_NAME=web") {
		t.Errorf("the hostPort through the node's 127.0.0.1:\n%s", env)
	}

	// (8) A pod pinned to the node on the same host port waits for web.
	h.putPod(withHostPort("pinned", "55555555-pin"))
	ps = h.waitStatus("default", "pinned", 30*time.Second, "pending on a HostPort conflict", func(ps *store.PodStatus) bool {
		return ps != nil && strings.Contains(ps.Status.Message, "HostPort conflict") && strings.Contains(ps.Status.Message, "default/web")
	})
	if ps.Status.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", ps.Status.Phase)
	}
	if got := h.containers()["pinned"]; len(got) != 0 {
		t.Errorf("the pinned pod runs %v while web holds its host port", got)
	}
	if env := httpGet(t, fmt.Sprintf("http://%s:%d/env", nodeIP, hp)); !strings.Contains(env, "POD_NAME=web") {
		t.Errorf("web's host port while pinned waits:\n%s", env)
	}

	// (9) web's port-map file is corrupt: deleting web removes its rules
	// all the same.
	maps, _ := filepath.Glob(filepath.Join(h.cfg.StateDir, "cni", "portmaps", "*.json"))
	if len(maps) != 1 {
		t.Fatalf("port-map files: %v, want web's", maps)
	}
	if err := os.WriteFile(maps[0], []byte(`[{"hostPort":`), 0o644); err != nil {
		t.Fatal(err)
	}
	h.deletePod("default", "web")
	h.waitStatus("default", "web", 30*time.Second, "gone", func(ps *store.PodStatus) bool { return ps == nil })
	ps = h.waitStatus("default", "pinned", 60*time.Second, "running once web is gone", running)
	pinnedIP := ps.Status.PodIP
	if env := httpGet(t, fmt.Sprintf("http://%s:%d/env", nodeIP, hp)); !strings.Contains(env, "POD_NAME=pinned") {
		t.Errorf("the host port once web is gone:\n%s", env)
	}
	if out, _ := exec.Command("iptables", "-t", "nat", "-S").CombinedOutput(); strings.Contains(string(out), webIP+":8080") && webIP != pinnedIP {
		t.Errorf("web's DNAT to %s:8080 is left:\n%s", webIP, out)
	}

	// (10) Restarted without --allow-host-network, the agent stops the
	// hostPort run it finds, and the pod waits saying why.
	h.stopAgent()
	h.cfg.AllowHostNetwork = false
	h.startAgent()
	ps = h.waitStatus("default", "pinned", 30*time.Second, "pending with a reason", func(ps *store.PodStatus) bool {
		return ps != nil && strings.Contains(ps.Status.Message, "--allow-host-network")
	})
	if ps.Status.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", ps.Status.Phase)
	}
	if got := h.containers()["pinned"]; len(got) != 0 {
		t.Errorf("an agent without --allow-host-network still runs %v", got)
	}
	if !unreachable(fmt.Sprintf("http://%s:%d/env", nodeIP, hp)) {
		t.Errorf("host port %d still answers on a node without --allow-host-network", hp)
	}
	h.deletePod("default", "pinned")
	h.waitStatus("default", "pinned", 30*time.Second, "gone", func(ps *store.PodStatus) bool { return ps == nil })
}
