package nodes_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/nodes"
	"bosun/store"
)

// rejected reports a pod the node refused for a port bosun listens on.
func rejected(ps *store.PodStatus) bool {
	return ps != nil && ps.Status.Phase == corev1.PodFailed && ps.Status.Reason == nodes.ReasonHostPortReserved
}

// TestAgent_reservedPortsAdmission, on the review's findings: (1) an
// agent restarted with a listener of bosun on a port that a running pod
// it adopts holds (a bridge pod's hostPort, a hostNetwork pod's port)
// stops that pod, so that the listener gets its traffic, and the pod
// fails for good (Failed, HostPortReserved, naming the listener) instead
// of being kept; (2) a new pod bound here asking such a port fails at
// once the same way, and nothing of it is set up (no containers, no
// network, no pod directory); it is not retried; deleting it deletes its
// status.
func TestAgent_reservedPortsAdmission(t *testing.T) {
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("the CNI portmap plugin needs iptables")
	}
	h := newHarness(t)
	h.cfg.AllowHostNetwork = true
	h.startAgent()

	hp, hnPort := freePort(t), freePort(t)
	web := helloPod("web", "66666666-web")
	web.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: hp, Protocol: corev1.ProtocolTCP}}
	h.putPod(web)
	hn := helloPod("hostnet", "77777777-host")
	hn.Spec.HostNetwork = true
	hn.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PORT", Value: strconv.Itoa(int(hnPort))}}
	hn.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: hnPort, HostPort: hnPort, Protocol: corev1.ProtocolTCP}}
	h.putPod(hn)
	ps := h.waitStatus("default", "web", 60*time.Second, "running", running)
	nodeIP := ps.Status.HostIP
	h.waitStatus("default", "hostnet", 60*time.Second, "running", running)
	url := fmt.Sprintf("http://%s:%d/env", nodeIP, hp)
	if env := httpGet(t, url); !strings.Contains(env, "POD_NAME=web") {
		t.Fatalf("GET %s:\n%s", url, env)
	}

	// (1) Restarted with the ingress on web's host port and the API on
	// the hostNetwork pod's.
	h.stopAgent()
	ingress, err := nodes.ListenerPorts(nodes.HolderIngress, fmt.Sprintf("0.0.0.0:%d", hp))
	if err != nil {
		t.Fatal(err)
	}
	api, err := nodes.ListenerPorts(nodes.HolderAPI, fmt.Sprintf(":%d", hnPort))
	if err != nil {
		t.Fatal(err)
	}
	h.cfg.ReservedPorts = append(ingress, api...)
	h.startAgent()
	for name, listener := range map[string]string{"web": "bosun's ingress listener (--ingress-listen)", "hostnet": "bosun's API (--api-listen)"} {
		ps := h.waitStatus("default", name, 60*time.Second, "rejected", rejected)
		if !strings.HasPrefix(ps.Status.Message, "Pod was rejected: port ") || !strings.Contains(ps.Status.Message, listener) {
			t.Errorf("%s: message %q, want the listener: %s", name, ps.Status.Message, listener)
		}
		if len(ps.Status.ContainerStatuses) != 0 || ps.Status.PodIP != "" {
			t.Errorf("%s: a rejected pod's status has containers %v, IP %q", name, ps.Status.ContainerStatuses, ps.Status.PodIP)
		}
	}
	waitNoContainers := func(names ...string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			left := map[string][]string{}
			for _, n := range names {
				if c := h.containers()[n]; len(c) > 0 {
					left[n] = c
				}
			}
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("containers still there: %v", left)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitNoContainers("web", "hostnet")
	if !unreachable(url) {
		t.Errorf("%s still answers: the pod keeps the ingress's port", url)
	}
	if out, _ := exec.Command("iptables", "-t", "nat", "-S").CombinedOutput(); strings.Contains(string(out), fmt.Sprintf("--dport %d ", hp)) {
		t.Errorf("a DNAT rule for the ingress's port %d is left:\n%s", hp, out)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", hnPort))
	if err != nil {
		t.Errorf("the API's port %d is still taken: %v", hnPort, err)
	} else {
		ln.Close()
	}

	// (2) A new pod on the ingress's port (a replacement) fails at once,
	// with nothing set up, and stays failed.
	h.deletePod("default", "web")
	h.waitStatus("default", "web", 30*time.Second, "gone", func(ps *store.PodStatus) bool { return ps == nil })
	fresh := helloPod("web", "88888888-new")
	fresh.Spec.Containers[0].Ports = web.Spec.Containers[0].Ports
	fresh.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	fresh.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
	h.putPod(fresh)
	ps = h.waitStatus("default", "web", 30*time.Second, "rejected", func(ps *store.PodStatus) bool { return rejected(ps) && ps.UID == fresh.UID })
	want := fmt.Sprintf("Pod was rejected: port %d/TCP is bosun's ingress listener (--ingress-listen) on this node (TCP/0.0.0.0:%d): not given to pods (the pod asks host port %d/TCP on 0.0.0.0); choose another port", hp, hp, hp)
	if ps.Status.Message != want {
		t.Errorf("message %q\nwant %q", ps.Status.Message, want)
	}
	time.Sleep(2 * time.Second) // two resyncs: no retry, no setup
	if got := h.containers()["web"]; len(got) != 0 {
		t.Errorf("the rejected pod has containers %v", got)
	}
	if _, err := os.Stat(filepath.Join(h.cfg.StateDir, "pods", string(fresh.UID))); !os.IsNotExist(err) {
		t.Errorf("the rejected pod has a pod directory: %v", err)
	}
	if ents, _ := os.ReadDir(h.cfg.NetnsDir); len(ents) != 0 {
		t.Errorf("network namespaces after the rejection: %v", ents)
	}
	again := h.waitStatus("default", "web", time.Second, "still rejected", rejected)
	if again.Status.Message != want || !again.Status.Conditions[0].LastTransitionTime.Equal(&ps.Status.Conditions[0].LastTransitionTime) {
		t.Errorf("the status changed: %+v, was %+v", again.Status, ps.Status)
	}

	for _, name := range []string{"web", "hostnet"} {
		h.deletePod("default", name)
		h.waitStatus("default", name, 30*time.Second, "gone", func(ps *store.PodStatus) bool { return ps == nil })
	}
}
