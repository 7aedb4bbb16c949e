package gitsource

import (
	"cmp"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"

	"bosun/signature"
)

// Config says which branch of which repository to follow. The zero value of
// every optional field works.
type Config struct {
	// URL of the repository: a local path, file://, http(s)://, git://,
	// ssh://user@host/path or scp-like user@host:path. User and password
	// embedded in an http(s) URL are used as basic auth, kept out of the
	// clone's config and redacted everywhere (prefer Auth.PasswordFile: a
	// URL given on a command line is visible to every user of the machine).
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

	// Auth says how the Source proves itself to the Git server and how it
	// checks the server. The zero value verifies ssh host keys against the
	// default known_hosts files and offers no credentials but an ssh-agent's.
	Auth Auth

	// TrustedKeys, when set, verifies the signature of every commit handed
	// out (branch heads and Resolve's): Revision.Verification says who
	// signed it, or why it is not to be trusted. nil: commits are not
	// verified.
	TrustedKeys *signature.Keyring

	// Logger receives the package's logs, tagged component=gitsource.
	// Default: discard.
	Logger *slog.Logger
	// Metrics, when set, records fetches (metrics.go); it may outlive the
	// Source and be given to the next one. nil: none.
	Metrics *Metrics
}

// Auth is the transport's credentials and trust. Every file is re-read at
// each fetch, so a rotated key, password, token, CA bundle or known_hosts
// takes effect without a restart; New (and Check) read them once to fail
// early. Secrets read from files never appear in logs, errors or Status.
type Auth struct {
	// SSHKeyFile is an unencrypted private key for ssh URLs (a deploy key).
	// Without it, the keys of the ssh-agent at $SSH_AUTH_SOCK are offered.
	// The ssh user is the URL's, or "git".
	SSHKeyFile string
	// SSHKnownHosts are OpenSSH known_hosts files; an ssh server's host key
	// must be in one of them, with or without SSHKeyFile. An unknown key
	// and a changed key are refused with a *HostKeyError. Default: those of
	// DefaultKnownHosts() that exist at the time of each fetch. Files given
	// here must exist.
	SSHKnownHosts []string
	// InsecureIgnoreHostKey accepts any ssh host key: whoever sits between
	// bosun and the Git server can then serve it any commit. It is the only
	// way to skip the check; Check warns about it.
	InsecureIgnoreHostKey bool

	// Username and PasswordFile give HTTP basic auth. Trailing newlines of
	// the file are stripped. Most hosts take their access tokens this way,
	// as the password: GitHub (with the account's user name, or
	// x-access-token for a GitHub App's installation token), GitLab (any
	// user name; oauth2 for an OAuth token), Bitbucket (x-token-auth for
	// an access token).
	Username     string
	PasswordFile string
	// TokenFile holds a bearer token, sent as "Authorization: Bearer", for
	// servers that take one (Azure DevOps with a Microsoft Entra ID token,
	// a reverse proxy in front of git-http-backend that checks bearer
	// tokens). Not with Username or PasswordFile.
	TokenFile string
	// CAFile is a PEM bundle of CA certificates trusted for https besides
	// the system's, for a Git server with a private CA.
	CAFile string
}

// DefaultKnownHosts are the known_hosts files OpenSSH reads: the user's
// ~/.ssh/known_hosts and the system's /etc/ssh/ssh_known_hosts.
func DefaultKnownHosts() []string {
	files := []string{"/etc/ssh/ssh_known_hosts"}
	if home, err := os.UserHomeDir(); err == nil {
		files = append([]string{filepath.Join(home, ".ssh", "known_hosts")}, files...)
	}
	return files
}

const (
	defaultBranch       = "main"
	defaultPoll         = 5 * time.Second
	defaultFetchTimeout = 2 * time.Minute
	defaultSSHUser      = "git"
)

