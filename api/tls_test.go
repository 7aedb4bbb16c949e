package api

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"log/slog"
)

func TestGeneratedCertificate_selfSignedOnceThenReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "api")
	now := time.Now()
	hosts := CertificateHosts("10.1.2.3:7070", "node-1")
	if want := []string{"localhost", "127.0.0.1", "::1", "10.1.2.3", "node-1"}; !slices.Equal(hosts, want) {
		t.Fatalf("hosts = %v, want %v", hosts, want)
	}
	first, err := GeneratedCertificate(dir, hosts, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Created || first.Renewed || first.Reissued || len(first.Missing) != 0 {
		t.Errorf("first: %+v", first)
	}
	leaf := first.Certificate.Leaf
	for _, h := range hosts {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("certificate does not name %s: %v", h, err)
		}
	}
	if leaf.PublicKeyAlgorithm != x509.ECDSA || leaf.NotAfter.Before(now.Add(9*365*24*time.Hour)) {
		t.Errorf("key %v, valid until %v", leaf.PublicKeyAlgorithm, leaf.NotAfter)
	}
	if fi, err := os.Stat(filepath.Join(dir, GeneratedKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", fi.Mode(), err)
	}
	// The PEM file is a trust anchor for clients that verify.
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(first.CertFile)
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("tls.crt is not PEM")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("verify against itself: %v", err)
	}

	again, err := GeneratedCertificate(dir, hosts, now.Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || Fingerprint(again.Certificate.Leaf.Raw) != Fingerprint(leaf.Raw) {
		t.Errorf("second start made a new certificate")
	}
	// A new listen address is named as missing, not silently re-keyed.
	moved, err := GeneratedCertificate(dir, CertificateHosts("10.9.9.9:7070", "node-1"), now, nil)
	if err != nil || moved.Created || !slices.Equal(moved.Missing, []string{"10.9.9.9"}) {
		t.Errorf("moved: created %v missing %v err %v", moved.Created, moved.Missing, err)
	}
	// Two thirds of its life gone: still served; then renewed.
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	if kept, err := GeneratedCertificate(dir, hosts, leaf.NotBefore.Add(life*2/3-time.Hour), nil); err != nil || kept.Created {
		t.Errorf("before two thirds: %+v %v", kept, err)
	}
	later, err := GeneratedCertificate(dir, hosts, leaf.NotBefore.Add(life*2/3+time.Hour), nil)
	if err != nil || !later.Created || !later.Renewed || Fingerprint(later.Certificate.Leaf.Raw) == Fingerprint(leaf.Raw) {
		t.Errorf("after two thirds: %+v %v", later, err)
	}
}

// TestGeneratedCertificate_issuedByACA: with an Issuer, the certificate is
// the CA's, served with the CA after it (what a joining machine checks);
// one the CA did not sign (a self-signed one from before, another
// cluster's) is issued again.
func TestGeneratedCertificate_issuedByACA(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if _, err := GeneratedCertificate(dir, []string{"127.0.0.1"}, now, nil); err != nil {
		t.Fatal(err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	issued := 0
	issuer := &Issuer{CA: ca, Issue: func(hosts []string) ([]byte, []byte, error) {
		issued++
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "api"}, NotBefore: now.Add(-time.Hour),
			NotAfter: now.Add(12 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, DNSNames: hosts}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, nil, err
		}
		k, _ := x509.MarshalPKCS8PrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}), nil
	}}
	g, err := GeneratedCertificate(dir, []string{"api.test"}, now, issuer)
	if err != nil {
		t.Fatal(err)
	}
	if !g.Created || !g.Reissued || issued != 1 || len(g.Certificate.Certificate) != 2 || !bytes.Equal(g.Certificate.Certificate[1], ca.Raw) {
		t.Fatalf("the self-signed one was not replaced by the CA's: %+v, issued %d, chain %d", g, issued, len(g.Certificate.Certificate))
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := g.Certificate.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "api.test"}); err != nil {
		t.Errorf("verify against the CA: %v", err)
	}
	again, err := GeneratedCertificate(dir, []string{"api.test"}, now.Add(time.Hour), issuer)
	if err != nil || again.Created || issued != 1 || Fingerprint(again.Certificate.Leaf.Raw) != Fingerprint(g.Certificate.Leaf.Raw) {
		t.Errorf("second start: %+v %v, issued %d", again, err, issued)
	}
}

