package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"bosun/atomicfile"
)

// Fingerprint is the SHA-256 fingerprint of a DER certificate as SSH
// prints a key's: "SHA256:" and the unpadded base64 of the digest. The CLI
// pins it; `openssl x509 -in tls.crt -outform der | openssl dgst -sha256
// -binary | base64` prints the same digest (with one '=' of padding).
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// LoadCertificate reads a PEM certificate (chain) and its PEM private key.
func LoadCertificate(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("api certificate %s, key %s: %w", certFile, keyFile, err)
	}
	if _, err := leafOf(&cert); err != nil {
		return nil, fmt.Errorf("api certificate %s: %w", certFile, err)
	}
	return &cert, nil
}

// leafOf returns the certificate's leaf, parsing it if needed.
func leafOf(c *tls.Certificate) (*x509.Certificate, error) {
	if c.Leaf != nil {
		return c.Leaf, nil
	}
	if len(c.Certificate) == 0 {
		return nil, errors.New("no certificate")
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil, err
	}
	c.Leaf = leaf
	return leaf, nil
}

// The files of the generated certificate in its directory.
const (
	GeneratedCertFile = "tls.crt"
	GeneratedKeyFile  = "tls.key"
)

// selfSignedValidity is how long a self-signed certificate is valid:
// clients pin it like an SSH host key, so it is long.
const selfSignedValidity = 10 * 365 * 24 * time.Hour

// Issuer signs the API's generated certificate: in a replica, the cluster
// CA, so that machines joining with a token that names the CA can check
// the API they talk to (the chain served holds the CA).
type Issuer struct {
	// CA is the issuing certificate, served after the API's own.
	CA *x509.Certificate
	// Issue returns a server certificate for hosts (DNS names and IP
	// addresses) signed by CA, and its private key, PEM-encoded.
	Issue func(hosts []string) (certPEM, keyPEM []byte, err error)
}

// Generated is the outcome of GeneratedCertificate.
type Generated struct {
	Certificate *tls.Certificate
	// CertFile is the PEM certificate, then its issuer's when there is
	// one: what a client that does not pin (Prometheus, curl --cacert)
	// trusts.
	CertFile string
	// Created is set when this call generated the certificate: at the
	// first start, and when the one before was renewed (Renewed) or had
	// another issuer (Reissued). Clients that pinned the one before must
	// trust the new one.
	Created, Renewed, Reissued bool
	// Missing are hosts the existing certificate does not name (the
	// listen address changed): clients that verify names reject it for
	// those; delete the files to generate a new one.
	Missing []string
}

// GeneratedCertificate returns the API certificate in dir (tls.crt,
// tls.key), generating it when absent, when less than a third of its
// validity is left, or when issuer is set and did not sign it: ECDSA
// P-256, naming hosts as its subject alternative names, signed by issuer,
// or self-signed (valid ten years) when issuer is nil. The key is written
// with mode 0600 and dir created 0700. Reusing it keeps its fingerprint,
// which clients pin.
func GeneratedCertificate(dir string, hosts []string, now time.Time, issuer *Issuer) (Generated, error) {
	certFile, keyFile := filepath.Join(dir, GeneratedCertFile), filepath.Join(dir, GeneratedKeyFile)
	out := Generated{CertFile: certFile}
	_, statErr := os.Stat(certFile)
	if statErr == nil {
		cert, err := LoadCertificate(certFile, keyFile)
		if err != nil {
			return out, err
		}
		leaf := cert.Leaf
		switch {
		case issuer != nil && leaf.CheckSignatureFrom(issuer.CA) != nil:
			out.Reissued = true
		case now.After(leaf.NotAfter.Add(-leaf.NotAfter.Sub(leaf.NotBefore) / 3)):
			out.Renewed = true
		default:
			out.Certificate = cert
			for _, h := range hosts {
				if leaf.VerifyHostname(h) != nil {
					out.Missing = append(out.Missing, h)
				}
			}
			return out, nil
		}
	} else if !errors.Is(statErr, os.ErrNotExist) {
		return out, fmt.Errorf("api certificate: %w", statErr)
	}
	var certPEM, keyPEM []byte
	var err error
	if issuer != nil {
		certPEM, keyPEM, err = issuer.Issue(hosts)
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: issuer.CA.Raw})...)
	} else {
		certPEM, keyPEM, err = generateSelfSigned(hosts, now)
	}
	if err != nil {
		return out, fmt.Errorf("api certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return out, fmt.Errorf("api certificate: %w", err)
	}
	// The key first: a certificate file is only ever beside its key.
	if err := atomicfile.Write(keyFile, keyPEM, 0o600); err != nil {
		return out, fmt.Errorf("api certificate key: %w", err)
	}
	if err := atomicfile.Write(certFile, certPEM, 0o644); err != nil {
		return out, fmt.Errorf("api certificate: %w", err)
	}
	cert, err := LoadCertificate(certFile, keyFile)
	if err != nil {
		return out, err
	}
	out.Certificate, out.Created = cert, true
	return out, nil
}

// generateSelfSigned returns a new certificate and key, PEM-encoded.
func generateSelfSigned(hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"bosun"}, CommonName: "bosun API (self-signed)"},
		NotBefore:    now.Add(-time.Hour), // clocks of clients run a little behind
		NotAfter:     now.Add(selfSignedValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// A self-signed server certificate is its own trust anchor: curl
		// --cacert and Prometheus's ca_file accept it as such.
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(tmpl.IPAddresses, ip.Equal) {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if h != "" && !slices.Contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}

// CertificateHosts are the names a generated certificate of an API
// listening on listen gets: localhost, 127.0.0.1, ::1, the listen
// address's host unless it is empty or unspecified (0.0.0.0, ::), and
// hostname unless empty.
func CertificateHosts(listen, hostname string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	add := func(h string) {
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	if h, _, err := net.SplitHostPort(listen); err == nil {
		if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
			add(h)
		}
	}
	add(hostname)
	return hosts
}
