package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestStatefulSet_eachPodKeepsItsData runs examples/statefulset (three
// pods, each with its claim data-web-<i> mounted at /data) on the real
// stack: every pod writes its name to its claim; after `bosun delete pod`
// of all three (each comes back under its name, a new incarnation) and
// after a rolling update to v2, each reads its own name back, and the
// three claims are Bound.
func TestStatefulSet_eachPodKeepsItsData(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.copyDir("../examples/statefulset")
	repo.commit("statefulset web with claims")
	s := startStack(t, repo)

	names := []string{"web-0", "web-1", "web-2"}
	// allUp waits until web-0..2 are up, on image when it is given, and
	// none is the incarnation of before (when given).
	allUp := func(what, image string, before map[string]corev1.Pod) map[string]corev1.Pod {
		var pods map[string]corev1.Pod
		s.waitFor(what, 240*time.Second, func() error {
			pods = stsPods(s.pods())
			for _, n := range names {
				p, ok := pods[n]
				switch {
				case !ok || !podUp(p):
					return fmt.Errorf("%s not up (%d pods)", n, len(pods))
				case image != "" && p.Spec.Containers[0].Image != image:
					return fmt.Errorf("%s runs %s, not %s", n, p.Spec.Containers[0].Image, image)
				case before != nil && p.UID == before[n].UID:
					return fmt.Errorf("%s is still uid %s", n, p.UID)
				}
			}
			return nil
		})
		return pods
	}
	readBack := func(t *testing.T, pods map[string]corev1.Pod) {
		t.Helper()
		for _, n := range names {
			url := "http://" + pods[n].Status.PodIP + ":8080/file?path=/data/id"
			s.waitFor(n+" reads its data", 30*time.Second, func() error {
				got, err := httpGet(url)
				if err != nil {
					return err
				}
				if got != n {
					return fmt.Errorf("%s reads %q from its claim, want %q", n, got, n)
				}
				return nil
			})
		}
	}

	first := allUp("web-0..2 ready", "", nil)
	for _, n := range names {
		if code, body, err := httpPost("http://"+first[n].Status.PodIP+":8080/write?path=/data/id", n); err != nil || code != 200 {
			t.Fatalf("%s writes to its claim: %d %s %v", n, code, body, err)
		}
	}
	readBack(t, first)

	t.Run("claims are bound, one per pod", func(t *testing.T) {
		s.waitFor("data-web-0..2 Bound", 30*time.Second, func() error {
			out, err := s.cli("get", "pvc")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			for _, n := range names {
				if !strings.Contains(out, "data-"+n) {
					return fmt.Errorf("no claim data-%s:\n%s", n, out)
				}
			}
			if c := strings.Count(out, "Bound"); c != 3 {
				return fmt.Errorf("%d Bound claims:\n%s", c, out)
			}
			return nil
		})
	})

	t.Run("deleted pods come back under their names with their data", func(t *testing.T) {
		for _, n := range names {
			out, err := s.cli("delete", "pod", n)
			if err != nil || !strings.Contains(out, "StatefulSet/web starts it again") {
				t.Fatalf("bosun delete pod %s: %v\n%s", n, err, out)
			}
		}
		readBack(t, allUp("web-0..2 back as new incarnations", "", first))
	})

	t.Run("a rolling update keeps each pod's data", func(t *testing.T) {
		b, err := os.ReadFile("../examples/statefulset/web.yaml")
		if err != nil {
			t.Fatal(err)
		}
		repo.write("web.yaml", strings.Replace(string(b), "bosun-hello:v1", "bosun-hello:v2", 1))
		repo.commit("web: v2")
		readBack(t, allUp("web-0..2 ready on v2", "localhost/bosun-hello:v2", nil))
	})
}
