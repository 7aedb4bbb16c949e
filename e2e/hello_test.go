package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
)

const webName = "web.default.svc.cluster.local"

// TestHello walks the user's story on the real stack: commit the hello
// example, see it run and resolve, scale it, drop its service, crash a
// container, push a broken commit, and kill bosun itself.
func TestHello(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.copyDir("../examples/hello")
	start := time.Now()
	repo.commit("hello: web and sidecar")
	s := startStack(t, repo)

	var web []corev1.Pod
	s.waitFor("3 web pods running with IPs", 60*time.Second, func() error {
		web = readyPods(s.pods(), "web-")
		if len(web) != 3 {
			return fmt.Errorf("%d ready web pods", len(web))
		}
		return nil
	})
	t.Logf("commit -> 3 web pods ready (server start included): %v", time.Since(start))

	var vip string
	t.Run("DNS answers the Service's virtual IP", func(t *testing.T) {
		vip = clusterIP(t, s, "default", "web")
		s.waitFor("DNS to answer "+vip, 10*time.Second, func() error {
			return wantA(s, webName, []string{vip})
		})
	})

	t.Run("get -o json is Kubernetes-shaped", func(t *testing.T) {
		out, err := s.cli("get", "pods", "-o", "json")
		if err != nil {
			t.Fatalf("bosun get pods -o json: %v\n%s", err, out)
		}
		var list struct {
			APIVersion, Kind string
			Items            []corev1.Pod
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil || list.Kind != "List" || list.APIVersion != "v1" {
			t.Fatalf("not a v1 List (%v):\n%s", err, out)
		}
		for _, p := range readyPods(list.Items, "web-") {
			if p.Kind != "Pod" || p.Status.PodIP == "" || p.Status.Phase != corev1.PodRunning || p.Spec.NodeName != "e2e-node" {
				t.Errorf("item %s: kind %q ip %q phase %q node %q", p.Name, p.Kind, p.Status.PodIP, p.Status.Phase, p.Spec.NodeName)
			}
		}
		out, err = s.cli("get", "pods", web[0].Name, "-o", "yaml")
		if err != nil || !strings.Contains(out, "kind: Pod\n") || !strings.Contains(out, "podIP: "+web[0].Status.PodIP) {
			t.Errorf("bosun get pods %s -o yaml: %v\n%s", web[0].Name, err, out)
		}
		out, err = s.cli("status", "-o", "json")
		if err != nil || !strings.Contains(out, `"leader": "e2e"`) {
			t.Errorf("bosun status -o json: %v\n%s", err, out)
		}
	})

	t.Run("every pod serves HTTP", func(t *testing.T) {
		for _, p := range web {
			body, err := httpGet("http://" + p.Status.PodIP + ":8080/")
			if err != nil {
				t.Fatalf("GET %s: %v", p.Name, err)
			}
			if want := "hello from " + p.Name + " version v1"; !strings.Contains(body, want) {
				t.Errorf("pod %s answered %q, want %q", p.Name, body, want)
			}
		}
	})

	t.Run("the sidecar reaches its app on localhost", func(t *testing.T) {
		var sc []corev1.Pod
		s.waitFor("the sidecar pod", 30*time.Second, func() error {
			sc = readyPods(s.pods(), "sidecar-demo")
			if len(sc) != 1 {
				return fmt.Errorf("%d ready sidecar pods", len(sc))
			}
			return nil
		})
		body, err := httpGet("http://" + sc[0].Status.PodIP + ":9090/upstream")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(body, "hello from sidecar-demo") {
			t.Errorf("sidecar /upstream answered %q, want the app's hello", body)
		}
	})

	t.Run("pods resolve cluster names through the bridge DNS", func(t *testing.T) {
		sc := readyPods(s.pods(), "sidecar-demo")
		if len(sc) != 1 {
			t.Fatalf("%d ready sidecar pods", len(sc))
		}
		// A short name: the pod's resolv.conf search path completes it.
		body, err := httpGet("http://" + sc[0].Status.PodIP + ":8080/resolve?name=web")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Fields(body), []string{vip}; !reflect.DeepEqual(got, want) {
			t.Errorf("pod resolved web to %q, want %v", body, want)
		}
	})

	t.Run("scale 3 -> 5", func(t *testing.T) {
		repo.write("web/deployment.yaml", strings.Replace(readFile(t, repo.dir+"/web/deployment.yaml"), "replicas: 3", "replicas: 5", 1))
		repo.commit("scale web to 5")
		s.waitFor("5 web pods", 30*time.Second, func() error {
			if n := len(readyPods(s.pods(), "web-")); n != 5 {
				return fmt.Errorf("%d ready web pods", n)
			}
			return nil
		})
		web = readyPods(s.pods(), "web-")
		// The virtual IP stays what it was, whatever the pods.
		if err := wantA(s, webName, []string{vip}); err != nil {
			t.Error(err)
		}
	})

	t.Run("deleting the service gives NXDOMAIN", func(t *testing.T) {
		repo.git("rm", "-q", "web/service.yaml")
		repo.commit("drop the web service")
		s.waitFor("NXDOMAIN", 15*time.Second, func() error {
			r, err := s.lookup(webName, mdns.TypeA)
			if err != nil {
				return err
			}
			if r.Rcode != mdns.RcodeNameError {
				return fmt.Errorf("rcode %s", mdns.RcodeToString[r.Rcode])
			}
			return nil
		})
	})

	t.Run("a killed container restarts", func(t *testing.T) {
		victim := web[0]
		killContainer(t, s.containerd, victim.Name, "web")
		s.waitFor("restart count 1", 30*time.Second, func() error {
			for _, p := range s.pods() {
				if p.Name != victim.Name {
					continue
				}
				if len(p.Status.ContainerStatuses) != 1 {
					return fmt.Errorf("%d container statuses", len(p.Status.ContainerStatuses))
				}
				cs := p.Status.ContainerStatuses[0]
				if cs.RestartCount != 1 || cs.State.Running == nil {
					return fmt.Errorf("restarts %d, running %v", cs.RestartCount, cs.State.Running != nil)
				}
				return nil
			}
			return fmt.Errorf("pod %s is gone", victim.Name)
		})
		out, err := s.cli("get", "pods", victim.Name)
		if err != nil || !strings.Contains(out, "Running") {
			t.Errorf("bosun get pods %s: %v\n%s", victim.Name, err, out)
		}
	})

	t.Run("an invalid commit is rejected and changes nothing", func(t *testing.T) {
		before := podIdentity(s.pods())
		repo.write("web/broken.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: Broken_Name\nspec:\n  ports:\n  - port: 99999\n")
		repo.commit("break it")
		s.waitFor("the rejection in status", 15*time.Second, func() error {
			st, err := s.status()
			if err != nil {
				return err
			}
			if len(st.Sync.Errors) == 0 {
				return fmt.Errorf("no errors in status yet")
			}
			return nil
		})
		st, _ := s.status()
		joined := strings.Join(st.Sync.Errors, "\n")
		if !strings.Contains(joined, "web/broken.yaml:4:") || !strings.Contains(joined, "web/broken.yaml:7:") {
			t.Errorf("status errors lack file:line:\n%s", joined)
		}
		out, err := s.cli("status")
		if err != nil || !strings.Contains(out, "web/broken.yaml:") {
			t.Errorf("bosun status: %v\n%s", err, out)
		}
		time.Sleep(2 * time.Second) // several reconcile passes
		if after := podIdentity(s.pods()); !reflect.DeepEqual(before, after) {
			t.Errorf("pods changed after a rejected commit:\nbefore %v\nafter  %v", before, after)
		}
	})

	t.Run("a killed bosun adopts its pods on restart", func(t *testing.T) {
		restartKeepsPods(t, s, syscall.SIGKILL, nil)
	})

	t.Run("a stopped bosun leaves its pods running and adopts them", func(t *testing.T) {
		// SIGTERM deregisters the node at once; the restarted leader must
		// not take that for a lost node.
		restartKeepsPods(t, s, syscall.SIGTERM, func() {
			if body, err := httpGet("http://" + web[0].Status.PodIP + ":8080/"); err != nil || !strings.Contains(body, "hello") {
				t.Errorf("pod %s while bosun is stopped: %q, %v", web[0].Name, body, err)
			}
		})
	})
}

// restartKeepsPods stops bosun with sig, runs whileDown, starts it again
// and checks that every pod and container is the same as before.
func restartKeepsPods(t *testing.T, s *stack, sig syscall.Signal, whileDown func()) {
	before := podIdentity(s.pods())
	containersBefore := containerIDs(t, s.containerd)
	s.stop(sig)
	if whileDown != nil {
		whileDown()
	}
	s.start()
	s.waitFor("the restarted server to report every pod ready", 60*time.Second, func() error {
		if n := len(readyPods(s.pods(), "")); n != len(before) {
			return fmt.Errorf("%d of %d pods ready", n, len(before))
		}
		return nil
	})
	time.Sleep(2 * time.Second) // several reconcile passes
	if after := podIdentity(s.pods()); !reflect.DeepEqual(before, after) {
		t.Errorf("pods changed across the restart (%v):\nbefore %v\nafter  %v", sig, before, after)
	}
	if after := containerIDs(t, s.containerd); !reflect.DeepEqual(containersBefore, after) {
		t.Errorf("containers changed across the restart (%v):\nbefore %v\nafter  %v", sig, containersBefore, after)
	}
}

// podIdentity maps each pod to its UID, node and IP.
func podIdentity(pods []corev1.Pod) map[string]string {
	out := map[string]string{}
	for _, p := range pods {
		out[p.Name] = fmt.Sprintf("%s %s %s", p.UID, p.Spec.NodeName, p.Status.PodIP)
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func containerIDs(t *testing.T, address string) []string {
	t.Helper()
	c, err := client.New(address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := namespaces.WithNamespace(context.Background(), "bosun")
	ctrs, err := c.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ctr := range ctrs {
		ids = append(ids, ctr.ID())
	}
	sort.Strings(ids)
	return ids
}

// killContainer SIGKILLs the process of one container of a pod, found by
// the labels the agent puts on it.
func killContainer(t *testing.T, address, pod, container string) {
	t.Helper()
	c, err := client.New(address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := namespaces.WithNamespace(context.Background(), "bosun")
	ctrs, err := c.Containers(ctx, fmt.Sprintf(`labels."bosun.dev/pod-name"==%s,labels."bosun.dev/container"==%s`, pod, container))
	if err != nil || len(ctrs) != 1 {
		t.Fatalf("find container %s/%s: %d found, %v", pod, container, len(ctrs), err)
	}
	task, err := ctrs[0].Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(int(task.Pid()), syscall.SIGKILL); err != nil {
		t.Fatalf("kill pid %d: %v", task.Pid(), err)
	}
}
