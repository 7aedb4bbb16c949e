package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cgi"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needTool returns the path of a program the test needs: without it the
// test is skipped, or fails when CI=true.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed: %v", name, err)
		}
		t.Skipf("%s is not installed: %v", name, err)
	}
	return path
}

// bareRemote pushes repo's main to a new bare repository (dir/repo.git)
// and sets it as repo's origin; it returns the bare repository's path.
func bareRemote(t *testing.T, repo *gitRepo) string {
	t.Helper()
	bare := filepath.Join(t.TempDir(), "repo.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", "-b", "main", bare).CombinedOutput(); err != nil {
		t.Fatalf("git init --bare: %v\n%s", err, out)
	}
	repo.git("remote", "add", "origin", bare)
	repo.git("push", "-q", "origin", "main")
	return bare
}

const trustService = "apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\nspec:\n  selector:\n    app: %s\n  ports:\n  - port: 80\n"

// sshd is Debian's OpenSSH server on a loopback port, run by the test with
// a configuration, host key and authorized_keys of its own.
type sshd struct {
	t    *testing.T
	bin  string
	dir  string
	port string
	cmd  *exec.Cmd
	log  *lockedBuffer
}

func startSSHD(t *testing.T, dir, port, hostKey, authorizedKeys string) *sshd {
	t.Helper()
	d := &sshd{t: t, bin: needTool(t, "/usr/sbin/sshd"), dir: dir, port: port}
	// OpenSSH's privilege separation needs this directory (the package's
	// service creates it; the test runs sshd without the service).
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "sshd_config")
	content := fmt.Sprintf(`Port %s
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowUsers %s
LogLevel VERBOSE
`, port, hostKey, filepath.Join(dir, "sshd.pid"), authorizedKeys, me.Username)
	if err := os.WriteFile(config, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	d.log = &lockedBuffer{}
	d.cmd = exec.Command(d.bin, "-D", "-e", "-f", config)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.stop)
	if err := waitListening("127.0.0.1:"+port, 10*time.Second); err != nil {
		t.Fatalf("sshd on port %s: %v\n%s", port, err, d.log.String())
	}
	return d
}

func (d *sshd) stop() {
	if d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
}

