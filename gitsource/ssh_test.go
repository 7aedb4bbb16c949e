package gitsource

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// The SSH transport is exercised against a minimal in-process SSH server
// built on golang.org/x/crypto/ssh (the end-to-end tests use Debian's
// sshd): it authenticates one public key and serves the exec request go-git
// sends ("git-upload-pack '/repo.git'") by running the real git-upload-pack
// on the repository under root.
type sshGitServer struct {
	addr     string
	hostKeys []gossh.PublicKey
}

// startSSHGitServer serves root with the given host keys (a fresh ed25519
// one when none is given), accepting the authorized client key.
func startSSHGitServer(t *testing.T, root string, authorized gossh.PublicKey, hostKeys ...gossh.Signer) *sshGitServer {
	t.Helper()
	if len(hostKeys) == 0 {
		hostKeys = []gossh.Signer{newHostKey(t)}
	}
	cfg := &gossh.ServerConfig{
		PublicKeyCallback: func(_ gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
			if bytes.Equal(key.Marshal(), authorized.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unauthorized key")
		},
	}
	srv := &sshGitServer{}
	for _, k := range hostKeys {
		cfg.AddHostKey(k)
		srv.hostKeys = append(srv.hostKeys, k.PublicKey())
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.addr = l.Addr().String()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveSSHConn(c, cfg, root)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return srv
}

func newHostKey(t *testing.T) gossh.Signer {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func serveSSHConn(c net.Conn, cfg *gossh.ServerConfig, root string) {
	sc, chans, reqs, err := gossh.NewServerConn(c, cfg)
	if err != nil {
		c.Close()
		return
	}
	defer sc.Close()
	go gossh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(gossh.UnknownChannelType, "session only")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		serveSSHSession(ch, chReqs, root)
	}
}

func serveSSHSession(ch gossh.Channel, reqs <-chan *gossh.Request, root string) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			req.Reply(false, nil)
			continue
		}
		var payload struct{ Command string }
		if err := gossh.Unmarshal(req.Payload, &payload); err != nil {
			req.Reply(false, nil)
			return
		}
		// go-git sends: git-upload-pack '/repo.git'
		prog, arg, _ := strings.Cut(payload.Command, " ")
		repo := filepath.Join(root, filepath.Clean("/"+strings.Trim(arg, "'")))
		if prog != "git-upload-pack" {
			req.Reply(false, nil)
			return
		}
		req.Reply(true, nil)
		cmd := exec.Command("git-upload-pack", repo)
		cmd.Env = gitEnv()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
		status := uint32(0)
		if err := cmd.Run(); err != nil {
			status = 1
		}
		ch.CloseWrite()
		ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
		return
	}
}

// writeKey writes a fresh unencrypted ed25519 key in OpenSSH format and
// returns its public half.
func writeKey(t *testing.T, file string) gossh.PublicKey {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := gossh.MarshalPrivateKey(priv, "bosun test")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sshPub
}

