package join

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/util/validation"

	"bosun/pki"
	"bosun/store"
)

// Path is the join endpoint on the servers' API.
const Path = "/api/v1/join"

// request is what a node sends.
type request struct {
	Node   string `json:"node"`
	CSR    string `json:"csr"`
	Secret string `json:"secret"`
}

// response is what a server answers a node that may join.
type response struct {
	Certificate   string   `json:"certificate"`
	CA            string   `json:"ca"`
	EtcdEndpoints []string `json:"etcdEndpoints"`
	// SecretKeys is the content of the servers' key file (Secret data is
	// encrypted with it in etcd; the node decrypts its pods' Secrets).
	SecretKeys string `json:"secretKeys,omitempty"`
}

// HandlerConfig configures the servers' side.
type HandlerConfig struct {
	CA    *pki.CA
	Token pki.JoinToken
	// Etcd is a root client: it creates nodes' users and roles.
	Etcd *clientv3.Client
	// EtcdEndpoints are given to nodes as they are; when empty, a node
	// gets https://<the address it reached the server at>:EtcdPort.
	EtcdEndpoints []string
	EtcdPort      string
	// SecretKeys returns the servers' key file (store.MarshalKeys), read
	// at each join so that a node joining after a rotation gets the new
	// key; nil: none given.
	SecretKeys func() ([]byte, error)
	// Burst failed attempts from one address are answered, then one per
	// Every; default 5 and 10s.
	Burst int
	Every time.Duration
	// ServerToken, with ServerFiles, lets other servers join (ServerPath,
	// served by ServeServer): zero, servers cannot join through this one.
	ServerToken pki.JoinToken
	ServerFiles ServerFiles
	// Registerer gets bosun_join_requests_total{result}.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

type handler struct {
	cfg      HandlerConfig
	log      *slog.Logger
	requests *prometheus.CounterVec
	mu       sync.Mutex
	failures map[string]*rate.Limiter
}

// maxRequest bounds a join request's body.
const maxRequest = 64 << 10

// Handler serves POST Path (ServeHTTP: nodes) and POST ServerPath
// (ServeServer: servers).
type Handler interface {
	http.Handler
	ServeServer(w http.ResponseWriter, r *http.Request)
}

// NewHandler returns the handler of POST Path and POST ServerPath.
func NewHandler(cfg HandlerConfig) (Handler, error) {
	if cfg.CA == nil || cfg.Etcd == nil {
		return nil, errors.New("join: CA and etcd client are required")
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 5
	}
	if cfg.Every <= 0 {
		cfg.Every = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{cfg: cfg, log: cfg.Logger.With("component", "join"), failures: map[string]*rate.Limiter{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_join_requests_total",
			Help: "Requests of machines to join the cluster, by result (joined, refused, rate_limited, bad_request, failed).",
		}, []string{"result"})}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(h.requests); err != nil {
			return nil, fmt.Errorf("join metrics: %w", err)
		}
	}
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	addr, _, _ := net.SplitHostPort(r.RemoteAddr)
	refuse := func(code int, result, msg string, attrs ...any) {
		h.requests.WithLabelValues(result).Inc()
		h.log.Warn("join refused", append([]any{"audit", true, "event", "node.join", "result", result, "remote", r.RemoteAddr, "reason", msg}, attrs...)...)
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", fmt.Sprint(int(h.cfg.Every.Seconds()+0.5)))
		}
		http.Error(w, msg, code)
	}
	if !h.allowed(addr) {
		refuse(http.StatusTooManyRequests, "rate_limited", "too many failed join attempts from this address; wait")
		return
	}
	var req request
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequest))
	if err := dec.Decode(&req); err != nil {
		h.failed(addr)
		refuse(http.StatusBadRequest, "bad_request", "join request: not JSON")
		return
	}
	if !h.cfg.Token.SecretMatches(req.Secret) {
		h.failed(addr)
		refuse(http.StatusUnauthorized, "refused", "wrong join token", "node", req.Node)
		return
	}
	if errs := validation.IsDNS1123Subdomain(req.Node); len(errs) > 0 {
		refuse(http.StatusBadRequest, "bad_request", fmt.Sprintf("node name %q: %s", req.Node, strings.Join(errs, "; ")))
		return
	}
	cert, err := h.cfg.CA.SignCSR([]byte(req.CSR), pki.NodeCN(req.Node), nil)
	if err != nil {
		refuse(http.StatusBadRequest, "bad_request", err.Error(), "node", req.Node)
		return
	}
	if err := store.AllowNode(r.Context(), h.cfg.Etcd, pki.NodeCN(req.Node), req.Node); err != nil {
		h.requests.WithLabelValues("failed").Inc()
		h.log.Error("join: create the node's etcd user", "node", req.Node, "err", err)
		http.Error(w, "cannot create the node's etcd user: "+err.Error(), http.StatusInternalServerError)
		return
	}
	endpoints := h.cfg.EtcdEndpoints
	if len(endpoints) == 0 && h.cfg.ServerToken.Secret != "" {
		// Servers with members of one etcd: the node dials every member.
		endpoints = h.memberEndpoints(r.Context())
	}
	if len(endpoints) == 0 {
		endpoints = []string{"https://" + net.JoinHostPort(localHost(r), h.cfg.EtcdPort)}
	}
	var keys []byte
	if h.cfg.SecretKeys != nil {
		if keys, err = h.cfg.SecretKeys(); err != nil {
			h.requests.WithLabelValues("failed").Inc()
			h.log.Error("join: read the secret keys", "err", err)
			http.Error(w, "cannot read the servers' secret keys", http.StatusInternalServerError)
			return
		}
	}
	h.requests.WithLabelValues("joined").Inc()
	h.log.Info("node joined", "audit", true, "event", "node.join", "actor", pki.NodeCN(req.Node), "remote", r.RemoteAddr, "result", "joined")
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(response{Certificate: string(cert), CA: string(h.cfg.CA.CertPEM), EtcdEndpoints: endpoints, SecretKeys: string(keys)})
}

