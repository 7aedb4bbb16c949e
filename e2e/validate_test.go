package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidate runs `bosun validate` offline on every bundled example (each
// directory of examples/ that holds manifests) and on a broken repository.
func TestValidate(t *testing.T) {
	t.Parallel()
	bin := bosun(t)
	dirs := exampleDirs(t)
	if len(dirs) < 3 {
		t.Fatalf("found only %v under examples/", dirs)
	}
	for _, dir := range dirs {
		// The examples that mount host paths use /srv; those on the
		// host's network need its flag, as a server would.
		out, err := exec.Command(bin, "validate", "--allow-host-path", "/srv", "--allow-host-network", dir).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "valid") {
			t.Errorf("bosun validate %s: %v\n%s", dir, err, out)
		}
	}

	repo := newGitRepo(t)
	repo.write("apps/web.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: -1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: other}\n    spec:\n      hostIPC: true\n      containers:\n      - name: web\n        image: x:1\n")
	repo.write("apps/more.yaml", "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: j\n")
	out, err := exec.Command(bin, "validate", repo.dir).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("bosun validate on a broken repo: %v, want exit 1\n%s", err, out)
	}
	for _, want := range []string{
		"apps/web.yaml:6: spec.replicas:",
		"apps/web.yaml:7: spec.selector: does not match template labels",
		"apps/web.yaml:13: spec.template.spec.hostIPC: not supported by bosun",
		`apps/more.yaml:2: kind: unsupported kind "apps/v1/ReplicaSet" (supported: v1/Pod, apps/v1/Deployment, v1/Service, v1/ConfigMap, v1/Secret, v1/Namespace, batch/v1/Job, batch/v1/CronJob, apps/v1/DaemonSet, apps/v1/StatefulSet, v1/PersistentVolumeClaim, networking.k8s.io/v1/Ingress, networking.k8s.io/v1/IngressClass)`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// exampleDirs lists the directories of examples/ that hold manifests.
func exampleDirs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("../examples")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		dir := filepath.Join("../examples", e.Name())
		if !e.IsDir() {
			continue
		}
		found := false
		filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
				found = true
			}
			return nil
		})
		if found {
			// monitoring's prometheus.yml is Prometheus's configuration:
			// its manifests are under web/ (bosun server --path web).
			if e.Name() == "monitoring" {
				dir = filepath.Join(dir, "web")
			}
			// notifications' notify.yaml is the server's --notify-config
			// (checked by TestNotify and the notify package), no manifest.
			if e.Name() == "notifications" {
				continue
			}
			dirs = append(dirs, dir)
		}
	}
	return dirs
}
