package gitsource

import (
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
	} {
		if got := redact(tc.msg, tc.secrets...); got != tc.want {
			t.Errorf("redact(%q, %q) = %q, want %q", tc.msg, tc.secrets, got, tc.want)
		}
	}
}

func TestNew_rejectsInvalidConfigNamingTheField(t *testing.T) {
	dir := t.TempDir()
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
		{"password file for git://", Config{URL: "git://host/repo", Dir: dir, Username: "u", PasswordFile: "/p"}, "username, password_file: only for http(s)"},
		{"password file without user", Config{URL: "https://host/repo", Dir: dir, PasswordFile: "/p"}, "password_file: needs username"},
		{"missing password file", Config{URL: "https://host/repo", Dir: dir, Username: "u", PasswordFile: dir + "/none"}, "password_file:"},
		{"ssh key for https", Config{URL: "https://host/repo", Dir: dir, SSHKeyFile: "/k"}, "ssh_key_file, ssh_known_hosts_file: only for ssh"},
		{"known hosts without key", Config{URL: "git@host:repo", Dir: dir, SSHKnownHostsFile: "/kh"}, "ssh_known_hosts_file: needs ssh_key_file"},
		{"missing key file", Config{URL: "git@host:repo", Dir: dir, SSHKeyFile: dir + "/none"}, "ssh_key_file"},
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
	if s.cfg.URL != "https://git.example.com/r.git" || s.cfg.Username != "bot" || s.cfg.urlPassword != "t0ken" {
		t.Errorf("url=%q user=%q", s.cfg.URL, s.cfg.Username)
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