// memberEndpoints are the client URLs of the etcd members that vote; none
// when the member list cannot be read.
func (h *handler) memberEndpoints(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := h.cfg.Etcd.MemberList(ctx)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range list.Members {
		if m.Name != "" && !m.IsLearner {
			out = append(out, m.ClientURLs...)
		}
	}
	return out
}

// localHost is the address the request reached this server at.
func localHost(r *http.Request) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if host, _, err := net.SplitHostPort(a.String()); err == nil {
			return host
		}
	}
	host, _, _ := net.SplitHostPort(r.Host)
	return host
}

// allowed says whether addr may try again: every address has Burst
// failures, then one per Every.
func (h *handler) allowed(addr string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.failures[addr]
	return l == nil || l.Tokens() >= 1
}

func (h *handler) failed(addr string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.failures[addr]
	if l == nil {
		if len(h.failures) > 10000 {
			clear(h.failures) // bounded memory under a flood of addresses
		}
		l = rate.NewLimiter(rate.Every(h.cfg.Every), h.cfg.Burst)
		h.failures[addr] = l
	}
	l.Allow()
}

// Files in a node's identity directory.
const (
	certFile      = "node.crt"
	keyFile       = "node.key"
	endpointsFile = "etcd-endpoints"
	// SecretKeysFile holds the servers' key file, as the join gave it.
	SecretKeysFile = "secrets.key"
)

// Config configures a node's side.
type Config struct {
	// Server is a server's API URL (https://host:7070); Token the join
	// token `bosun server` printed. Both may be empty when Dir already
	// holds a valid identity.
	Server, Token string
	Node          string
	// Dir keeps the identity (created 0700).
	Dir    string
	Logger *slog.Logger
}

// Identity is a node's standing in the cluster.
type Identity struct {
	Node      string
	Cert      tls.Certificate
	Pool      *x509.CertPool
	Endpoints []string
	// SecretKeysFile is the servers' key file as the join gave it; ""
	// when it gave none.
	SecretKeysFile string
}

// EtcdTLS is the client configuration for etcd, which names its servers
// by address: the CA is the root.
func (id *Identity) EtcdTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{id.Cert}, RootCAs: id.Pool, MinVersion: tls.VersionTLS12}
}

// LogServerTLS serves the node's logs to the servers only.
func (id *Identity) LogServerTLS() *tls.Config { return pki.ServerTLS(id.Cert, id.Pool, pki.RootCN) }

