package gitsource

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	gossh "golang.org/x/crypto/ssh"

	"bosun/signature"
)

// Config says which branch of which repository to follow. The zero value of
// every optional field works.
type Config struct {
	// URL of the repository: a local path, file://, http(s)://, git://,
	// ssh://user@host/path or scp-like user@host:path. User and password
	// embedded in an http(s) URL are used as basic auth, kept out of the
	// clone's config and redacted everywhere.
	URL string
	// Branch to follow. Default "main".
	Branch string
	// Dir holds the clone and the revision snapshots; created if missing.
	// Required.
	Dir string
	// Poll is the interval between fetches. Default 5s.
	Poll time.Duration

	// FetchTimeout bounds one fetch (a server that accepts the connection
	// and then stalls must not stop polling forever). Default 2m.
	FetchTimeout time.Duration

	// SSHKeyFile is an unencrypted private key for ssh URLs. Without it,
	// go-git's defaults apply (ssh-agent, ~/.ssh/known_hosts).
	SSHKeyFile string
	// SSHKnownHostsFile verifies the server's host key. Without it host keys
	// are not checked, and New logs a warning saying so. Requires SSHKeyFile.
	SSHKnownHostsFile string

	// Username and PasswordFile give HTTP basic auth. The file is re-read on
	// every fetch (so a rotated token is picked up); trailing newlines are
	// stripped. Its content never appears in logs or errors.
	Username     string
	PasswordFile string

	// TrustedKeys, when set, verifies the signature of every commit handed
	// out (branch heads and Resolve's): Revision.Verification says who
	// signed it, or why it is not to be trusted. nil: commits are not
	// verified.
	TrustedKeys *signature.Keyring

	// Logger receives the package's logs, tagged component=gitsource.
	// Default: discard.
	Logger *slog.Logger
}

const (
	defaultBranch       = "main"
	defaultPoll         = 5 * time.Second
	defaultFetchTimeout = 2 * time.Minute
)

// settings is a validated Config plus what was derived from it.
type settings struct {
	Config
	protocol    string // go-git endpoint protocol: file, git, http, https, ssh
	displayURL  string // URL safe to log
	urlPassword string // password taken out of an http(s) URL
	sshAuth     *gitssh.PublicKeys
}

