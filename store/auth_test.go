package store

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"bosun/pki"
)

// tlsEtcd starts an embedded etcd that requires client certificates of a
// fresh CA, with auth enabled, and returns the CA and the endpoints.
func tlsEtcd(t *testing.T) (*pki.CA, []string) {
	t.Helper()
	dir := t.TempDir()
	ca, _, err := pki.LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Issue(pki.Request{CommonName: "etcd", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	files := &TLSFiles{CertFile: filepath.Join(dir, "etcd.crt"), KeyFile: filepath.Join(dir, "etcd.key"), CAFile: filepath.Join(dir, pki.CACertFile)}
	os.WriteFile(files.CertFile, cert, 0o600)
	os.WriteFile(files.KeyFile, key, 0o600)
	e, err := StartEmbedded(context.Background(), EmbeddedConfig{Dir: filepath.Join(dir, "etcd"), FastTicks: true, TLS: files})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return ca, e.Endpoints()
}

func clientAs(t *testing.T, ca *pki.CA, endpoints []string, cn string) *clientv3.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: ca.Pool()}
	if cn != "" {
		cert, key, err := ca.Issue(pki.Request{CommonName: cn, Client: true})
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	cli, err := DialTLS(endpoints, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func TestAuth_nodesWriteOnlyTheirOwnKeys(t *testing.T) {
	ca, endpoints := tlsEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !strings.HasPrefix(endpoints[0], "https://") {
		t.Fatalf("endpoints %v: want https", endpoints)
	}
	root := clientAs(t, ca, endpoints, pki.RootCN)
	if err := EnableAuth(ctx, root); err != nil {
		t.Fatal(err)
	}
	if err := EnableAuth(ctx, root); err != nil {
		t.Fatalf("again: %v", err)
	}
	if err := AllowNode(ctx, root, pki.NodeCN("n1"), "n1"); err != nil {
		t.Fatal(err)
	}
	if err := AllowNode(ctx, root, pki.NodeCN("n1"), "n1"); err != nil {
		t.Fatalf("again: %v", err)
	}
	if _, err := root.Put(ctx, PodKey("n1", "default", "a"), "{}"); err != nil {
		t.Fatalf("root cannot write: %v", err)
	}

	n1 := clientAs(t, ca, endpoints, pki.NodeCN("n1"))
	lease, err := n1.Grant(ctx, 5)
	if err != nil {
		t.Fatalf("a node cannot grant its lease: %v", err)
	}
	allowed := []string{NodeKey("n1"), PodStatusKey("n1", "default", "a"), VolumeKey("n1", "default", "data")}
	for _, k := range allowed {
		if _, err := n1.Put(ctx, k, "{}", clientv3.WithLease(lease.ID)); err != nil {
			t.Errorf("n1 put %s: %v", k, err)
		}
	}
	denied := []string{NodeKey("n2"), NodeKey("n1x"), PodStatusKey("n2", "default", "a"), PodStatusKey("n1x", "default", "a"),
		PodKey("n1", "default", "b"), Prefix + "sync", Prefix + "secrets/default/s", "/elsewhere",
		NodeControlKey("n1"), NodeHealthKey("n1"), VolumeKey("n2", "default", "data"), VolumeKey("n1x", "default", "data")} // a node cannot uncordon itself nor say it is healthy
	for _, k := range denied {
		if _, err := n1.Put(ctx, k, "{}"); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("n1 put %s: err %v, want permission denied", k, err)
		}
	}
	// A node writes its volume records comparing the claim's revision
	// (PutVolumeIfClaim): the compare reads a key outside its own.
	if ok, err := New(n1).PutVolumeIfClaim(ctx, VolumeRecord{Node: "n1", Namespace: "default", Claim: "data", VolumeName: "data"}, 0); !ok || err != nil {
		t.Errorf("n1 put its volume record if the claim is absent: %v, %v", ok, err)
	}
	if _, err := New(n1).PutVolumeIfClaim(ctx, VolumeRecord{Node: "n2", Namespace: "default", Claim: "data", VolumeName: "data"}, 0); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("n1 put n2's volume record if the claim is absent: err %v, want permission denied", err)
	}
	if _, err := n1.Delete(ctx, PodKey("n1", "default", "a")); err == nil {
		t.Error("n1 deleted its pod's key")
	}
	resp, err := n1.Get(ctx, Prefix, clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) < 3 {
		t.Fatalf("n1 cannot read the state: %v", err)
	}
	if _, err := n1.Revoke(ctx, lease.ID); err != nil {
		t.Errorf("n1 cannot revoke its own lease: %v", err)
	}

	// A certificate of the cluster CA for a user etcd does not know.
	stranger := clientAs(t, ca, endpoints, pki.NodeCN("n9"))
	if _, err := stranger.Get(ctx, Prefix, clientv3.WithPrefix()); err == nil {
		t.Error("a node never allowed read the state")
	}

	// No client certificate: the TLS handshake fails.
	anon := clientAs(t, ca, endpoints, "")
	actx, acancel := context.WithTimeout(ctx, 3*time.Second)
	defer acancel()
	if _, err := anon.Get(actx, Prefix, clientv3.WithPrefix()); err == nil {
		t.Error("a client without a certificate read the state")
	}
}
