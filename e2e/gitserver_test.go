package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gitDaemon serves the parent of repo over git:// on a free loopback port.
type gitDaemon struct {
	t    testing.TB
	base string
	port string
	cmd  *exec.Cmd
}

func startGitDaemon(t testing.TB, base, port string) *gitDaemon {
	t.Helper()
	path, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	// Run git-daemon itself, not the `git daemon` wrapper, so that a
	// signal reaches the server.
	d := &gitDaemon{t: t, base: base, port: port}
	d.cmd = exec.Command(strings.TrimSpace(string(path))+"/git-daemon", "--reuseaddr", "--export-all",
		"--base-path="+base, "--listen=127.0.0.1", "--port="+port, base)
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.stop)
	if err := waitListening("127.0.0.1:"+port, 10*time.Second); err != nil {
		t.Fatalf("git daemon on port %s: %v", port, err)
	}
	return d
}

func (d *gitDaemon) stop() {
	if d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
}

// TestGitServerDown: an unreachable Git server keeps the last revision
// running, shows in status, and is recovered from when it comes back.
// It runs a control plane only (--agent=false), so it needs no containerd.
func TestGitServerDown(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	repo := newGitRepo(t)
	repo.write("svc.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: one\nspec:\n  selector:\n    app: one\n  ports:\n  - port: 80\n")
	first := repo.commit("one service")
	_, port, _ := net.SplitHostPort(freePort(t))
	daemon := startGitDaemon(t, repo.dir, port)
	s := startControlPlane(t, "git://127.0.0.1:"+port+"/.git")

	s.waitFor("the first revision applied", 30*time.Second, func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		if st.Sync.Applied == nil || st.Sync.Applied.Commit != first {
			return fmt.Errorf("applied %+v", st.Sync.Applied)
		}
		return nil
	})

	daemon.stop()
	repo.write("svc2.yaml", strings.ReplaceAll(readFile(t, repo.dir+"/svc.yaml"), "one", "two"))
	second := repo.commit("second service")
	s.waitFor("the fetch error in status", 30*time.Second, func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		if st.Sync.FetchError == "" {
			return fmt.Errorf("no fetch error yet")
		}
		if st.Sync.Applied == nil || st.Sync.Applied.Commit != first {
			return fmt.Errorf("applied %+v, want the first commit kept", st.Sync.Applied)
		}
		return nil
	})
	if out, _ := s.cli("status"); !strings.Contains(out, "Fetch:    failing") {
		t.Errorf("bosun status does not show the failing fetch:\n%s", out)
	}
	if st, _ := s.status(); len(st.Services) != 1 {
		t.Errorf("services while the server is down = %v, want the first revision's one", st.Services)
	}

	startGitDaemon(t, repo.dir, port)
	if out, err := s.cli("sync"); err != nil {
		t.Fatalf("bosun sync: %v\n%s", err, out)
	}
	s.waitFor("the second revision after recovery", 60*time.Second, func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		if st.Sync.Applied == nil || st.Sync.Applied.Commit != second || st.Sync.FetchError != "" || len(st.Services) != 2 {
			return fmt.Errorf("applied %+v, fetch error %q, %d services", st.Sync.Applied, st.Sync.FetchError, len(st.Services))
		}
		return nil
	})
}
