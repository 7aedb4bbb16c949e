package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	corev1 "k8s.io/api/core/v1"

	"bosun/sopsfile/sopstest"
)

// sopsSecret is the Secret of TestSOPS, in plain text; sops encrypts its
// stringData in the repository.
func sopsSecret(password string) string {
	return `# The database password, encrypted with sops for the cluster's age key.
apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: ` + password + `
  url: postgres://app:` + password + `@db:5432/app
`
}

// sopsWeb reads the Secret through a secret volume and an env variable.
const sopsWeb = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
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
        - name: DB_URL
          valueFrom:
            secretKeyRef: {name: db, key: url}
        volumeMounts:
        - {name: db, mountPath: /etc/db, readOnly: true}
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 1
`

func plantedSecret(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "planted-secret-" + hex.EncodeToString(b)
}

// TestSOPS: a Secret encrypted with sops for an age key is decrypted by
// the leader, in memory, and reaches the pod (file and environment) and
// nowhere else: not the server's log, status, history, plan, the API, nor
// the revision on disk. Restarted without the key, the server keeps
// running what it runs, and rejects a new revision of the encrypted file
// with its file and line; `bosun validate` checks the rest without the key
// and everything with it.
func TestSOPS(t *testing.T) {
	t.Parallel()
	id := sopstest.NewIdentity(t)
	keyFile := sopstest.KeyFile(t, t.TempDir(), id)
	v1, v2, v3 := plantedSecret(t), plantedSecret(t), plantedSecret(t)
	encrypt := func(password string) string {
		return string(sopstest.Encrypt(t, []byte(sopsSecret(password)), sopstest.Options{EncryptedRegex: "^(data|stringData)$"}, id.Recipient))
	}

	repo := newGitRepo(t)
	repo.write("db.sops.yaml", encrypt(v1))
	repo.write("web.yaml", sopsWeb)
	repo.commit("web reads an encrypted Secret")
	if out := repo.git("show", "HEAD:db.sops.yaml"); strings.Contains(out, v1) || !strings.Contains(out, "ENC[AES256_GCM") {
		t.Fatalf("the Secret is not encrypted in Git:\n%s", out)
	}
	s := startStack(t, repo, "--sops-age-key-file", keyFile)

	var web corev1.Pod
	s.waitFor("web ready", 60*time.Second, func() error {
		pods := readyPods(s.pods(), "web-")
		if len(pods) != 1 {
			return fmt.Errorf("%d web ready; %v", len(pods), s.podMessages())
		}
		web = pods[0]
		return nil
	})
	see := func(p corev1.Pod, path, want string) error {
		body, err := httpGet("http://" + p.Status.PodIP + ":8080" + path)
		if err != nil || !strings.Contains(body, want) {
			return fmt.Errorf("%s%s: %v (want %q)", p.Name, path, err, want)
		}
		return nil
	}
	if err := see(web, "/file?path=/etc/db/password", v1); err != nil {
		t.Fatal(err)
	}
	if err := see(web, "/env", "DB_URL=postgres://app:"+v1+"@db:5432/app\n"); err != nil {
		t.Fatal(err)
	}

	var outputs []string // everything bosun showed, searched for the values at the end
	// plan --dir: the server decrypts the files the CLI sends with its
	// key and shows which value changes, not the value.
	dir := t.TempDir()
	(&gitRepo{t: t, dir: dir}).write("db.sops.yaml", encrypt(v2))
	(&gitRepo{t: t, dir: dir}).write("web.yaml", sopsWeb)
	out, code := s.plan("--dir", dir)
	outputs = append(outputs, out)
	if code != 2 || !strings.Contains(out, "(secret value changed)") {
		t.Errorf("plan --dir (exit %d) does not show the change:\n%s", code, out)
	}

	// A new value rolls the Deployment out.
	repo.write("db.sops.yaml", encrypt(v2))
	second := repo.commit("rotate the database password")
	s.waitFor("web rolled out with the new password", 60*time.Second, func() error {
		pods := readyPods(s.pods(), "web-")
		if len(pods) != 1 || pods[0].UID == web.UID {
			return fmt.Errorf("%d web ready, old one still there; %v", len(pods), s.podMessages())
		}
		web = pods[0]
		return see(web, "/file?path=/etc/db/password", v2)
	})
	out, code = s.plan("--ref", "main")
	outputs = append(outputs, out)
	if code != 0 {
		t.Errorf("plan --ref main (exit %d) of the applied revision:\n%s", code, out)
	}
	outputs = append(outputs, s.everything()...)

	// Without the key: what runs keeps running; a new revision of the
	// encrypted file is rejected, naming the file and the document's line.
	s.stop(syscall.SIGTERM)
	s.args = slices.DeleteFunc(slices.Clone(s.args), func(a string) bool { return a == "--sops-age-key-file" || a == keyFile })
	s.start()
	repo.write("db.sops.yaml", encrypt(v3))
	third := repo.commit("rotate again, to a server without the key")
	s.waitFor("the revision rejected", 30*time.Second, func() error {
		st, err := s.status()
		if err != nil || st.Sync.Seen == nil || st.Sync.Seen.Commit != third || len(st.Sync.Errors) == 0 {
			return fmt.Errorf("not rejected yet: %v", err)
		}
		want := "db.sops.yaml:2: encrypted with SOPS, and no key was given to decrypt it (--sops-age-key-file)"
		if len(st.Sync.Errors) != 1 || st.Sync.Errors[0] != want {
			t.Errorf("errors %q, want [%q]", st.Sync.Errors, want)
		}
		if st.Sync.Applied == nil || st.Sync.Applied.Commit != second {
			t.Errorf("applied %+v, want %s still", st.Sync.Applied, second[:7])
		}
		return nil
	})
	if pods := readyPods(s.pods(), "web-"); len(pods) != 1 || pods[0].UID != web.UID {
		t.Errorf("web was replaced after the rejected revision: %v", s.podMessages())
	} else if err := see(pods[0], "/file?path=/etc/db/password", v2); err != nil {
		t.Error(err)
	}
	if out, _ := s.cli("history"); !strings.Contains(out, "rejected") || !strings.Contains(out, "db.sops.yaml:2") {
		t.Errorf("history does not show the rejection:\n%s", out)
	}
	outputs = append(outputs, s.everything()...)

	// The revision on disk is the encrypted one, and no file of the data
	// directory holds a value: not the clone, not the agent's state, not
	// etcd's (Secrets are encrypted at rest). The tmpfs mounts of secret
	// volumes are memory.
	for _, f := range filesUnder(t, s.dataDir) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, v := range []string{v1, v2, v3} {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s holds a decrypted value", f)
			}
		}
	}
	for _, v := range []string{v1, v2, v3} {
		for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v))} {
			for i, out := range outputs {
				if strings.Contains(out, form) {
					t.Errorf("output %d shows a Secret value (%s):\n%s", i, form, out)
				}
			}
		}
	}

	// bosun validate: without the key the encrypted document is noted and
	// the rest checked; with it, everything is.
	bin := bosun(t)
	vout, err := exec.Command(bin, "validate", repo.dir).CombinedOutput()
	if err != nil || !strings.Contains(string(vout), "db.sops.yaml:2: encrypted, not checked") ||
		!strings.Contains(string(vout), "1 deployment(s)") || !strings.Contains(string(vout), "1 encrypted document(s) not checked") {
		t.Errorf("bosun validate without the key: %v\n%s", err, vout)
	}
	vout, err = exec.Command(bin, "validate", "--sops-age-key-file", keyFile, repo.dir).CombinedOutput()
	if err != nil || !strings.Contains(string(vout), "1 secret(s)") || strings.Contains(string(vout), "not checked") {
		t.Errorf("bosun validate with the key: %v\n%s", err, vout)
	}
	other := sopstest.KeyFile(t, t.TempDir(), sopstest.NewIdentity(t))
	vout, err = exec.Command(bin, "validate", "--sops-age-key-file", other, repo.dir).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(vout), "db.sops.yaml:2: cannot decrypt (SOPS): no matching age identity") {
		t.Errorf("bosun validate with another key: %v\n%s", err, vout)
	}
	for _, v := range []string{v1, v2, v3} {
		if strings.Contains(string(vout), v) {
			t.Errorf("validate shows a value")
		}
	}
}

// everything is what bosun shows of the cluster: the CLI's views, the API's
// JSON, metrics and the server's log so far.
func (s *stack) everything() []string {
	s.t.Helper()
	var outs []string
	for _, args := range [][]string{
		{"status"}, {"status", "-o", "json"}, {"history"}, {"history", "-o", "json"},
		{"get", "secrets", "-o", "yaml"}, {"get", "secrets"}, {"get", "pods", "-o", "json"}, {"get", "deployments", "-o", "json"},
	} {
		out, err := s.cli(args...)
		if err != nil {
			s.t.Errorf("bosun %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		outs = append(outs, out)
	}
	for _, path := range []string{"/api/v1/status", "/api/v1/history", "/api/v1/secrets", "/api/v1/pods", "/api/v1/deployments"} {
		var raw any
		if err := s.getJSON(path, &raw); err != nil {
			s.t.Errorf("GET %s: %v", path, err)
		}
		outs = append(outs, fmt.Sprint(raw))
	}
	outs = append(outs, s.metrics())
	s.logMu.Lock()
	outs = append(outs, s.log.String())
	s.logMu.Unlock()
	return outs
}

// filesUnder lists the regular files under dir, leaving out whatever is
// mounted below dir (pods' tmpfs volumes).
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	skipped := map[string]bool{}
	for _, m := range mounts {
		skipped[m.Mountpoint] = true
	}
	var files []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if skipped[path] {
			return fs.SkipDir
		}
		if d.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no files under %s", dir)
	}
	return files
}
