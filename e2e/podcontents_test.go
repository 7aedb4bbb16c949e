package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// e2eSecret is planted in a Secret; no log, status or output may show it.
const e2eSecret = "e2e-pl4nted-s3cret-7d1"

const contentsConfig = `apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  greeting: hello
  level: "3"
---
apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: ` + e2eSecret + `
`

// contentsPods: "contents" reads the ConfigMap through env, envFrom and a
// file, the Secret through a file of mode 0400, shares an emptyDir with its
// sidecar and writes to an allowed hostPath; "secure" runs as uid 1000 on
// a read-only root; "nocaps" runs as root without any capability.
const contentsPods = `apiVersion: v1
kind: Pod
metadata:
  name: contents
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: config
    configMap:
      name: app-config
      items: [{key: greeting, path: greeting.txt}]
  - name: db
    secret:
      secretName: db
      defaultMode: 0400
  - name: shared
    emptyDir: {}
  - name: host
    hostPath: {path: HOSTDIR, type: Directory}
  containers:
  - name: app
    image: localhost/bosun-hello:v1
    env:
    - name: GREETING
      valueFrom:
        configMapKeyRef: {name: app-config, key: greeting}
    envFrom:
    - prefix: CFG_
      configMapRef: {name: app-config}
    volumeMounts:
    - {name: config, mountPath: /etc/config}
    - {name: db, mountPath: /etc/db}
    - {name: shared, mountPath: /shared}
    - {name: host, mountPath: /host}
  - name: sidecar
    image: localhost/bosun-hello:v1
    env: [{name: PORT, value: "9090"}]
    volumeMounts:
    - {name: shared, mountPath: /from-app, readOnly: true}
---
apiVersion: v1
kind: Pod
metadata:
  name: secure
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: localhost/bosun-hello:v1
    securityContext:
      runAsUser: 1000
      runAsNonRoot: true
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
---
apiVersion: v1
kind: Pod
metadata:
  name: nocaps
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: localhost/bosun-hello:v1
    securityContext:
      capabilities:
        drop: [ALL]
`