// settings is a validated Config plus what was derived from it.
type settings struct {
	Config
	protocol    string // go-git endpoint protocol: file, git, http, https, ssh
	displayURL  string // URL safe to log
	urlPassword string // password taken out of an http(s) URL
	sshUser     string // user of an ssh URL, default "git"
	sshHost     string // host:port an ssh URL dials
}

// validate fills defaults and checks cfg, reading the files Auth names;
// errors name the field.
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
	} else if err := s.checkAuth(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// errBadURL never quotes the URL: a password that is not percent-encoded
// is exactly what makes a URL unparsable, and the parser's message would
// show part of it.
var errBadURL = errors.New("url: not a valid URL (a password in it must be percent-encoded; better, put it in a password file)")

func (s *settings) parseURL() error {
	if s.URL == "" {
		return errors.New("url: required")
	}
	ep, err := transport.NewEndpoint(s.URL)
	if err != nil {
		return errBadURL
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
			return errBadURL
		}
		_, rest, _ := strings.Cut(s.URL, "://")
		if end := strings.IndexAny(rest, "/?#"); end >= 0 && strings.Contains(rest[end:], "@") {
			// An '@' past the authority is a password with an unescaped
			// '/', '?' or '#': https://bob:1/x@host/r parses as host
			// "bob", port 1, and would be shown whole.
			return errBadURL
		}
		if u.User != nil {
			// Credentials travel as basic auth, never in the clone's config.
			if name := u.User.Username(); name != "" {
				if s.Auth.Username != "" && s.Auth.Username != name {
					return fmt.Errorf("url: user %q differs from username %q", name, s.Auth.Username)
				}
				s.Auth.Username = name
			}
			s.urlPassword, _ = u.User.Password()
			u.User = nil
			s.URL = u.String()
		}
	case "ssh":
		s.sshUser = cmp.Or(ep.User, defaultSSHUser)
		port := ep.Port
		if port <= 0 {
			port = 22
		}
		s.sshHost = net.JoinHostPort(ep.Host, strconv.Itoa(port))
	case "git":
	default:
		return fmt.Errorf("url: unsupported protocol %q (want a path, file, git, http, https or ssh)", ep.Protocol)
	}
	s.displayURL = redact(s.URL)
	return nil
}

