package gitsource

import (
	"context"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

// httpsGit serves root over Git smart HTTP behind TLS, with a certificate
// of its own (httptest's, self-signed), letting through the requests
// allowed accepts. CAFile is that certificate in PEM.
type httpsGit struct {
	URL    string
	CAFile string

	conns atomic.Int64 // connections accepted

	mu      sync.Mutex
	allowed func(*http.Request) bool
}

func startHTTPSGit(t *testing.T, root string, allowed func(*http.Request) bool) *httpsGit {
	t.Helper()
	g := &httpsGit{allowed: allowed}
	backend := &cgi.Handler{
		Path: filepath.Join(gitExecPath(t), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"},
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		ok := g.allowed(r)
		g.mu.Unlock()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			g.conns.Add(1)
		}
	}
	srv.StartTLS()
	// Closing the server closes the client's idle connections too, so the
	// transports go-git made for the CA bundle leave no goroutine behind.
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	g.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(g.CAFile, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *httpsGit) allow(f func(*http.Request) bool) {
	g.mu.Lock()
	g.allowed = f
	g.mu.Unlock()
}

func basic(user, pass string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		return ok && u == user && p == pass
	}
}

func writeSecret(t *testing.T, file, value string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestHTTPS_privateCAAndRotatedPasswordFile(t *testing.T) {
	up := newUpstream(t)
	head := up.commit("tls", map[string]string{"t.yaml": "t"})
	srv := startHTTPSGit(t, up.root, basic("deployer", "first-Pa55"))
	pw := filepath.Join(t.TempDir(), "pw")
	writeSecret(t, pw, "first-Pa55")

	t.Run("without the CA the server is not trusted", func(t *testing.T) {
		s := newSource(t, Config{URL: srv.URL + "/repo.git", Auth: Auth{Username: "deployer", PasswordFile: pw}})
		_, _, err := s.Fetch(context.Background())
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err = %v, want a certificate error", err)
		}
	})

	s := newSource(t, Config{URL: srv.URL + "/repo.git", Auth: Auth{Username: "deployer", PasswordFile: pw, CAFile: srv.CAFile}})
	if rev, _ := mustFetch(t, s); rev.Commit != head || readRevFile(t, rev, "t.yaml") != "t" {
		t.Fatalf("revision = %+v", rev)
	}

	// The password rotates: the server first, then the file. The fetch in
	// between fails saying whose password was refused, and not what it is.
	srv.allow(basic("deployer", "second-Pa55"))
	_, _, err := s.Fetch(context.Background())
	if !errors.Is(err, transport.ErrAuthenticationRequired) {
		t.Fatalf("err = %v, want ErrAuthenticationRequired", err)
	}
	want := ` (the server refused user "deployer" with the password of ` + pw + `)`
	if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "Pa55") {
		t.Errorf("err = %q, want it to contain %q and no password", err, want)
	}
	writeSecret(t, pw, "second-Pa55")
	next := up.commit("after rotation", nil)
	if rev, _ := mustFetch(t, s); rev.Commit != next {
		t.Errorf("after rotation commit = %s, want %s", rev.Commit, next)
	}
}

func TestHTTPS_fetchesWithACAFileReuseConnections(t *testing.T) {
	up := newUpstream(t)
	up.commit("x", nil)
	srv := startHTTPSGit(t, up.root, func(*http.Request) bool { return true })
	s := newSource(t, Config{URL: srv.URL + "/repo.git", Auth: Auth{CAFile: srv.CAFile}})
	for range 5 {
		mustFetch(t, s)
	}
	// Without the transport cache, go-git makes a transport per fetch,
	// whose idle connection lingers: 5 fetches, 5 connections.
	if n := srv.conns.Load(); n > 2 {
		t.Errorf("5 fetches opened %d connections, want them reused", n)
	}
}

func TestHTTPS_bearerTokenFromFile(t *testing.T) {
	up := newUpstream(t)
	head := up.commit("token", nil)
	const token = "planted-token-7f3a"
	srv := startHTTPSGit(t, up.root, func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+token })
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	writeSecret(t, good, token)
	writeSecret(t, bad, "planted-wrong-token")

	s := newSource(t, Config{URL: srv.URL + "/repo.git", Auth: Auth{TokenFile: good, CAFile: srv.CAFile}})
	if rev, _ := mustFetch(t, s); rev.Commit != head {
		t.Errorf("commit = %s", rev.Commit)
	}
	s = newSource(t, Config{URL: srv.URL + "/repo.git", Auth: Auth{TokenFile: bad, CAFile: srv.CAFile}})
	_, _, err := s.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "the server refused the bearer token of "+bad) || strings.Contains(err.Error(), "planted") {
		t.Errorf("err = %v, want the refused token file named, not its content", err)
	}
}

func TestHTTP_withoutCredentialsTheErrorSaysSo(t *testing.T) {
	up := newUpstream(t)
	up.commit("x", nil)
	srv := startHTTPGit(t, up.root, "deployer", "pw")
	s := newSource(t, Config{URL: srv.URL + "/repo.git"})
	_, _, err := s.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "authentication required") || !strings.HasSuffix(err.Error(), " (no credentials were given)") {
		t.Errorf("err = %v", err)
	}
}

func TestCheck_warnsAboutExposedCredentials(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte("pw\n"), 0o644)
	tight := filepath.Join(dir, "tight")
	os.WriteFile(tight, []byte("pw\n"), 0o600)
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"password in URL", Config{URL: "https://bob:planted-pw@git.example.com/r.git"},
			[]string{"the repository URL carries a password: flag values are visible to every user"}},
		{"plain http", Config{URL: "http://git.example.com/r.git", Auth: Auth{Username: "bob", PasswordFile: tight}},
			[]string{"credentials for http://git.example.com/r.git travel over plain http"}},
		{"readable password file", Config{URL: "https://git.example.com/r.git", Auth: Auth{Username: "bob", PasswordFile: loose}},
			[]string{"--git-password-file " + loose + " is readable by other users (mode 0644)"}},
		{"nothing to say", Config{URL: "https://git.example.com/r.git", Auth: Auth{Username: "bob", PasswordFile: tight}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Dir = dir
			got, err := Check(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("warnings = %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %q lacks %q", got[i], w)
				}
				if strings.Contains(got[i], "planted-pw") {
					t.Errorf("warning shows the password: %q", got[i])
				}
			}
		})
	}
}