// writeKnownHosts writes a known_hosts file: a comment line, then one line
// per key for addr.
func writeKnownHosts(t *testing.T, file, addr string, keys ...gossh.PublicKey) {
	t.Helper()
	content := "# managed by the test\n"
	for _, k := range keys {
		content += knownhosts.Line([]string{knownhosts.Normalize(addr)}, k) + "\n"
	}
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// sshFixture is an upstream served over ssh, a client key for it and a
// known_hosts file that knows the server.
type sshFixture struct {
	up         *upstream
	head       string
	srv        *sshGitServer
	url        string
	keyFile    string
	knownHosts string
	dir        string
}

func newSSHFixture(t *testing.T) *sshFixture {
	t.Helper()
	f := &sshFixture{up: newUpstream(t), dir: t.TempDir()}
	f.head = f.up.commit("over ssh", map[string]string{"s.yaml": "s"})
	f.keyFile = filepath.Join(f.dir, "id_ed25519")
	f.srv = startSSHGitServer(t, f.up.root, writeKey(t, f.keyFile))
	f.url = "ssh://git@" + f.srv.addr + "/repo.git"
	f.knownHosts = filepath.Join(f.dir, "known_hosts")
	writeKnownHosts(t, f.knownHosts, f.srv.addr, f.srv.hostKeys...)
	return f
}

func (f *sshFixture) config(knownHosts ...string) Config {
	return Config{URL: f.url, Auth: Auth{SSHKeyFile: f.keyFile, SSHKnownHosts: knownHosts}}
}

func fetchHostKeyError(t *testing.T, s *Source) *HostKeyError {
	t.Helper()
	_, _, err := s.Fetch(context.Background())
	var hk *HostKeyError
	if !errors.As(err, &hk) {
		t.Fatalf("err = %v, want a *HostKeyError", err)
	}
	t.Logf("refused: %v", err)
	if got := s.Status().FetchError; got != err.Error() {
		t.Errorf("Status().FetchError = %q, want the error %q", got, err)
	}
	return hk
}

func TestSSH_knownHostKeyIsAccepted(t *testing.T) {
	f := newSSHFixture(t)
	s := newSource(t, f.config(f.knownHosts))
	rev, _ := mustFetch(t, s)
	if rev.Commit != f.head || readRevFile(t, rev, "s.yaml") != "s" {
		t.Errorf("revision = %+v, want %s", rev, f.head)
	}
}

func TestSSH_unknownHostKeyIsRefusedWithTheCommandThatAddsIt(t *testing.T) {
	f := newSSHFixture(t)
	other := filepath.Join(f.dir, "other_known_hosts")
	writeKnownHosts(t, other, "git.example.com:22", newHostKey(t).PublicKey())
	s := newSource(t, f.config(other))

	hk := fetchHostKeyError(t, s)
	if hk.Changed() || hk.Revoked != nil {
		t.Errorf("error = %+v, want an unknown host", hk)
	}
	_, port, _ := net.SplitHostPort(f.srv.addr)
	msg := hk.Error()
	for _, want := range []string{
		"host key of " + f.srv.addr + " (ssh-ed25519 " + gossh.FingerprintSHA256(f.srv.hostKeys[0]) + ") is not in known_hosts (" + other + ")",
		"`ssh-keyscan -p " + port + " 127.0.0.1 >> " + other + "`",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if st := s.Status(); st.Revision != nil || st.Failures != 1 {
		t.Errorf("status = %+v, want no revision and one failure", st)
	}

	// known_hosts is read at each fetch: adding the key is enough.
	writeKnownHosts(t, other, f.srv.addr, f.srv.hostKeys...)
	if rev, _ := mustFetch(t, s); rev.Commit != f.head {
		t.Errorf("after adding the key, commit = %s, want %s", rev.Commit, f.head)
	}
}

func TestSSH_changedHostKeyIsRefusedNamingTheLine(t *testing.T) {
	f := newSSHFixture(t)
	old := newHostKey(t).PublicKey()
	changed := filepath.Join(f.dir, "changed_known_hosts")
	writeKnownHosts(t, changed, f.srv.addr, old)
	s := newSource(t, f.config(changed))

	hk := fetchHostKeyError(t, s)
	if !hk.Changed() {
		t.Fatalf("error = %+v, want a changed key", hk)
	}
	want := fmt.Sprintf("host key of %s CHANGED: (ssh-ed25519 %s) differs from known_hosts line 2 of %s (ssh-ed25519 %s); someone may be intercepting",
		f.srv.addr, gossh.FingerprintSHA256(f.srv.hostKeys[0]), changed, gossh.FingerprintSHA256(old))
	if !strings.Contains(hk.Error(), want) {
		t.Errorf("message = %q\nwant it to contain %q", hk.Error(), want)
	}
	if !strings.HasPrefix(s.Status().FetchError, "fetch "+f.url+": host key of") {
		t.Errorf("FetchError = %q, want the URL then the host key message", s.Status().FetchError)
	}
}

func TestSSH_revokedHostKeyIsRefused(t *testing.T) {
	f := newSSHFixture(t)
	kh := filepath.Join(f.dir, "revoked_known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(f.srv.addr)}, f.srv.hostKeys[0])
	os.WriteFile(kh, []byte("@revoked "+line+"\n"+line+"\n"), 0o600)
	hk := fetchHostKeyError(t, newSource(t, f.config(kh)))
	if hk.Revoked == nil || hk.Revoked.Line != 1 || !strings.Contains(hk.Error(), "is revoked by line 1 of "+kh) {
		t.Errorf("error = %v, want revoked by line 1", hk)
	}
}

func TestSSH_defaultKnownHostsAreTheUsersAndTheSystems(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	userFile := filepath.Join(home, ".ssh", "known_hosts")
	if got := DefaultKnownHosts(); len(got) != 2 || got[0] != userFile || got[1] != "/etc/ssh/ssh_known_hosts" {
		t.Fatalf("DefaultKnownHosts() = %q", got)
	}
	f := newSSHFixture(t)

	// No known_hosts anywhere (or a system one that does not know this
	// test server): refused, and the hint names the user's file.
	s := newSource(t, f.config())
	hk := fetchHostKeyError(t, s)
	if hk.Changed() || hk.AddTo != userFile {
		t.Errorf("error = %+v, want unknown, to be added to %s", hk, userFile)
	}
	if _, err := os.Stat("/etc/ssh/ssh_known_hosts"); errors.Is(err, os.ErrNotExist) {
		if !strings.Contains(hk.Error(), "(no known_hosts file exists)") {
			t.Errorf("message = %q, want it to say no file exists", hk.Error())
		}
		if warnings, err := Check(Config{URL: f.url, Dir: t.TempDir(), Auth: Auth{SSHKeyFile: f.keyFile}}); err != nil || !containsText(warnings, "no known_hosts file") {
			t.Errorf("Check = %q, %v; want a warning that no known_hosts file exists", warnings, err)
		}
	}

	// Created after New: read at the next fetch.
	os.MkdirAll(filepath.Dir(userFile), 0o700)
	writeKnownHosts(t, userFile, f.srv.addr, f.srv.hostKeys...)
	if rev, _ := mustFetch(t, s); rev.Commit != f.head {
		t.Errorf("commit = %s", rev.Commit)
	}
}

func TestSSH_hostKeyAlgorithmsFollowKnownHosts(t *testing.T) {
	// A server with two host keys, known_hosts knowing the one the client
	// would not prefer: the client must ask for that one instead of
	// taking the other for a changed key.
	up := newUpstream(t)
	head := up.commit("x", nil)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id")
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecSigner, err := gossh.NewSignerFromKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := startSSHGitServer(t, up.root, writeKey(t, keyFile), newHostKey(t), ecSigner)
	kh := filepath.Join(dir, "known_hosts")
	writeKnownHosts(t, kh, srv.addr, ecSigner.PublicKey())
	s := newSource(t, Config{URL: "ssh://git@" + srv.addr + "/repo.git", Auth: Auth{SSHKeyFile: keyFile, SSHKnownHosts: []string{kh}}})
	if rev, _ := mustFetch(t, s); rev.Commit != head {
		t.Errorf("commit = %s", rev.Commit)
	}
}

func TestSSH_insecureIgnoreHostKeyAcceptsAnyKeyAndWarns(t *testing.T) {
	f := newSSHFixture(t)
	cfg := Config{URL: f.url, Auth: Auth{SSHKeyFile: f.keyFile, InsecureIgnoreHostKey: true}}
	if rev, _ := mustFetch(t, newSource(t, cfg)); rev.Commit != f.head {
		t.Errorf("commit = %s", rev.Commit)
	}
	cfg.Dir = t.TempDir()
	warnings, err := Check(cfg)
	if err != nil || !containsText(warnings, "NOT verified (--insecure-ignore-host-key)") {
		t.Errorf("Check = %q, %v; want the insecure warning", warnings, err)
	}
	cfg.Auth.InsecureIgnoreHostKey = false
	cfg.Auth.SSHKnownHosts = []string{f.knownHosts}
	if warnings, err := Check(cfg); err != nil || len(warnings) != 0 {
		t.Errorf("Check of a verified config = %q, %v; want no warning", warnings, err)
	}
}

func TestSSH_unauthorizedKeyIsRefused(t *testing.T) {
	f := newSSHFixture(t)
	wrongKey := filepath.Join(f.dir, "wrong_key")
	writeKey(t, wrongKey)
	s := newSource(t, Config{URL: f.url, Auth: Auth{SSHKeyFile: wrongKey, SSHKnownHosts: []string{f.knownHosts}}})
	_, _, err := s.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("err = %v, want an authentication failure", err)
	}
}

// startAgent serves an ssh-agent holding key on a unix socket and points
// SSH_AUTH_SOCK at it.
func startAgent(t *testing.T, key any) {
	t.Helper()
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				agent.ServeAgent(keyring, c)
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	t.Setenv("SSH_AUTH_SOCK", sock)
}

func TestSSH_agentAuthVerifiesHostKeysToo(t *testing.T) {
	up := newUpstream(t)
	head := up.commit("agent", nil)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sshPub, _ := gossh.NewPublicKey(pub)
	srv := startSSHGitServer(t, up.root, sshPub)
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	writeKnownHosts(t, good, srv.addr, srv.hostKeys...)
	bad := filepath.Join(dir, "bad")
	writeKnownHosts(t, bad, srv.addr, newHostKey(t).PublicKey())
	url := "ssh://git@" + srv.addr + "/repo.git"

	t.Run("no agent", func(t *testing.T) {
		t.Setenv("SSH_AUTH_SOCK", "")
		s := newSource(t, Config{URL: url, Auth: Auth{SSHKnownHosts: []string{good}}})
		_, _, err := s.Fetch(context.Background())
		if err == nil || !strings.Contains(err.Error(), "SSH_AUTH_SOCK is not set") {
			t.Fatalf("err = %v, want no ssh key", err)
		}
	})

	startAgent(t, priv)
	t.Run("known host", func(t *testing.T) {
		s := newSource(t, Config{URL: url, Auth: Auth{SSHKnownHosts: []string{good}}})
		if rev, _ := mustFetch(t, s); rev.Commit != head {
			t.Errorf("commit = %s", rev.Commit)
		}
	})
	t.Run("changed host key", func(t *testing.T) {
		s := newSource(t, Config{URL: url, Auth: Auth{SSHKnownHosts: []string{bad}}})
		if hk := fetchHostKeyError(t, s); !hk.Changed() {
			t.Errorf("error = %v, want changed", hk)
		}
	})
}

func TestSSH_extraBranchesAndResolveVerifyHostKeys(t *testing.T) {
	f := newSSHFixture(t)
	f.up.git(f.up.work, "push", "-q", "origin", "main:canary")
	kh := filepath.Join(f.dir, "kh")
	writeKnownHosts(t, kh, f.srv.addr, f.srv.hostKeys...)
	s := newSource(t, f.config(kh))
	mustFetch(t, s)
	s.Follow([]string{"canary"})
	if revs := s.syncBranches(context.Background(), true, true); len(revs) != 1 || revs[0].Commit != f.head {
		t.Fatalf("canary revisions = %+v", revs)
	}

	// The server's key changes; main's fetch is not even needed to refuse
	// the canary's and a plan's.
	writeKnownHosts(t, kh, f.srv.addr, newHostKey(t).PublicKey())
	f.up.git(f.up.work, "commit", "-q", "--allow-empty", "-m", "next")
	f.up.git(f.up.work, "push", "-q", "origin", "HEAD:canary")
	s.syncBranches(context.Background(), true, true)
	if bs := s.Status().Branches["canary"]; !strings.Contains(bs.Error, "CHANGED") || bs.Commit != f.head {
		t.Errorf("canary status = %+v, want the changed host key and the old commit", bs)
	}
	_, err := s.Resolve(context.Background(), "canary")
	var hk *HostKeyError
	if !errors.As(err, &hk) || !hk.Changed() {
		t.Errorf("Resolve: err = %v, want a changed host key", err)
	}
}

func TestSSH_userFromURLOrGit(t *testing.T) {
	for url, wantUser := range map[string]string{
		"deploy@git.example.com:org/repo.git": "deploy",
		"ssh://git.example.com/org/repo.git":  "git",
		"ssh://ci@git.example.com:2222/r.git": "ci",
	} {
		s, err := validate(Config{URL: url, Dir: "/d", Auth: Auth{InsecureIgnoreHostKey: true}})
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		if s.sshUser != wantUser {
			t.Errorf("%s: user = %q, want %q", url, s.sshUser, wantUser)
		}
	}
}

func TestNew_rejectsPassphraseProtectedKeyWithoutQuotingIt(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := gossh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "id")
	pemBytes := pem.EncodeToMemory(block)
	os.WriteFile(keyFile, pemBytes, 0o600)
	_, err = New(Config{URL: "git@host:r.git", Dir: t.TempDir(), Auth: Auth{SSHKeyFile: keyFile, InsecureIgnoreHostKey: true}})
	if err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("err = %v, want a passphrase error", err)
	}
	if strings.Contains(err.Error(), "OPENSSH PRIVATE KEY") {
		t.Errorf("error quotes the key: %v", err)
	}
}

func containsText(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
