package ingress

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// certIndex is a table's certificates by the host names of the Ingresses'
// tls sections.
type certIndex struct {
	exact    map[string]*tls.Certificate // lower-case host
	wildcard map[string]*tls.Certificate // suffix after "*."
	// anyHost is the certificate of a tls entry without hosts: it serves
	// every name no other certificate has (before the default one).
	anyHost *tls.Certificate
	count   int
}

// add indexes the certificate of one tls entry of ing. A Secret that is
// missing, not kubernetes.io/tls, or whose key pair does not parse is left
// out with a warning that names it (never its content).
func (ci *certIndex) add(ing *networkingv1.Ingress, tl networkingv1.IngressTLS, secrets map[string]*corev1.Secret, cache *CertCache, warn *[]string) {
	if tl.SecretName == "" {
		return
	}
	key := ing.Namespace + "/" + tl.SecretName
	where := fmt.Sprintf("ingress %s/%s: tls secret %s", ing.Namespace, ing.Name, key)
	s := secrets[key]
	if s == nil {
		*warn = append(*warn, where+": not found")
		return
	}
	if s.Type != corev1.SecretTypeTLS {
		*warn = append(*warn, where+": not of type kubernetes.io/tls")
		return
	}
	cert, ok := cache.parse(key, s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if !ok {
		*warn = append(*warn, where+": tls.crt and tls.key are not a valid key pair")
		return
	}
	if ci.exact == nil {
		ci.exact, ci.wildcard = map[string]*tls.Certificate{}, map[string]*tls.Certificate{}
	}
	ci.count++
	if len(tl.Hosts) == 0 {
		if ci.anyHost == nil {
			ci.anyHost = cert
		}
		return
	}
	for _, h := range tl.Hosts {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		m, name := ci.exact, h
		if strings.HasPrefix(h, "*.") {
			m, name = ci.wildcard, h[2:]
		}
		if _, dup := m[name]; dup {
			*warn = append(*warn, fmt.Sprintf("ingress %s/%s: tls host %q: another Ingress already gives its certificate", ing.Namespace, ing.Name, h))
			continue
		}
		m[name] = cert
	}
}

// lookup returns the certificate for a TLS client's server name, or nil.
func (ci *certIndex) lookup(serverName string) *tls.Certificate {
	name := NormalizeHost(serverName)
	if c := ci.exact[name]; c != nil {
		return c
	}
	if _, rest, ok := strings.Cut(name, "."); ok {
		if c := ci.wildcard[rest]; c != nil {
			return c
		}
	}
	return ci.anyHost
}

// Certificate returns the certificate to present to a TLS client asking
// for serverName (SNI; "" when the client sent none): the one of the
// Ingress tls entry naming that host (exactly, or by a wildcard of one
// label), else the one of an entry without hosts, else nil.
func (t *Table) Certificate(serverName string) *tls.Certificate { return t.certs.lookup(serverName) }

// CertCache keeps parsed key pairs between builds, so that a route table
// rebuilt for a pod change does not parse every certificate again. It is
// not safe for concurrent use.
type CertCache struct {
	m    map[string]*cachedCert
	used map[string]bool
}

type cachedCert struct {
	crt, key []byte
	cert     *tls.Certificate // nil: did not parse
}

// NewCertCache returns an empty cache.
func NewCertCache() *CertCache {
	return &CertCache{m: map[string]*cachedCert{}, used: map[string]bool{}}
}

func (c *CertCache) parse(key string, crt, pk []byte) (*tls.Certificate, bool) {
	if c != nil {
		c.used[key] = true
		if e := c.m[key]; e != nil && bytes.Equal(e.crt, crt) && bytes.Equal(e.key, pk) {
			return e.cert, e.cert != nil
		}
	}
	var out *tls.Certificate
	if cert, err := tls.X509KeyPair(crt, pk); err == nil {
		out = &cert
	}
	if c != nil {
		c.m[key] = &cachedCert{crt: bytes.Clone(crt), key: bytes.Clone(pk), cert: out}
	}
	return out, out != nil
}

// sweep forgets the key pairs the last build did not use.
func (c *CertCache) sweep() {
	for k := range c.m {
		if !c.used[k] {
			delete(c.m, k)
		}
	}
	clear(c.used)
}

// SelfSigned returns a certificate for "bosun-ingress-default" signed by
// its own key, made in memory: what the server presents when no Ingress
// has a certificate for the name a client asks for (Traefik does the
// same). Clients that verify certificates refuse it, as they should.
func SelfSigned(now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("default certificate: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("default certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "bosun-ingress-default", Organization: []string{"bosun"}},
		DNSNames:     []string{"bosun-ingress-default"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("default certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
