package gitsource

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// upstream is a real bare repository (root/repo.git) plus a working clone
// used to push commits into it.
type upstream struct {
	t    testing.TB
	root string // parent of repo.git: base path for git daemon / http-backend
	bare string
	work string
}

func newUpstream(t testing.TB) *upstream {
	t.Helper()
	u := &upstream{t: t, root: t.TempDir(), work: t.TempDir()}
	u.bare = filepath.Join(u.root, "repo.git")
	u.git("", "init", "--bare", "--initial-branch=main", u.bare)
	u.git(u.work, "init", "--initial-branch=main")
	u.git(u.work, "remote", "add", "origin", u.bare)
	return u
}

func gitEnv() []string {
	return append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Ada Lovelace", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada Lovelace", "GIT_COMMITTER_EMAIL=ada@example.com",
	)
}

func (u *upstream) git(dir string, args ...string) string {
	u.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		u.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (path -> content), commits them with msg on main and
// pushes; it returns the new head.
func (u *upstream) commit(msg string, files map[string]string) string {
	u.t.Helper()
	u.writeFiles(files)
	u.git(u.work, "add", "-A")
	u.git(u.work, "commit", "-q", "--allow-empty", "-m", msg)
	u.git(u.work, "push", "-q", "origin", "main")
	return u.git(u.work, "rev-parse", "HEAD")
}

// amendForcePush rewrites the last commit and force-pushes it.
func (u *upstream) amendForcePush(msg string, files map[string]string) string {
	u.t.Helper()
	u.writeFiles(files)
	u.git(u.work, "add", "-A")
	u.git(u.work, "commit", "-q", "--amend", "-m", msg)
	u.git(u.work, "push", "-q", "-f", "origin", "main")
	return u.git(u.work, "rev-parse", "HEAD")
}

func (u *upstream) writeFiles(files map[string]string) {
	u.t.Helper()
	for name, content := range files {
		p := filepath.Join(u.work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			u.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			u.t.Fatal(err)
		}
	}
}

// gitDaemon runs `git daemon` serving root on a fixed loopback port, so it
// can be stopped and started again at the same URL.
type gitDaemon struct {
	t    *testing.T
	root string
	port int
	cmd  *exec.Cmd
}

func startGitDaemon(t *testing.T, root string) *gitDaemon {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	d := &gitDaemon{t: t, root: root, port: port}
	d.start()
	t.Cleanup(d.stop)
	return d
}

func (d *gitDaemon) url(repo string) string {
	return fmt.Sprintf("git://127.0.0.1:%d/%s", d.port, repo)
}

func (d *gitDaemon) start() {
	d.t.Helper()
	// Run git-daemon itself, not the `git` wrapper: killing the wrapper
	// would leave the daemon serving.
	d.cmd = exec.Command(filepath.Join(gitExecPath(d.t), "git-daemon"), "--reuseaddr", "--base-path="+d.root, "--export-all",
		fmt.Sprintf("--port=%d", d.port), "--listen=127.0.0.1", d.root)
	d.cmd.Env = gitEnv()
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("start git daemon: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", d.port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("git daemon did not listen on %d: %v", d.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *gitDaemon) stop() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Kill()
	_ = d.cmd.Wait()
	d.cmd = nil
}

// startHTTPGit serves root over Git smart HTTP through `git http-backend`.
// With user set, requests must carry basic auth user:pass (as a web server
// in front of http-backend would enforce).
func startHTTPGit(t *testing.T, root, user, pass string) *httptest.Server {
	t.Helper()
	backend := &cgi.Handler{
		Path: filepath.Join(gitExecPath(t), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.Close()
		// go-git's HTTP transport uses http.DefaultTransport; drop its idle
		// keep-alive connections so the leak check sees no stray goroutines.
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	})
	return srv
}

func gitExecPath(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func newSource(t testing.TB, cfg Config) *Source {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "data")
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func mustFetch(t *testing.T, s *Source) (*Revision, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rev, changed, err := s.Fetch(ctx)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return rev, changed
}

func readRevFile(t *testing.T, rev *Revision, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rev.Dir, name))
	if err != nil {
		t.Fatalf("revision %s: %v", rev.Commit, err)
	}
	return string(b)
}

// runSource starts Run in the background; the returned stop cancels it and
// returns Run's error.
func runSource(t testing.TB, s *Source) (<-chan Revision, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Revision)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	var stopped bool
	var runErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			runErr = <-done
		}
		return runErr
	}
	t.Cleanup(func() { stop() })
	return out, stop
}

func receive(t testing.TB, ch <-chan Revision) Revision {
	t.Helper()
	select {
	case rev := <-ch:
		return rev
	case <-time.After(20 * time.Second):
		t.Fatal("no revision within 20s")
		return Revision{}
	}
}

// eventually polls cond until it holds or 20s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
