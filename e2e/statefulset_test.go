package e2e

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"

	"bosun/kube"
)

// stsPods maps the StatefulSet web's pods by name.
func stsPods(pods []corev1.Pod) map[string]corev1.Pod {
	out := map[string]corev1.Pod{}
	for _, p := range pods {
		if kube.OwnerOf(&p) == "StatefulSet/default/web" {
			out[p.Name] = p
		}
	}
	return out
}

// watchStatefulPods calls see with web's pods, as the API lists them,
// every interval until the returned stop is called (see runs on one
// goroutine; what it writes may be read once stop has returned).
func watchStatefulPods(s *stack, every time.Duration, see func(map[string]corev1.Pod)) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(every):
			}
			var list struct{ Items []corev1.Pod }
			if err := s.getJSON("/api/v1/pods", &list); err == nil {
				see(stsPods(list.Items))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func podUp(p corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && kube.PodReady(&p) && p.Status.PodIP != ""
}

// TestStatefulSet_orderedStableNamesPartitionedUpdateAndScaleDown runs
// examples/statefulset on the real stack: web-0..2 start in order (a
// watcher polling the API never sees web-i without web-0..i-1 ready),
// each ready pod resolves by its stable name in bosun's DNS, an update
// with partition 2 replaces only web-2, partition 0 finishes it, and a
// scale down to 1 removes web-2 before web-1.
func TestStatefulSet_orderedStableNamesPartitionedUpdateAndScaleDown(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.copyDir("../examples/statefulset")
	repo.commit("statefulset web: 3 replicas")
	s := startStack(t, repo)

	// The watcher: every 50 ms, the order the StatefulSet promises.
	var violations []string
	stop := watchStatefulPods(s, 50*time.Millisecond, func(pods map[string]corev1.Pod) {
		for i := 1; i < 3; i++ {
			if _, ok := pods[fmt.Sprintf("web-%d", i)]; !ok {
				continue
			}
			for j := range i {
				if p, ok := pods[fmt.Sprintf("web-%d", j)]; !ok || !kube.PodReady(&p) {
					violations = append(violations, fmt.Sprintf("web-%d exists while web-%d is not ready", i, j))
				}
			}
		}
	})
	s.waitFor("web-0, web-1, web-2 ready", 180*time.Second, func() error {
		pods := stsPods(s.pods())
		for i := range 3 {
			if p, ok := pods[fmt.Sprintf("web-%d", i)]; !ok || !podUp(p) {
				return fmt.Errorf("web-%d not up (%d pods)", i, len(pods))
			}
		}
		return nil
	})
	stop()
	if len(violations) > 0 {
		t.Fatalf("ordered start broken: %v", violations[:min(5, len(violations))])
	}

	first := stsPods(s.pods())
	t.Run("each pod resolves by its stable name", func(t *testing.T) {
		for name, p := range first {
			if p.Spec.Hostname != name || p.Spec.Subdomain != "web" {
				t.Errorf("%s: hostname %q subdomain %q", name, p.Spec.Hostname, p.Spec.Subdomain)
			}
			fqdn := name + ".web.default.svc.cluster.local."
			s.waitFor(fqdn, 30*time.Second, func() error {
				r, err := s.lookup(fqdn, mdns.TypeA)
				if err != nil {
					return err
				}
				if got := aRecords(r); !slices.Equal(got, []string{p.Status.PodIP}) {
					return fmt.Errorf("%s A %v, want [%s]", fqdn, got, p.Status.PodIP)
				}
				return nil
			})
		}
	})

	sts, err := os.ReadFile("../examples/statefulset/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	v2 := strings.Replace(string(sts), "bosun-hello:v1", "bosun-hello:v2", 1)
	withPartition := func(doc string, n int) string {
		return strings.Replace(doc, "  serviceName: web\n", fmt.Sprintf("  serviceName: web\n  updateStrategy:\n    rollingUpdate:\n      partition: %d\n", n), 1)
	}
	image := func(p corev1.Pod) string { return p.Spec.Containers[0].Image }

	t.Run("partition 2 updates only web-2", func(t *testing.T) {
		repo.write("web.yaml", withPartition(v2, 2))
		repo.commit("web: v2, partition 2")
		s.waitFor("web-2 on v2 and ready", 180*time.Second, func() error {
			p, ok := stsPods(s.pods())["web-2"]
			if !ok || image(p) != "localhost/bosun-hello:v2" || !podUp(p) {
				return fmt.Errorf("web-2 not up on v2 yet")
			}
			return nil
		})
		// Give the planner several passes: ordinals below the partition stay.
		time.Sleep(3 * time.Second)
		now := stsPods(s.pods())
		for _, name := range []string{"web-0", "web-1"} {
			if image(now[name]) != "localhost/bosun-hello:v1" || now[name].UID != first[name].UID {
				t.Errorf("%s touched by a partition-2 update: %s uid %s (was %s)", name, image(now[name]), now[name].UID, first[name].UID)
			}
		}
	})

	t.Run("partition 0 finishes the update", func(t *testing.T) {
		repo.write("web.yaml", withPartition(v2, 0))
		repo.commit("web: partition 0")
		s.waitFor("every pod on v2 and ready", 240*time.Second, func() error {
			pods := stsPods(s.pods())
			for i := range 3 {
				p, ok := pods[fmt.Sprintf("web-%d", i)]
				if !ok || image(p) != "localhost/bosun-hello:v2" || !podUp(p) {
					return fmt.Errorf("web-%d not up on v2", i)
				}
			}
			return nil
		})
		out, err := s.cli("get", "statefulsets", "web", "-o", "json")
		if err != nil {
			t.Fatalf("get statefulsets: %v\n%s", err, out)
		}
		if !strings.Contains(out, `"readyReplicas": 3`) && !strings.Contains(out, `"readyReplicas":3`) {
			t.Errorf("status does not say 3 ready: %s", out)
		}
	})

	t.Run("scale down removes the highest ordinal first", func(t *testing.T) {
		repo.write("web.yaml", strings.Replace(withPartition(v2, 0), "replicas: 3", "replicas: 1", 1))
		repo.commit("web: 1 replica")
		// A watcher polling the API every 20 ms: it must see web-2 gone
		// while web-0 and web-1 are still there (one at a time), and never
		// web-1 gone while web-2 is there.
		var sawOneAtATime, sawWeb1GoneFirst bool
		stop := watchStatefulPods(s, 20*time.Millisecond, func(pods map[string]corev1.Pod) {
			_, has0 := pods["web-0"]
			_, has1 := pods["web-1"]
			_, has2 := pods["web-2"]
			sawOneAtATime = sawOneAtATime || has0 && has1 && !has2
			sawWeb1GoneFirst = sawWeb1GoneFirst || !has1 && has2
		})
		s.waitFor("only web-0 left", 180*time.Second, func() error {
			pods := stsPods(s.pods())
			_, has1 := pods["web-1"]
			_, has2 := pods["web-2"]
			if has1 || has2 || len(pods) != 1 {
				return fmt.Errorf("%d pods", len(pods))
			}
			return nil
		})
		stop()
		if sawWeb1GoneFirst {
			t.Error("web-1 was removed while web-2 still existed")
		}
		if !sawOneAtATime {
			t.Error("never saw web-0 and web-1 without web-2: web-2 and web-1 went at once")
		}
	})
}

// TestStatefulSet_gitRevertRepairsABrokenUpdate: an update whose pod
// never gets ready (a readiness probe on a path the app does not serve)
// holds an OrderedReady StatefulSet; reverting it in Git replaces that
// pod with the good template again, with no kubectl delete pod.
func TestStatefulSet_gitRevertRepairsABrokenUpdate(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.copyDir("../examples/statefulset")
	good, err := os.ReadFile("../examples/statefulset/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	v1 := strings.Replace(string(good), "replicas: 3", "replicas: 2", 1)
	repo.write("web.yaml", v1)
	repo.commit("statefulset web: 2 replicas")
	s := startStack(t, repo)
	probe := func(p corev1.Pod) string { return p.Spec.Containers[0].ReadinessProbe.HTTPGet.Path }
	up := func(what, path string) {
		s.waitFor(what, 180*time.Second, func() error {
			pods := stsPods(s.pods())
			for i := range 2 {
				if p, ok := pods[fmt.Sprintf("web-%d", i)]; !ok || !podUp(p) || probe(p) != path {
					return fmt.Errorf("web-%d not up with probe %s", i, path)
				}
			}
			return nil
		})
	}
	up("web-0 and web-1 up", "/healthz")
	web0 := stsPods(s.pods())["web-0"].UID

	repo.write("web.yaml", strings.Replace(v1, "path: /healthz", "path: /broken", 1))
	repo.commit("web: a probe that never succeeds")
	s.waitFor("web-1 running the broken template", 120*time.Second, func() error {
		p, ok := stsPods(s.pods())["web-1"]
		if !ok || probe(p) != "/broken" || p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("web-1 not running the broken template yet")
		}
		return nil
	})
	time.Sleep(3 * time.Second)
	if p := stsPods(s.pods())["web-1"]; kube.PodReady(&p) {
		t.Fatal("web-1 ready with a probe the app does not serve")
	}

	repo.write("web.yaml", v1)
	repo.commit("Revert \"web: a probe that never succeeds\"")
	up("web-1 back on the good template after the revert", "/healthz")
	if got := stsPods(s.pods())["web-0"].UID; got != web0 {
		t.Errorf("web-0 replaced (uid %s, was %s)", got, web0)
	}
}
