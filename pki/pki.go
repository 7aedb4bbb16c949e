package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"bosun/atomicfile"
)

// Identities carried in certificates' Common Names.
const (
	RootCN     = "root"
	nodePrefix = "node:"
)

// NodeCN is the Common Name of node name's certificate.
func NodeCN(name string) string { return nodePrefix + name }

// NodeOf returns the node name of a node certificate's Common Name.
func NodeOf(cn string) (string, bool) {
	name, ok := strings.CutPrefix(cn, nodePrefix)
	return name, ok && name != ""
}

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	certValidity = 365 * 24 * time.Hour
	// backdate covers clocks a little behind the CA's.
	backdate = 5 * time.Minute
)

// File names inside a CA directory.
const (
	CACertFile = "ca.crt"
	caKeyFile  = "ca.key"
	// CAKeyFile holds the CA's key: servers have it (a joining server
	// receives it), nodes never.
	CAKeyFile = caKeyFile
)

// CA is the cluster's certificate authority.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     crypto.Signer
}

// LoadOrCreateCA reads the CA from dir, or creates it there (key 0600)
// when dir holds none. created says which.
func LoadOrCreateCA(dir string) (ca *CA, created bool, err error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err == nil {
		keyPEM, err := os.ReadFile(filepath.Join(dir, caKeyFile))
		if err != nil {
			return nil, false, fmt.Errorf("cluster CA: %w", err)
		}
		ca, err := parseCA(certPEM, keyPEM)
		if err != nil {
			return nil, false, fmt.Errorf("cluster CA in %s: %w", dir, err)
		}
		return ca, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("cluster CA: %w", err)
	}
	key, err := newKey()
	if err != nil {
		return nil, false, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "bosun cluster CA", Organization: []string{"bosun"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, false, fmt.Errorf("cluster CA: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, false, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("cluster CA: %w", err)
	}
	// The key first: a crash between the two leaves no certificate without
	// its key, and the next start creates both again.
	if err := WriteFile(filepath.Join(dir, caKeyFile), keyPEM); err != nil {
		return nil, false, err
	}
	if err := WriteFile(filepath.Join(dir, CACertFile), certPEM); err != nil {
		return nil, false, err
	}
	ca, err = parseCA(certPEM, keyPEM)
	return ca, true, err
}

func parseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, errors.New("certificate is not a CA")
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("key: not a signing key")
	}
	return &CA{Cert: cert, CertPEM: certPEM, key: signer}, nil
}

// Request describes a certificate to issue.
type Request struct {
	CommonName string
	// DNSNames and IPs are the names a server certificate answers to.
	DNSNames []string
	IPs      []net.IP
	// Server and Client choose the extended key usages.
	Server, Client bool
}

// Issue creates a key pair and a certificate for req, signed by the CA.
func (ca *CA) Issue(req Request) (certPEM, keyPEM []byte, err error) {
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	certPEM, err = ca.sign(req, key.Public())
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKey(key)
	return certPEM, keyPEM, err
}

// SignCSR signs a certificate request for the identity cn (whatever the
// request's own subject says: the caller decides who the holder is) as a
// client and server certificate for ips.
func (ca *CA) SignCSR(csrPEM []byte, cn string, ips []net.IP) ([]byte, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("csr: no CERTIFICATE REQUEST PEM block")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	return ca.sign(Request{CommonName: cn, IPs: ips, Server: true, Client: true}, csr.PublicKey)
}

