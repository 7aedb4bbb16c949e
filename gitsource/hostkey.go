package gitsource

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"

	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/skeema/knownhosts"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyError is an ssh host key refused by known_hosts: unknown (Known
// is empty), changed (Known lists what known_hosts has for the host), or
// revoked. Fetch errors wrap it, and its message is what Status shows.
type HostKeyError struct {
	Host    string      // host:port as dialed
	Key     string      // the key the server presented: type and SHA256 fingerprint
	Known   []KnownLine // the host's lines in known_hosts, when the key differs from them
	Revoked *KnownLine  // the @revoked line naming the key, if that is why
	Files   []string    // the known_hosts files consulted; empty when none exists
	// AddTo is the file the hint of an unknown key says to add it to.
	AddTo string
}

// KnownLine is one key line of a known_hosts file.
type KnownLine struct {
	File string
	Line int
	Key  string // type and SHA256 fingerprint
}

// Changed says that known_hosts has other keys for the host: the server's
// key changed, or someone is intercepting the connection.
func (e *HostKeyError) Changed() bool { return len(e.Known) > 0 }

func (e *HostKeyError) Error() string {
	switch {
	case e.Revoked != nil:
		return fmt.Sprintf("host key of %s (%s) is revoked by line %d of %s; refusing it", e.Host, e.Key, e.Revoked.Line, e.Revoked.File)
	case e.Changed():
		k := e.Known[0]
		more := ""
		if n := len(e.Known) - 1; n > 0 {
			more = fmt.Sprintf(" and %d more line(s)", n)
		}
		return fmt.Sprintf("host key of %s CHANGED: (%s) differs from known_hosts line %d of %s (%s)%s; "+
			"someone may be intercepting the connection; if the server's key really changed, replace that line",
			e.Host, e.Key, k.Line, k.File, k.Key, more)
	default:
		where := strings.Join(e.Files, ", ")
		if len(e.Files) == 0 {
			where = "no known_hosts file exists"
		}
		return fmt.Sprintf("host key of %s (%s) is not in known_hosts (%s): check that fingerprint with the server's administrator, then add it with `%s >> %s`",
			e.Host, e.Key, where, keyscan(e.Host), e.AddTo)
	}
}

// keyscan is the ssh-keyscan command that prints host's keys in
// known_hosts format.
func keyscan(hostPort string) string {
	host, port, err := net.SplitHostPort(hostPort)
	switch {
	case err != nil:
		return "ssh-keyscan " + hostPort
	case port == "22":
		return "ssh-keyscan " + host
	}
	return "ssh-keyscan -p " + port + " " + host
}

func fingerprint(k gossh.PublicKey) string {
	return k.Type() + " " + gossh.FingerprintSHA256(k)
}

// knownHosts returns the known_hosts files to read now: those given, which
// must exist, or the defaults that exist.
func (s *settings) knownHosts() ([]string, error) {
	if len(s.Auth.SSHKnownHosts) > 0 {
		for _, f := range s.Auth.SSHKnownHosts {
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("ssh_known_hosts: %w", err)
			}
		}
		return s.Auth.SSHKnownHosts, nil
	}
	var files []string
	for _, f := range DefaultKnownHosts() {
		if _, err := os.Stat(f); err == nil {
			files = append(files, f)
		}
	}
	return files, nil
}

// hostKeyCheck reads known_hosts and returns the callback that checks the
// server's host key, and the key algorithms to ask the server for (those
// known_hosts has for the host, so a server with several keys presents
// the one known, instead of another that would look changed).
func (s *settings) hostKeyCheck() (gossh.HostKeyCallback, []string, error) {
	if s.Auth.InsecureIgnoreHostKey {
		return gossh.InsecureIgnoreHostKey(), nil, nil
	}
	files, err := s.knownHosts()
	if err != nil {
		return nil, nil, err
	}
	db, err := knownhosts.NewDB(files...)
	if err != nil {
		return nil, nil, fmt.Errorf("ssh_known_hosts: %w", err) // names file:line, never the content
	}
	addTo := DefaultKnownHosts()[0]
	if len(s.Auth.SSHKnownHosts) > 0 {
		addTo = s.Auth.SSHKnownHosts[0]
	}
	check := db.HostKeyCallback()
	cb := func(host string, remote net.Addr, key gossh.PublicKey) error {
		err := check(host, remote, key)
		if err == nil {
			return nil
		}
		hk := &HostKeyError{Host: host, Key: fingerprint(key), Files: files, AddTo: addTo}
		var keyErr *xknownhosts.KeyError
		var revoked *xknownhosts.RevokedError
		switch {
		case errors.As(err, &revoked):
			hk.Revoked = &KnownLine{File: revoked.Revoked.Filename, Line: revoked.Revoked.Line, Key: fingerprint(revoked.Revoked.Key)}
		case errors.As(err, &keyErr):
			for _, w := range keyErr.Want {
				hk.Known = append(hk.Known, KnownLine{File: w.Filename, Line: w.Line, Key: fingerprint(w.Key)})
			}
		default:
			return fmt.Errorf("check host key of %s: %w", host, err)
		}
		return hk
	}
	return cb, db.HostKeyAlgorithms(s.sshHost), nil
}

// loadSSHKey reads an unencrypted private key file.
func loadSSHKey(user, file string) (*gitssh.PublicKeys, error) {
	auth, err := gitssh.NewPublicKeysFromFile(user, file, "")
	if err != nil {
		// The parse error never quotes key material, only the file name.
		return nil, fmt.Errorf("ssh_key_file %s: %w (passphrase-protected keys are not supported)", file, err)
	}
	return auth, nil
}

// sshAuth is the ssh auth of one fetch: the key file (or the ssh-agent) and
// the host key check, both read now. release closes the connection to the
// agent, if any.
func (s *settings) sshAuth() (auth gitssh.AuthMethod, release func(), err error) {
	cb, algos, err := s.hostKeyCheck()
	if err != nil {
		return nil, nil, err
	}
	check := gitssh.HostKeyCallbackHelper{HostKeyCallback: cb, HostKeyAlgorithms: algos}
	if s.Auth.SSHKeyFile != "" {
		keys, err := loadSSHKey(s.sshUser, s.Auth.SSHKeyFile)
		if err != nil {
			return nil, nil, err
		}
		keys.HostKeyCallbackHelper = check
		return keys, func() {}, nil
	}
	// go-git's own agent auth leaves its connection to the agent open; this
	// one is closed after the fetch.
	ag := &agentSigners{}
	return &gitssh.PublicKeysCallback{User: s.sshUser, Callback: ag.signers, HostKeyCallbackHelper: check}, ag.close, nil
}

// agentSigners offers the keys of the ssh-agent at $SSH_AUTH_SOCK, over one
// connection opened when the server asks and kept until close.
type agentSigners struct {
	mu   sync.Mutex
	conn net.Conn
}

func (a *agentSigners) signers() ([]gossh.Signer, error) {
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, errors.New("no ssh key: give a private key file (--ssh-key) or run an ssh-agent (SSH_AUTH_SOCK is not set)")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn == nil {
		c, err := net.Dial("unix", sock)
		if err != nil {
			return nil, fmt.Errorf("ssh-agent: %w", err)
		}
		a.conn = c
	}
	signers, err := agent.NewClient(a.conn).Signers()
	if err != nil {
		return nil, fmt.Errorf("ssh-agent: %w", err)
	}
	return signers, nil
}

func (a *agentSigners) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn != nil {
		a.conn.Close()
		a.conn = nil
	}
}
