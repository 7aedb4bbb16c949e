package pki

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadOrCreateCA(t *testing.T) {
	dir := t.TempDir()
	ca, created, err := LoadOrCreateCA(dir)
	if err != nil || !created {
		t.Fatalf("create: created=%v err=%v", created, err)
	}
	st, err := os.Stat(filepath.Join(dir, caKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v mode %v", err, st.Mode())
	}
	again, created, err := LoadOrCreateCA(dir)
	if err != nil || created {
		t.Fatalf("load: created=%v err=%v", created, err)
	}
	if Fingerprint(again.Cert) != Fingerprint(ca.Cert) {
		t.Fatal("loading gave another CA")
	}
	os.WriteFile(filepath.Join(dir, caKeyFile), []byte("garbage"), 0o600)
	if _, _, err := LoadOrCreateCA(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("a broken key must fail naming the directory, got %v", err)
	}
}

// handshake runs a TLS handshake between a server and a client certificate
// of ca and returns what each side's VerifyPeer saw.
func handshake(t *testing.T, ca, clientCA *CA, serverCN, clientCN string) (serverSaw, clientSaw string, err error) {
	t.Helper()
	pair := func(ca *CA, cn string, server bool) tls.Certificate {
		c, k, err := ca.Issue(Request{CommonName: cn, IPs: []net.IP{net.ParseIP("127.0.0.1")}, Server: server, Client: !server})
		if err != nil {
			t.Fatal(err)
		}
		p, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	srv := &tls.Config{
		Certificates: []tls.Certificate{pair(ca, serverCN, true)},
		ClientAuth:   tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			var err error
			serverSaw, err = VerifyPeer(ca.Pool(), cs, x509.ExtKeyUsageClientAuth)
			return err
		},
	}
	cli := &tls.Config{
		Certificates:       []tls.Certificate{pair(clientCA, clientCN, false)},
		InsecureSkipVerify: true, // VerifyConnection checks the chain and the identity
		VerifyConnection: func(cs tls.ConnectionState) error {
			var err error
			clientSaw, err = VerifyPeer(ca.Pool(), cs, x509.ExtKeyUsageServerAuth)
			return err
		},
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- c.(*tls.Conn).Handshake()
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), cli)
	if err == nil {
		c.Close()
	}
	serr := <-done
	if err == nil {
		err = serr
	}
	return serverSaw, clientSaw, err
}

func TestIssueAndVerifyPeer(t *testing.T) {
	ca, _, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := LoadOrCreateCA(t.TempDir())
	srv, cli, err := handshake(t, ca, ca, NodeCN("n1"), RootCN)
	if err != nil || srv != RootCN || cli != "node:n1" {
		t.Fatalf("same CA: server saw %q, client saw %q, err %v", srv, cli, err)
	}
	if _, _, err := handshake(t, ca, other, NodeCN("n1"), RootCN); err == nil {
		t.Fatal("a client certificate of another CA was accepted")
	}
}

func TestSignCSR_theServerChoosesTheIdentity(t *testing.T) {
	ca, _, _ := LoadOrCreateCA(t.TempDir())
	csr, _, err := NewCSR("root") // a node asking to be root
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignCSR(csr, NodeCN("n1"), []net.IP{net.ParseIP("10.0.0.5")})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ParseCert(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "node:n1" || len(cert.IPAddresses) != 1 {
		t.Fatalf("got CN %q IPs %v", cert.Subject.CommonName, cert.IPAddresses)
	}
	if _, err := ca.SignCSR([]byte("not a csr"), "x", nil); err == nil {
		t.Fatal("garbage CSR signed")
	}
	if n, ok := NodeOf(cert.Subject.CommonName); !ok || n != "n1" {
		t.Fatalf("NodeOf: %q %v", n, ok)
	}
	if _, ok := NodeOf(RootCN); ok {
		t.Fatal("root is not a node")
	}
}

func TestJoinToken(t *testing.T) {
	ca, _, _ := LoadOrCreateCA(t.TempDir())
	file := filepath.Join(t.TempDir(), "join-token")
	tok, created, err := LoadOrCreateJoinToken(file, ca)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	again, created, err := LoadOrCreateJoinToken(file, ca)
	if err != nil || created || again != tok {
		t.Fatalf("load: %v %v %v", again, created, err)
	}
	parsed, err := ParseJoinToken(tok.String())
	if err != nil || parsed != tok {
		t.Fatalf("round trip: %v %v", parsed, err)
	}
	if !tok.SecretMatches(strings.ToUpper(tok.Secret)) || tok.SecretMatches(tok.CAHash) || tok.SecretMatches("") {
		t.Fatal("SecretMatches")
	}
	other, _, _ := LoadOrCreateCA(t.TempDir())
	if _, _, err := LoadOrCreateJoinToken(file, other); err == nil {
		t.Fatal("a token of another CA was loaded")
	}
	for _, bad := range []string{"", "bosun1.", "bosun1.abc.def", "K10" + tok.CAHash + "::" + tok.Secret, tokenPrefix + tok.CAHash + tok.Secret,
		tokenPrefix + strings.Repeat("z", 64) + "." + tok.Secret} {
		if _, err := ParseJoinToken(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseJoinToken(f *testing.F) {
	f.Add("bosun1." + strings.Repeat("a", 64) + "." + strings.Repeat("0", 64))
	f.Add("bosun1..")
	f.Add("planted-secret")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseJoinToken(s)
		if err != nil {
			if len(s) > 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("error quotes the token: %v", err)
			}
			return
		}
		if again, err := ParseJoinToken(tok.String()); err != nil || again != tok {
			t.Fatalf("round trip of %q: %v %v", s, again, err)
		}
	})
}

func TestNeedsRenewal(t *testing.T) {
	now := time.Now()
	c := &x509.Certificate{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(3 * time.Hour)}
	if NeedsRenewal(c, now) {
		t.Fatal("3/4 of life left")
	}
	if !NeedsRenewal(c, now.Add(2*time.Hour)) || !NeedsRenewal(c, now.Add(-2*time.Hour)) {
		t.Fatal("late or early certificates need renewal")
	}
}
