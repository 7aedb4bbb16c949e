package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"

	"bosun/api"
)

// appIn is a Deployment of the hello app and its Service in a namespace.
func appIn(namespace string, replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: %[1]s
spec:
  replicas: %[2]d
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: localhost/bosun-hello:v1
        env:
        - {name: POD_NAME, value: %[1]s}
        ports:
        - {name: http, containerPort: 8080}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: %[1]s
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 8080}
`, namespace, replicas)
}

// TestManifests_refusedFieldChangesNothing: a commit that sets a field bosun
// does not carry out is rejected whole, with the file and line, and nothing
// of it runs, not even its valid parts.
func TestManifests_refusedFieldChangesNothing(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("web.yaml", appIn("default", 2))
	repo.write("config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: blue\n")
	repo.commit("web and its settings")
	s := startStack(t, repo)
	var before []corev1.Pod
	s.waitFor("2 ready web pods", 60*time.Second, func() error {
		if before = readyPods(s.pods(), "web-"); len(before) != 2 {
			return fmt.Errorf("%d ready", len(before))
		}
		return nil
	})

	// A valid change (the ConfigMap, a third replica) beside a refused field.
	repo.write("config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: green\n")
	repo.write("web.yaml", strings.Replace(strings.Replace(appIn("default", 3), "      terminationGracePeriodSeconds: 1\n",
		"      terminationGracePeriodSeconds: 1\n      hostIPC: true\n", 1), "        ports:", "        tty: true\n        ports:", 1))
	bad := repo.commit("web shares the host's IPC")
	var st *api.Status
	s.waitFor("the commit to be rejected", 20*time.Second, func() error {
		var err error
		if st, err = s.status(); err != nil {
			return err
		}
		if st.Sync.Seen == nil || st.Sync.Seen.Commit != bad || len(st.Sync.Errors) == 0 {
			return fmt.Errorf("sync: %+v", st.Sync)
		}
		return nil
	})
	want := []string{
		"web.yaml:15: spec.template.spec.hostIPC: not supported by bosun",
		"web.yaml:21: spec.template.spec.containers[0].tty: not supported by bosun",
	}
	if !slices.Equal(st.Sync.Errors, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(st.Sync.Errors, "\n"), strings.Join(want, "\n"))
	}
	if out, _ := s.cli("status"); !strings.Contains(out, want[0]) || !strings.Contains(out, want[1]) {
		t.Errorf("bosun status does not show the errors:\n%s", out)
	}
	time.Sleep(2 * time.Second) // room for anything wrongly applied to show
	after := readyPods(s.pods(), "web-")
	if len(after) != 2 || after[0].UID != before[0].UID || after[1].UID != before[1].UID {
		t.Errorf("pods changed: before %v, after %v", names(before), names(after))
	}
	var cms struct{ Items []corev1.ConfigMap }
	if err := s.getJSON("/api/v1/configmaps/settings", &cms); err != nil || len(cms.Items) != 1 || cms.Items[0].Data["color"] != "blue" {
		t.Errorf("the ConfigMap of the rejected commit was applied: %+v, %v", cms.Items, err)
	}
}

// TestNamespaces: the same names in two namespaces are two apps, with
// their own DNS names, pods and pruning; a Namespace object carries labels,
// and a namespace no manifest declares works too.
func TestNamespaces(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("team-a/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n  labels: {owner: alice}\n")
	repo.write("team-a/web.yaml", appIn("team-a", 1))
	repo.write("team-b/web.yaml", appIn("team-b", 2))
	repo.commit("two teams")
	s := startStack(t, repo)
	byNS := map[string][]corev1.Pod{}
	s.waitFor("web in both namespaces", 60*time.Second, func() error {
		byNS = map[string][]corev1.Pod{}
		for _, p := range readyPods(s.pods(), "web-") {
			byNS[p.Namespace] = append(byNS[p.Namespace], p)
		}
		if len(byNS["team-a"]) != 1 || len(byNS["team-b"]) != 2 {
			return fmt.Errorf("ready pods: %d in team-a, %d in team-b", len(byNS["team-a"]), len(byNS["team-b"]))
		}
		return nil
	})
	for _, ns := range []string{"team-a", "team-b"} {
		name := "web." + ns + ".svc.cluster.local"
		vip := clusterIP(t, s, ns, "web")
		s.waitFor("DNS of "+name, 10*time.Second, func() error {
			return wantA(s, name, []string{vip})
		})
		body, err := httpGet("http://" + byNS[ns][0].Status.PodIP + ":8080/")
		if err != nil || !strings.Contains(body, "hello from "+ns) {
			t.Errorf("a pod of %s answers %q, %v", ns, body, err)
		}
	}
	out, err := s.cli("get", "namespaces")
	if err != nil {
		t.Fatalf("bosun get namespaces: %v\n%s", err, out)
	}
	for _, want := range []string{"team-a", "team-b"} {
		if !strings.Contains(out, want) {
			t.Errorf("bosun get namespaces lacks %s:\n%s", want, out)
		}
	}
	var nss struct{ Items []corev1.Namespace }
	if err := s.getJSON("/api/v1/namespaces", &nss); err != nil {
		t.Fatal(err)
	}
	found := map[string]corev1.Namespace{}
	for _, ns := range nss.Items {
		found[ns.Name] = ns
	}
	if a := found["team-a"]; a.Labels["owner"] != "alice" || a.Annotations[api.AnnotationImplied] != "" {
		t.Errorf("team-a: %+v", a.ObjectMeta)
	}
	if b := found["team-b"]; b.Annotations[api.AnnotationImplied] != "true" {
		t.Errorf("team-b should be implied: %+v", b.ObjectMeta)
	}

	// Removing team-b's app prunes it there only.
	repo.git("rm", "-q", "-r", "team-b")
	repo.commit("team-b leaves")
	s.waitFor("team-b's pods gone", 30*time.Second, func() error {
		for _, p := range s.pods() {
			if p.Namespace == "team-b" {
				return fmt.Errorf("pod %s/%s still there", p.Namespace, p.Name)
			}
		}
		return nil
	})
	if left := readyPods(s.pods(), "web-"); len(left) != 1 || left[0].UID != byNS["team-a"][0].UID {
		t.Errorf("team-a's pod was touched: %v", names(left))
	}
	r, err := s.lookup("web.team-b.svc.cluster.local", mdns.TypeA)
	if err != nil || r.Rcode != mdns.RcodeNameError {
		t.Errorf("web.team-b after prune: %v, %v; want NXDOMAIN", r, err)
	}
	raw, _ := json.Marshal(nss)
	t.Logf("namespaces: %s", raw)
}

func names(pods []corev1.Pod) []string {
	out := make([]string, len(pods))
	for i, p := range pods {
		out[i] = p.Namespace + "/" + p.Name
	}
	return out
}
