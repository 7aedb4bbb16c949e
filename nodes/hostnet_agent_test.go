package nodes_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

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
