package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

const volumesClaim = `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  annotations: {POLICY}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
`

const volumesDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: vol
spec:
  replicas: 1
  selector:
    matchLabels: {app: vol}
  template:
    metadata:
      labels: {app: vol}
      annotations: {rev: "REV"}
    spec:
      terminationGracePeriodSeconds: 1
      volumes:
      - name: data
        persistentVolumeClaim: {claimName: data}
      containers:
      - name: app
        image: localhost/bosun-hello:v1
        volumeMounts:
        - {name: data, mountPath: /data}
`

// TestVolumes runs a Deployment of one pod on a claim through the real
// stack: its data outlives a rollout and a server restart; pruning the
// claim (Retain, the default) keeps the data and the claim that comes
// back finds it; with Delete the data goes; a claim larger than the
// node's --volume-capacity leaves its pod Pending, saying why.
func TestVolumes(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	write := func(policy, rev string) {
		repo.write("claim.yaml", strings.Replace(volumesClaim, "{POLICY}", policy, 1))
		repo.write("vol.yaml", strings.Replace(volumesDeployment, "REV", rev, 1))
	}
	write("{}", "1")
	repo.commit("a Deployment on a claim")
	s := startStack(t, repo, "--volume-capacity", "2Gi")

	// volPod waits for a ready pod of the Deployment other than not.
	volPod := func(what, not string) corev1.Pod {
		t.Helper()
		var pod corev1.Pod
		s.waitFor(what, 120*time.Second, func() error {
			for _, p := range readyPods(s.pods(), "vol-") {
				if p.Name != not && p.DeletionTimestamp == nil {
					pod = p
					return nil
				}
			}
			return fmt.Errorf("no ready vol pod (but %s): %v", not, s.podMessages())
		})
		s.waitFor(pod.Name+" listening", 30*time.Second, func() error {
			_, err := httpGet("http://" + pod.Status.PodIP + ":8080/healthz")
			return err
		})
		return pod
	}
	read := func(pod corev1.Pod) (string, error) {
		return httpGet("http://" + pod.Status.PodIP + ":8080/file?path=/data/note")
	}
	pod := volPod("the pod on its claim", "")
	if code, body, err := httpPost("http://"+pod.Status.PodIP+":8080/write?path=/data/note", "persisted"); err != nil || code != 200 {
		t.Fatalf("write: %d %s %v", code, body, err)
	}
	out, err := s.cli("get", "pvc")
	if err != nil || !strings.Contains(out, "ACCESS MODES") {
		t.Fatalf("bosun get pvc: %v\n%s", err, out)
	}
	line := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1])
	if len(line) < 7 || line[1] != "data" || line[2] != "Bound" || !strings.HasPrefix(line[3], "pvc-") || line[4] != "1Gi" || line[5] != "RWO" || line[6] != "e2e-node" {
		t.Errorf("bosun get pvc:\n%s", out)
	}

	t.Run("a rollout's new pod reads the data", func(t *testing.T) {
		write("{}", "2")
		repo.commit("roll the Deployment")
		next := volPod("the rolled pod", pod.Name)
		s.waitFor("the data read back", 30*time.Second, func() error {
			got, err := read(next)
			if got != "persisted" {
				return fmt.Errorf("read %q, %v", got, err)
			}
			return nil
		})
		pod = next
	})

	t.Run("a server restart keeps the data", func(t *testing.T) {
		s.stop(syscall.SIGTERM)
		s.start()
		s.waitFor("the data after the restart", 120*time.Second, func() error {
			for _, p := range readyPods(s.pods(), "vol-") {
				if got, err := read(p); err == nil && got == "persisted" {
					return nil
				} else {
					return fmt.Errorf("%s reads %q, %v", p.Name, got, err)
				}
			}
			return fmt.Errorf("no ready pod: %v", s.podMessages())
		})
	})

	prune := func(msg string) {
		t.Helper()
		repo.git("rm", "-q", "claim.yaml", "vol.yaml")
		repo.commit(msg)
		s.waitFor("the claim and its pod gone", 60*time.Second, func() error {
			out, err := s.cli("get", "pvc")
			if err != nil {
				return err
			}
			if strings.Contains(out, "data") || len(withPrefix(s.pods(), "vol-")) > 0 {
				return fmt.Errorf("still there:\n%s", out)
			}
			return nil
		})
	}

	t.Run("pruned with Retain, the claim that comes back finds its data", func(t *testing.T) {
		prune("prune the claim (Retain)")
		write("{}", "3")
		repo.commit("the claim comes back")
		p := volPod("the pod of the claim that came back", "")
		if got, err := read(p); err != nil || got != "persisted" {
			t.Fatalf("after the claim came back: %q, %v", got, err)
		}
	})

	t.Run("pruned with Delete, the data goes", func(t *testing.T) {
		write("{bosun.dev/reclaim-policy: Delete}", "3")
		repo.commit("the claim says Delete")
		s.waitFor("the claim to say Delete", 30*time.Second, func() error {
			out, err := s.cli("get", "pvc", "data", "-o", "yaml")
			if err != nil || !strings.Contains(out, "bosun.dev/reclaim-policy: Delete") {
				return fmt.Errorf("%v\n%s", err, out)
			}
			return nil
		})
		// Pruned at once: the leader holds the delete back until the
		// node's record of the volume says Delete (it learns the policy on
		// its next pass over its volumes), then the node deletes the data.
		volumes := filepath.Join(s.dataDir, "node", "volumes", "default")
		if ents, err := os.ReadDir(volumes); err != nil || len(ents) != 1 {
			t.Fatalf("volumes on the node: %v, %v", ents, err)
		}
		prune("prune the claim (Delete)")
		// The node deletes the data once no pod uses it.
		s.waitFor("the data deleted on the node", 90*time.Second, func() error {
			ents, err := os.ReadDir(volumes)
			if err != nil || len(ents) != 0 {
				return fmt.Errorf("volumes on the node: %v, %v", ents, err)
			}
			return nil
		})
		write("{}", "4")
		repo.commit("a new claim of the name")
		p := volPod("the pod of the new claim", "")
		if got, _ := read(p); got == "persisted" || !strings.Contains(got, "no such file") {
			t.Errorf("the new claim reads %q: want an empty volume", got)
		}
	})

	t.Run("a claim larger than --volume-capacity leaves its pod Pending, saying why", func(t *testing.T) {
		big := strings.Replace(strings.Replace(strings.Replace(volumesClaim, "{POLICY}", "{}", 1), "1Gi", "5Gi", 1), "name: data", "name: big", 1)
		repo.write("big.yaml", big+`---
apiVersion: v1
kind: Pod
metadata:
  name: big
spec:
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: big}
  containers:
  - name: app
    image: localhost/bosun-hello:v1
`)
		repo.commit("a claim too large")
		s.waitFor("the pod Pending with the reason", 60*time.Second, func() error {
			msgs := s.podMessages()
			for _, p := range s.pods() {
				for _, c := range p.Status.Conditions {
					if p.Name == "big" && c.Type == corev1.PodScheduled && strings.Contains(c.Message, "1 node(s) did not have enough free storage") {
						return nil
					}
				}
			}
			out, _ := s.cli("get", "pvc")
			return fmt.Errorf("pods: %v\nclaims:\n%s", msgs, out)
		})
	})
}
