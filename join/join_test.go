package join

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"bosun/pki"
	"bosun/store"
)

// cluster is a CA, an etcd that requires its client certificates with auth
// on, and the join endpoint served over HTTPS with a certificate of the CA.
type cluster struct {
	ca    *pki.CA
	token pki.JoinToken
	url   string
	etcd  []string
}

func pair(t testing.TB, ca *pki.CA, req pki.Request) tls.Certificate {
	t.Helper()
	c, k, err := ca.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func startCluster(t testing.TB) *cluster {
	t.Helper()
	dir := t.TempDir()
	ca, _, err := pki.LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, _ := ca.Issue(pki.Request{CommonName: "etcd", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Server: true})
	files := &store.TLSFiles{CertFile: filepath.Join(dir, "e.crt"), KeyFile: filepath.Join(dir, "e.key"), CAFile: filepath.Join(dir, pki.CACertFile)}
	os.WriteFile(files.CertFile, cert, 0o600)
	os.WriteFile(files.KeyFile, key, 0o600)
	e, err := store.StartEmbedded(context.Background(), store.EmbeddedConfig{Dir: filepath.Join(dir, "etcd"), FastTicks: true, TLS: files})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	root, err := store.DialTLS(e.Endpoints(), &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{pair(t, ca, pki.Request{CommonName: pki.RootCN, Client: true})}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	if err := store.EnableAuth(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	tok := pki.NewJoinToken(ca)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(e.Endpoints()[0], "https://"))
	h, err := NewHandler(HandlerConfig{CA: ca, Token: tok, Etcd: root, EtcdPort: port, Burst: 2, Every: time.Hour,
		SecretKeys: func() ([]byte, error) { return []byte("# keys\nkey-1:c2VjcmV0\n"), nil }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	api := pair(t, ca, pki.Request{CommonName: "bosun-api", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Server: true})
	api.Certificate = append(api.Certificate, ca.Cert.Raw) // the chain carries the CA
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{api}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &cluster{ca: ca, token: tok, url: srv.URL, etcd: e.Endpoints()}
}

func TestJoin(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "pki")

	// Without a token and without an identity: a clear error.
	if _, err := Ensure(ctx, Config{Node: "n1", Dir: dir}); err == nil || !strings.Contains(err.Error(), "--token") {
		t.Fatalf("no token: %v", err)
	}
	// A token of another cluster: refused before the secret is sent.
	other, _, _ := pki.LoadOrCreateCA(t.TempDir())
	forged := pki.JoinToken{CAHash: pki.Fingerprint(other.Cert), Secret: c.token.Secret}
	if _, err := Ensure(ctx, Config{Server: c.url, Token: forged.String(), Node: "n1", Dir: dir}); err == nil || !strings.Contains(err.Error(), "does not hold the cluster CA") {
		t.Fatalf("token of another CA: %v", err)
	}
	// The right CA, the wrong secret.
	wrong := pki.NewJoinToken(c.ca)
	if _, err := Ensure(ctx, Config{Server: c.url, Token: wrong.String(), Node: "n1", Dir: dir}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong secret: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a refused join left %s behind", dir)
	}

	id, err := Ensure(ctx, Config{Server: c.url, Token: c.token.String(), Node: "n1", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if id.Cert.Leaf.Subject.CommonName != "node:n1" || len(id.Endpoints) != 1 || id.Endpoints[0] != c.etcd[0] {
		t.Fatalf("identity %q endpoints %v, want node:n1 and %v", id.Cert.Leaf.Subject.CommonName, id.Endpoints, c.etcd)
	}
	for _, f := range []string{keyFile, SecretKeysFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v mode %v", f, err, st.Mode())
		}
	}
	if b, _ := os.ReadFile(id.SecretKeysFile); string(b) != "# keys\nkey-1:c2VjcmV0\n" {
		t.Fatalf("the servers' keys: %q", b)
	}
	cli, err := store.DialTLS(id.Endpoints, id.EtcdTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(ctx, store.NodeKey("n1"), "{}"); err != nil {
		t.Fatalf("the joined node cannot write its key: %v", err)
	}
	if _, err := cli.Put(ctx, store.NodeKey("n2"), "{}"); err == nil {
		t.Fatal("the joined node wrote another node's key")
	}
	if _, err := cli.Get(ctx, store.Prefix, clientv3.WithPrefix()); err != nil {
		t.Fatalf("the joined node cannot read: %v", err)
	}

	// Later starts need no token; another name is refused.
	if _, err := Ensure(ctx, Config{Node: "n1", Dir: dir}); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if _, err := Ensure(ctx, Config{Node: "n2", Dir: dir}); err == nil || !strings.Contains(err.Error(), "node:n1") {
		t.Fatalf("another name: %v", err)
	}
}

func TestJoin_rateLimitsFailures(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	wrong := pki.NewJoinToken(c.ca).String()
	var last error
	for range 3 {
		_, last = Ensure(ctx, Config{Server: c.url, Token: wrong, Node: "n1", Dir: filepath.Join(t.TempDir(), "x")})
	}
	if last == nil || !strings.Contains(last.Error(), "429") {
		t.Fatalf("third failure: %v, want 429", last)
	}
	// The right token is refused too while the address is limited.
	if _, err := Ensure(ctx, Config{Server: c.url, Token: c.token.String(), Node: "n1", Dir: filepath.Join(t.TempDir(), "y")}); err == nil {
		t.Fatal("a limited address joined")
	}
}

func TestLogServerTLS_answersOnlyServers(t *testing.T) {
	c := startCluster(t)
	id, err := Ensure(context.Background(), Config{Server: c.url, Token: c.token.String(), Node: "n1", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("logs")) }))
	srv.TLS = id.LogServerTLS()
	srv.StartTLS()
	defer srv.Close()
	get := func(cert tls.Certificate, want string) error {
		cl := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientTLS(cert, c.ca.Pool(), want)}}
		resp, err := cl.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	root := pair(t, c.ca, pki.Request{CommonName: pki.RootCN, Client: true})
	if err := get(root, "node:n1"); err != nil {
		t.Fatalf("a server cannot read the node's logs: %v", err)
	}
	if err := get(root, "node:n2"); err == nil {
		t.Fatal("a server dialling n2 accepted n1")
	}
	if err := get(id.Cert, "node:n1"); err == nil {
		t.Fatal("a node read another node's logs")
	}
	if _, err := http.Get(srv.URL); err == nil {
		t.Fatal("a client without a certificate read logs")
	}
}

// BenchmarkJoin: a node joining (TLS with the CA pinned, CSR, the node's
// etcd user and role created, certificate signed, identity written).
func BenchmarkJoin(b *testing.B) {
	c := startCluster(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if _, err := Ensure(ctx, Config{Server: c.url, Token: c.token.String(), Node: fmt.Sprintf("n%d", i), Dir: b.TempDir()}); err != nil {
			b.Fatal(err)
		}
	}
}
