package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// atRestApp is a Secret and a pod that reads it through a file and an
// environment variable.
const atRestApp = `apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: PLANTED
---
apiVersion: v1
kind: Pod
metadata:
  name: READER
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: db
    secret:
      secretName: db
  containers:
  - name: app
    image: localhost/bosun-hello:v1
    env:
    - name: PASSWORD
      valueFrom:
        secretKeyRef: {name: db, key: password}
    volumeMounts:
    - {name: db, mountPath: /etc/db, readOnly: true}
`

// leaks are the forms of a planted value no output may show: itself and
// its base64 (a Secret's data is base64 in JSON).
func leaks(planted string) []string {
	b := []byte(planted)
	return []string{planted, base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b), base64.URLEncoding.EncodeToString(b)}
}

// TestSecretsAtRest: a Secret's value is encrypted in etcd (etcdctl shows
// an AES-GCM envelope, never the value nor its base64, for the Secret,
// the last good revision and the cluster key; etcd's files on disk hold
// neither), while the pod that mounts it reads it; bosun get secrets shows
// keys and sizes only; after bosun secrets rotate-key and a restart, the
// leader rewrites every value with the new key, the old key is removed,
// and a new pod still gets the value; a server without the key file
// refuses to start, naming the key it needs.
func TestSecretsAtRest(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("etcdctl"); err != nil {
		t.Skip("etcdctl (Debian etcd-client) is not installed")
	}
	planted := "planted-secret-" + rand.Text()[:12]
	app := func(reader string) string {
		return strings.NewReplacer("PLANTED", planted, "READER", reader).Replace(atRestApp)
	}
	repo := newGitRepo(t)
	repo.write("app.yaml", app("reader-1"))
	repo.commit("a Secret and a pod that reads it")
	start := time.Now()
	s := startStack(t, repo)
	var outputs []string // everything bosun printed, checked at the end
	keepLog := func() {
		s.logMu.Lock()
		outputs = append(outputs, s.log.String())
		s.logMu.Unlock()
	}
	defer func() {
		keepLog()
		for i, out := range outputs {
			for _, bad := range leaks(planted) {
				if strings.Contains(out, bad) {
					t.Errorf("output %d shows the Secret's value (or its base64 %q)", i, bad)
				}
			}
		}
	}()

	reads := func(reader string) {
		t.Helper()
		s.waitFor(reader+" ready and reading the Secret", 90*time.Second, func() error {
			pods := readyPods(s.pods(), reader)
			if len(pods) != 1 {
				return fmt.Errorf("%s not ready: %v", reader, s.podMessages())
			}
			ip := pods[0].Status.PodIP
			if got, err := httpGet("http://" + ip + ":8080/file?path=/etc/db/password"); err != nil || got != planted {
				return fmt.Errorf("secret file: %d bytes, %v", len(got), err)
			}
			if env, err := httpGet("http://" + ip + ":8080/env"); err != nil || !strings.Contains(env, "PASSWORD="+planted+"\n") {
				return fmt.Errorf("env lacks PASSWORD: %v", err)
			}
			return nil
		})
	}
	reads("reader-1")
	t.Logf("commit -> pod reading the encrypted Secret (server start included): %s", time.Since(start).Round(time.Millisecond))

	keyFile := filepath.Join(s.dataDir, "secrets.key")
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: %v, %v; want one of mode 0600", keyFile, fi, err)
	}
	oldKey := primaryKey(t, s)

	t.Run("etcd holds envelopes, never the value", func(t *testing.T) {
		byKey := s.checkEtcdEncrypted(t, planted)
		if len(byKey) != 1 || byKey[oldKey] != 3 {
			t.Errorf("encrypted values by key = %v, want 3 (the Secret, the desired state, the cluster key) with %s", byKey, oldKey)
		}
		s.checkEtcdFiles(t, planted)
	})

	t.Run("bosun get secrets shows keys and sizes, never values", func(t *testing.T) {
		for _, args := range [][]string{{"get", "secrets"}, {"get", "secret", "db"}, {"get", "secrets", "-o", "json"},
			{"get", "secrets", "db", "-o", "yaml"}, {"get", "secrets", "-o", "wide"}} {
			out, err := s.cli(args...)
			if err != nil {
				t.Errorf("bosun %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			outputs = append(outputs, out)
			if !strings.Contains(out, "password") || !strings.Contains(out, fmt.Sprint(len(planted))) {
				t.Errorf("bosun %s does not show the key password and its size %d:\n%s", strings.Join(args, " "), len(planted), out)
			}
		}
		for _, args := range [][]string{{"status", "-o", "json"}, {"status"}, {"history", "-o", "json"}, {"get", "pods", "-o", "json"},
			{"plan", "--ref", "main", "-o", "json"}} {
			out, _ := s.cli(args...)
			outputs = append(outputs, out)
		}
		var raw json.RawMessage
		for _, path := range []string{"/api/v1/secrets", "/api/v1/secrets/db", "/api/v1/status", "/api/v1/history"} {
			if err := s.getJSON(path, &raw); err != nil {
				t.Errorf("GET %s: %v", path, err)
			}
			outputs = append(outputs, string(raw))
		}
	})

	t.Run("rotation: a new key, every value rewritten, the old key removed", func(t *testing.T) {
		keepLog()
		s.stop(syscall.SIGTERM)
		out, err := exec.Command(bosun(t), "secrets", "rotate-key", "--data-dir", s.dataDir).CombinedOutput()
		if err != nil {
			t.Fatalf("bosun secrets rotate-key: %v\n%s", err, out)
		}
		outputs = append(outputs, string(out))
		restarted := time.Now()
		s.start()
		newKey := primaryKey(t, s)
		if newKey == oldKey {
			t.Fatalf("rotate-key left %s primary", oldKey)
		}
		s.waitFor("the leader to re-encrypt with "+newKey, 60*time.Second, func() error {
			s.logMu.Lock()
			defer s.logMu.Unlock()
			if !strings.Contains(s.log.String(), "every value holding Secret data is encrypted with the primary key") {
				return fmt.Errorf("no log of the re-encryption yet")
			}
			return nil
		})
		t.Logf("restart with a new key -> every value re-encrypted: %s", time.Since(restarted).Round(time.Millisecond))
		if byKey := s.checkEtcdEncrypted(t, planted); len(byKey) != 1 || byKey[newKey] != 3 {
			t.Errorf("encrypted values by key = %v, want all 3 with the new key %s", byKey, newKey)
		}
		reads("reader-1") // adopted, untouched

		keepLog()
		s.stop(syscall.SIGTERM)
		// Without the key file a server refuses to start, and names the
		// key it needs; it creates no key of its own.
		if err := os.Rename(keyFile, keyFile+".away"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		out, err = exec.CommandContext(ctx, bosun(t), s.args...).CombinedOutput()
		cancel()
		outputs = append(outputs, string(out))
		if err == nil || !strings.Contains(string(out), newKey) || !strings.Contains(string(out), "does not exist") {
			t.Errorf("server without its key file: %v; want a refusal naming key %s:\n%s", err, newKey, out)
		}
		if _, err := os.Stat(keyFile); err == nil {
			t.Error("the refused server created a key file")
		}
		if err := os.Rename(keyFile+".away", keyFile); err != nil {
			t.Fatal(err)
		}

		out, err = exec.Command(bosun(t), "secrets", "remove-key", "--data-dir", s.dataDir, oldKey).CombinedOutput()
		if err != nil {
			t.Fatalf("bosun secrets remove-key: %v\n%s", err, out)
		}
		s.start()
		if keys := keyNames(t, s); len(keys) != 1 || keys[0] != newKey {
			t.Fatalf("keys after remove-key = %v, want [%s]", keys, newKey)
		}
		// A new pod: its node reads the Secret from etcd with the new key
		// alone.
		repo.write("app.yaml", app("reader-2"))
		repo.commit("a new reader")
		reads("reader-2")
	})
}

// primaryKey is the name of the stack's primary encryption key.
func primaryKey(t *testing.T, s *stack) string {
	t.Helper()
	return keyNames(t, s)[0]
}

// keyNames lists the stack's key file with bosun secrets keys.
func keyNames(t *testing.T, s *stack) []string {
	t.Helper()
	out, err := exec.Command(bosun(t), "secrets", "keys", "--data-dir", s.dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("bosun secrets keys: %v\n%s", err, out)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, _, _ := strings.Cut(line, "\t")
		names = append(names, name)
	}
	return names
}

// checkEtcdEncrypted reads everything under /bosun/ with etcdctl: neither
// the plain text (the default output) nor the values (JSON, each decoded)
// show the planted value or its base64, and every value that holds Secret
// data is an AES-GCM envelope. It returns how many values each key
// encrypts.
func (s *stack) checkEtcdEncrypted(t *testing.T, planted string) map[string]int {
	t.Helper()
	etcdctl := func(args ...string) []byte {
		cmd := exec.Command("etcdctl", append([]string{"--endpoints", "http://" + s.etcdAddr}, args...)...)
		cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("etcdctl %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	text := etcdctl("get", "--prefix", "/bosun/")
	var resp struct {
		Kvs []struct{ Key, Value []byte } // etcdctl's JSON encodes bytes in base64
	}
	if err := json.Unmarshal(etcdctl("get", "--prefix", "/bosun/", "-w", "json"), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) < 5 {
		t.Fatalf("etcdctl shows %d keys under /bosun/", len(resp.Kvs))
	}
	for _, bad := range leaks(planted) {
		if bytes.Contains(text, []byte(bad)) {
			t.Errorf("etcdctl get --prefix /bosun/ shows the Secret's value (or its base64 %q)", bad)
		}
	}
	byKey := map[string]int{}
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		for _, bad := range leaks(planted) {
			if bytes.Contains(kv.Value, []byte(bad)) {
				t.Errorf("%s holds the Secret's value (or its base64 %q)", key, bad)
			}
		}
		if !strings.HasPrefix(key, "/bosun/secrets/") && key != "/bosun/desired" && key != "/bosun/clusterkey" {
			continue
		}
		rest, ok := bytes.CutPrefix(kv.Value, []byte("k8s:enc:aesgcm:v1:"))
		name, _, found := bytes.Cut(rest, []byte(":"))
		if !ok || !found {
			t.Errorf("%s is stored as %q..., not an AES-GCM envelope", key, kv.Value[:min(len(kv.Value), 24)])
			continue
		}
		byKey[string(name)]++
	}
	return byKey
}

// checkEtcdFiles reads etcd's files (its database, write-ahead log and
// snapshots): the value was never written there in plain text.
func (s *stack) checkEtcdFiles(t *testing.T, planted string) {
	t.Helper()
	dir := filepath.Join(s.dataDir, "etcd")
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, bad := range leaks(planted) {
			if bytes.Contains(b, []byte(bad)) {
				t.Errorf("etcd's file %s holds the Secret's value (or its base64 %q)", path, bad)
			}
		}
		return nil
	})
	if err != nil || files < 2 {
		t.Errorf("read %d of etcd's files: %v", files, err)
	}
}

// TestSecretsAtRest_remoteAgent: a node run by `bosun agent` reads an
// encrypted Secret with the servers' key file (--encryption-key-file);
// without it, the pod stays pending with a message that names the
// Secret's key in etcd and the encryption key it needs, never the value.
func TestSecretsAtRest_remoteAgent(t *testing.T) {
	t.Parallel()
	planted := "planted-secret-" + rand.Text()[:12]
	onNode := func(reader, node string) string {
		return strings.NewReplacer("PLANTED", planted, "READER", reader).Replace(atRestApp) +
			"  nodeSelector: {kubernetes.io/hostname: " + node + "}\n"
	}
	repo := newGitRepo(t)
	repo.write("app.yaml", onNode("keyless", "atrest-keyless")+"---\n"+strings.SplitN(onNode("keyed", "atrest-keyed"), "---\n", 2)[1])
	repo.commit("readers on two agents")
	s := startStack(t, repo)
	key := primaryKey(t, s)
	// The agent's copy of the servers' key file.
	keyCopy := filepath.Join(t.TempDir(), "secrets.key")
	b, err := os.ReadFile(filepath.Join(s.dataDir, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyCopy, b, 0o600); err != nil {
		t.Fatal(err)
	}
	startAgent(t, s, "atrest-keyless")
	startAgentWith(t, "atrest-keyed", "--etcd-endpoints", "http://"+s.etcdAddr, "--node-ip", "127.0.0.1", "--listen", "127.0.0.1:0",
		"--encryption-key-file", keyCopy)

	// The pod's volumes cannot be set up: its status says why.
	s.waitFor("keyless pending, naming the key it needs", 120*time.Second, func() error {
		for _, p := range s.pods() {
			if p.Name != "keyless" {
				continue
			}
			if msg := p.Status.Message; strings.Contains(msg, "/bosun/secrets/default/db") && strings.Contains(msg, "key "+key) {
				for _, bad := range leaks(planted) {
					if strings.Contains(msg, bad) {
						t.Errorf("the pod's message shows the value: %q", msg)
					}
				}
				t.Logf("keyless: %s: %s", p.Status.Phase, msg)
				return nil
			}
			return fmt.Errorf("keyless: %s %q", p.Status.Phase, p.Status.Message)
		}
		return fmt.Errorf("no keyless status: %v", s.podMessages())
	})
	s.waitFor("keyed reading the Secret", 120*time.Second, func() error {
		pods := readyPods(s.pods(), "keyed")
		if len(pods) != 1 {
			return fmt.Errorf("keyed not ready: %v", s.podMessages())
		}
		if got, err := httpGet("http://" + pods[0].Status.PodIP + ":8080/file?path=/etc/db/password"); err != nil || got != planted {
			return fmt.Errorf("secret file: %d bytes, %v", len(got), err)
		}
		return nil
	})
}
