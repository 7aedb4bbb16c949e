package server

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"bosun/join"
	"bosun/pki"
	"bosun/store"
)

// trust is a replica's part in the cluster's own security: the cluster CA
// (created by the first server in <data-dir>/pki), and, when etcd is
// reached beyond loopback, etcd over mutual TLS with the servers as root
// and nodes joining with the token.
type trust struct {
	dir string
	ca  *pki.CA
	// secure: etcd serves and is dialled over mutual TLS, agents join
	// with the token, and their log servers want the servers' certificate.
	secure bool
	token  pki.JoinToken
	// servers is the token other servers join with (see ha.go); peer the
	// member's peer certificate when etcd has peers.
	servers pki.JoinToken
	peer    *store.TLSFiles
	root    tls.Certificate // the servers' client identity (CN root)
	etcd    *store.TLSFiles // the embedded etcd's serving files; nil for an external etcd
}

// setupTrust creates or loads the CA and decides whether the cluster's own
// traffic is mutual TLS: it is when the embedded etcd listens beyond
// loopback, or the external etcd is https, unless cfg.Insecure.
func setupTrust(cfg Config, log *slog.Logger, stderr io.Writer) (*trust, error) {
	t := &trust{dir: filepath.Join(cfg.DataDir, "pki")}
	ca, created, err := pki.LoadOrCreateCA(t.dir)
	if err != nil {
		return nil, err
	}
	t.ca = ca
	if created {
		log.Info("created the cluster CA", "dir", t.dir, "fingerprint", pki.Fingerprint(ca.Cert))
	}
	beyond := beyondLoopback(cfg)
	switch {
	case beyond != "" && cfg.Insecure:
		log.Warn("INSECURE: etcd is reached in plain text and without authentication beyond loopback; anyone who reaches it controls the cluster: drop --insecure to use mutual TLS", "etcd", beyond)
		return t, nil
	case beyond == "" && !externalTLS(cfg.EtcdEndpoints):
		return t, nil
	}
	t.secure = true
	rootCert, rootKey, err := ca.Issue(pki.Request{CommonName: pki.RootCN, Client: true})
	if err != nil {
		return nil, err
	}
	if t.root, err = tls.X509KeyPair(rootCert, rootKey); err != nil {
		return nil, err
	}
	if len(cfg.EtcdEndpoints) == 0 {
		if t.etcd, err = t.issueEtcdServer(cfg.EtcdListen); err != nil {
			return nil, err
		}
	}
	file := filepath.Join(t.dir, "join-token")
	tok, created, err := pki.LoadOrCreateJoinToken(file, ca)
	if err != nil {
		return nil, err
	}
	t.token = tok
	if created {
		// Printed once, outside the log: the log is shipped and kept, the
		// token is a credential. It stays in the file for root.
		fmt.Fprintf(stderr, "\nbosun: machines join this cluster with (the token is also in %s, readable by root only):\n\n    bosun agent --server https://%s --node-name NAME --token %s\n\n",
			file, advertised(cfg.APIListen), tok)
	} else {
		log.Info("agents join with the token in the data directory", "file", file)
	}
	if isLoopback(cfg.APIListen) {
		log.Warn("the API listens on loopback: machines cannot reach it to join; listen beyond it (e.g. --api-listen 0.0.0.0:7070)", "api", cfg.APIListen)
	}
	return t, nil
}

// issueEtcdServer writes the embedded etcd's serving certificate for the
// names it is reached at: the listen address (every address of the
// machine when it is unspecified), loopback and the hostname. It is issued
// anew at every start.
func (t *trust) issueEtcdServer(listen string) (*store.TLSFiles, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("--etcd-listen %s: %w", listen, err)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
	case ip.IsUnspecified():
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ips = append(ips, n.IP)
			}
		}
	default:
		ips = append(ips, ip)
	}
	names := []string{"localhost"}
	if ip == nil && host != "" {
		names = append(names, host)
	}
	if h, err := os.Hostname(); err == nil {
		names = append(names, h)
	}
	cert, key, err := t.ca.Issue(pki.Request{CommonName: "bosun-etcd", DNSNames: names, IPs: ips, Server: true, Client: true})
	if err != nil {
		return nil, err
	}
	return t.writePair("etcd-server", cert, key)
}

