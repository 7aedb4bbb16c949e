package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bosun/api"
)

func TestServerURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://127.0.0.1:7070":   "https://127.0.0.1:7070",
		"127.0.0.1:7070":           "https://127.0.0.1:7070",
		"bosun.example":            "https://bosun.example:7070",
		"https://[::1]:8443/":      "https://[::1]:8443",
		"https://h:1/behind/proxy": "https://h:1/behind/proxy",
	} {
		if got, err := serverURL(in); err != nil || got != want {
			t.Errorf("serverURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"http://127.0.0.1:7070": "serves HTTPS only; use https://127.0.0.1:7070",
		"ftp://x":               "want https://HOST:PORT",
		"https://":              "want https://HOST:PORT",
	} {
		if _, err := serverURL(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("serverURL(%q): %v, want %q", in, err, want)
		}
	}
}

// userHome gives the test a HOME of its own (no XDG_CONFIG_HOME, no
// BOSUN_TOKEN) and returns its ~/.config/bosun.
func userHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("BOSUN_TOKEN", "")
	t.Setenv("BOSUN_SERVER", "")
	return filepath.Join(home, ".config", "bosun")
}

// tlsAPI is a TLS server (httptest's certificate, which no system root
// vouches for) that answers /api/v1/status with the Authorization header
// it got.
func tlsAPI(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(api.Error{Error: "authentication required"})
			return
		}
		json.NewEncoder(w).Encode(api.Status{Leader: r.Header.Get("Authorization")})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func runCLI(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestClient_pinsOnFirstUseAndRefusesAChangedCertificate(t *testing.T) {
	conf := userHome(t)
	srv := tlsAPI(t)
	addr := strings.TrimPrefix(srv.URL, "https://")
	fp := api.Fingerprint(srv.Certificate().Raw)

	out, errOut, err := runCLI("status", "-o", "json", "--server", srv.URL, "--token", "t1")
	if err != nil {
		t.Fatalf("first use: %v\n%s", err, errOut)
	}
	if !strings.Contains(errOut, "trusting "+addr+" on first use: certificate fingerprint "+fp) || strings.Contains(out, "trusting") {
		t.Errorf("first use: stdout %q, stderr %q", out, errOut)
	}
	known, _ := os.ReadFile(filepath.Join(conf, "known_servers"))
	if string(known) != addr+" "+fp+"\n" {
		t.Errorf("known_servers = %q", known)
	}
	for p, mode := range map[string]os.FileMode{filepath.Join(conf, "known_servers"): 0o600, conf: 0o700} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v %v, want %v", p, fi.Mode().Perm(), err, mode)
		}
	}
	if _, errOut, err := runCLI("status", "--server", srv.URL, "--token", "t1"); err != nil || errOut != "" {
		t.Errorf("second use: %v, stderr %q", err, errOut)
	}

	// Another certificate on the same address: refused, with what to do.
	os.WriteFile(filepath.Join(conf, "known_servers"), []byte("# pins\n127.0.0.1:1 SHA256:another\n"+addr+" SHA256:somethingElse\n"), 0o600)
	_, _, err = runCLI("status", "--server", srv.URL, "--token", "t1")
	var pe *pinError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "CHANGED") || !strings.Contains(err.Error(), "delete line 3 of "+filepath.Join(conf, "known_servers")) ||
		!strings.Contains(err.Error(), fp) {
		t.Errorf("changed certificate: %v", err)
	}
	// --ca-file verifies instead of pinning.
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pemOf(srv.Certificate().Raw), 0o644)
	if _, errOut, err := runCLI("status", "--server", srv.URL, "--token", "t1", "--ca-file", ca); err != nil || errOut != "" {
		t.Errorf("--ca-file: %v %q", err, errOut)
	}
	// ... and a CA that does not vouch for it fails, without pinning.
	ss, err := api.GeneratedCertificate(t.TempDir(), []string{"127.0.0.1"}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(conf, "known_servers"))
	if _, _, err := runCLI("status", "--server", srv.URL, "--token", "t1", "--ca-file", ss.CertFile); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("--ca-file of another CA: %v", err)
	}
	if _, err := os.Stat(filepath.Join(conf, "known_servers")); err == nil {
		t.Error("--ca-file pinned the certificate")
	}
}