// Ensure returns the node's identity from cfg.Dir, joining first when a
// token is given (so that every start with one refreshes the certificate
// and the secret keys, after a rotation say), when the directory holds
// none for cfg.Node, or when its certificate nears its end.
func Ensure(ctx context.Context, cfg Config) (*Identity, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	id, err := load(cfg.Dir, cfg.Node)
	switch {
	case cfg.Token != "" && cfg.Server != "":
	case err == nil && !pki.NeedsRenewal(id.Cert.Leaf, time.Now()):
		return id, nil
	case err == nil:
		cfg.Logger.Info("node certificate nears its end: joining again", "expires", id.Cert.Leaf.NotAfter)
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	if cfg.Server == "" || cfg.Token == "" {
		return nil, fmt.Errorf("node %s has no certificate in %s: join with --server URL --token TOKEN (as `bosun server` printed it)", cfg.Node, cfg.Dir)
	}
	if err := join(ctx, cfg); err != nil {
		return nil, err
	}
	return load(cfg.Dir, cfg.Node)
}

func load(dir, node string) (*Identity, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, certFile))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, pki.CACertFile))
	if err != nil {
		return nil, err
	}
	eps, err := os.ReadFile(filepath.Join(dir, endpointsFile))
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("node certificate in %s: %w", dir, err)
	}
	if cert.Leaf.Subject.CommonName != pki.NodeCN(node) {
		return nil, fmt.Errorf("node certificate in %s is %q's, not node %s's: use that name, or remove the directory and join again", dir, cert.Leaf.Subject.CommonName, node)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("cluster CA in %s: no certificate", dir)
	}
	id := &Identity{Node: node, Cert: cert, Pool: pool, Endpoints: strings.Fields(string(eps))}
	if _, err := os.Stat(filepath.Join(dir, SecretKeysFile)); err == nil {
		id.SecretKeysFile = filepath.Join(dir, SecretKeysFile)
	}
	return id, nil
}

// join trades the token for a certificate and writes the identity.
func join(ctx context.Context, cfg Config) error {
	tok, err := pki.ParseJoinToken(cfg.Token)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(cfg.Server, "https://") {
		return fmt.Errorf("--server %s: want an https:// URL", cfg.Server)
	}
	csr, key, err := pki.NewCSR(pki.NodeCN(cfg.Node))
	if err != nil {
		return err
	}
	body, _ := json.Marshal(request{Node: cfg.Node, CSR: string(csr), Secret: tok.Secret})
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // VerifyConnection pins the CA of the token
		MinVersion:         tls.VersionTLS12,
		VerifyConnection:   func(cs tls.ConnectionState) error { return verifyServer(cs, tok.CAHash) },
	}}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(cfg.Server, "/")+Path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("join %s: %w", cfg.Server, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("join %s: %s: %s", cfg.Server, resp.Status, strings.TrimSpace(string(answer)))
	}
	var out response
	if err := json.Unmarshal(answer, &out); err != nil {
		return fmt.Errorf("join %s: answer: %w", cfg.Server, err)
	}
	ca, err := pki.ParseCert([]byte(out.CA))
	if err != nil || pki.Fingerprint(ca) != tok.CAHash {
		return fmt.Errorf("join %s: the server answered with another CA than the token's", cfg.Server)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return err
	}
	files := map[string][]byte{keyFile: key, certFile: []byte(out.Certificate), pki.CACertFile: []byte(out.CA),
		endpointsFile: []byte(strings.Join(out.EtcdEndpoints, "\n") + "\n")}
	if out.SecretKeys != "" {
		files[SecretKeysFile] = []byte(out.SecretKeys)
	}
	for name, data := range files {
		if err := pki.WriteFile(filepath.Join(cfg.Dir, name), data); err != nil {
			return fmt.Errorf("keep the node's identity: %w", err)
		}
	}
	cfg.Logger.Info("joined the cluster", "server", cfg.Server, "node", cfg.Node, "etcd", strings.Join(out.EtcdEndpoints, ","))
	return nil
}

// verifyServer accepts a server whose chain holds the CA of hash and
// whose certificate that CA signed.
func verifyServer(cs tls.ConnectionState, hash string) error {
	for _, c := range cs.PeerCertificates {
		if pki.Fingerprint(c) == hash {
			pool := x509.NewCertPool()
			pool.AddCert(c)
			_, err := pki.VerifyPeer(pool, cs, x509.ExtKeyUsageServerAuth)
			return err
		}
	}
	return errors.New("the server does not hold the cluster CA of the join token: wrong server, or someone in between")
}
