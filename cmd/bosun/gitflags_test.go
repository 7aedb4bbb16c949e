package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestServer_badGitFlagsExit2BeforeStarting(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--repo", "https://git.example.com/r.git", "--ssh-key", "/k"}, "ssh_key_file: only for ssh URLs"},
		{[]string{"--repo", "git@git.example.com:r.git", "--ssh-known-hosts", "/nonexistent/known_hosts"}, "ssh_known_hosts: stat /nonexistent/known_hosts"},
		{[]string{"--repo", "git@git.example.com:r.git", "--insecure-ignore-host-key", "--ssh-known-hosts", "/etc/hostname"}, "give one or the other"},
		{[]string{"--repo", "https://git.example.com/r.git", "--git-username", "u", "--git-password-file", "/nonexistent/pw"}, "password_file: open /nonexistent/pw"},
		{[]string{"--repo", "https://git.example.com/r.git", "--git-ca-file", "/etc/hostname"}, "ca_file: /etc/hostname: no PEM certificate"},
		{[]string{"--repo", "https://bob:planted/secret@git.example.com/r.git"}, "url: not a valid URL"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"server", "--data-dir", t.TempDir()}, tc.args...), &out, &errOut)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("bosun server %q: err %v, want exit 2 with %q", tc.args, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error()+out.String()+errOut.String(), "planted") {
			t.Errorf("bosun server %q shows the password: %v", tc.args, err)
		}
	}
}
