package e2e

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/manifest"
)

// Values planted in the Secret of TestConfigChanges, one per revision; none
// may show anywhere but inside the pods.
const (
	plantedV1  = "pl4nted-v1-Qx8rT"
	plantedV2  = "pl4nted-v2-Wm3kZ"
	plantedBad = "pl4nted-bad-Jd7pL"
)

// configApp is a ConfigMap and a Secret, a Deployment that reads them
// through env and a secret volume, and a standalone Pod that reads the
// ConfigMap through envFrom.
func configApp(greeting, password string) string {
	return `apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  greeting: ` + greeting + `
---
apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: ` + password + `
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      volumes:
      - name: db
        secret: {secretName: db, defaultMode: 0400}
      containers:
      - name: web
        image: localhost/bosun-hello:v1
        env:
        - name: GREETING
          valueFrom:
            configMapKeyRef: {name: app-config, key: greeting}
        volumeMounts:
        - {name: db, mountPath: /etc/db, readOnly: true}
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: tool
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: tool
    image: localhost/bosun-hello:v1
    envFrom:
    - configMapRef: {name: app-config}
`
}

// TestConfigChanges: a commit that changes a ConfigMap and a Secret rolls
// the Deployment that uses them and restarts the Pod that does, and the new
// pods see the new values; `bosun plan` says which Secret values change
// without showing them; an immutable ConfigMap cannot change; no value of
// the Secret shows in any log, status, history, plan, metric or output.
func TestConfigChanges(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("app.yaml", configApp("hello", plantedV1))
	repo.commit("app reads its config")
	s := startStack(t, repo)
	var web []corev1.Pod
	var tool corev1.Pod
	s.waitFor("web and tool ready", 60*time.Second, func() error {
		web = readyPods(s.pods(), "web-")
		tools := readyPods(s.pods(), "tool")
		if len(web) != 2 || len(tools) != 1 {
			return fmt.Errorf("%d web, %d tool ready; %v", len(web), len(tools), s.podMessages())
		}
		tool = tools[0]
		return nil
	})
	see := func(p corev1.Pod, path, want string) error {
		body, err := httpGet("http://" + p.Status.PodIP + ":8080" + path)
		if err != nil || !strings.Contains(body, want) {
			return fmt.Errorf("%s%s: %v (want %q)", p.Name, path, err, want)
		}
		return nil
	}
	for _, p := range web {
		if err := see(p, "/env", "GREETING=hello\n"); err != nil {
			t.Fatal(err)
		}
		if err := see(p, "/file?path=/etc/db/password", plantedV1); err != nil {
			t.Fatal(err)
		}
	}
	if err := see(tool, "/env", "greeting=hello\n"); err != nil {
		t.Fatal(err)
	}
	hashOf := func(p corev1.Pod) string { return p.Annotations[manifest.AnnotationConfigHash] }
	if hashOf(web[0]) == "" || hashOf(tool) == "" {
		t.Fatalf("pods carry no configuration hash: %v, %v", web[0].Annotations, tool.Annotations)
	}

	var outputs []string // everything bosun showed, searched for the values at the end
	dir := t.TempDir()
	(&gitRepo{t: t, dir: dir}).write("app.yaml", configApp("bonjour", plantedV2))
	out, code := s.plan("--dir", dir)
	outputs = append(outputs, out)
	if code != 2 || !strings.Contains(out, "(secret value changed)") || !strings.Contains(out, "bonjour") {
		t.Errorf("plan --dir (exit %d) does not show the changes:\n%s", code, out)
	}

	repo.write("app.yaml", configApp("bonjour", plantedV2))
	repo.commit("greet in French, rotate the password")
	var rolled []corev1.Pod
	s.waitFor("web rolled out with the new configuration", 60*time.Second, func() error {
		rolled = readyPods(s.pods(), "web-")
		if len(rolled) != 2 {
			return fmt.Errorf("%d ready web pods", len(rolled))
		}
		for _, p := range rolled {
			if p.UID == web[0].UID || p.UID == web[1].UID || hashOf(p) == hashOf(web[0]) {
				return fmt.Errorf("pod %s is from before the change", p.Name)
			}
			if err := see(p, "/env", "GREETING=bonjour\n"); err != nil {
				return err
			}
			if err := see(p, "/file?path=/etc/db/password", plantedV2); err != nil {
				return err
			}
		}
		return nil
	})
	s.waitFor("tool restarted with the new configuration", 30*time.Second, func() error {
		tools := readyPods(s.pods(), "tool")
		if len(tools) != 1 || tools[0].UID == tool.UID {
			return fmt.Errorf("tool not restarted yet")
		}
		return see(tools[0], "/env", "greeting=bonjour\n")
	})

	// A bad Secret is refused, naming the key and never the value.
	repo.write("bad.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bad\nstringData:\n  not/a/key: "+plantedBad+"\n")
	bad := repo.commit("a secret with a bad key")
	s.waitFor("the bad Secret to be rejected", 20*time.Second, func() error {
		st, err := s.status()
		if err != nil || st.Sync.Seen == nil || st.Sync.Seen.Commit != bad || len(st.Sync.Errors) == 0 {
			return fmt.Errorf("not rejected yet: %v", err)
		}
		if want := `bad.yaml:6: stringData[not/a/key]: invalid key "not/a/key"`; !strings.HasPrefix(st.Sync.Errors[0], want) {
			t.Errorf("error %q, want it to start with %q", st.Sync.Errors[0], want)
		}
		return nil
	})
	repo.git("rm", "-q", "bad.yaml")

	// An immutable ConfigMap cannot change; nothing of that commit runs.
	immutable := strings.Replace(configApp("bonjour", plantedV2), "  name: app-config\n", "  name: app-config\nimmutable: true\n", 1)
	repo.write("app.yaml", immutable)
	repo.commit("freeze the config")
	s.waitFor("the frozen config applied", 20*time.Second, func() error {
		st, err := s.status()
		if err != nil || len(st.Sync.Errors) > 0 || st.Sync.Applied == nil || st.Sync.Applied.Message != "freeze the config" {
			return fmt.Errorf("sync %+v, %v", st.Sync, err)
		}
		return nil
	})
	repo.write("app.yaml", strings.Replace(immutable, "bonjour", "hallo", 1))
	thaw := repo.commit("change the frozen config")
	s.waitFor("the change of an immutable ConfigMap to be rejected", 20*time.Second, func() error {
		st, err := s.status()
		if err != nil || st.Sync.Seen == nil || st.Sync.Seen.Commit != thaw || len(st.Sync.Errors) != 1 {
			return fmt.Errorf("sync %+v, %v", st.Sync, err)
		}
		if want := "app.yaml:1: data: the ConfigMap is immutable: its data cannot change; give it a new name and point its users at it"; st.Sync.Errors[0] != want {
			t.Errorf("error %q, want %q", st.Sync.Errors[0], want)
		}
		return nil
	})
	for _, p := range readyPods(s.pods(), "web-") {
		if err := see(p, "/env", "GREETING=bonjour\n"); err != nil {
			t.Errorf("after the rejected change: %v", err)
		}
	}

	for _, args := range [][]string{
		{"status", "-o", "json"}, {"history", "-o", "json"}, {"get", "secrets", "-o", "yaml"}, {"get", "secrets"},
		{"get", "pods", "-o", "json"}, {"get", "deployments", "-o", "json"}, {"get", "configmaps", "-o", "json"},
	} {
		out, err := s.cli(args...)
		if err != nil {
			t.Errorf("bosun %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		outputs = append(outputs, out)
	}
	if out, _ := s.cli("get", "secrets", "db"); !strings.Contains(out, fmt.Sprintf("password(%dB)", len(plantedV2))) {
		t.Errorf("get secrets shows no key and size:\n%s", out)
	}
	outputs = append(outputs, s.metrics())
	s.logMu.Lock()
	outputs = append(outputs, s.log.String())
	s.logMu.Unlock()
	for _, v := range []string{plantedV1, plantedV2, plantedBad} {
		for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v))} {
			for i, out := range outputs {
				if strings.Contains(out, form) {
					t.Errorf("output %d shows a Secret value (%s)", i, form)
				}
			}
		}
	}
}