func (ca *CA) sign(req Request, pub crypto.PublicKey) ([]byte, error) {
	if req.CommonName == "" {
		return nil, errors.New("issue certificate: common name is required")
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: req.CommonName, Organization: []string{"bosun"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		DNSNames:     req.DNSNames,
		IPAddresses:  req.IPs,
	}
	if req.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if req.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %s: %w", req.CommonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// Pool returns a pool holding the CA certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// NewCSR creates a key and a certificate request for it; the key stays
// with the caller.
func NewCSR(cn string) (csrPEM, keyPEM []byte, err error) {
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate request: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), keyPEM, nil
}

// ParseCert parses the first certificate of a PEM bundle.
func ParseCert(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("certificate: no CERTIFICATE PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// Fingerprint is the hex SHA-256 of a certificate's DER.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// VerifyPeer checks a TLS peer's chain against the CA and returns the
// Common Name of its leaf. It is for tls.Config.VerifyConnection where
// the peer is known by identity, not by host name (nodes have addresses
// that change; servers are dialled at whatever address an agent was given).
func VerifyPeer(pool *x509.CertPool, cs tls.ConnectionState, usage x509.ExtKeyUsage) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return "", err
	}
	return leaf.Subject.CommonName, nil
}

// NeedsRenewal says whether a certificate has less than a third of its
// life left, or is not valid yet.
func NeedsRenewal(cert *x509.Certificate, now time.Time) bool {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return now.Before(cert.NotBefore) || cert.NotAfter.Sub(now) < life/3
}

// WriteFile writes data to file with mode 0600, atomically.
func WriteFile(file string, data []byte) error { return atomicfile.Write(file, data, 0o600) }

// JoinToken is a parsed join token.
type JoinToken struct {
	// CAHash is the hex SHA-256 of the CA certificate's DER.
	CAHash string
	// Secret is the shared secret, hex.
	Secret string
}

const tokenPrefix = "bosun1."

// NewJoinToken makes a token for ca with a fresh secret.
func NewJoinToken(ca *CA) JoinToken {
	b := make([]byte, 32)
	rand.Read(b)
	return JoinToken{CAHash: Fingerprint(ca.Cert), Secret: hex.EncodeToString(b)}
}

func (t JoinToken) String() string { return tokenPrefix + t.CAHash + "." + t.Secret }

// ParseJoinToken parses a token; its errors never quote the token.
func ParseJoinToken(s string) (JoinToken, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), tokenPrefix)
	if !ok {
		return JoinToken{}, errors.New("join token: not a bosun join token (want bosun1.<ca-hash>.<secret>, as `bosun server` prints it)")
	}
	hash, secret, ok := strings.Cut(rest, ".")
	if !ok || !isHex(hash, 64) || !isHex(secret, 64) {
		return JoinToken{}, errors.New("join token: malformed (want bosun1.<64 hex digits>.<64 hex digits>)")
	}
	return JoinToken{CAHash: strings.ToLower(hash), Secret: strings.ToLower(secret)}, nil
}

// SecretMatches compares secrets in constant time.
func (t JoinToken) SecretMatches(secret string) bool {
	return subtle.ConstantTimeCompare([]byte(t.Secret), []byte(strings.ToLower(secret))) == 1
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// LoadOrCreateJoinToken reads the token of file, or creates one for ca
// there (0600). A token whose CA hash is not ca's is an error: the file
// belongs to another cluster.
func LoadOrCreateJoinToken(file string, ca *CA) (tok JoinToken, created bool, err error) {
	b, err := os.ReadFile(file)
	if err == nil {
		tok, err := ParseJoinToken(string(b))
		if err != nil {
			return JoinToken{}, false, fmt.Errorf("%s: %w", file, err)
		}
		if tok.CAHash != Fingerprint(ca.Cert) {
			return JoinToken{}, false, fmt.Errorf("%s: the token is for another cluster CA", file)
		}
		return tok, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return JoinToken{}, false, err
	}
	tok = NewJoinToken(ca)
	if err := WriteFile(file, []byte(tok.String()+"\n")); err != nil {
		return JoinToken{}, false, err
	}
	return tok, true, nil
}

func newKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

func encodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// ServerTLS is the TLS configuration of a server that answers only the
// client identity want (a Common Name), with a certificate of the CA.
func ServerTLS(cert tls.Certificate, pool *x509.CertPool, want string) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert,
		MinVersion:   tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return expect(pool, cs, x509.ExtKeyUsageClientAuth, want)
		},
	}
}

// ClientTLS is the TLS configuration of a client that talks only to the
// server identity want, presenting cert. Host names are not checked: the
// identity is.
func ClientTLS(cert tls.Certificate, pool *x509.CertPool, want string) *tls.Config {
	return &tls.Config{
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, // VerifyConnection checks the chain and the identity
		MinVersion:         tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return expect(pool, cs, x509.ExtKeyUsageServerAuth, want)
		},
	}
}

func expect(pool *x509.CertPool, cs tls.ConnectionState, usage x509.ExtKeyUsage, want string) error {
	cn, err := VerifyPeer(pool, cs, usage)
	if err != nil {
		return err
	}
	if cn != want {
		return fmt.Errorf("peer is %q, want %q", cn, want)
	}
	return nil
}
