package join

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"bosun/pki"
	"bosun/store"
)

// ServerPath is where another server joins the cluster: it becomes a
// member of the servers' etcd and gets what a server holds (the CA with its
// key, the tokens, the keys of Secrets at rest).
const ServerPath = "/api/v1/join/server"

// serverRequest is what a joining server sends.
type serverRequest struct {
	// Name is its etcd member's name, PeerURL where the members reach it.
	Name    string `json:"name"`
	PeerURL string `json:"peerURL"`
	Secret  string `json:"secret"`
}

// ServerGrant is what a server that may join receives: everything a server
// of the cluster keeps in its data directory, and where its etcd member
// finds the others.
type ServerGrant struct {
	CA    string `json:"ca"`
	CAKey string `json:"caKey"`
	// JoinToken is the agents' token, ServerToken the servers': every
	// server hands out the same.
	JoinToken   string `json:"joinToken"`
	ServerToken string `json:"serverToken"`
	SecretKeys  string `json:"secretKeys,omitempty"`
	// InitialCluster is the new member's --initial-cluster (name=peerURL,
	// itself included); EtcdEndpoints the client URLs of the members that
	// run.
	InitialCluster string   `json:"initialCluster"`
	EtcdEndpoints  []string `json:"etcdEndpoints"`
}

// ServerFiles returns a server's own files for a grant (its CA, key,
// tokens and Secret keys); InitialCluster and EtcdEndpoints are the
// handler's.
type ServerFiles func() (ServerGrant, error)

// ServeServer answers POST ServerPath: a server with the server token
// becomes a learner member of etcd (store.AddLearner; it promotes itself
// once it has caught up) and gets the cluster's secrets. Without a
// ServerToken in the configuration it answers 404.
func (h *handler) ServeServer(w http.ResponseWriter, r *http.Request) {
	addr, _, _ := net.SplitHostPort(r.RemoteAddr)
	refuse := func(code int, result, msg string, attrs ...any) {
		h.requests.WithLabelValues(result).Inc()
		h.log.Warn("server join refused", append([]any{"audit", true, "event", "server.join", "result", result, "remote", r.RemoteAddr, "reason", msg}, attrs...)...)
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", fmt.Sprint(int(h.cfg.Every.Seconds()+0.5)))
		}
		http.Error(w, msg, code)
	}
	if h.cfg.ServerToken.Secret == "" || h.cfg.ServerFiles == nil {
		http.Error(w, "servers cannot join through this server (its etcd is not on a network: see --etcd-listen)", http.StatusNotFound)
		return
	}
	if !h.allowed(addr) {
		refuse(http.StatusTooManyRequests, "rate_limited", "too many failed join attempts from this address; wait")
		return
	}
	var req serverRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequest)).Decode(&req); err != nil {
		h.failed(addr)
		refuse(http.StatusBadRequest, "bad_request", "join request: not JSON")
		return
	}
	if !h.cfg.ServerToken.SecretMatches(req.Secret) {
		h.failed(addr)
		refuse(http.StatusUnauthorized, "refused", "wrong server token (servers join with the server token, not the agents' join token)", "name", req.Name)
		return
	}
	if errs := validation.IsDNS1123Subdomain(req.Name); len(errs) > 0 {
		refuse(http.StatusBadRequest, "bad_request", fmt.Sprintf("etcd member name %q: %s", req.Name, strings.Join(errs, "; ")))
		return
	}
	if u, err := url.Parse(req.PeerURL); err != nil || u.Scheme != "https" || u.Port() == "" {
		refuse(http.StatusBadRequest, "bad_request", fmt.Sprintf("peer URL %q: want https://host:port", req.PeerURL))
		return
	}
	grant, err := h.cfg.ServerFiles()
	if err != nil {
		h.requests.WithLabelValues("failed").Inc()
		h.log.Error("server join: read this server's files", "err", err)
		http.Error(w, "cannot read this server's files", http.StatusInternalServerError)
		return
	}
	ctx := r.Context()
	if grant.InitialCluster, err = store.AddLearner(ctx, h.cfg.Etcd, req.Name, req.PeerURL); err != nil {
		h.requests.WithLabelValues("failed").Inc()
		h.log.Error("server join: add the etcd member", "name", req.Name, "peer", req.PeerURL, "err", err)
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	list, err := h.cfg.Etcd.MemberList(lctx)
	cancel()
	if err != nil {
		h.requests.WithLabelValues("failed").Inc()
		http.Error(w, "etcd member list: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	for _, m := range list.Members {
		if m.Name != "" && !m.IsLearner {
			grant.EtcdEndpoints = append(grant.EtcdEndpoints, m.ClientURLs...)
		}
	}
	h.requests.WithLabelValues("joined").Inc()
	h.log.Info("server joined: added its etcd member as a learner", "audit", true, "event", "server.join", "actor", req.Name,
		"peer", req.PeerURL, "remote", r.RemoteAddr, "result", "joined")
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(grant)
}

// ServerConfig configures a joining server's side.
type ServerConfig struct {
	// Server is a server's API URL (https://host:7070); Token the server
	// token the first server printed.
	Server, Token string
	// Name and PeerURL are the new etcd member's.
	Name, PeerURL string
}

// JoinServer asks a server of the cluster to take this one in. The
// server's certificate must chain to the CA the token names.
func JoinServer(ctx context.Context, cfg ServerConfig) (*ServerGrant, error) {
	tok, err := pki.ParseJoinToken(cfg.Token)
	if err != nil {
		return nil, fmt.Errorf("--token: %w", err)
	}
	if !strings.HasPrefix(cfg.Server, "https://") {
		return nil, fmt.Errorf("--server %s: want an https:// URL", cfg.Server)
	}
	body, _ := json.Marshal(serverRequest{Name: cfg.Name, PeerURL: cfg.PeerURL, Secret: tok.Secret})
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // VerifyConnection pins the CA of the token
		MinVersion:         tls.VersionTLS12,
		VerifyConnection:   func(cs tls.ConnectionState) error { return verifyServer(cs, tok.CAHash) },
	}}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(cfg.Server, "/")+ServerPath, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", cfg.Server, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("join %s: %s: %s", cfg.Server, resp.Status, strings.TrimSpace(string(answer)))
	}
	var g ServerGrant
	if err := json.Unmarshal(answer, &g); err != nil {
		return nil, fmt.Errorf("join %s: answer: %w", cfg.Server, err)
	}
	ca, err := pki.ParseCert([]byte(g.CA))
	if err != nil || pki.Fingerprint(ca) != tok.CAHash {
		return nil, errors.New("join " + cfg.Server + ": the server answered with another CA than the token's")
	}
	if g.InitialCluster == "" || g.CAKey == "" {
		return nil, fmt.Errorf("join %s: incomplete answer", cfg.Server)
	}
	return &g, nil
}
