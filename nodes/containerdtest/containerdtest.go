// Package containerdtest gives tests a private containerd daemon and the
// example hello image, so the node agent and end-to-end tests run against a
// real runtime without touching the system's containerd.
//
// Start launches containerd with its own root, state and socket (the CRI
// plugin disabled) and tears everything down in t.Cleanup: tasks are killed,
// containers deleted, the daemon stopped, leftover mounts under its root
// unmounted and its directories removed. When containerd is not installed the
// test is skipped, unless CI=true, where that is a failure.
//
// Tests must run as root (containerd, runc and CNI need it).
package containerdtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"golang.org/x/sys/unix"

	"bosun/examples/mkimage/ociarchive"
)

// skipOrFail skips the test, or fails it when running in CI.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// Start runs a private containerd for the test and returns its socket
// address. Everything it created is removed when the test ends.
func Start(t testing.TB) (address string) {
	t.Helper()
	bin, err := exec.LookPath("containerd")
	if err != nil {
		skipOrFail(t, "containerd not installed: %v", err)
	}
	if os.Geteuid() != 0 {
		skipOrFail(t, "containerd tests need root")
	}
	// A short directory: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("/tmp", "ctd")
	if err != nil {
		t.Fatal(err)
	}
	address = filepath.Join(dir, "c.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), address, address+".ttrpc")
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group, so a ^C on the test does not hit it before Cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start containerd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	t.Cleanup(func() {
		cleanupContainers(t, address)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		killShims(address)
		if err := unmountUnder(dir); err != nil {
			t.Errorf("containerdtest: %v", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("containerdtest: remove %s: %v", dir, err)
		}
	})

	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("unix", address)
		if err == nil {
			c.Close()
			return address
		}
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("containerd exited early (%v):\n%s", err, tail(log, 30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd socket %s not ready after 15s", address)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cleanupContainers kills every task and deletes every container in every
// namespace, so no shim outlives the test.
func cleanupContainers(t testing.TB, address string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(address)
	if err != nil {
		t.Logf("containerdtest: connect for cleanup: %v", err)
		return
	}
	defer c.Close()
	nss, err := c.NamespaceService().List(ctx)
	if err != nil {
		t.Logf("containerdtest: list namespaces: %v", err)
		return
	}
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		ctrs, err := c.Containers(nctx)
		if err != nil {
			t.Logf("containerdtest: list containers in %s: %v", ns, err)
			continue
		}
		for _, ctr := range ctrs {
			if task, err := ctr.Task(nctx, nil); err == nil {
				_, _ = task.Delete(nctx, client.WithProcessKill)
			}
			_ = ctr.Delete(nctx, client.WithSnapshotCleanup)
		}
		// runc keeps per-namespace state under a root shared by every
		// containerd; drop the (now empty) directory.
		_ = os.Remove(filepath.Join("/run/containerd/runc", ns))
	}
}

// killShims kills the shims of the containerd at address that outlived it:
// a task caught mid-restart when the test ends can leave one behind.
func killShims(address string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || !strings.Contains(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-address" && args[i+1] == address {
				if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				break
			}
		}
	}
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for space...).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func tail(b []byte, n int) []byte {
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return bytes.Join(lines, []byte("\n"))
}

// HelloRef is the image reference BuildHelloImage gives the hello app.
func HelloRef(version string) string { return "localhost/bosun-hello:" + version }

var (
	helloMu    sync.Mutex
	helloBuilt = map[string]*helloBuild{}
)

type helloBuild struct {
	once sync.Once
	path string
	err  error
}

// BuildHelloImage builds the hello app with the given version and wraps it
// into an OCI archive named HelloRef(version). It builds once per version per
// test binary; the archive lives in a per-user cache directory under the
// system temp dir and is overwritten by the next test binary.
func BuildHelloImage(t testing.TB, version string) (archivePath string) {
	t.Helper()
	helloMu.Lock()
	b := helloBuilt[version]
	if b == nil {
		b = &helloBuild{}
		helloBuilt[version] = b
	}
	helloMu.Unlock()
	b.once.Do(func() { b.path, b.err = buildHello(version) })
	if b.err != nil {
		t.Fatalf("build hello image %s: %v", version, b.err)
	}
	return b.path
}

func buildHello(version string) (string, error) {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("bosun-test-images-%d", os.Getuid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, "build")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bosun-hello")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", bin, "bosun/examples/hello/app")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if _, err := ociarchive.Write(&buf, ociarchive.Image{
		Ref:          HelloRef(version),
		Files:        []ociarchive.File{{Path: "/bosun-hello", Mode: 0o755, Data: data}},
		Dirs:         []string{"/etc", "/tmp"},
		Entrypoint:   []string{"/bosun-hello"},
		Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Architecture: runtime.GOARCH,
	}); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "bosun-hello-"+version+".tar")
	if err := os.WriteFile(filepath.Join(tmp, "image.tar"), buf.Bytes(), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(filepath.Join(tmp, "image.tar"), out); err != nil {
		return "", err
	}
	return out, nil
}