func TestClient_tokenFromFlagEnvOrConfigFile(t *testing.T) {
	conf := userHome(t)
	srv := tlsAPI(t)
	status := func(args ...string) string {
		t.Helper()
		out, errOut, err := runCLI(append([]string{"status", "-o", "json", "--server", srv.URL}, args...)...)
		if err != nil {
			return "error: " + err.Error()
		}
		_ = errOut
		var st api.Status
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return st.Leader
	}
	if got := status(); !strings.Contains(got, "401 Unauthorized: give a valid token with --token, BOSUN_TOKEN or ~/.config/bosun/token") {
		t.Errorf("no token: %s", got)
	}
	os.MkdirAll(conf, 0o700)
	os.WriteFile(filepath.Join(conf, "token"), []byte("from-file\n"), 0o600)
	if got := status(); got != "Bearer from-file" {
		t.Errorf("config file: %s", got)
	}
	t.Setenv("BOSUN_TOKEN", "from-env")
	if got := status(); got != "Bearer from-env" {
		t.Errorf("env: %s", got)
	}
	if got := status("--token", "from-flag"); got != "Bearer from-flag" {
		t.Errorf("flag: %s", got)
	}
	// get takes the client flags after its arguments too.
	if _, _, err := runCLI("get", "pods", "--server", "http://127.0.0.1:1", "--token", "x"); err == nil || !strings.Contains(err.Error(), "HTTPS only") {
		t.Errorf("get with http://: %v", err)
	}
}

func TestTokenCreate_printsATokenAndItsLine(t *testing.T) {
	out, _, err := runCLI("token", "create", "--role", "read-only", "--name", "ci", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Role, Name, Token, Line string }
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	toks, err := api.ParseTokens("line", strings.NewReader(got.Line))
	if err != nil || len(toks) != 1 || toks[0].Hash != api.HashToken(got.Token) || toks[0].Role != api.RoleReadOnly || toks[0].Name != "ci" {
		t.Errorf("token %q, line %q: %v %v", got.Token, got.Line, toks, err)
	}
	if strings.Contains(got.Line, got.Token) {
		t.Error("the line holds the token")
	}
	text, _, err := runCLI("token", "create", "--role", "admin", "--name", "alice")
	if err != nil || !strings.Contains(text, "\nadmin:alice:sha256:") || !strings.Contains(text, "\nbosun_") {
		t.Errorf("text output: %v\n%s", err, text)
	}
	for _, args := range [][]string{
		{"token"}, {"token", "create", "--role", "root", "--name", "x"}, {"token", "create", "--role", "admin", "--name", "two words"},
		{"token", "create", "--role", "admin"},
	} {
		_, _, err := runCLI(args...)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("bosun %q: %v, want exit 2", args, err)
		}
	}
}

func TestServer_badSecurityFlagsExit2(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(bad, []byte("admin:ops:bosun_notAHash\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"server", "--repo", ".", "--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"server", "--repo", ".", "--tokens-file", bad}, bad + ":1: hash"},
		{[]string{"server", "--repo", ".", "--tokens-file", bad + ".missing"}, "no such file"},
	} {
		_, _, err := runCLI(tc.args...)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "bosun_notAHash") {
			t.Errorf("bosun %q: %v, want exit 2 with %q", tc.args, err, tc.want)
		}
	}
}

func TestAnnounceAdminToken_savesItForTheCLI(t *testing.T) {
	conf := userHome(t)
	var stderr bytes.Buffer
	announceAdminToken(&stderr, "/var/lib/bosun", "bosun_planted-generated-token")
	b, err := os.ReadFile(filepath.Join(conf, "token"))
	if err != nil || string(b) != "bosun_planted-generated-token\n" {
		t.Fatalf("token file %q, %v", b, err)
	}
	if fi, _ := os.Stat(filepath.Join(conf, "token")); fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(conf); fi.Mode().Perm() != 0o700 {
		t.Errorf("config dir mode %v", fi.Mode().Perm())
	}
	if n := strings.Count(stderr.String(), "bosun_planted-generated-token"); n != 1 || !strings.Contains(stderr.String(), "saved for the local CLI in "+filepath.Join(conf, "token")) {
		t.Errorf("announcement:\n%s", stderr.String())
	}
}

func pemOf(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
