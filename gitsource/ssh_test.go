package gitsource

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshd is not installed on the build machines, so the SSH transport is
// exercised against a minimal in-process SSH server built on
// golang.org/x/crypto/ssh: it authenticates one public key and serves the
// exec request go-git sends ("git-upload-pack '/repo.git'") by running the
// real git-upload-pack on the repository under root.
type sshGitServer struct {
	addr    string
	hostKey gossh.PublicKey
}

func startSSHGitServer(t *testing.T, root string, authorized gossh.PublicKey) *sshGitServer {
	t.Helper()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, err := gossh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &gossh.ServerConfig{
		PublicKeyCallback: func(_ gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
			if bytes.Equal(key.Marshal(), authorized.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unauthorized key")
		},
	}
	cfg.AddHostKey(hostSigner)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
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
	return &sshGitServer{addr: l.Addr().String(), hostKey: hostSigner.PublicKey()}
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

func TestSSH_fetchWithKeyFileAndKnownHosts(t *testing.T) {
	up := newUpstream(t)
	head := up.commit("over ssh", map[string]string{"s.yaml": "s"})
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id_ed25519")
	srv := startSSHGitServer(t, up.root, writeKey(t, keyFile))
	url := "ssh://git@" + srv.addr + "/repo.git"

	knownHosts := filepath.Join(dir, "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(srv.addr)}, srv.hostKey) + "\n"
	if err := os.WriteFile(knownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("verified host key", func(t *testing.T) {
		s := newSource(t, Config{URL: url, SSHKeyFile: keyFile, SSHKnownHostsFile: knownHosts})
		rev, _ := mustFetch(t, s)
		if rev.Commit != head || readRevFile(t, rev, "s.yaml") != "s" {
			t.Errorf("revision = %+v, want %s", rev, head)
		}
	})

	t.Run("unverified host key allowed without known_hosts", func(t *testing.T) {
		s := newSource(t, Config{URL: url, SSHKeyFile: keyFile})
		if rev, _ := mustFetch(t, s); rev.Commit != head {
			t.Errorf("commit = %s", rev.Commit)
		}
	})

	t.Run("host key mismatch is refused", func(t *testing.T) {
		other := filepath.Join(dir, "other_known_hosts")
		otherPub := writeKey(t, filepath.Join(dir, "other_key"))
		os.WriteFile(other, []byte(knownhosts.Line([]string{knownhosts.Normalize(srv.addr)}, otherPub)+"\n"), 0o600)
		s := newSource(t, Config{URL: url, SSHKeyFile: keyFile, SSHKnownHostsFile: other})
		_, _, err := s.Fetch(context.Background())
		if err == nil || !strings.Contains(err.Error(), "key mismatch") {
			t.Fatalf("err = %v, want a host key mismatch", err)
		}
	})

	t.Run("unauthorized key is refused", func(t *testing.T) {
		wrongKey := filepath.Join(dir, "wrong_key")
		writeKey(t, wrongKey)
		s := newSource(t, Config{URL: url, SSHKeyFile: wrongKey, SSHKnownHostsFile: knownHosts})
		_, _, err := s.Fetch(context.Background())
		if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Fatalf("err = %v, want an authentication failure", err)
		}
	})
}

func TestSSHAuth_userFromURLOrGit(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "id")
	pub := writeKey(t, keyFile)
	for url, wantUser := range map[string]string{
		"deploy@git.example.com:org/repo.git": "deploy",
		"ssh://git.example.com/org/repo.git":  "git",
		"ssh://ci@git.example.com:2222/r.git": "ci",
	} {
		auth, err := sshAuth(url, keyFile, "")
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		if auth.User != wantUser {
			t.Errorf("%s: user = %q, want %q", url, auth.User, wantUser)
		}
		if !bytes.Equal(auth.Signer.PublicKey().Marshal(), pub.Marshal()) {
			t.Errorf("%s: signer is not the key from the file", url)
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
	_, err = New(Config{URL: "git@host:r.git", Dir: t.TempDir(), SSHKeyFile: keyFile})
	if err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("err = %v, want a passphrase error", err)
	}
	if strings.Contains(err.Error(), "OPENSSH PRIVATE KEY") {
		t.Errorf("error quotes the key: %v", err)
	}
}
