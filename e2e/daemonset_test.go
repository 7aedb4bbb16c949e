package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/kube"
)

// daemonSetYAML is a log-shipper-like DaemonSet of the hello app; extra is
// put under the pod spec (tolerations).
func daemonSetYAML(name, image, extra string) string {
	return `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: ` + name + `
spec:
  selector:
    matchLabels: {app: ` + name + `}
  template:
    metadata:
      labels: {app: ` + name + `}
    spec:
      terminationGracePeriodSeconds: 2
` + extra + `      containers:
      - name: shipper
        image: ` + image + `
        env:
        - {name: PORT, value: "8080"}
        ports:
        - {name: http, containerPort: 8080}
        resources:
          requests: {cpu: 10m, memory: 16Mi}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
          failureThreshold: 3
`
}

const tolerateDedicated = `      tolerations:
      - {key: dedicated, operator: Exists, effect: NoSchedule}
`

// daemonPods returns, by node, the pods of the DaemonSet name.
func daemonPods(pods []corev1.Pod, name string) map[string][]corev1.Pod {
	out := map[string][]corev1.Pod{}
	for _, p := range pods {
		if kube.OwnerOf(&p) == "DaemonSet/default/"+name {
			out[p.Spec.NodeName] = append(out[p.Spec.NodeName], p)
		}
	}
	return out
}

// dsReadyOn checks the DaemonSet name runs exactly one Ready pod of image on
// each of want and none elsewhere.
func dsReadyOn(pods []corev1.Pod, name, image string, want ...string) error {
	by := daemonPods(pods, name)
	for _, n := range want {
		ps := by[n]
		if len(ps) != 1 || !kube.PodReady(&ps[0]) || ps[0].Spec.Containers[0].Image != image {
			return fmt.Errorf("%s on %s: %d pods (want one Ready pod of %s); pods by node: %v", name, n, len(ps), image, summarizeDaemon(by))
		}
	}
	for n := range by {
		if !slices.Contains(want, n) {
			return fmt.Errorf("%s has pods on %q, want only on %v; pods by node: %v", name, n, want, summarizeDaemon(by))
		}
	}
	return nil
}

func summarizeDaemon(by map[string][]corev1.Pod) string {
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(by)) {
		for _, p := range by[n] {
			parts = append(parts, fmt.Sprintf("%s:%s(%s ready=%v)", dsDash(n), p.Name, p.Spec.Containers[0].Image, kube.PodReady(&p)))
		}
	}
	return strings.Join(parts, " ")
}

func dsDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// TestDaemonSet_everyEligibleNodeJoinsAndRollsNodeByNode, on a cluster of
// machines: a DaemonSet runs a pod on each of two nodes, none on a node
// tainted NoSchedule (a second DaemonSet that tolerates the taint runs
// there too), and one on a third node that joins later; `bosun get ds`
// shows desired, current, ready and up-to-date; a template change rolls
// node by node: never more than one node (maxUnavailable 1) without a
// ready pod, the other DaemonSet untouched.
func TestDaemonSet_everyEligibleNodeJoinsAndRollsNodeByNode(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("README.md", "nothing yet\n")
	repo.commit("empty")
	c := newCluster(t, repo, clusterOpts{agents: 4})
	s := c.api()

	// node-3 joins later: stopped and forgotten before the DaemonSets
	// exist. node-2 is tainted dedicated=logs:NoSchedule.
	late := c.agent("node-3")
	late.kill(syscall.SIGTERM)
	// An agent stopped with SIGTERM may have deregistered already (404):
	// either way the node is gone once its grace ends.
	if out, err := s.cli("node", "delete", "node-3", "--force"); err != nil && !strings.Contains(out, "404") {
		t.Fatalf("bosun node delete node-3: %v\n%s", err, out)
	}
	tainted := c.agent("node-2")
	tainted.args = append(tainted.args, "--taints", "dedicated=logs:NoSchedule")
	if err := tainted.restart(); err != nil {
		t.Fatal(err)
	}
	c.waitFor("node-2 tainted and node-3 gone", 60*time.Second, func() error {
		ns, err := c.nodes()
		if err != nil {
			return err
		}
		seen := map[string]corev1.Node{}
		for _, n := range ns {
			seen[n.Name] = n
		}
		if _, ok := seen["node-3"]; ok {
			return fmt.Errorf("node-3 still registered")
		}
		if n, ok := seen["node-2"]; !ok || !nodeReady(n) || len(n.Spec.Taints) == 0 {
			return fmt.Errorf("node-2: %+v", n.Spec.Taints)
		}
		return nil
	})

	v1, v2 := "localhost/bosun-hello:v1", "localhost/bosun-hello:v2"
	repo.write("logging/shipper.yaml", daemonSetYAML("shipper", v1, ""))
	repo.write("logging/tolerant.yaml", daemonSetYAML("tolerant", v1, tolerateDedicated))
	repo.commit("logging: two DaemonSets")
	c.waitFor("shipper on node-0 and node-1, tolerant on node-0..2", 120*time.Second, func() error {
		pods := c.pods()
		return dsFirstErr(dsReadyOn(pods, "shipper", v1, "node-0", "node-1"), dsReadyOn(pods, "tolerant", v1, "node-0", "node-1", "node-2"))
	})

	if err := late.start(); err != nil {
		t.Fatal(err)
	}
	c.waitFor("node-3 joins and runs both DaemonSets", 120*time.Second, func() error {
		pods := c.pods()
		return dsFirstErr(dsReadyOn(pods, "shipper", v1, "node-0", "node-1", "node-3"),
			dsReadyOn(pods, "tolerant", v1, "node-0", "node-1", "node-2", "node-3"))
	})
	c.waitFor("bosun get ds shows 3 desired, current, ready, up-to-date, available", 30*time.Second, func() error {
		out, err := s.cli("get", "ds")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 7 && f[1] == "shipper" {
				if strings.Join(f[2:7], " ") != "3 3 3 3 3" {
					return fmt.Errorf("get ds:\n%s", out)
				}
				return nil
			}
		}
		return fmt.Errorf("no shipper line:\n%s", out)
	})
	tolerantBefore := map[string]string{}
	for n, ps := range daemonPods(c.pods(), "tolerant") {
		tolerantBefore[n] = ps[0].Name
	}

	// A template change rolls node by node.
	repo.write("logging/shipper.yaml", daemonSetYAML("shipper", v2, ""))
	repo.commit("shipper: v2")
	eligible := []string{"node-0", "node-1", "node-3"}
	// A node whose old pod failed its probe on its own (a loaded machine)
	// is down by no choice of the rollout, which may then replace that
	// pod at once, as Kubernetes' does: it does not count against
	// maxUnavailable until it has a ready pod again.
	worst, updatedSeen, fellOnItsOwn := 0, map[string]time.Time{}, map[string]bool{}
	deadline := time.Now().Add(180 * time.Second)
	for {
		pods := c.pods()
		by := daemonPods(pods, "shipper")
		down := 0
		for _, n := range eligible {
			ready := false
			for _, p := range by[n] {
				ready = ready || kube.PodReady(&p)
				if p.Spec.Containers[0].Image == v1 && !kube.PodReady(&p) && p.Status.Phase == corev1.PodRunning {
					fellOnItsOwn[n] = true
				}
				if p.Spec.Containers[0].Image == v2 && kube.PodReady(&p) {
					if _, ok := updatedSeen[n]; !ok {
						updatedSeen[n] = time.Now()
					}
				}
			}
			if ready {
				fellOnItsOwn[n] = false
			} else if !fellOnItsOwn[n] {
				down++
			}
		}
		worst = max(worst, down)
		if dsReadyOn(pods, "shipper", v2, eligible...) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollout to v2 not done after 180s: %v", summarizeDaemon(by))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if worst > 1 {
		t.Errorf("%d nodes at once had no ready shipper pod during the rollout, maxUnavailable is 1", worst)
	}
	t.Logf("nodes updated at %v (at most %d node(s) without a ready pod at once by the rollout's choice)", updatedSeen, worst)
	for n, name := range tolerantBefore {
		if ps := daemonPods(c.pods(), "tolerant")[n]; len(ps) != 1 || ps[0].Name != name {
			t.Errorf("tolerant's pod on %s changed during shipper's rollout: was %s, now %v", n, name, ps)
		}
	}
}

func dsFirstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