// checkAuth checks that Auth fits the URL's protocol and reads its files.
func (s *settings) checkAuth() error {
	a := s.Auth
	var errs []error
	isHTTP := s.protocol == "http" || s.protocol == "https"
	if !isHTTP {
		if set := setFields(map[string]bool{"username": a.Username != "", "password_file": a.PasswordFile != "",
			"token_file": a.TokenFile != "", "ca_file": a.CAFile != ""}); set != "" {
			errs = append(errs, fmt.Errorf("%s: only for http(s) URLs, not %s", set, s.protocol))
		}
	}
	if s.protocol != "ssh" {
		if set := setFields(map[string]bool{"ssh_key_file": a.SSHKeyFile != "", "ssh_known_hosts": len(a.SSHKnownHosts) > 0,
			"insecure_ignore_host_key": a.InsecureIgnoreHostKey}); set != "" {
			errs = append(errs, fmt.Errorf("%s: only for ssh URLs, not %s", set, s.protocol))
		}
	}
	if isHTTP {
		switch {
		case a.PasswordFile != "" && a.Username == "":
			errs = append(errs, errors.New("password_file: needs username"))
		case a.PasswordFile != "" && s.urlPassword != "":
			errs = append(errs, errors.New("password_file: the URL already carries a password; give one or the other"))
		case a.TokenFile != "" && (a.PasswordFile != "" || s.urlPassword != ""):
			errs = append(errs, errors.New("token_file: a bearer token replaces the password; give one or the other"))
		case a.TokenFile != "" && a.Username != "":
			errs = append(errs, errors.New("token_file: a bearer token goes without a username; for a token your server takes as a password (GitHub, GitLab), give username and password_file instead"))
		}
		if a.PasswordFile != "" {
			if _, err := readSecret(a.PasswordFile); err != nil {
				errs = append(errs, fmt.Errorf("password_file: %w", err))
			}
		}
		if a.TokenFile != "" {
			if _, err := readSecret(a.TokenFile); err != nil {
				errs = append(errs, fmt.Errorf("token_file: %w", err))
			}
		}
		if a.CAFile != "" {
			if s.protocol != "https" {
				errs = append(errs, fmt.Errorf("ca_file: only for https URLs, not %s", s.protocol))
			} else if _, err := readCABundle(a.CAFile); err != nil {
				errs = append(errs, fmt.Errorf("ca_file: %w", err))
			}
		}
	}
	if s.protocol == "ssh" {
		if a.SSHKeyFile != "" {
			if _, err := loadSSHKey(s.sshUser, a.SSHKeyFile); err != nil {
				errs = append(errs, err)
			}
		}
		if a.InsecureIgnoreHostKey && len(a.SSHKnownHosts) > 0 {
			errs = append(errs, errors.New("insecure_ignore_host_key: ssh_known_hosts given too; give one or the other"))
		} else if _, _, err := s.hostKeyCheck(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// setFields lists, sorted and comma-separated, the names whose value is
// true.
func setFields(fields map[string]bool) string {
	var set []string
	for name, ok := range fields {
		if ok {
			set = append(set, name)
		}
	}
	if len(set) == 0 {
		return ""
	}
	slices.Sort(set)
	return strings.Join(set, ", ")
}

// readSecret returns the file's content without trailing newlines.
func readSecret(file string) (string, error) {
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

// readCABundle reads a PEM file holding at least one certificate.
func readCABundle(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", file)
	}
	return b, nil
}

// Check validates cfg as New does, reading the files of cfg.Auth but not
// the network, and returns what a server should warn about at every start:
// host keys not verified, a password in the URL (visible to every user in
// the process list when given as a flag), credentials over plain http,
// secret files other users can read, ssh without any known_hosts file.
func Check(cfg Config) (warnings []string, err error) {
	s, err := validate(cfg)
	if err != nil {
		return nil, err
	}
	a := s.Auth
	if s.protocol == "ssh" {
		if a.InsecureIgnoreHostKey {
			warnings = append(warnings, fmt.Sprintf("ssh host keys of %s are NOT verified (--insecure-ignore-host-key): whoever sits between this machine and the Git server can serve it any commit, and bosun runs it", s.displayURL))
		} else if files, _ := s.knownHosts(); len(files) == 0 {
			warnings = append(warnings, fmt.Sprintf("no known_hosts file (%s): every ssh host key is refused until the server's key is added (ssh-keyscan) or --ssh-known-hosts names a file", strings.Join(DefaultKnownHosts(), ", ")))
		}
	}
	if s.urlPassword != "" {
		warnings = append(warnings, "the repository URL carries a password: flag values are visible to every user of this machine (ps, /proc/PID/cmdline); put it in a file and use --git-username with --git-password-file")
	}
	if s.protocol == "http" && (s.urlPassword != "" || a.PasswordFile != "" || a.TokenFile != "") {
		warnings = append(warnings, fmt.Sprintf("credentials for %s travel over plain http, unencrypted; use https", s.displayURL))
	}
	for _, f := range []struct{ flag, file string }{{"--ssh-key", a.SSHKeyFile}, {"--git-password-file", a.PasswordFile}, {"--git-token-file", a.TokenFile}} {
		if f.file == "" {
			continue
		}
		if fi, err := os.Stat(f.file); err == nil && fi.Mode().Perm()&0o077 != 0 {
			warnings = append(warnings, fmt.Sprintf("%s %s is readable by other users (mode %04o); chmod 600 it", f.flag, f.file, fi.Mode().Perm()))
		}
	}
	return warnings, nil
}
