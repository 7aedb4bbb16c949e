package gitsource

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBackoff_doublesFromPollUpToFiveMinutes(t *testing.T) {
	for _, tc := range []struct {
		poll     time.Duration
		failures int
		want     time.Duration
	}{
		{5 * time.Second, 0, 5 * time.Second},
		{5 * time.Second, 1, 5 * time.Second},
		{5 * time.Second, 2, 10 * time.Second},
		{5 * time.Second, 3, 20 * time.Second},
		{5 * time.Second, 6, 160 * time.Second},
		{5 * time.Second, 7, 5 * time.Minute}, // 320s capped
		{5 * time.Second, 1000, 5 * time.Minute},
		{50 * time.Millisecond, 4, 400 * time.Millisecond},
		{10 * time.Minute, 3, 10 * time.Minute}, // never faster than polling
		{time.Hour, 0, time.Hour},
		{5 * time.Second, -1, 5 * time.Second},
	} {
		if got := backoff(tc.poll, tc.failures); got != tc.want {
			t.Errorf("backoff(%s, %d) = %s, want %s", tc.poll, tc.failures, got, tc.want)
		}
	}
}

func TestRedact_hidesURLPasswordsAndSecrets(t *testing.T) {
	for _, tc := range []struct {
		msg     string
		secrets []string
		want    string
	}{
		{"fetch https://bob:hunter2@git.example.com/r.git: 401", nil, "fetch https://bob:***@git.example.com/r.git: 401"},
		{`get "http://u:p%40ss@h:8080/x"`, nil, `get "http://u:***@h:8080/x"`},
		{"ssh://git@host/repo and git@host:repo", nil, "ssh://git@host/repo and git@host:repo"},
		{"https://host/repo.git: not found", nil, "https://host/repo.git: not found"},
		{"server said: tok-123 is bad", []string{"tok-123"}, "server said: *** is bad"},
		{"escaped a%2Fb+c", []string{"a/b c"}, "escaped ***"},
		{"nothing secret", []string{""}, "nothing secret"},
		{"https://u:p%40ss%3Aw0rd@h/x", nil, "https://u:***@h/x"},
		{"https://u:p@ss@h/x", nil, "https://u:***@h/x"},
		{"https://u:pa:ss@h/x", nil, "https://u:***@h/x"},
		{"https://:pw@h/x", nil, "https://:***@h/x"},
		{"https://u:p@h: connection refused", nil, "https://u:***@h: connection refused"},
		{"a https://u:p1@h1/x and http://v:p2@h2:8080/y?q=1, then git@h3:r", nil, "a https://u:***@h1/x and http://v:***@h2:8080/y?q=1, then git@h3:r"},
		{`{"url":"https://u:p@h","e":'http://w:q@h'}`, nil, `{"url":"https://u:***@h","e":'http://w:***@h'}`},
		{"x://a:https://u:p@h/r", nil, "x://a:https://u:***@h/r"},
		{"https://token@h/x", nil, "https://token@h/x"},
		{"https://u:my pass@h/", []string{"my pass"}, "https://u:***@h/"},
		{"https://u:a%20b%2Fc%40d@h/ and a+b%2Fc%40d", []string{"a b/c@d"}, "https://u:***@h/ and ***"},
		{"**[r", []string{"*[r"}, "[redacted]edacted]"},
		{"aaa", []string{"aa"}, "***a"},
	} {
		if got := redact(tc.msg, tc.secrets...); got != tc.want {
			t.Errorf("redact(%q, %q) = %q, want %q", tc.msg, tc.secrets, got, tc.want)
		}
	}
}

