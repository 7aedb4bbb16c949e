package e2e

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestValidate runs `bosun validate` offline on the bundled examples and on
// a broken repository.
func TestValidate(t *testing.T) {
	bin := bosun(t)
	for _, dir := range []string{"../examples/seed", "../examples/hello", "../examples/rollout"} {
		out, err := exec.Command(bin, "validate", dir).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "valid") {
			t.Errorf("bosun validate %s: %v\n%s", dir, err, out)
		}
	}

	repo := newGitRepo(t)
	repo.write("apps/web.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: -1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: other}\n    spec:\n      containers:\n      - name: web\n        image: x:1\n")
	repo.write("apps/more.yaml", "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\n")
	out, err := exec.Command(bin, "validate", repo.dir).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("bosun validate on a broken repo: %v, want exit 1\n%s", err, out)
	}
	for _, want := range []string{
		"apps/web.yaml:6: spec.replicas:",
		"apps/web.yaml:7: spec.selector: does not match template labels",
		`apps/more.yaml:2: kind: unsupported kind "batch/v1/Job" (supported: v1/Pod, apps/v1/Deployment, v1/Service)`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