func httpPost(url, body string) (int, string, error) {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestPodContents: pods given ConfigMaps, Secrets, volumes and security
// settings through Git run as they say on the real stack; what the operator
// did not allow (privileged, a hostPath elsewhere) is refused naming the
// flag; the Secret's value shows nowhere.
func TestPodContents(t *testing.T) {
	t.Parallel()
	hostDir := t.TempDir()
	repo := newGitRepo(t)
	repo.write("config/config.yaml", contentsConfig)
	repo.write("pods/pods.yaml", strings.Replace(contentsPods, "HOSTDIR", hostDir, 1))
	start := time.Now()
	repo.commit("pods given config, volumes and security settings")
	s := startStack(t, repo, "--allow-host-path", hostDir)

	byName := map[string]corev1.Pod{}
	s.waitFor("contents, secure and nocaps ready", 90*time.Second, func() error {
		byName = map[string]corev1.Pod{}
		for _, p := range readyPods(s.pods(), "") {
			byName[p.Name] = p
		}
		for _, n := range []string{"contents", "secure", "nocaps"} {
			if _, ok := byName[n]; !ok {
				return fmt.Errorf("%s not ready; status: %+v", n, s.podMessages())
			}
		}
		return nil
	})
	t.Logf("commit -> 3 pods ready (server start included): %s", time.Since(start).Round(time.Millisecond))
	url := func(pod string, port int, path string) string {
		return fmt.Sprintf("http://%s:%d%s", byName[pod].Status.PodIP, port, path)
	}
	get := func(u string) string {
		t.Helper()
		body, err := httpGet(u)
		if err != nil {
			t.Errorf("GET %s: %v", u, err)
		}
		return body
	}

	t.Run("ConfigMap through env, envFrom and a file; Secret through a 0400 file", func(t *testing.T) {
		env := get(url("contents", 8080, "/env"))
		for _, want := range []string{"GREETING=hello\n", "CFG_greeting=hello\n", "CFG_level=3\n"} {
			if !strings.Contains(env, want) {
				t.Errorf("env lacks %q:\n%s", want, env)
			}
		}
		if got := get(url("contents", 8080, "/file?path=/etc/config/greeting.txt")); got != "hello" {
			t.Errorf("configMap file = %q", got)
		}
		if got := get(url("contents", 8080, "/file?path=/etc/db/password")); got != e2eSecret {
			t.Errorf("secret file content differs (%d bytes)", len(got))
		}
		if got := get(url("contents", 8080, "/stat?path=/etc/db/password")); !strings.HasPrefix(got, "mode 0400 uid 0 gid 0") {
			t.Errorf("secret file: %s", got)
		}
	})

	t.Run("an emptyDir is shared by two containers; an allowed hostPath is the node's", func(t *testing.T) {
		if code, body, err := httpPost(url("contents", 8080, "/write?path=/shared/note"), "from app"); err != nil || code != 200 {
			t.Fatalf("write: %d %s %v", code, body, err)
		}
		s.waitFor("the sidecar to read the app's file", 10*time.Second, func() error {
			got, err := httpGet(url("contents", 9090, "/file?path=/from-app/note"))
			if err != nil || got != "from app" {
				return fmt.Errorf("the sidecar reads %q, %v", got, err)
			}
			return nil
		})
		if code, body, err := httpPost(url("contents", 8080, "/write?path=/host/from-pod"), "kept"); err != nil || code != 200 {
			t.Fatalf("write to hostPath: %d %s %v", code, body, err)
		}
		if b, err := os.ReadFile(filepath.Join(hostDir, "from-pod")); err != nil || string(b) != "kept" {
			t.Errorf("on the node: %q %v", b, err)
		}
	})

	t.Run("runAsUser 1000, a read-only root, the default capabilities and drop ALL", func(t *testing.T) {
		self := get(url("secure", 8080, "/self"))
		for _, want := range []string{"Uid:\t1000\t1000\t1000\t1000", "NoNewPrivs:\t1", "Seccomp:\t2"} {
			if !strings.Contains(self, want) {
				t.Errorf("secure /self lacks %q:\n%s", want, self)
			}
		}
		code, body, err := httpPost(url("secure", 8080, "/write?path=/tmp/x"), "no")
		if err != nil || code == 200 || !strings.Contains(body, "read-only file system") {
			t.Errorf("write on a read-only root: %d %q %v", code, body, err)
		}
		if self := get(url("contents", 8080, "/self")); !strings.Contains(self, "CapEff:\t00000000a80425fb") {
			t.Errorf("default capability set (containerd's):\n%s", self)
		}
		self = get(url("nocaps", 8080, "/self"))
		for _, want := range []string{"Uid:\t0\t0\t0\t0", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000"} {
			if !strings.Contains(self, want) {
				t.Errorf("drop ALL: /self lacks %q:\n%s", want, self)
			}
		}
	})

	t.Run("what the operator did not allow is refused naming the flag", func(t *testing.T) {
		for _, tc := range []struct{ file, yaml, want string }{
			{"pods/priv.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: priv\nspec:\n  containers:\n  - name: app\n    image: localhost/bosun-hello:v1\n    securityContext:\n      privileged: true\n",
				"pods/priv.yaml:10: spec.containers[0].securityContext.privileged: not allowed: the operator has not given --allow-privileged"},
			{"pods/etc.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etc\nspec:\n  volumes:\n  - name: etc\n    hostPath: {path: /etc}\n  containers:\n  - name: app\n    image: localhost/bosun-hello:v1\n",
				`pods/etc.yaml:8: spec.volumes[0].hostPath.path: "/etc" is not under a directory the operator allows (--allow-host-path: ` + hostDir + ")"},
		} {
			repo.write(tc.file, tc.yaml)
			bad := repo.commit("refused: " + tc.file)
			s.waitFor("the revision to be rejected", 30*time.Second, func() error {
				st, err := s.status()
				if err != nil {
					return err
				}
				if st.Sync.Seen == nil || st.Sync.Seen.Commit != bad {
					return fmt.Errorf("not seen yet")
				}
				if !strings.Contains(strings.Join(st.Sync.Errors, "\n"), tc.want) {
					return fmt.Errorf("errors %q, want %q", st.Sync.Errors, tc.want)
				}
				if st.Sync.Applied == nil || st.Sync.Applied.Commit == bad {
					return fmt.Errorf("applied %+v, want the last good revision", st.Sync.Applied)
				}
				return nil
			})
			repo.git("rm", "-q", tc.file)
			repo.commit("drop " + tc.file)
		}
		for _, p := range s.pods() {
			if p.Name == "priv" || p.Name == "etc" {
				t.Errorf("refused pod %s exists", p.Name)
			}
		}
	})

	t.Run("the config and security examples run as their READMEs say", func(t *testing.T) {
		repo.copyDir("../examples/config")
		b, err := os.ReadFile("../examples/security/locked-down.yaml")
		if err != nil {
			t.Fatal(err)
		}
		repo.write("locked-down.yaml", string(b))
		repo.commit("the config and security examples")
		var web, locked []corev1.Pod
		s.waitFor("the examples' pods ready", 90*time.Second, func() error {
			pods := s.pods()
			web, locked = readyPods(pods, "web-"), readyPods(pods, "locked-down-")
			if len(web) != 2 || len(locked) != 1 {
				return fmt.Errorf("%d web, %d locked-down ready; %v", len(web), len(locked), s.podMessages())
			}
			return nil
		})
		env := get("http://" + web[0].Status.PodIP + ":8080/env")
		for _, want := range []string{"GREETING=hello from a ConfigMap\n", "CONFIG_log-level=info\n", "TIER=front\n", "NODE=e2e-node\n", "CPU_MILLIS=500\n"} {
			if !strings.Contains(env, want) {
				t.Errorf("web env lacks %q:\n%s", want, env)
			}
		}
		if strings.Contains(env, "FEATURE_FLAGS") || !strings.Contains(env, "CONFIG_app.properties=cache.size=64\n") {
			t.Errorf("web env has what it should not:\n%s", env)
		}
		for path, want := range map[string]string{
			"/etc/pod/memory-limit-mi": "64", "/etc/pod/db/username": "web", "/etc/pod/greeting": "hello from a ConfigMap",
			"/etc/web/app.properties": "cache.size=64\nfeature.banner=on\n",
		} {
			if got := get("http://" + web[0].Status.PodIP + ":8080/file?path=" + path); got != want {
				t.Errorf("web %s = %q, want %q", path, got, want)
			}
		}
		if got := get("http://" + web[0].Status.PodIP + ":8080/stat?path=/etc/db/password"); !strings.HasPrefix(got, "mode 0400") {
			t.Errorf("web secret file: %s", got)
		}
		self := get("http://" + locked[0].Status.PodIP + ":80/self")
		for _, want := range []string{"Uid:\t1000\t1000\t1000\t1000", "Gid:\t3000\t3000\t3000\t3000", "Groups:\t2000 3000", "CapEff:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"} {
			if !strings.Contains(self, want) {
				t.Errorf("locked-down /self lacks %q:\n%s", want, self)
			}
		}
		if code, _, err := httpPost("http://"+locked[0].Status.PodIP+":80/write?path=/tmp/ok", "yes"); err != nil || code != 200 {
			t.Errorf("write to the /tmp emptyDir: %d %v", code, err)
		}
		s.waitFor("refuses-root to wait with CreateContainerConfigError", 30*time.Second, func() error {
			for _, p := range s.pods() {
				if p.Name != "refuses-root" || len(p.Status.ContainerStatuses) == 0 {
					continue
				}
				if w := p.Status.ContainerStatuses[0].State.Waiting; w != nil && w.Reason == "CreateContainerConfigError" &&
					strings.Contains(w.Message, "container has runAsNonRoot and image will run as root") {
					return nil
				}
				return fmt.Errorf("refuses-root: %+v", p.Status.ContainerStatuses[0].State)
			}
			return fmt.Errorf("no refuses-root status")
		})
	})

	t.Run("the Secret's value shows in no log, status or output", func(t *testing.T) {
		var outputs []string
		for _, args := range [][]string{
			{"status", "-o", "json"}, {"get", "pods", "-o", "json"}, {"get", "secrets", "-o", "json"},
			{"get", "secrets"}, {"history"}, {"logs", "contents", "-c", "app"},
		} {
			out, err := s.cli(args...)
			if err != nil {
				t.Errorf("bosun %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			outputs = append(outputs, out)
		}
		s.logMu.Lock()
		outputs = append(outputs, s.log.String())
		s.logMu.Unlock()
		for i, out := range outputs {
			if strings.Contains(out, e2eSecret) {
				t.Errorf("output %d shows the Secret's value", i)
			}
		}
	})
}

// podMessages summarises why pods are not ready, for waitFor's errors.
func (s *stack) podMessages() []string {
	var out []string
	for _, p := range s.pods() {
		msg := p.Name + ": " + string(p.Status.Phase)
		if p.Status.Message != "" {
			msg += " " + p.Status.Message
		}
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil {
				msg += fmt.Sprintf(" %s=%s(%s)", cs.Name, w.Reason, w.Message)
			}
		}
		out = append(out, msg)
	}
	return out
}