func sshKeygen(t *testing.T, file string) {
	t.Helper()
	if out, err := exec.Command(needTool(t, "ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "bosun-e2e", "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
}

// TestGitTrust_sshHostKeys: bosun follows a repository over Debian's sshd
// only once the server's host key is in known_hosts; a changed host key
// is refused and the last good revision keeps running;
// --insecure-ignore-host-key accepts any key and warns.
func TestGitTrust_sshHostKeys(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	keyscan := needTool(t, "ssh-keyscan")
	dir := t.TempDir()
	hostKey1, hostKey2 := filepath.Join(dir, "host1"), filepath.Join(dir, "host2")
	sshKeygen(t, hostKey1)
	sshKeygen(t, hostKey2)
	clientKey := filepath.Join(dir, "id_ed25519")
	sshKeygen(t, clientKey)
	authorized := filepath.Join(dir, "authorized_keys")
	pub, _ := os.ReadFile(clientKey + ".pub")
	os.WriteFile(authorized, pub, 0o600)

	repo := newGitRepo(t)
	repo.write("one.yaml", fmt.Sprintf(trustService, "one", "one"))
	first := repo.commit("one service")
	bare := bareRemote(t, repo)
	_, port, _ := net.SplitHostPort(freePort(t))
	server := startSSHD(t, dir, port, hostKey1, authorized)
	me, _ := user.Current()
	repoURL := "ssh://" + me.Username + "@127.0.0.1:" + port + bare
	knownHosts := filepath.Join(dir, "known_hosts")
	os.WriteFile(knownHosts, nil, 0o600)

	s := startControlPlane(t, repoURL, "--ssh-key", clientKey, "--ssh-known-hosts", knownHosts)

	// Unknown host key: refused, with the command that adds it; nothing
	// applied.
	wantHint := "`ssh-keyscan -p " + port + " 127.0.0.1 >> " + knownHosts + "`"
	s.waitFor("the unknown host key in status", 30*time.Second, func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		if !strings.Contains(st.Sync.FetchError, "is not in known_hosts ("+knownHosts+")") || !strings.Contains(st.Sync.FetchError, wantHint) {
			return fmt.Errorf("fetch error %q", st.Sync.FetchError)
		}
		if st.Sync.Applied != nil || len(st.Services) != 0 {
			return fmt.Errorf("applied %+v with %d services before the host key is known", st.Sync.Applied, len(st.Services))
		}
		return nil
	})
	if out, _ := s.cli("status"); !strings.Contains(out, "is not in known_hosts") {
		t.Errorf("bosun status does not show the unknown host key:\n%s", out)
	}

	// Do what the hint says; known_hosts is read at each fetch.
	scanned, err := exec.Command(keyscan, "-p", port, "127.0.0.1").Output()
	if err != nil || len(scanned) == 0 {
		t.Fatalf("ssh-keyscan: %v", err)
	}
	os.WriteFile(knownHosts, scanned, 0o600)
	if out, err := s.cli("sync"); err != nil {
		t.Fatalf("bosun sync: %v\n%s", err, out)
	}
	s.waitFor("the first revision applied", 30*time.Second, func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		if st.Sync.Applied == nil || st.Sync.Applied.Commit != first || st.Sync.FetchError != "" {
			return fmt.Errorf("applied %+v, fetch error %q", st.Sync.Applied, st.Sync.FetchError)
		}
		return nil
	})

	// The server comes back with another host key, and a new commit.
	server.stop()
	startSSHD(t, dir, port, hostKey2, authorized)
	repo.write("two.yaml", fmt.Sprintf(trustService, "two", "two"))
	second := repo.commit("second service")
	repo.git("push", "-q", "origin", "main")
	if out, err := s.cli("sync"); err != nil {
		t.Fatalf("bosun sync: %v\n%s", err, out)
	}
	s.waitFor("the changed host key refused", 30*time.Second, func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		if !strings.Contains(st.Sync.FetchError, "CHANGED") || !strings.Contains(st.Sync.FetchError, "differs from known_hosts line 1 of "+knownHosts) {
			return fmt.Errorf("fetch error %q", st.Sync.FetchError)
		}
		return nil
	})
	st, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Sync.Applied == nil || st.Sync.Applied.Commit != first || len(st.Services) != 1 {
		t.Errorf("with the changed host key: applied %+v, %d services; want the first revision kept", st.Sync.Applied, len(st.Services))
	}
	if out, _ := s.cli("status"); !strings.Contains(out, "CHANGED") || !strings.Contains(out, "someone may be intercepting") {
		t.Errorf("bosun status does not show the changed host key:\n%s", out)
	}

	// --insecure-ignore-host-key: applied, and the log says why that is
	// dangerous.
	insecure := startControlPlane(t, repoURL, "--ssh-key", clientKey, "--insecure-ignore-host-key")
	insecure.waitFor("the second revision applied without host key checks", 30*time.Second, func() error {
		st, err := insecure.status()
		if err != nil {
			return err
		}
		if st.Sync.Applied == nil || st.Sync.Applied.Commit != second || len(st.Services) != 2 {
			return fmt.Errorf("applied %+v, fetch error %q", st.Sync.Applied, st.Sync.FetchError)
		}
		return nil
	})
	if log := insecure.logTail(1 << 20); !strings.Contains(log, "NOT verified (--insecure-ignore-host-key)") {
		t.Errorf("no warning about --insecure-ignore-host-key in the log:\n%s", insecure.logTail(20))
	}
}