// writePair writes a certificate and its key of the cluster CA as
// <name>.crt and <name>.key in the pki directory, for etcd's TLS.
func (t *trust) writePair(name string, cert, key []byte) (*store.TLSFiles, error) {
	files := &store.TLSFiles{CertFile: filepath.Join(t.dir, name+".crt"), KeyFile: filepath.Join(t.dir, name+".key"),
		CAFile: filepath.Join(t.dir, pki.CACertFile)}
	if err := pki.WriteFile(files.KeyFile, key); err != nil {
		return nil, err
	}
	if err := pki.WriteFile(files.CertFile, cert); err != nil {
		return nil, err
	}
	return files, nil
}

// etcdTLS is the servers' etcd client configuration; nil in plain mode.
func (t *trust) etcdTLS() *tls.Config {
	if !t.secure {
		return nil
	}
	return &tls.Config{Certificates: []tls.Certificate{t.root}, RootCAs: t.ca.Pool(), MinVersion: tls.VersionTLS12}
}

// localEndpoints turns the embedded etcd's client URLs into ones this
// process dials: an unspecified host (0.0.0.0) becomes 127.0.0.1, which
// the serving certificate names.
func localEndpoints(endpoints []string) []string {
	out := make([]string, len(endpoints))
	for i, e := range endpoints {
		u, err := url.Parse(e)
		if err == nil {
			if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
				u.Host = net.JoinHostPort("127.0.0.1", u.Port())
				e = u.String()
			}
		}
		out[i] = e
	}
	return out
}

// logClient is how the servers read a node's logs: over mutual TLS to
// exactly that node in a secure cluster, plain HTTP otherwise.
func (t *trust) logClient(node string) (*http.Client, string) {
	if t == nil || !t.secure {
		return http.DefaultClient, "http"
	}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     pki.ClientTLS(t.root, t.ca.Pool(), pki.NodeCN(node)),
		TLSHandshakeTimeout: 10 * time.Second,
		DisableKeepAlives:   true, // a transport per request: keep nothing open
	}}, "https"
}

// beyondLoopback returns the etcd address that is beyond loopback, if any.
func beyondLoopback(cfg Config) string {
	if len(cfg.EtcdEndpoints) == 0 {
		if !isLoopback(cfg.EtcdListen) {
			return cfg.EtcdListen
		}
		return ""
	}
	for _, e := range cfg.EtcdEndpoints {
		u, err := url.Parse(e)
		if err != nil || u.Scheme == "https" {
			continue
		}
		if !isLoopback(u.Host) {
			return e
		}
	}
	return ""
}

func externalTLS(endpoints []string) bool {
	for _, e := range endpoints {
		if strings.HasPrefix(e, "https://") {
			return true
		}
	}
	return false
}

// isLoopback says whether a host:port (or host) is a loopback address or
// localhost.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// advertised is the API address to print in the join command: the listen
// address, or this machine's hostname for an unspecified one.
func advertised(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host, _ = os.Hostname()
	}
	return net.JoinHostPort(host, port)
}

// joinHandler serves POST /api/v1/join in a secure cluster; nil otherwise.
func (t *trust) joinHandler(cfg Config, root *clientv3.Client, reg prometheus.Registerer, log *slog.Logger) (join.Handler, error) {
	if !t.secure {
		return nil, nil
	}
	_, port, _ := net.SplitHostPort(cfg.EtcdListen)
	keyFile := cfg.keyFile()
	hc := join.HandlerConfig{CA: t.ca, Token: t.token, Etcd: root, EtcdEndpoints: cfg.EtcdEndpoints,
		EtcdPort: port, Registerer: reg, Logger: log,
		SecretKeys: func() ([]byte, error) { return os.ReadFile(keyFile) }}
	if t.peer != nil {
		hc.ServerToken, hc.ServerFiles = t.servers, t.serverGrant(cfg)
	}
	return join.NewHandler(hc)
}
