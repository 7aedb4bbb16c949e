package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// otherDeployment is a small Deployment of n replicas named other.
func otherDeployment(n int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: other
spec:
  replicas: %d
  selector:
    matchLabels: {app: other}
  template:
    metadata:
      labels: {app: other}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: other
        image: localhost/bosun-hello:v1
        env:
        - {name: PORT, value: "8080"}
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 1
`, n)
}

// nodeRow is a node's row of `bosun get nodes`.
func nodeRow(s *stack, name string) (map[string]string, error) {
	rows, err := s.table("nodes")
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if r["NAME"] == name {
			return r, nil
		}
	}
	return nil, fmt.Errorf("node %s not listed: %v", name, rows)
}

// podsOnNode are the pods of prefix bound to node.
func podsOnNode(pods []corev1.Pod, prefix, node string) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range withPrefix(pods, prefix) {
		if p.Spec.NodeName == node {
			out = append(out, p)
		}
	}
	return out
}

// TestNodeOps: two nodes (the server's own, e2e-node, and node-b run by
// `bosun agent`) and a Deployment of 4 replicas (maxSurge 1,
// maxUnavailable 1) spread over both.
//   - `bosun node drain node-b` moves its pods to e2e-node as a rolling
//     update would: sampled every 50 ms, never fewer than 3 pods ready nor
//     more than 5 pods; the CLI shows the pods left and ends once the node
//     is empty; node-b lists Ready,SchedulingDisabled.
//   - A drain that cannot finish in its --timeout exits non-zero, saying
//     so; uncordon stops it.
//   - Cordon keeps new pods off (a new Deployment lands on the other node);
//     uncordon makes the node schedulable again.
//   - An agent stopped: its node lists NotReady with since when, and its
//     pods are replaced after the grace period; the node's record says so.
func TestNodeOps(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("README.md", "nothing to run yet\n")
	repo.commit("empty")
	s := startStack(t, repo, "--node-grace-period", "8s")
	b := startAgent(t, s, "node-b")
	s.waitFor("two nodes Ready", 30*time.Second, func() error {
		for _, n := range []string{"e2e-node", "node-b"} {
			if r, err := nodeRow(s, n); err != nil || r["STATUS"] != "Ready" {
				return fmt.Errorf("%s: %v %v", n, r, err)
			}
		}
		return nil
	})
	repo.write("web/deployment.yaml", rolloutDeployment("localhost/bosun-hello:v1"))
	repo.write("web/service.yaml", webService)
	repo.commit("web on two nodes")
	waitAllOn(s, "localhost/bosun-hello:v1", "v1", 90*time.Second)
	if on := podsOnNode(s.pods(), "web-", "node-b"); len(on) != 2 {
		t.Fatalf("%d web pods on node-b, want 2 (spread)", len(on))
	}

	t.Run("drain keeps 3 ready and empties the node", func(t *testing.T) {
		var mu sync.Mutex
		minReady, maxPods, samples := 4, 4, 0
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				var list struct{ Items []corev1.Pod }
				if err := s.getJSON("/api/v1/pods", &list); err != nil {
					continue
				}
				all := withPrefix(list.Items, "web-")
				ready := readyPods(all, "web-")
				mu.Lock()
				minReady, maxPods, samples = min(minReady, len(ready)), max(maxPods, len(all)), samples+1
				mu.Unlock()
			}
		}()
		start := time.Now()
		out, err := s.cli("node", "drain", "node-b", "--timeout", "2m")
		took := time.Since(start)
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatalf("bosun node drain: %v\n%s", err, out)
		}
		for _, want := range []string{"node/node-b cordoned", "pods left (deployment default/web: 2)", "node/node-b drained"} {
			if !strings.Contains(out, want) {
				t.Errorf("drain output lacks %q:\n%s", want, out)
			}
		}
		t.Logf("drain of node-b: %s, %d samples, min ready %d, max pods %d\n%s", took.Round(time.Millisecond), samples, minReady, maxPods, out)
		if minReady < 3 {
			t.Errorf("during the drain only %d pods were ready; maxUnavailable 1 allows no fewer than 3", minReady)
		}
		if maxPods > 5 {
			t.Errorf("during the drain %d pods existed; maxSurge 1 allows no more than 5", maxPods)
		}
		pods := s.pods()
		if on := podsOnNode(pods, "web-", "node-b"); len(on) != 0 {
			t.Errorf("%d web pods still on node-b", len(on))
		}
		if ready := podsOnNode(readyPods(pods, "web-"), "web-", "e2e-node"); len(ready) != 4 {
			t.Errorf("%d ready web pods on e2e-node, want 4", len(ready))
		}
		if r, err := nodeRow(s, "node-b"); err != nil || r["STATUS"] != "Ready,SchedulingDisabled" {
			t.Errorf("node-b after the drain: %v %v", r, err)
		}
		if m, err := s.getText("/metrics"); err != nil || !strings.Contains(m, "bosun_node_drain_evictions_total 2") ||
			!strings.Contains(m, `bosun_node_drains_total{event="completed"} 1`) {
			t.Errorf("metrics after the drain lack the evictions or the completed drain: %v", err)
		}
	})

	t.Run("cordon keeps new pods off, uncordon lets them on", func(t *testing.T) {
		if out, err := s.cli("node", "uncordon", "node-b"); err != nil || !strings.Contains(out, "node/node-b uncordoned") {
			t.Fatalf("uncordon: %v\n%s", err, out)
		}
		if out, err := s.cli("node", "cordon", "e2e-node"); err != nil || !strings.Contains(out, "node/e2e-node cordoned") {
			t.Fatalf("cordon: %v\n%s", err, out)
		}
		repo.write("other/deployment.yaml", otherDeployment(2))
		repo.commit("other")
		s.waitFor("other's 2 pods ready on node-b", 60*time.Second, func() error {
			pods := s.pods()
			if on := podsOnNode(pods, "other-", "e2e-node"); len(on) > 0 {
				return fmt.Errorf("pod %s placed on the cordoned e2e-node", on[0].Name)
			}
			if ready := podsOnNode(readyPods(pods, "other-"), "other-", "node-b"); len(ready) != 2 {
				return fmt.Errorf("%d ready on node-b", len(ready))
			}
			return nil
		})
		if r, err := nodeRow(s, "e2e-node"); err != nil || r["STATUS"] != "Ready,SchedulingDisabled" {
			t.Errorf("e2e-node cordoned: %v %v", r, err)
		}
		// The web pods stay where they are: cordon is not drain.
		if ready := podsOnNode(readyPods(s.pods(), "web-"), "web-", "e2e-node"); len(ready) != 4 {
			t.Errorf("%d web pods left on cordoned e2e-node, want 4", len(ready))
		}
		if out, err := s.cli("node", "uncordon", "e2e-node"); err != nil {
			t.Fatalf("uncordon: %v\n%s", err, out)
		}
	})

	t.Run("a drain past its timeout fails clearly", func(t *testing.T) {
		out, err := s.cli("node", "drain", "e2e-node", "--timeout", "1ms")
		if err == nil || !strings.Contains(out, "drain of node e2e-node timed out after 1ms") || !strings.Contains(out, "deployment default/web: 4") {
			t.Errorf("drain with a 1ms timeout: %v\n%s", err, out)
		}
		// Uncordon stops the drain.
		if out, err := s.cli("node", "uncordon", "e2e-node"); err != nil || !strings.Contains(out, "uncordoned") {
			t.Fatalf("uncordon: %v\n%s", err, out)
		}
		s.waitFor("web settled again", 60*time.Second, func() error {
			if all, ready := withPrefix(s.pods(), "web-"), readyPods(s.pods(), "web-"); len(all) != 4 || len(ready) != 4 {
				return fmt.Errorf("%d web pods, %d ready", len(all), len(ready))
			}
			return nil
		})
	})

	t.Run("a stopped agent's node is NotReady, with since when", func(t *testing.T) {
		// other's 2 pods run on node-b (e2e-node was cordoned when they
		// were placed).
		s.waitFor("other's pods ready", 60*time.Second, func() error {
			if ready := readyPods(s.pods(), "other-"); len(ready) != 2 {
				return fmt.Errorf("%d of other's pods ready", len(ready))
			}
			return nil
		})
		onB := len(podsOnNode(s.pods(), "other-", "node-b")) + len(podsOnNode(s.pods(), "web-", "node-b"))
		stopped := time.Now()
		b.cmd.Process.Signal(syscall.SIGTERM)
		<-b.exited
		s.waitFor("node-b NotReady", 30*time.Second, func() error {
			r, err := nodeRow(s, "node-b")
			if err != nil {
				return err
			}
			if r["STATUS"] != "NotReady" || r["SINCE"] == "-" || r["SINCE"] == "" {
				return fmt.Errorf("node-b: %v", r)
			}
			return nil
		})
		t.Logf("node-b NotReady %v after its agent stopped (%d pods bound to it)", time.Since(stopped).Round(time.Millisecond), onB)
		var list struct{ Items []corev1.Node }
		if err := s.getJSON("/api/v1/nodes/node-b", &list); err != nil || len(list.Items) != 1 {
			t.Fatalf("GET node-b: %v", err)
		}
		cond := list.Items[0].Status.Conditions
		raw, _ := json.Marshal(cond)
		if !strings.Contains(string(raw), "NodeLeaseExpired") || !strings.Contains(string(raw), "lease expired") {
			t.Errorf("node-b's conditions do not say why: %s", raw)
		}
		if onB == 0 {
			t.Fatal("no pod bound to node-b: nothing to replace")
		}
		{
			s.waitFor("node-b's pods replaced on e2e-node, and the record saying so", 60*time.Second, func() error {
				pods := s.pods()
				if n := len(podsOnNode(pods, "other-", "node-b")) + len(podsOnNode(pods, "web-", "node-b")); n > 0 {
					return fmt.Errorf("%d pods still bound to node-b", n)
				}
				if len(readyPods(pods, "other-")) != 2 || len(readyPods(pods, "web-")) != 4 {
					return fmt.Errorf("other %d, web %d ready", len(readyPods(pods, "other-")), len(readyPods(pods, "web-")))
				}
				return nil
			})
		}
	})
}
