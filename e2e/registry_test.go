package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"bosun/nodes/containerdtest"
)

// startRegistry runs Debian's docker-registry on a free loopback port and
// returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("docker-registry is not installed: %v", err)
		}
		t.Skipf("docker-registry is not installed: %v", err)
	}
	dir := t.TempDir()
	addr := freePort(t)
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	logf, _ := os.Create(filepath.Join(dir, "registry.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		logf.Close()
	})
	if err := waitListening(addr, 10*time.Second); err != nil {
		log, _ := os.ReadFile(logf.Name())
		t.Fatalf("registry on %s did not start: %v\n%s", addr, err, log)
	}
	return addr
}

// pushImage imports an OCI archive into a scratch namespace of containerd
// and pushes it to ref.
func pushImage(t *testing.T, address, archive, ref string) {
	t.Helper()
	c, err := client.New(address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := namespaces.WithNamespace(context.Background(), "e2e-push")
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	imgs, err := c.Import(ctx, f)
	if err != nil || len(imgs) != 1 {
		t.Fatalf("import %s: %d images, %v", archive, len(imgs), err)
	}
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchLocalhost)),
	})
	if err := c.Push(ctx, ref, imgs[0].Target, client.WithResolver(resolver)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// TestRegistryPull: a pod whose image is only in a registry is pulled
// (imagePullPolicy Always) from a real registry on localhost, over plain
// HTTP as Docker does for localhost, and runs.
func TestRegistryPull(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	registry := startRegistry(t)
	ref := registry + "/team/bosun-hello:v2"
	repo := newGitRepo(t)
	repo.write("pod.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: pulled
spec:
  containers:
  - name: app
    image: `+ref+`
    imagePullPolicy: Always
`)
	repo.commit("a pod from the registry")
	s := startStack(t, repo)
	pushImage(t, s.containerd, containerdtest.BuildHelloImage(t, "v2"), ref)
	s.waitFor("the pulled pod to serve", 60*time.Second, func() error {
		ready := readyPods(s.pods(), "pulled")
		if len(ready) != 1 {
			return fmt.Errorf("not ready")
		}
		body, err := httpGet("http://" + ready[0].Status.PodIP + ":8080/")
		if err != nil || !strings.Contains(body, "version v2") {
			return fmt.Errorf("answer %q, %v", body, err)
		}
		return nil
	})
}
