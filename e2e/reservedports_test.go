package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/scheduler"
)

// reservedPortsRepo asks host ports bosun listens on at the node: web the
// ingress's port INGRESSPORT, the DaemonSet dnsgrab UDP 53 (the pods'
// nameserver is on this node's bridge), pinned (bound by nodeName NODE,
// skipping the scheduler) the ingress TLS port TLSPORT; free asks
// FREEPORT, which nothing of bosun holds.
const reservedPortsRepo = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: localhost/bosun-hello:v1
    ports:
    - {containerPort: 8080, hostPort: INGRESSPORT}
---
apiVersion: v1
kind: Pod
metadata:
  name: pinned
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: localhost/bosun-hello:v1
    ports:
    - {containerPort: 8080, hostPort: TLSPORT}
---
apiVersion: v1
kind: Pod
metadata:
  name: free
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: localhost/bosun-hello:v1
    ports:
    - {containerPort: 8080, hostPort: FREEPORT}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: dnsgrab
spec:
  selector:
    matchLabels: {app: dnsgrab}
  template:
    metadata:
      labels: {app: dnsgrab}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: localhost/bosun-hello:v1
        ports:
        - {containerPort: 53, hostPort: 53, protocol: UDP}
`

// TestReservedPorts: the node publishes the ports bosun listens on there
// (ingress, ingress TLS, API, DNS, etcd, the pods' nameserver); a pod
// asking the ingress's port and a DaemonSet's pod asking UDP 53 stay
// Pending for kube-scheduler's reason, a pod bound by nodeName to the
// ingress TLS port is refused by the agent naming the listener, a pod on
// another port runs and is reached, and the ingress still answers on its
// port. Restarted with the ingress on other ports, the node publishes
// those, and the pods that asked the old ones run.
func TestReservedPorts(t *testing.T) {
	t.Parallel()
	httpAddr, tlsAddr, freeAddr := freePort(t), freePort(t), freePort(t)
	repo := newGitRepo(t)
	repo.write("app.yaml", strings.NewReplacer("INGRESSPORT", portOf(t, httpAddr), "TLSPORT", portOf(t, tlsAddr),
		"FREEPORT", portOf(t, freeAddr), "NODE", "e2e-node").Replace(reservedPortsRepo))
	repo.commit("pods on bosun's ports, and one beside them")
	s := startStack(t, repo, "--allow-host-network", "--ingress-listen", httpAddr, "--ingress-tls-listen", tlsAddr)

	// reserved is the node's annotation; an error while the node is not
	// registered (yet, or again after a restart).
	reserved := func() (string, error) {
		var list struct{ Items []corev1.Node }
		if err := s.getJSON("/api/v1/nodes", &list); err != nil || len(list.Items) != 1 {
			return "", fmt.Errorf("nodes: %v (%d)", err, len(list.Items))
		}
		return list.Items[0].Annotations[scheduler.AnnotationReservedHostPorts], nil
	}
	free := fmt.Sprintf("TCP/127.0.0.1:%s", portOf(t, freeAddr))
	var annotation string
	s.waitFor("the node registered", time.Minute, func() (err error) {
		annotation, err = reserved()
		return err
	})
	for _, want := range []string{
		"TCP/" + httpAddr + "=ingress", "TCP/" + tlsAddr + "=ingress-tls", "TCP/" + s.apiAddr + "=api",
		"TCP/" + s.etcdAddr + "=etcd", "UDP/" + s.dnsAddr + "=dns", "TCP/" + s.dnsAddr + "=dns", ":53=pod-dns",
	} {
		if !strings.Contains(annotation, want) {
			t.Errorf("the node's %s = %q: no %s", scheduler.AnnotationReservedHostPorts, annotation, want)
		}
	}
	if strings.Contains(annotation, free) {
		t.Errorf("the free port is reserved: %q", annotation)
	}
	if ports, err := scheduler.ParseReservedPorts(annotation); err != nil || len(ports) < 8 {
		t.Errorf("the annotation reads as %v, %v", ports, err)
	}

	const reason = "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports"
	pendingFor := func(name, reason string) func() error {
		return func() error {
			for _, p := range s.pods() {
				if p.Name != name && !(name == "dnsgrab" && strings.HasPrefix(p.Name, "dnsgrab-")) {
					continue
				}
				for _, c := range p.Status.Conditions {
					if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message == reason && p.Spec.NodeName == "" {
						return nil
					}
				}
				if p.Status.Phase == corev1.PodPending && strings.Contains(p.Status.Message, reason) {
					return nil
				}
			}
			return fmt.Errorf("not yet: %q", s.podMessages())
		}
	}
	s.waitFor("free ready", 3*time.Minute, func() error {
		if len(readyPods(s.pods(), "free")) != 1 {
			return fmt.Errorf("not ready: %q", s.podMessages())
		}
		return nil
	})
	s.waitFor("web pending on the ingress's port", 30*time.Second, pendingFor("web", reason))
	s.waitFor("the DaemonSet's pod pending on the pods' DNS port", 30*time.Second, pendingFor("dnsgrab", reason))
	// pinned skips the scheduler: the agent refuses it for good (Failed,
	// as kubelet's admission), naming the listener, and the planner keeps
	// it so while the node reserves that port.
	tlsPort := portOf(t, tlsAddr)
	uids := map[string]bool{}
	s.waitFor("pinned refused by the agent for good, naming the listener", 60*time.Second, func() error {
		for _, p := range s.pods() {
			if p.Name != "pinned" {
				continue
			}
			uids[string(p.UID)] = true
			if p.Status.Phase == corev1.PodFailed && p.Status.Reason == "HostPortReserved" && strings.HasPrefix(p.Status.Message,
				"Pod was rejected: port "+tlsPort+"/TCP is bosun's ingress TLS listener (--ingress-tls-listen) on this node") {
				return nil
			}
		}
		return fmt.Errorf("not yet: %q", s.podMessages())
	})
	seen := len(uids)
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		for _, p := range s.pods() {
			if p.Name == "pinned" {
				uids[string(p.UID)] = true
			}
		}
	}
	// Kept as it failed while the port is reserved: a replacement would
	// be refused again at once.
	if n := len(uids) - seen; n > 0 {
		t.Errorf("pinned: %d more pods in 10 s once refused; want it kept, not replaced over and over", n)
	}

	nodeIP := s.nodeAddress("e2e-node")
	s.waitFor("free reached on its host port", 30*time.Second, func() error {
		env, err := httpGet("http://" + net.JoinHostPort(nodeIP, portOf(t, freeAddr)) + "/env")
		if err != nil || !strings.Contains(env, "POD_NAME=free") {
			return fmt.Errorf("%v %q", err, env)
		}
		return nil
	})
	// The ingress still has its port: an unknown host gets its 404, not a pod.
	s.waitFor("the ingress's 404 on its port", 30*time.Second, func() error {
		resp, err := http.Get("http://" + httpAddr + "/")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "hello from") {
			return fmt.Errorf("%s %q, want the ingress's 404", resp.Status, body)
		}
		return nil
	})

	// Restarted with the ingress elsewhere: the node publishes the new
	// ports, and web and pinned get theirs.
	httpAddr2, tlsAddr2 := freePort(t), freePort(t)
	s.stop(syscall.SIGTERM)
	s.args = append(s.args, "--ingress-listen", httpAddr2, "--ingress-tls-listen", tlsAddr2)
	s.start()
	s.waitFor("the node to publish the new ingress ports", 60*time.Second, func() error {
		a, err := reserved()
		if err != nil {
			return err
		}
		if !strings.Contains(a, "TCP/"+httpAddr2+"=ingress,") || !strings.Contains(a, "TCP/"+tlsAddr2+"=ingress-tls") ||
			strings.Contains(a, "TCP/"+httpAddr+"=") || strings.Contains(a, "TCP/"+tlsAddr+"=") {
			return fmt.Errorf("%s = %q", scheduler.AnnotationReservedHostPorts, a)
		}
		return nil
	})
	s.waitFor("web and pinned to run on the freed ports", 2*time.Minute, func() error {
		for _, name := range []string{"web", "pinned"} {
			if len(readyPods(s.pods(), name)) != 1 {
				return fmt.Errorf("%s not ready: %q", name, s.podMessages())
			}
		}
		return nil
	})
	s.waitFor("web reached on the old ingress port", 30*time.Second, func() error {
		env, err := httpGet("http://" + net.JoinHostPort(nodeIP, portOf(t, httpAddr)) + "/env")
		if err != nil || !strings.Contains(env, "POD_NAME=web") {
			return fmt.Errorf("%v %q", err, env)
		}
		return nil
	})
	s.waitFor("the DaemonSet's pod still pending", 30*time.Second, pendingFor("dnsgrab", reason))
}
