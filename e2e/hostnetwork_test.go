package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/nodes"
)

// hostNetworkRepo is the repository of the host network tests: a
// Deployment of 2 on the node's network on port HOSTPORT with a readiness
// probe there and a Service in front, and a pod on the bridge whose port
// 8080 the node forwards from MAPPEDPORT.
const hostNetworkRepo = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: hostweb
spec:
  replicas: 2
  selector:
    matchLabels: {app: hostweb}
  template:
    metadata:
      labels: {app: hostweb}
    spec:
      hostNetwork: true
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: localhost/bosun-hello:v1
        env:
        - {name: PORT, value: "HOSTPORT"}
        ports:
        - containerPort: HOSTPORT
        readinessProbe:
          httpGet: {path: /healthz, port: HOSTPORT}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: hostweb
spec:
  selector: {app: hostweb}
  ports:
  - port: 80
    targetPort: HOSTPORT
---
apiVersion: v1
kind: Pod
metadata:
  name: mapped
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: localhost/bosun-hello:v1
    ports:
    - containerPort: 8080
      hostPort: MAPPEDPORT
`

// pinnedHostPortPod is bound by nodeName to NODE, skipping the scheduler, on the
// host port MAPPEDPORT that the pod mapped holds there.
const pinnedHostPortPod = `apiVersion: v1
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
    - containerPort: 8080
      hostPort: MAPPEDPORT