func TestNew_rejectsInvalidConfigNamingTheField(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not-pem")
	os.WriteFile(notPEM, []byte("host ssh-ed25519 not-base64!\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no url", Config{Dir: dir}, "url: required"},
		{"no dir", Config{URL: "/srv/repo"}, "dir: required"},
		{"bad branch", Config{URL: "/srv/repo", Dir: dir, Branch: "a..b"}, "branch:"},
		{"negative poll", Config{URL: "/srv/repo", Dir: dir, Poll: -time.Second}, "poll:"},
		{"unsupported scheme", Config{URL: "ftp://host/repo", Dir: dir}, "unsupported protocol"},
		{"password file for git://", Config{URL: "git://host/repo", Dir: dir, Auth: Auth{Username: "u", PasswordFile: "/p"}}, "password_file, username: only for http(s)"},
		{"ca file for ssh", Config{URL: "git@host:repo", Dir: dir, Auth: Auth{CAFile: "/ca", InsecureIgnoreHostKey: true}}, "ca_file: only for http(s)"},
		{"ca file for http", Config{URL: "http://host/repo", Dir: dir, Auth: Auth{CAFile: "/ca"}}, "ca_file: only for https"},
		{"bad ca file", Config{URL: "https://host/repo", Dir: dir, Auth: Auth{CAFile: notPEM}}, "ca_file: " + notPEM + ": no PEM certificate"},
		{"password file without user", Config{URL: "https://host/repo", Dir: dir, Auth: Auth{PasswordFile: "/p"}}, "password_file: needs username"},
		{"missing password file", Config{URL: "https://host/repo", Dir: dir, Auth: Auth{Username: "u", PasswordFile: dir + "/none"}}, "password_file:"},
		{"empty password file", Config{URL: "https://host/repo", Dir: dir, Auth: Auth{Username: "u", PasswordFile: empty}}, "password_file: " + empty + ": empty"},
		{"token and password", Config{URL: "https://u:p@host/repo", Dir: dir, Auth: Auth{TokenFile: "/t"}}, "token_file: a bearer token replaces the password"},
		{"token with username", Config{URL: "https://host/repo", Dir: dir, Auth: Auth{Username: "u", TokenFile: "/t"}}, "token_file: a bearer token goes without a username"},
		{"missing token file", Config{URL: "https://host/repo", Dir: dir, Auth: Auth{TokenFile: dir + "/none"}}, "token_file:"},
		{"ssh key for https", Config{URL: "https://host/repo", Dir: dir, Auth: Auth{SSHKeyFile: "/k"}}, "ssh_key_file: only for ssh"},
		{"known hosts for git://", Config{URL: "git://host/repo", Dir: dir, Auth: Auth{SSHKnownHosts: []string{"/kh"}, InsecureIgnoreHostKey: true}}, "insecure_ignore_host_key, ssh_known_hosts: only for ssh"},
		{"missing known hosts", Config{URL: "git@host:repo", Dir: dir, Auth: Auth{SSHKnownHosts: []string{dir + "/none"}}}, "ssh_known_hosts: stat " + dir + "/none"},
		{"bad known hosts", Config{URL: "git@host:repo", Dir: dir, Auth: Auth{SSHKnownHosts: []string{notPEM}}}, "ssh_known_hosts: knownhosts: " + notPEM + ":1:"},
		{"known hosts and insecure", Config{URL: "git@host:repo", Dir: dir, Auth: Auth{SSHKnownHosts: []string{notPEM}, InsecureIgnoreHostKey: true}}, "insecure_ignore_host_key: ssh_known_hosts given too"},
		{"missing key file", Config{URL: "git@host:repo", Dir: dir, Auth: Auth{SSHKeyFile: dir + "/none", InsecureIgnoreHostKey: true}}, "ssh_key_file"},
		{"unparsable URL with password", Config{URL: "https://u:pa/ss@host/repo", Dir: dir}, "url: not a valid URL"},
		{"password with a slash that parses as a port", Config{URL: "https://u:1/ss@host/repo", Dir: dir}, "url: not a valid URL"},
		{"password with a hash that parses as a fragment", Config{URL: "https://u:@0#@host/repo", Dir: dir}, "url: not a valid URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New(%+v) = %v, want error containing %q", tc.cfg, err, tc.want)
			}
		})
	}
}

func TestNew_urlPasswordIsTakenOutOfTheURL(t *testing.T) {
	s, err := New(Config{URL: "https://bot:t0ken@git.example.com/r.git", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.URL != "https://git.example.com/r.git" || s.cfg.Auth.Username != "bot" || s.cfg.urlPassword != "t0ken" {
		t.Errorf("url=%q user=%q", s.cfg.URL, s.cfg.Auth.Username)
	}
	if strings.Contains(s.cfg.displayURL, "t0ken") {
		t.Errorf("display URL %q shows the password", s.cfg.displayURL)
	}
}

func TestSafePath_rejectsEscapesAndGitDirs(t *testing.T) {
	for p, want := range map[string]bool{
		"deploy/web.yaml": true,
		"a/.gitignore":    true,
		"../x":            false,
		"a/../../x":       false,
		"/etc/passwd":     false,
		".git/config":     false,
		"a/.GIT/hooks/x":  false,
		`a\..\x`:          false,
	} {
		if got := safePath(p); got != want {
			t.Errorf("safePath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestNew_acceptsURLsWithCredentialsAndNoPath(t *testing.T) {
	for _, raw := range []string{"https://u:p@git.example.com", "https://u:p%2Fq@git.example.com:8443/r.git?x=1"} {
		if _, err := New(Config{URL: raw, Dir: t.TempDir()}); err != nil {
			t.Errorf("New(%q): %v", raw, err)
		}
	}
}