// validate fills defaults and checks cfg; errors name the field.
func validate(cfg Config) (*settings, error) {
	s := &settings{Config: cfg}
	if s.Branch == "" {
		s.Branch = defaultBranch
	}
	if s.Poll == 0 {
		s.Poll = defaultPoll
	}
	if s.FetchTimeout == 0 {
		s.FetchTimeout = defaultFetchTimeout
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	s.Logger = s.Logger.With("component", "gitsource")

	var errs []error
	if s.Poll < 0 {
		errs = append(errs, fmt.Errorf("poll: must be positive, got %s", s.Poll))
	}
	if s.FetchTimeout < 0 {
		errs = append(errs, fmt.Errorf("fetch_timeout: must be positive, got %s", s.FetchTimeout))
	}
	if why := validBranchName(s.Branch); why != "" {
		errs = append(errs, fmt.Errorf("branch: %s", why))
	}
	if s.Dir == "" {
		errs = append(errs, errors.New("dir: required"))
	}
	if err := s.parseURL(); err != nil {
		errs = append(errs, err)
	}
	if err := s.checkAuth(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *settings) parseURL() error {
	if s.URL == "" {
		return errors.New("url: required")
	}
	ep, err := transport.NewEndpoint(s.URL)
	if err != nil {
		return fmt.Errorf("url: %s", redact(err.Error(), passwordOf(s.URL)))
	}
	s.protocol = ep.Protocol
	switch ep.Protocol {
	case "file":
		if !strings.HasPrefix(s.URL, "file://") {
			// A plain path: make it absolute so the clone does not depend on
			// the working directory of whoever runs the server.
			abs, err := filepath.Abs(s.URL)
			if err != nil {
				return fmt.Errorf("url: %w", err)
			}
			s.URL = abs
		}
	case "http", "https":
		u, err := url.Parse(s.URL)
		if err != nil {
			return fmt.Errorf("url: %s", redact(err.Error(), passwordOf(s.URL)))
		}
		if u.User != nil {
			// Credentials travel as basic auth, never in the clone's config.
			if name := u.User.Username(); name != "" {
				if s.Username != "" && s.Username != name {
					return fmt.Errorf("url: user %q differs from username %q", name, s.Username)
				}
				s.Username = name
			}
			s.urlPassword, _ = u.User.Password()
			u.User = nil
			s.URL = u.String()
		}
	case "git", "ssh":
	default:
		return fmt.Errorf("url: unsupported protocol %q (want a path, file, git, http, https or ssh)", ep.Protocol)
	}
	s.displayURL = redact(s.URL)
	return nil
}

func (s *settings) checkAuth() error {
	var errs []error
	isHTTP := s.protocol == "http" || s.protocol == "https"
	if !isHTTP && (s.Username != "" || s.PasswordFile != "") {
		errs = append(errs, fmt.Errorf("username, password_file: only for http(s) URLs, not %s", s.protocol))
	}
	if isHTTP {
		if s.PasswordFile != "" && s.Username == "" {
			errs = append(errs, errors.New("password_file: needs username"))
		}
		if s.PasswordFile != "" && s.urlPassword != "" {
			errs = append(errs, errors.New("password_file: the URL already carries a password; give one or the other"))
		}
		if s.PasswordFile != "" {
			if _, err := readPassword(s.PasswordFile); err != nil {
				errs = append(errs, fmt.Errorf("password_file: %w", err))
			}
		}
	}
	if s.protocol != "ssh" && (s.SSHKeyFile != "" || s.SSHKnownHostsFile != "") {
		errs = append(errs, fmt.Errorf("ssh_key_file, ssh_known_hosts_file: only for ssh URLs, not %s", s.protocol))
	}
	if s.protocol == "ssh" {
		if s.SSHKnownHostsFile != "" && s.SSHKeyFile == "" {
			errs = append(errs, errors.New("ssh_known_hosts_file: needs ssh_key_file"))
		}
		if s.SSHKeyFile != "" {
			auth, err := sshAuth(s.URL, s.SSHKeyFile, s.SSHKnownHostsFile)
			if err != nil {
				errs = append(errs, err)
			}
			s.sshAuth = auth
			if auth != nil && s.SSHKnownHostsFile == "" {
				s.Logger.Warn("ssh host key of the git server is not verified; set a known_hosts file", "url", s.displayURL)
			}
		}
	}
	return errors.Join(errs...)
}

// sshAuth builds public-key auth from an unencrypted private key file. The
// user is the one in the URL, or "git". With knownHosts empty, host keys are
// not checked.
func sshAuth(rawURL, keyFile, knownHosts string) (*gitssh.PublicKeys, error) {
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	user := ep.User
	if user == "" {
		user = "git"
	}
	auth, err := gitssh.NewPublicKeysFromFile(user, keyFile, "")
	if err != nil {
		// The parse error never quotes key material, only the file name.
		return nil, fmt.Errorf("ssh_key_file %s: %w (passphrase-protected keys are not supported)", keyFile, err)
	}
	if knownHosts != "" {
		cb, err := gitssh.NewKnownHostsCallback(knownHosts)
		if err != nil {
			return nil, fmt.Errorf("ssh_known_hosts_file %s: %w", knownHosts, err)
		}
		auth.HostKeyCallback = cb
	} else {
		auth.HostKeyCallback = gossh.InsecureIgnoreHostKey()
	}
	return auth, nil
}

// readPassword returns the file's content without trailing newlines.
func readPassword(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err // names the file, never the content
	}
	p := strings.TrimRight(string(b), "\r\n")
	if p == "" {
		return "", fmt.Errorf("%s: empty", file)
	}
	return p, nil
}

// passwordOf returns the password of a URL-looking string, if any; used to
// scrub it from parse errors.
func passwordOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

// auth returns the transport auth for one fetch and the secrets to scrub
// from its errors.
func (s *settings) auth() (transport.AuthMethod, []string, error) {
	switch s.protocol {
	case "ssh":
		if s.sshAuth != nil {
			return s.sshAuth, nil, nil
		}
	case "http", "https":
		switch {
		case s.PasswordFile != "":
			p, err := readPassword(s.PasswordFile)
			if err != nil {
				return nil, nil, fmt.Errorf("password_file: %w", err)
			}
			return &githttp.BasicAuth{Username: s.Username, Password: p}, []string{p}, nil
		case s.urlPassword != "":
			return &githttp.BasicAuth{Username: s.Username, Password: s.urlPassword}, []string{s.urlPassword}, nil
		case s.Username != "":
			return &githttp.BasicAuth{Username: s.Username}, nil, nil
		}
	}
	return nil, nil, nil
}
