package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"log/slog"
)

func TestSelfSignedCertificate_generatedOnceThenReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "api")
	now := time.Now()
	hosts := CertificateHosts("10.1.2.3:7070", "node-1")
	if want := []string{"localhost", "127.0.0.1", "::1", "10.1.2.3", "node-1"}; !slices.Equal(hosts, want) {
		t.Fatalf("hosts = %v, want %v", hosts, want)
	}
	first, err := SelfSignedCertificate(dir, hosts, now)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Created || first.Expired || len(first.Missing) != 0 {
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
	if fi, err := os.Stat(filepath.Join(dir, SelfSignedKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
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

	again, err := SelfSignedCertificate(dir, hosts, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || Fingerprint(again.Certificate.Leaf.Raw) != Fingerprint(leaf.Raw) {
		t.Errorf("second start made a new certificate")
	}
	// A new listen address is named as missing, not silently re-keyed.
	moved, err := SelfSignedCertificate(dir, CertificateHosts("10.9.9.9:7070", "node-1"), now)
	if err != nil || moved.Created || !slices.Equal(moved.Missing, []string{"10.9.9.9"}) {
		t.Errorf("moved: created %v missing %v err %v", moved.Created, moved.Missing, err)
	}
	// Expired: replaced.
	later, err := SelfSignedCertificate(dir, hosts, leaf.NotAfter.Add(time.Minute))
	if err != nil || !later.Created || !later.Expired || Fingerprint(later.Certificate.Leaf.Raw) == Fingerprint(leaf.Raw) {
		t.Errorf("expired: %+v %v", later, err)
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
	ss, err := SelfSignedCertificate(t.TempDir(), CertificateHosts("127.0.0.1:0", ""), time.Now())
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
