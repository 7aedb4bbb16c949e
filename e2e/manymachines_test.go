package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
)

// spreadApp is a Deployment of the hello app with a Service (virtual IP,
// port 80) and a headless Service (the pods' addresses, port 8080).
// withPreStopSleep gives spreadApp's container a one-second preStop sleep.
func withPreStopSleep(app string) string {
	return strings.Replace(app, "        readinessProbe:\n", "        lifecycle: {preStop: {sleep: {seconds: 1}}}\n        readinessProbe:\n", 1)
}

func spreadApp(replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: %d
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 1}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: localhost/bosun-hello:v1
        env:
        - {name: PORT, value: "8080"}
        ports:
        - {name: http, containerPort: 8080}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: web-pods
spec:
  clusterIP: None
  selector: {app: web}
  ports:
  - {name: http, port: 8080}
`, replicas)
}

// waitReady waits until the Deployment web has n ready pods and returns
// them.
func (c *mhCluster) waitReady(n int, timeout time.Duration) []corev1.Pod {
	c.t.Helper()
	var ready []corev1.Pod
	c.waitFor(fmt.Sprintf("%d ready web pods", n), timeout, func() error {
		all := withPrefix(c.pods(), "web-")
		ready = readyPods(all, "web-")
		if len(all) != n || len(ready) != n {
			return fmt.Errorf("%d pods, %d ready", len(all), len(ready))
		}
		return nil
	})
	return ready
}

func perNode(pods []corev1.Pod) map[string]int {
	out := map[string]int{}
	for _, p := range pods {
		out[p.Spec.NodeName]++
	}
	return out
}

// checkReach checks that every pod reaches every other pod by its IP, the
// Service by name (its virtual IP, through the node's cluster DNS), and
// the headless Service's name resolves in every pod to exactly the ready
// pods' addresses. Pods are asked in parallel; every failure is reported.
func (c *mhCluster) checkReach(t *testing.T, pods []corev1.Pod) {
	t.Helper()
	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	names := map[string]bool{}
	for _, p := range pods {
		names[p.Name] = true
	}
	want := ips(pods)
	var wg sync.WaitGroup
	for _, from := range pods {
		wg.Go(func() {
			for _, to := range pods {
				out, err := c.podGet(from, fmt.Sprintf("http://%s:8080/", to.Status.PodIP))
				if err != nil || helloPod(out) != to.Name {
					fail("%s (%s) -> %s (%s) by IP: %q, %v", from.Name, from.Spec.NodeName, to.Name, to.Spec.NodeName, out, err)
				}
			}
			got, err := c.podResolve(from, "web-pods")
			if err != nil || !slices.Equal(got, want) {
				fail("%s (%s): web-pods resolves to %v (%v), want %v", from.Name, from.Spec.NodeName, got, err, want)
			}
			// Through the Service's name: its virtual IP, whichever pod
			// answers (the app's client keeps its connection alive, so
			// one pod answers them all: the spread over every pod is
			// checked from the hosts below, a new connection each time).
			out, err := c.podGet(from, "http://web/")
			if err != nil || !names[helloPod(out)] {
				fail("%s (%s) -> http://web/: %q, %v", from.Name, from.Spec.NodeName, out, err)
			}
			// And by the headless name: a pod picked by DNS.
			out, err = c.podGet(from, "http://web-pods.default.svc.cluster.local:8080/")
			if err != nil || !names[helloPod(out)] {
				fail("%s (%s) -> http://web-pods.default.svc.cluster.local:8080/: %q, %v", from.Name, from.Spec.NodeName, out, err)
			}
		})
	}
	// The virtual IP from every host, a connection each time: it reaches
	// every ready pod, whichever node it is on.
	svc := c.service("web")
	for _, a := range c.agents {
		wg.Go(func() {
			seen := map[string]bool{}
			for range 10 * len(pods) {
				out, err := a.host.get("http://" + svc.Spec.ClusterIP + "/")
				if err != nil || !names[helloPod(out)] {
					fail("host of %s -> the VIP %s: %q, %v", a.node, svc.Spec.ClusterIP, out, err)
					return
				}
				seen[helloPod(out)] = true
			}
			for _, p := range pods {
				if !seen[p.Name] {
					fail("host of %s -> the VIP %s: %d connections, none to %s (%s)", a.node, svc.Spec.ClusterIP, 10*len(pods), p.Name, p.Spec.NodeName)
				}
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		slices.Sort(failures)
		t.Fatalf("%d failures of pod reachability:\n%s", len(failures), strings.Join(failures, "\n"))
	}
}

// TestManyMachines_spread: three node hosts, each its own network
// namespace, containerd and agent, joined to a server on a fourth host. A
// 6-replica Deployment spreads 2, 2, 2 (the scheduler's default spreading
// of a Deployment's replicas); every pod reaches every other pod by IP, by
// Service name through the cluster DNS of its node, and through the
// Service's virtual IP; the cluster invariant holds.
func TestManyMachines_spread(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("README.md", "nothing yet\n")
	repo.commit("empty")
	c := newCluster(t, repo, clusterOpts{agents: 3, backend: "host-gw"})

	began := time.Now()
	repo.write("web.yaml", spreadApp(6))
	repo.commit("web: 6 replicas")
	pods := c.waitReady(6, 90*time.Second)
	t.Logf("6 pods ready on 3 nodes %v after the commit", time.Since(began).Round(time.Millisecond))
	if got := perNode(pods); len(got) != 3 || got["node-0"] != 2 || got["node-1"] != 2 || got["node-2"] != 2 {
		t.Fatalf("pods per node: %v, want 2 on each of node-0, node-1, node-2", got)
	}
	c.checkReach(t, pods)
	c.checkInvariant(30 * time.Second)
}

// TestManyMachines_nodePartitioned: on three servers and three nodes, a
// node cut off the network for longer than the grace period: its pods run
// again on the other nodes; when the cable is back, never more than
// replicas + maxSurge pods serve, and the invariant holds (the returning
// node's stale copies gone, no container of a pod on two hosts).
func TestManyMachines_nodePartitioned(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("README.md", "nothing yet\n")
	repo.commit("empty")
	// The agents stop their pods once cut off from etcd for the grace
	// period (--cut-off-stop-after, opt-in), so that after the heal no
	// stale copy runs at all, not only none is served.
	c := newCluster(t, repo, clusterOpts{servers: 3, agents: 3, backend: "host-gw", nodeGracePeriod: 3 * time.Second,
		agentArgs: []string{"--cut-off-stop-after", "3s"}})
	repo.write("web.yaml", spreadApp(6))
	repo.commit("web: 6 replicas")
	pods := c.waitReady(6, 90*time.Second)
	t.Logf("pods per node: %v", perNode(pods))
	c.checkInvariant(30 * time.Second)

	victim := c.agent("node-2")
	var gone []string
	for _, p := range pods {
		if p.Spec.NodeName == victim.node {
			gone = append(gone, p.Name)
		}
	}
	if len(gone) == 0 {
		t.Fatalf("no pod on %s: %v", victim.node, perNode(pods))
	}
	cut := time.Now()
	victim.host.partition()
	healed := false
	defer func() {
		if !healed {
			victim.host.heal()
		}
	}()
	c.waitFor("the partitioned node's pods to run on the other nodes", 90*time.Second, func() error {
		all := withPrefix(c.pods(), "web-")
		ready := readyPods(all, "web-")
		if len(ready) != 6 {
			return fmt.Errorf("%d ready", len(ready))
		}
		for _, p := range ready {
			if p.Spec.NodeName == victim.node {
				return fmt.Errorf("pod %s still on %s", p.Name, victim.node)
			}
		}
		return nil
	})
	t.Logf("%s cut off -> 6 pods ready on the other nodes: %v (lease TTL 10 s + grace 3 s)", victim.node, time.Since(cut).Round(time.Millisecond))
	c.waitFor("the cut-off node to stop its copies by itself", 60*time.Second, func() error {
		if n := webTasks(victim); n != 0 {
			return fmt.Errorf("%d web containers still run on %s", n, victim.node)
		}
		return nil
	})
	t.Logf("%s stopped its own copies %v after the cut", victim.node, time.Since(cut).Round(time.Millisecond))

	// From the heal until the invariant holds, the Service never has more
	// than replicas + maxSurge pods serving: in the store (ready) and in
	// the DNS answer of its headless name.
	stop := make(chan struct{})
	var most, sampled int
	var sampler sync.WaitGroup
	sampler.Go(func() {
		srv := c.servers[0]
		for {
			// At least 5 samples, however fast the heal converges and
			// however slow each sample is under load.
			select {
			case <-stop:
				if sampled >= 5 {
					return
				}
			default:
			}
			time.Sleep(100 * time.Millisecond)
			var list struct{ Items []corev1.Pod }
			if srv.getJSON("/api/v1/pods", &list) != nil {
				continue // not a test goroutine: no t.Fatal here
			}
			n := len(readyPods(list.Items, "web-"))
			if m, err := srv.host.lookup(srv.dnsAddr, "web-pods.default.svc.cluster.local", mdns.TypeA); err == nil {
				n = max(n, len(aRecords(m)))
			}
			// And what runs: web containers on every node.
			running := 0
			for _, a := range c.agents {
				running += webTasks(a)
			}
			most, sampled = max(most, n, running), sampled+1
		}
	})
	victim.host.heal()
	healed = true
	c.waitNodesReady(60 * time.Second)
	c.checkInvariant(60 * time.Second)
	close(stop)
	sampler.Wait()
	if most > 6+1 {
		t.Fatalf("after the heal, up to %d pods ran or served (%d samples), want at most replicas + maxSurge = 7", most, sampled)
	}
	t.Logf("after the heal: at most %d pods running or serving over %d samples", most, sampled)
	c.checkReach(t, c.waitReady(6, 30*time.Second))
}

// TestManyMachines_oneNodeFaults: the harness's faults on one node host,
// where no traffic crosses nodes: the agent SIGKILLed and restarted, the
// server SIGKILLed and restarted, the node's cable pulled for less than its
// lease.
// After each, the same containers run (none duplicated, none orphaned),
// and the invariant holds.
func TestManyMachines_oneNodeFaults(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("web.yaml", spreadApp(3))
	repo.commit("web: 3 replicas")
	c := newCluster(t, repo, clusterOpts{agents: 1})
	c.checkReach(t, c.waitReady(3, 90*time.Second))
	c.checkInvariant(30 * time.Second)
	a := c.agents[0]
	before := c.taskIDs()

	same := func(what string) {
		t.Helper()
		c.checkInvariant(60 * time.Second)
		if after := c.taskIDs(); !slices.Equal(after, before) {
			t.Fatalf("after %s the containers are %v, were %v", what, after, before)
		}
		t.Logf("after %s: the same %d containers, the invariant holds", what, len(before))
	}
	if err := a.restart(); err != nil {
		t.Fatal(err)
	}
	c.waitNodesReady(30 * time.Second)
	same("the agent SIGKILLed and restarted")

	c.servers[0].restart()
	c.waitNodesReady(30 * time.Second)
	same("the server SIGKILLed and restarted")

	a.host.partition()
	time.Sleep(3 * time.Second)
	a.host.heal()
	c.waitNodesReady(30 * time.Second)
	same("the node's cable pulled for 3 s")
}

// TestManyMachines_containerdRestart: containerd SIGKILLed and restarted
// under a running agent, on one node and then on every node at once: the
// same containers run afterwards (adopted, not restarted, none
// duplicated), and the invariant holds.
func TestManyMachines_containerdRestart(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("README.md", "nothing yet\n")
	repo.commit("empty")
	c := newCluster(t, repo, clusterOpts{agents: 2})
	repo.write("web.yaml", spreadApp(4))
	repo.commit("web: 4 replicas")
	c.waitReady(4, 90*time.Second)
	c.checkInvariant(30 * time.Second)
	before := c.taskIDs()
	same := func(what string) {
		t.Helper()
		c.checkInvariant(60 * time.Second)
		if after := c.taskIDs(); !slices.Equal(after, before) {
			t.Fatalf("after %s the containers are %v, were %v", what, after, before)
		}
		t.Logf("after %s: the same %d containers, the invariant holds", what, len(before))
	}
	if err := c.agents[0].containerd.restart(); err != nil {
		t.Fatal(err)
	}
	same("node-0's containerd SIGKILLed and restarted")
	var wg sync.WaitGroup
	errs := make([]error, len(c.agents))
	for i, a := range c.agents {
		wg.Go(func() { errs[i] = a.containerd.restart() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	same("every node's containerd SIGKILLed and restarted")
}

// TestManyMachines_vxlanTwoSegments: nodes on two L2 segments joined by a
// router (which knows nothing of the pod subnets): with --backend vxlan,
// pods on either segment reach each other by IP, by name and through the
// Service's virtual IP, and the invariant holds.
func TestManyMachines_vxlanTwoSegments(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("README.md", "nothing yet\n")
	repo.commit("empty")
	c := newCluster(t, repo, clusterOpts{agents: 2, segments: 2, backend: "vxlan"})
	if c.agents[0].host.segment == c.agents[1].host.segment {
		t.Fatalf("both nodes on segment %d", c.agents[0].host.segment)
	}
	repo.write("web.yaml", spreadApp(4))
	repo.commit("web: 4 replicas")
	pods := c.waitReady(4, 90*time.Second)
	if got := perNode(pods); got["node-0"] != 2 || got["node-1"] != 2 {
		t.Fatalf("pods per node: %v, want 2 and 2", got)
	}
	c.checkReach(t, pods)
	c.checkInvariant(30 * time.Second)
}

// webTasks counts the web app's running containers in a node's containerd
// (-1 when containerd does not answer, which fails a count of 0).
func webTasks(a *mhAgent) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ts, err := a.containerd.tasks(ctx, a.node)
	if err != nil {
		return -1
	}
	n := 0
	for _, tk := range ts {
		if strings.HasPrefix(tk.podName, "web-") {
			n++
		}
	}
	return n
}

// TestManyMachines_leaderPartitioned: three servers (one etcd cluster)
// and three nodes; the leading server's host is cut off. Within TTL + 2 s
// another server leads, the old one stops acting (it says it is no longer
// the leader; TestHA_threeServers checks etcd's history for its writes),
// the pods keep serving through the Service's virtual IP from every node
// all along, and after the heal the invariant holds and a new commit is
// applied.
func TestManyMachines_leaderPartitioned(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	// A pod that stops serving the moment it is told to stop drops the
	// requests of nodes whose proxy has not yet seen its endpoint go (a
	// few ms, more under load): as in Kubernetes, a preStop sleep keeps it
	// serving until every node has.
	repo.write("web.yaml", withPreStopSleep(spreadApp(6)))
	repo.commit("web: 6 replicas")
	c := newCluster(t, repo, clusterOpts{servers: 3, agents: 3, backend: "host-gw"})
	c.waitReady(6, 120*time.Second)
	c.checkInvariant(30 * time.Second)

	var lead *mhServer
	var leadID string
	c.waitFor("a leader", 30*time.Second, func() error {
		leadID = leaderOf(c.servers[0].stack)
		for i, s := range c.servers {
			if leadID == fmt.Sprintf("server-%d", i) {
				lead = s
				return nil
			}
		}
		return fmt.Errorf("leader %q", leadID)
	})
	var other *mhServer
	for _, s := range c.servers {
		if s != lead {
			other = s
			break
		}
	}
	// Clients on every node ask the Service's virtual IP, a new
	// connection each time, from before the cut until after the heal.
	vip := c.service("web").Spec.ClusterIP
	stop := make(chan struct{})
	var mu sync.Mutex
	var asked, failed int
	var failures []string
	var clients sync.WaitGroup
	for _, a := range c.agents {
		clients.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				out, err := a.host.get("http://" + vip + "/")
				mu.Lock()
				asked++
				// Any web pod: the rollout below replaces them all.
				if err != nil || !strings.HasPrefix(helloPod(out), "web-") {
					failed++
					if len(failures) < 5 {
						failures = append(failures, fmt.Sprintf("%s: %q, %v", a.node, out, err))
					}
				}
				mu.Unlock()
			}
		})
	}

	cut := time.Now()
	lead.host.partition()
	healed := false
	defer func() {
		if !healed {
			lead.host.heal()
		}
	}()
	var stoppedAfter, failover time.Duration
	c.waitFor("the cut-off leader to stop acting", 15*time.Second, func() error {
		if v := metricValue(lead.metrics(), "bosun_leader"); v != 0 {
			return fmt.Errorf("bosun_leader %v", v)
		}
		stoppedAfter = time.Since(cut)
		return nil
	})
	c.waitFor("a leader on the majority side", 15*time.Second, func() error {
		if l := leaderOf(other.stack); l == "" || l == leadID {
			return fmt.Errorf("leader %q", l)
		}
		failover = time.Since(cut)
		return nil
	})
	t.Logf("leader %s cut off: it stopped acting after %v, another led after %v", leadID, stoppedAfter.Round(time.Millisecond), failover.Round(time.Millisecond))
	if failover > 2*time.Second+2*time.Second {
		t.Errorf("failover took %v: want within the session TTL (2 s) + 2 s", failover)
	}

	// The new leader acts: a commit made while the old one is cut off
	// rolls out.
	repo.write("web.yaml", strings.Replace(withPreStopSleep(spreadApp(6)), "PORT, value: \"8080\"}", "PORT, value: \"8080\"}\n        - {name: RELEASE, value: \"2\"}", 1))
	repo.commit("web: release 2")
	c.waitFor("release 2 rolled out by the new leader", 120*time.Second, func() error {
		all := withPrefix(other.pods(), "web-")
		ready := readyPods(all, "web-")
		if len(all) != 6 || len(ready) != 6 {
			return fmt.Errorf("%d pods, %d ready", len(all), len(ready))
		}
		for _, p := range ready {
			if !slices.Contains(p.Spec.Containers[0].Env, corev1.EnvVar{Name: "RELEASE", Value: "2"}) {
				return fmt.Errorf("pod %s is not of release 2", p.Name)
			}
		}
		return nil
	})
	lead.host.heal()
	healed = true
	close(stop)
	clients.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("the VIP from every node during the partition and the rollout: %d of %d requests failed", failed, asked)
	if asked < 30 || failed > 0 {
		t.Fatalf("the pods must keep serving: %d of %d requests through the VIP failed: %s", failed, asked, strings.Join(failures, "; "))
	}
	c.waitFor("the healed server to follow", 30*time.Second, func() error {
		if l := leaderOf(lead.stack); l == "" || l == leadID {
			return fmt.Errorf("it says the leader is %q", l)
		}
		return nil
	})
	c.checkInvariant(60 * time.Second)
}
