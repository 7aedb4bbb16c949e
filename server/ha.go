package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"bosun/join"
	"bosun/pki"
	"bosun/store"
)

// Servers of one cluster: each embeds an etcd member, and the members form
// one etcd cluster. The first server starts it; another joins it through
// any server's API with the server token (join.ServerPath): it receives the
// cluster CA with its key, the tokens and the keys of Secrets at rest, and
// its member is added as a learner, which it promotes once caught up. A
// restart keeps the member the data directory holds.

// Raft timing of the members of a cluster of several: a lost raft leader is
// noticed after 0.5-1 s instead of etcd's 1-2 s, and a new raft leader
// extends every lease by the election timeout, which a failover of bosun's
// leader waits on when both were on one machine. A LAN's round trips are
// well below the heartbeat.
const (
	haTickMs     = 50
	haElectionMs = 500
)

// peerPort is the default port of --etcd-peer-listen.
const peerPort = "2380"

// serverTokenFile holds the token servers join with, in <data-dir>/pki.
const serverTokenFile = "server-token"

// peerURL is the URL this server's etcd member advertises to its peers:
// --etcd-peer-listen, else port 2380 on the --etcd-listen host when etcd
// listens beyond loopback on a given address. "" keeps the single member of
// old, on loopback (etcd on loopback, or on every address).
func peerURL(cfg Config, secure bool) (string, error) {
	if len(cfg.EtcdEndpoints) > 0 {
		if cfg.JoinServer != "" {
			return "", errors.New("--server (joining as a server, with an etcd member) and --etcd-endpoints (an external etcd) exclude each other")
		}
		return "", nil
	}
	scheme := "http"
	if secure {
		scheme = "https"
	}
	listen := cfg.EtcdPeerListen
	if listen == "" {
		host, _, err := net.SplitHostPort(cfg.EtcdListen)
		if err != nil {
			return "", fmt.Errorf("--etcd-listen %s: %w", cfg.EtcdListen, err)
		}
		ip := net.ParseIP(host)
		if isLoopback(cfg.EtcdListen) || host == "" || (ip != nil && ip.IsUnspecified()) {
			if cfg.JoinServer != "" {
				return "", fmt.Errorf("joining a cluster (--server): --etcd-listen %s must be this machine's address, which the other servers reach (or give --etcd-peer-listen ADDR:PORT)", cfg.EtcdListen)
			}
			return "", nil
		}
		listen = net.JoinHostPort(host, peerPort)
	}
	host, port, err := net.SplitHostPort(listen)
	if ip := net.ParseIP(host); err != nil || port == "" || host == "" || (ip != nil && ip.IsUnspecified()) {
		return "", fmt.Errorf("--etcd-peer-listen %q: want this machine's address and a port (the other members dial it), like 10.0.0.1:2380", listen)
	}
	return (&url.URL{Scheme: scheme, Host: listen}).String(), nil
}

// joinAsServer trades --server and --token for the cluster's files and a
// place in its etcd, before anything else of the data directory is made.
// A data directory that holds an etcd member already is a restart: nothing
// is asked. It returns the new member's initial cluster ("" on a restart).
func joinAsServer(ctx context.Context, cfg Config, peer string, log *slog.Logger) (string, error) {
	if cfg.JoinServer == "" {
		return "", nil
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "etcd", "member")); err == nil {
		log.Info("this server's etcd member exists already: --server and --token are not needed again", "dir", filepath.Join(cfg.DataDir, "etcd"))
		return "", nil
	}
	if cfg.JoinToken == "" {
		return "", errors.New("--server needs --token: the server token the first server printed (also in its <data-dir>/pki/server-token)")
	}
	dir := filepath.Join(cfg.DataDir, "pki")
	g, err := join.JoinServer(ctx, join.ServerConfig{Server: cfg.JoinServer, Token: cfg.JoinToken, Name: cfg.etcdName(), PeerURL: peer})
	if err != nil {
		return "", err
	}
	if b, err := os.ReadFile(filepath.Join(dir, pki.CACertFile)); err == nil && string(b) != g.CA {
		return "", fmt.Errorf("%s holds another cluster CA than the cluster's at %s: this data directory belongs to another cluster; use an empty one", dir, cfg.JoinServer)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	files := map[string]string{pki.CACertFile: g.CA, pki.CAKeyFile: g.CAKey, "join-token": g.JoinToken + "\n", serverTokenFile: g.ServerToken + "\n"}
	for name, data := range files {
		if err := pki.WriteFile(filepath.Join(dir, name), []byte(data)); err != nil {
			return "", fmt.Errorf("keep the cluster's files: %w", err)
		}
	}
	if g.SecretKeys != "" {
		if _, err := os.Stat(cfg.keyFile()); errors.Is(err, os.ErrNotExist) {
			if err := pki.WriteFile(cfg.keyFile(), []byte(g.SecretKeys)); err != nil {
				return "", fmt.Errorf("keep the Secret keys: %w", err)
			}
		}
	}
	log.Info("joined the cluster's etcd as a learner member", "server", cfg.JoinServer, "member", cfg.etcdName(), "peer", peer,
		"initial-cluster", g.InitialCluster)
	return g.InitialCluster, nil
}