func TestCertificateHosts_unspecifiedListenAddress(t *testing.T) {
	for listen, want := range map[string][]string{
		"0.0.0.0:7070":         {"localhost", "127.0.0.1", "::1", "h"},
		"[::]:7070":            {"localhost", "127.0.0.1", "::1", "h"},
		":7070":                {"localhost", "127.0.0.1", "::1", "h"},
		"127.0.0.1:7070":       {"localhost", "127.0.0.1", "::1", "h"},
		"bosun.example:7070":   {"localhost", "127.0.0.1", "::1", "bosun.example", "h"},
		"[fd00::1]:7070":       {"localhost", "127.0.0.1", "::1", "fd00::1", "h"},
		"not-a-listen-address": {"localhost", "127.0.0.1", "::1", "h"},
	} {
		if got := CertificateHosts(listen, "h"); !slices.Equal(got, want) {
			t.Errorf("CertificateHosts(%q) = %v, want %v", listen, got, want)
		}
	}
}

func TestLoadCertificate_errorsNameTheFiles(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(cert, []byte("not pem"), 0o644)
	os.WriteFile(key, []byte("not pem"), 0o600)
	if _, err := LoadCertificate(cert, key); err == nil || !strings.Contains(err.Error(), cert) {
		t.Errorf("err = %v", err)
	}
}

// TestRun_servesHTTPSOnly: the API answers over TLS with its certificate,
// a plain HTTP request gets no API answer, Run without a certificate
// fails, and nothing is left running after Run returns.
func TestRun_servesHTTPSOnly(t *testing.T) {
	st := seed(t)
	ss, err := GeneratedCertificate(t.TempDir(), CertificateHosts("127.0.0.1:0", ""), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	srv, err := New(Config{
		Listen: "127.0.0.1:0", Certificate: ss.Certificate,
		Tokens: StaticTokens(Token{Role: RoleReadOnly, Name: "ci", Hash: HashToken(plantedReader)}),
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Ready()

	pool := x509.NewCertPool()
	pool.AddCert(ss.Certificate.Leaf)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("GET", "https://"+srv.Addr()+"/api/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+plantedReader)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var status Status
	json.NewDecoder(resp.Body).Decode(&status)
	resp.Body.Close()
	if resp.StatusCode != 200 || status.Leader != "replica-1" || resp.TLS == nil {
		t.Errorf("status over HTTPS: %s, leader %q", resp.Status, status.Leader)
	}
	if resp, err := client.Get("https://" + srv.Addr() + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("healthz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + srv.Addr() + "/healthz"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("plain HTTP got an API answer: %s %s", resp.Status, b)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if !strings.Contains(logs.String(), `"fingerprint":"`+Fingerprint(ss.Certificate.Leaf.Raw)+`"`) {
		t.Errorf("the log does not give the fingerprint:\n%s", logs.String())
	}

	noCert, _ := New(Config{Listen: "127.0.0.1:0"}, st, nil)
	if err := noCert.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "HTTPS") {
		t.Errorf("Run without a certificate: %v", err)
	}
}

func TestFingerprint_isSSHStyle(t *testing.T) {
	fp := Fingerprint([]byte("x"))
	// sha256("x") = 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881
	if fp != "SHA256:LXEWQrcmsEQBYnyp+6wy9chTD7GQPMTbAiWHF5IaSIE" {
		t.Errorf("Fingerprint = %s", fp)
	}
}