// httpsGitServer serves the repositories under root over Git smart HTTP
// (git http-backend, as CGI) behind TLS with a certificate of a test CA,
// letting in only user:pass (basic auth).
type httpsGitServer struct {
	URL    string // https://127.0.0.1:PORT
	CAFile string // the test CA, PEM
}

func startHTTPSGitServer(t *testing.T, root, user, pass string) *httpsGitServer {
	t.Helper()
	gitExec, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	backendPath := filepath.Join(strings.TrimSpace(string(gitExec)), "git-http-backend")
	if _, err := os.Stat(backendPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("git-http-backend: %v", err)
		}
		t.Skipf("git-http-backend: %v", err)
	}
	caPEM, cert := testCA(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, caPEM, 0o644)

	backend := &cgi.Handler{
		Path: backendPath,
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"},
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			backend.ServeHTTP(w, r)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second,
	}
	l, err := net.Listen("tcp", freePort(t))
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	return &httpsGitServer{URL: "https://" + l.Addr().String(), CAFile: caFile}
}

// testCA makes a CA and a server certificate it signs for 127.0.0.1; it
// returns the CA's certificate in PEM and the server's key pair.
func testCA(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bosun e2e git CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// outputsOf collects everything of a stack a secret could leak into: its
// whole log, the CLI's status, history and plan, the API's JSON and the
// metrics.
func outputsOf(t *testing.T, s *stack) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, args := range [][]string{{"status"}, {"status", "-o", "json"}, {"history"}, {"history", "-o", "json"}, {"plan", "--ref", "main"}, {"canary"}} {
		o, _ := s.cli(args...)
		out["bosun "+strings.Join(args, " ")] = o
	}
	for _, path := range []string{"/api/v1/status", "/api/v1/history", "/api/v1/deployments", "/api/v1/canaries", "/metrics"} {
		resp, err := s.get(path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out["GET "+path] = string(b)
	}
	out["server log"] = s.logTail(1 << 20)
	return out
}

func assertNoSecret(t *testing.T, name string, outputs map[string]string, secret string) {
	t.Helper()
	for what, o := range outputs {
		if strings.Contains(o, secret) {
			t.Errorf("%s: %s shows the planted secret %q:\n%s", name, what, secret, o)
		}
	}
}

// TestGitTrust_httpsBasicAuth: bosun follows a repository behind HTTPS
// with basic auth and a private CA, with the password from a file or in
// the URL, and the planted password shows nowhere: not in the log, the
// CLI's status, history or plan, the API's JSON, nor the metrics. A wrong
// password is a clear error that does not show it either.
func TestGitTrust_httpsBasicAuth(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	b := make([]byte, 8)
	rand.Read(b)
	tag := "planted-secret-" + hex.EncodeToString(b)
	password := tag + "-p@ss:w/rd %" // '@', ':', '/' and ' ' must be escaped in a URL
	wrong := "planted-wrong-" + hex.EncodeToString(b)

	repo := newGitRepo(t)
	repo.write("one.yaml", fmt.Sprintf(trustService, "one", "one"))
	// A canary branch that does not exist: its status goes through the
	// same transport and is shown by status and the canary API.
	repo.write("web.yaml", canaryDeployment("try-out", "localhost/bosun-hello:v1"))
	first := repo.commit("one service and a canary")
	bare := bareRemote(t, repo)
	srv := startHTTPSGitServer(t, filepath.Dir(bare), "deployer", password)
	repoURL := srv.URL + "/repo.git"

	dir := t.TempDir()
	pwFile, wrongFile := filepath.Join(dir, "password"), filepath.Join(dir, "wrong")
	os.WriteFile(pwFile, []byte(password+"\n"), 0o600)
	os.WriteFile(wrongFile, []byte(wrong+"\n"), 0o600)
	hookSecret := filepath.Join(dir, "webhook-secret")
	os.WriteFile(hookSecret, []byte(webhookSecret+"\n"), 0o600)

	applied := func(s *stack, commit string) func() error {
		return func() error {
			st, err := s.status()
			if err != nil {
				return err
			}
			if st.Sync.Applied == nil || st.Sync.Applied.Commit != commit || st.Sync.FetchError != "" {
				return fmt.Errorf("applied %+v, fetch error %q", st.Sync.Applied, st.Sync.FetchError)
			}
			return nil
		}
	}

	fromFile := startControlPlane(t, repoURL, "--git-username", "deployer", "--git-password-file", pwFile,
		"--git-ca-file", srv.CAFile, "--webhook-secret-file", hookSecret)
	fromFile.waitFor("the revision applied with the password file", 60*time.Second, applied(fromFile, first))

	inURL := strings.Replace(srv.URL, "https://", "https://"+url.UserPassword("deployer", password).String()+"@", 1) + "/repo.git"
	withURL := startControlPlane(t, inURL, "--git-ca-file", srv.CAFile)
	withURL.waitFor("the revision applied with the password in the URL", 60*time.Second, applied(withURL, first))
	if log := withURL.logTail(1 << 20); !strings.Contains(log, "the repository URL carries a password") {
		t.Errorf("no warning about the password in --repo:\n%s", withURL.logTail(20))
	}

	wrongPW := startControlPlane(t, repoURL, "--git-username", "deployer", "--git-password-file", wrongFile, "--git-ca-file", srv.CAFile)
	wantRefused := `(the server refused user "deployer" with the password of ` + wrongFile + ")"
	wrongPW.waitFor("the authentication error", 30*time.Second, func() error {
		st, err := wrongPW.status()
		if err != nil {
			return err
		}
		if !strings.Contains(st.Sync.FetchError, "authentication required") || !strings.Contains(st.Sync.FetchError, wantRefused) {
			return fmt.Errorf("fetch error %q", st.Sync.FetchError)
		}
		return nil
	})

	// A second commit, brought by a webhook and by bosun sync: fetches,
	// ls-remotes of the canary branch and logs of both.
	repo.write("two.yaml", fmt.Sprintf(trustService, "two", "two"))
	second := repo.commit("second service")
	repo.git("push", "-q", "origin", "main")
	if code, err := fromFile.webhook("main", second, webhookSecret); err != nil || code != http.StatusAccepted {
		t.Fatalf("webhook: %d, %v", code, err)
	}
	withURL.cli("sync")
	fromFile.waitFor("the second revision (webhook)", 30*time.Second, applied(fromFile, second))
	withURL.waitFor("the second revision (sync)", 30*time.Second, applied(withURL, second))

	for name, s := range map[string]*stack{"password file": fromFile, "password in URL": withURL, "wrong password": wrongPW} {
		outputs := outputsOf(t, s)
		assertNoSecret(t, name, outputs, tag)
		assertNoSecret(t, name, outputs, url.QueryEscape(password))
		assertNoSecret(t, name, outputs, wrong)
		if name != "wrong password" {
			// The outputs grepped are the real thing: the history has the
			// commits, and plan fetched through the credentials.
			if !strings.Contains(outputs["bosun history"], second[:7]) {
				t.Errorf("%s: bosun history lacks the second commit (so the grep proves little):\n%s", name, outputs["bosun history"])
			}
			if out, err := s.cli("plan", "--ref", "main"); err != nil {
				t.Errorf("%s: bosun plan --ref main: %v\n%s", name, err, out)
			}
		}
		if !strings.Contains(outputs["bosun status"], "127.0.0.1") && name == "wrong password" {
			t.Errorf("%s: bosun status does not name the server:\n%s", name, outputs["bosun status"])
		}
	}
	if st, _ := withURL.status(); !strings.Contains(fmt.Sprint(st.Sync.Branches), "try-out") {
		t.Errorf("the canary branch is not in the sync status: %+v", st.Sync.Branches)
	}
}