// serverGrant is what this server gives a server that joins: its CA, tokens
// and Secret keys, as they are on disk.
func (t *trust) serverGrant(cfg Config) join.ServerFiles {
	return func() (join.ServerGrant, error) {
		var g join.ServerGrant
		for name, dst := range map[string]*string{pki.CACertFile: &g.CA, pki.CAKeyFile: &g.CAKey, "join-token": &g.JoinToken, serverTokenFile: &g.ServerToken} {
			b, err := os.ReadFile(filepath.Join(t.dir, name))
			if err != nil {
				return g, err
			}
			*dst = strings.TrimSpace(string(b))
		}
		g.CAKey += "\n"
		b, err := os.ReadFile(cfg.keyFile())
		if err != nil {
			return g, err
		}
		g.SecretKeys = string(b)
		return g, nil
	}
}

// issueEtcdPeer writes the member's peer certificate (server and client:
// members dial one another) for the peer URL's host, at every start.
func (t *trust) issueEtcdPeer(peer string) (*store.TLSFiles, error) {
	u, err := url.Parse(peer)
	if err != nil {
		return nil, err
	}
	req := pki.Request{CommonName: "bosun-etcd-peer", Server: true, Client: true}
	if ip := net.ParseIP(u.Hostname()); ip != nil {
		req.IPs = []net.IP{ip}
	} else {
		req.DNSNames = []string{u.Hostname()}
	}
	cert, key, err := t.ca.Issue(req)
	if err != nil {
		return nil, err
	}
	return t.writePair("etcd-peer", cert, key)
}

// serverToken loads or creates the token servers join with, and prints it
// once, when it is created (like the agents' token).
func (t *trust) serverToken(cfg Config, log *slog.Logger) error {
	file := filepath.Join(t.dir, serverTokenFile)
	tok, created, err := pki.LoadOrCreateJoinToken(file, t.ca)
	if err != nil {
		return err
	}
	t.servers = tok
	if created {
		fmt.Fprintf(cfg.Stderr, "\nbosun: other servers join this cluster (their etcd members with this one's) with (the token is also in %s, readable by root only):\n\n    bosun server --server https://%s --token %s --etcd-listen THEIR-ADDRESS:2379 --api-listen THEIR-ADDRESS:7070 --repo ...\n\n",
			file, advertised(cfg.APIListen), tok)
	} else {
		log.Info("servers join with the server token in the data directory", "file", file)
	}
	return nil
}

// startedEndpoints are the client URLs of the voting members that run, as
// the local member knows them: what a server's client dials, so that it
// still works while its own member is down and a quorum remains.
func startedEndpoints(e *store.Embedded) []string {
	var out []string
	for _, m := range e.Members() {
		if m.Name != "" && !m.Learner {
			out = append(out, m.ClientURLs...)
		}
	}
	slices.Sort(out)
	return localEndpoints(out)
}

// promoteSelf makes this server's member a voter once it has caught up, if
// it is a learner still (a join, or a restart after a join that stopped
// before the promotion).
func promoteSelf(ctx context.Context, e *store.Embedded, cfg Config, t *trust, log *slog.Logger) error {
	if !e.IsLearner() {
		return nil
	}
	others := startedEndpoints(e)
	cli, err := store.DialTLS(others, t.etcdTLS())
	if err != nil {
		return err
	}
	defer cli.Close()
	log.Info("catching up with the cluster's etcd before voting", "member", e.Name())
	pctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	start := time.Now()
	if err := store.Promote(pctx, cli, e.ID()); err != nil {
		return err
	}
	log.Info("etcd member promoted to a voting member", "member", e.Name(), "after", time.Since(start).Round(time.Millisecond))
	return nil
}

// moveRaftLeader is what a leader does when elected in a cluster of several
// members: it hands etcd's raft leadership away from its own member
// (store.MoveRaftLeaderAway), so that losing this machine costs a raft
// election no more, and bosun's failover is the session TTL alone.
// It runs while this replica leads, checking again every
// raftLeaderCheck: members that join later, or a raft election, may put
// the raft leader back on this machine.
func moveRaftLeader(own *clientv3.Client, self uint64, log *slog.Logger) func(context.Context) {
	return func(ctx context.Context) {
		for {
			to, err := store.MoveRaftLeaderAway(ctx, own, self)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				log.Warn("could not move etcd's raft leader off this server's member", "err", err)
			case to != "":
				log.Info("moved etcd's raft leader off the leader's machine", "to", to)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(raftLeaderCheck):
			}
		}
	}
}

// raftLeaderCheck is how often a leader checks where etcd's raft leader is.
const raftLeaderCheck = time.Second