`

// portOf is the port of a loopback address freePort handed out; nothing
// listens there, on any address of the machine as far as the tests know.
func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestHostNetwork_refusedWithoutTheFlag: a server without
// --allow-host-network rejects a commit with hostNetwork or hostPort,
// naming the file, line and flag, and keeps the last good revision.
func TestHostNetwork_refusedWithoutTheFlag(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("README.md", "host network\n")
	good := repo.commit("empty")
	s := startStack(t, repo)
	repo.write("app.yaml", strings.NewReplacer("HOSTPORT", "18080", "MAPPEDPORT", "18081").Replace(hostNetworkRepo))
	bad := repo.commit("host network without the flag")
	want := []string{
		"app.yaml:13: spec.template.spec.hostNetwork: not allowed: the operator has not given --allow-host-network",
		"app.yaml:47: spec.containers[0].ports[0].hostPort: not allowed: the operator has not given --allow-host-network",
	}
	s.waitFor("the revision to be rejected", 60*time.Second, func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		if st.Sync.Seen == nil || st.Sync.Seen.Commit != bad {
			return fmt.Errorf("not seen yet")
		}
		got := strings.Join(st.Sync.Errors, "\n")
		for _, w := range want {
			if !strings.Contains(got, w) {
				return fmt.Errorf("errors %q, want %q", st.Sync.Errors, w)
			}
		}
		if st.Sync.Applied == nil || st.Sync.Applied.Commit != good {
			return fmt.Errorf("applied %+v, want the last good revision %s", st.Sync.Applied, good)
		}
		return nil
	})
	if n := len(s.pods()); n != 0 {
		t.Errorf("%d pods run from a rejected revision", n)
	}
}

// TestHostNetwork: under --allow-host-network a hostNetwork Deployment
// runs on the node's network (its pod IP is the node's, the test process
// reaches it on 127.0.0.1 and through its Service's VIP); its second
// replica, wanting the same port on the one node, stays pending for
// kube-scheduler's reason; a hostPort pod is reached on <node IP>:hostPort;
// and removing them from Git frees the ports.
func TestHostNetwork(t *testing.T) {
	t.Parallel()
	hostPort, mappedPort := portOf(t, freePort(t)), portOf(t, freePort(t))
	repo := newGitRepo(t)
	repo.write("app.yaml", strings.NewReplacer("HOSTPORT", hostPort, "MAPPEDPORT", mappedPort).Replace(hostNetworkRepo))
	repo.commit("host network")
	start := time.Now()
	s := startStack(t, repo, "--allow-host-network")

	_, reasons := s.placed("hostweb-", 1, 1, 120*time.Second)
	t.Logf("commit -> hostweb ready (server start included): %s", time.Since(start).Round(time.Millisecond))
	if want := "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports"; reasons[0] != want {
		t.Errorf("the second replica is pending for %q, want %q", reasons[0], want)
	}
	web := readyPods(s.pods(), "hostweb-")[0]
	if web.Status.PodIP == "" || web.Status.PodIP != web.Status.HostIP {
		t.Errorf("hostNetwork pod IP %q, want the node's %q", web.Status.PodIP, web.Status.HostIP)
	}
	nodeIP := web.Status.HostIP

	t.Run("the pod listens on the host's network", func(t *testing.T) {
		env, err := httpGet("http://127.0.0.1:" + hostPort + "/env")
		if err != nil || !strings.Contains(env, "POD_NAME="+web.Name) || !strings.Contains(env, "POD_IP="+nodeIP) {
			t.Errorf("GET 127.0.0.1:%s/env: %v\n%s", hostPort, err, env)
		}
	})

	t.Run("its Service's VIP reaches it", func(t *testing.T) {
		vip := s.clusterIP("hostweb")
		s.waitFor("the VIP to answer", 30*time.Second, func() error {
			env, err := httpGet("http://" + vip + ":80/env")
			if err != nil || !strings.Contains(env, "POD_NAME="+web.Name) {
				return fmt.Errorf("GET %s:80/env: %v %q", vip, err, env)
			}
			return nil
		})
	})

	t.Run("a hostPort pod answers on the node's IP", func(t *testing.T) {
		s.waitFor("mapped ready", 60*time.Second, func() error {
			if len(readyPods(s.pods(), "mapped")) != 1 {
				return fmt.Errorf("not ready: %v", s.podMessages())
			}
			return nil
		})
		url := "http://" + net.JoinHostPort(nodeIP, mappedPort) + "/env"
		s.waitFor("the host port to forward", 30*time.Second, func() error {
			env, err := httpGet(url)
			if err != nil || !strings.Contains(env, "POD_NAME=mapped") {
				return fmt.Errorf("GET %s: %v %q", url, err, env)
			}
			return nil
		})
	})

	t.Run("the node's loopback is guarded from pods; hostPort through 127.0.0.1 still works", func(t *testing.T) {
		table := nodes.LocalnetTable(s.proxyTable) // the stack's bridge has the proxy table's name
		if out, err := exec.Command("nft", "list", "table", "ip", table).CombinedOutput(); err != nil || !strings.Contains(string(out), "127.0.0.0/8") {
			t.Errorf("nft list table ip %s: %v\n%s", table, err, out)
		}
		url := "http://127.0.0.1:" + mappedPort + "/env"
		s.waitFor("the host port through the node's loopback", 30*time.Second, func() error {
			env, err := httpGet(url)
			if err != nil || !strings.Contains(env, "POD_NAME=mapped") {
				return fmt.Errorf("GET %s: %v %q", url, err, env)
			}
			return nil
		})
	})

	t.Run("a pod pinned by nodeName to a held host port waits, saying why", func(t *testing.T) {
		var node string
		for _, p := range s.pods() {
			if p.Name == "mapped" {
				node = p.Spec.NodeName
			}
		}
		repo.write("pinned.yaml", strings.NewReplacer("MAPPEDPORT", mappedPort, "NODE", node).Replace(pinnedHostPortPod))
		repo.commit("a pod pinned to the node on mapped's host port")
		s.waitFor("pinned pending on a HostPort conflict", 60*time.Second, func() error {
			for _, p := range s.pods() {
				if p.Name == "pinned" && p.Status.Phase == corev1.PodPending && strings.Contains(p.Status.Message, "HostPort conflict") &&
					strings.Contains(p.Status.Message, "default/mapped") {
					return nil
				}
			}
			return fmt.Errorf("not yet: %v", s.podMessages())
		})
		if env, err := httpGet("http://" + net.JoinHostPort(nodeIP, mappedPort) + "/env"); err != nil || !strings.Contains(env, "POD_NAME=mapped") {
			t.Errorf("the host port while pinned waits: %v %q", err, env)
		}
	})

	t.Run("removed from Git, the ports are free again", func(t *testing.T) {
		repo.git("rm", "-q", "app.yaml", "pinned.yaml")
		repo.write("README.md", "nothing\n")
		repo.commit("remove the host network apps")
		s.waitFor("the pods gone and the ports free", 60*time.Second, func() error {
			if n := len(s.pods()); n != 0 {
				return fmt.Errorf("%d pods left", n)
			}
			for _, addr := range []string{"127.0.0.1:" + hostPort, net.JoinHostPort(nodeIP, mappedPort)} {
				if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					c.Close()
					return fmt.Errorf("%s still accepts connections", addr)
				}
			}
			return nil
		})
	})
}
