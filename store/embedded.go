package store

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	"go.uber.org/zap"
)

// EmbeddedConfig configures an in-process etcd member: by default the only
// member of its cluster, on loopback; with PeerURL, a member of a cluster
// of several (see Members).
type EmbeddedConfig struct {
	// Dir holds etcd's data; created if missing.
	Dir string
	// ClientAddr is the host:port clients connect to. Default: a free port
	// on 127.0.0.1.
	ClientAddr string
	// FastTicks shortens etcd's heartbeat and election ticks (10 ms/100 ms)
	// so a single member starts in tens of milliseconds instead of about a
	// second. Safe for a single member, which never elects against peers.
	FastTicks bool
	// MaxTxnOps is etcd's --max-txn-ops; default etcd's (128).
	MaxTxnOps uint
	// TLS, when set, serves clients over mutual TLS only: https, a server
	// certificate, and a client certificate signed by the CA required of
	// every client (whose Common Name etcd takes as the user name once
	// EnableAuth has turned permissions on).
	TLS *TLSFiles
	// Name is the member's name, default "bosun". A member keeps the name
	// it was added with; it is what `bosun status` and MemberRemove use.
	Name string
	// PeerURL is the URL other members reach this one at
	// (https://10.0.0.1:2380), which it also listens on. Empty: a single
	// member that listens on a free loopback port and advertises a fixed
	// loopback URL no peer ever dials.
	PeerURL string
	// PeerTLS, with PeerURL, is mutual TLS between members: each presents
	// its certificate and requires one signed by CAFile from its peers.
	PeerTLS *TLSFiles
	// InitialCluster (name=peerURL,...) and Join are how a new member
	// finds its cluster: empty InitialCluster starts a new cluster of this
	// member alone; Join says the others exist already (the member was
	// added with MemberAdd or AddLearner). Both are ignored once the data
	// directory holds a member: a restart keeps the member it has.
	InitialCluster string
	Join           bool
	// TickMs and ElectionMs are raft's heartbeat and election timeout
	// (etcd's defaults 100 and 1000 when zero; FastTicks overrides them).
	// They bound how fast the members notice a lost raft leader, and so a
	// failover of bosun's leader when both were on one machine.
	TickMs, ElectionMs uint
	Logger             *slog.Logger
}

// TLSFiles names the PEM files of a TLS identity and the CA its peers'
// certificates must chain to.
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
}

// Embedded is a running in-process etcd.
type Embedded struct {
	etcd       *embed.Etcd
	endpoints  []string
	name, peer string
	close      sync.Once
}

// advertisedPeer is the fixed peer URL of the single member. It is never
// dialled (there are no peers), but it is recorded in the member list, so it
// must not change between restarts of the same data directory.
const advertisedPeer = "http://127.0.0.1:2380"

// The embedded member's raft log bounds: a snapshot every
// embeddedSnapshotCount entries, keeping embeddedSnapshotCatchUp after it.
const (
	embeddedSnapshotCount   = 2000
	embeddedSnapshotCatchUp = 1000
)

// StartEmbedded starts etcd in cfg.Dir and waits until it serves.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("embedded etcd: data directory is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	if cfg.ClientAddr == "" {
		addr, err := freeAddr()
		if err != nil {
			return nil, fmt.Errorf("embedded etcd: %w", err)
		}
		cfg.ClientAddr = addr
	}
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	if ec.Name == "" {
		ec.Name = "bosun"
	}
	ec.Dir = cfg.Dir
	client := url.URL{Scheme: "http", Host: cfg.ClientAddr}
	if cfg.TLS != nil {
		client.Scheme = "https"
		ec.ClientTLSInfo = transport.TLSInfo{
			CertFile:       cfg.TLS.CertFile,
			KeyFile:        cfg.TLS.KeyFile,
			TrustedCAFile:  cfg.TLS.CAFile,
			ClientCertAuth: true,
		}
	}
	ec.ListenClientUrls = []url.URL{client}
	ec.AdvertiseClientUrls = []url.URL{client}
	if err := setPeers(ec, cfg); err != nil {
		return nil, err
	}
	ec.AutoCompactionMode = "revision"
	ec.AutoCompactionRetention = "10000"
	// etcd keeps the raft entries since its last snapshot in memory
	// (10,000 by default). The leader's transactions of a big revision are
	// up to 1 MiB each, so at 30,000 pods that log held ~60 MB of the heap
	// (twice that in RSS). A single member has no follower to catch up:
	// snapshot more often and keep fewer entries.
	if cfg.PeerURL == "" {
		ec.SnapshotCount = embeddedSnapshotCount
		ec.SnapshotCatchUpEntries = embeddedSnapshotCatchUp
	}
	if cfg.MaxTxnOps > 0 {
		ec.MaxTxnOps = cfg.MaxTxnOps
	}
	if cfg.TickMs > 0 && cfg.ElectionMs > 0 {
		ec.TickMs, ec.ElectionMs = cfg.TickMs, cfg.ElectionMs
	}
	if cfg.FastTicks {
		ec.TickMs, ec.ElectionMs = 10, 100
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(quietZap())
	e, err := startEtcd(ctx, ec, cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", cfg.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: not ready after 60s", cfg.Dir)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	if err := updatePeerURL(ctx, e, ec.AdvertisePeerUrls[0].String(), cfg.PeerURL != ""); err != nil {
		e.Close()
		return nil, err
	}
	if cfg.Logger != nil {
		cfg.Logger.Info("embedded etcd ready", "dir", cfg.Dir, "client", client.String(), "member", ec.Name, "peer", ec.AdvertisePeerUrls[0].String())
	}
	return &Embedded{etcd: e, endpoints: []string{client.String()}, name: ec.Name, peer: ec.AdvertisePeerUrls[0].String()}, nil
}

// joinAttempts is how many times a member that joins asks the cluster for
// its members before it gives up: the first ask goes to peers that may be
// slow to answer (a loaded machine, a leader election under way), and
// etcd gives each ask about a second.
const joinAttempts = 5

// startEtcd starts etcd; a member that joins and could not reach the
// cluster's peers for their member list, or was answered by a peer that
// has not applied its addition yet, tries again, a second apart (both
// failures come before anything is written to its data directory).
func startEtcd(ctx context.Context, ec *embed.Config, cfg EmbeddedConfig) (*embed.Etcd, error) {
	for attempt := 1; ; attempt++ {
		e, err := embed.StartEtcd(ec)
		if err == nil || !cfg.Join || attempt == joinAttempts || !joinRetryable(err) {
			return e, err
		}
		if cfg.Logger != nil {
			cfg.Logger.Warn("joining etcd: the cluster's peers did not answer; trying again", "attempt", attempt, "of", joinAttempts, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// joinRetryable reports whether a joining member's start failed on what
// passes: peers that did not answer, or one whose member list lags the
// addition of this member ("member count is unequal").
func joinRetryable(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "cannot fetch cluster info") || strings.Contains(msg, "member count is unequal")
}

// updatePeerURL records a new peer URL of a member that advertised another
// before (a single member started on loopback, now given a peer URL so that
// others can join it): the member list is what joining members dial.
func updatePeerURL(ctx context.Context, e *embed.Etcd, peer string, multi bool) error {
	if !multi {
		return nil
	}
	m := e.Server.Cluster().Member(e.Server.MemberID())
	if m == nil || (len(m.PeerURLs) == 1 && m.PeerURLs[0] == peer) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	upd := membership.Member{ID: m.ID, RaftAttributes: membership.RaftAttributes{PeerURLs: []string{peer}, IsLearner: m.IsLearner}}
	if _, err := e.Server.UpdateMember(ctx, upd); err != nil {
		return fmt.Errorf("embedded etcd: advertise peer URL %s (was %s): %w", peer, strings.Join(m.PeerURLs, ","), err)
	}
	return nil
}

// setPeers configures how the member talks to its peers: a fixed loopback
// URL nobody dials for a single member, or cfg.PeerURL (over mutual TLS
// with cfg.PeerTLS) for a member of a cluster of several.
func setPeers(ec *embed.Config, cfg EmbeddedConfig) error {
	if cfg.PeerURL == "" {
		if cfg.Join || cfg.InitialCluster != "" {
			return fmt.Errorf("embedded etcd: joining a cluster needs this member's peer URL")
		}
		peerAddr, err := freeAddr()
		if err != nil {
			return fmt.Errorf("embedded etcd: %w", err)
		}
		ec.ListenPeerUrls = []url.URL{{Scheme: "http", Host: peerAddr}}
		adv, _ := url.Parse(advertisedPeer)
		ec.AdvertisePeerUrls = []url.URL{*adv}
		ec.InitialCluster = ec.Name + "=" + advertisedPeer
		return nil
	}
	peer, err := url.Parse(cfg.PeerURL)
	if err != nil || peer.Host == "" || (peer.Scheme != "http" && peer.Scheme != "https") {
		return fmt.Errorf("embedded etcd: peer URL %q: want http(s)://host:port", cfg.PeerURL)
	}
	if (peer.Scheme == "https") != (cfg.PeerTLS != nil) {
		return fmt.Errorf("embedded etcd: peer URL %s: https goes with peer certificates, http without", cfg.PeerURL)
	}
	if cfg.PeerTLS != nil {
		ec.PeerTLSInfo = transport.TLSInfo{
			CertFile:       cfg.PeerTLS.CertFile,
			KeyFile:        cfg.PeerTLS.KeyFile,
			TrustedCAFile:  cfg.PeerTLS.CAFile,
			ClientCertAuth: true,
		}
	}
	// Servers' clients ping every member (DialMembers); etcd's default
	// refuses pings more often than every 5 s.
	ec.GRPCKeepAliveMinTime = memberPing / 2
	ec.ListenPeerUrls = []url.URL{*peer}
	ec.AdvertisePeerUrls = []url.URL{*peer}
	ec.InitialCluster = cfg.InitialCluster
	if ec.InitialCluster == "" {
		ec.InitialCluster = ec.Name + "=" + peer.String()
	}
	if cfg.Join {
		ec.ClusterState = embed.ClusterStateFlagExisting
	}
	// A member of several keeps the raft log its followers may need to
	// catch up from: etcd's defaults, not the single member's small ones.
	return nil
}

// Endpoints returns the client URLs.
func (e *Embedded) Endpoints() []string { return e.endpoints }

// Name is the member's name; PeerURL the URL it advertises to its peers.
func (e *Embedded) Name() string    { return e.name }
func (e *Embedded) PeerURL() string { return e.peer }

// ID is the member's ID in its cluster.
func (e *Embedded) ID() uint64 { return uint64(e.etcd.Server.MemberID()) }

// EmbeddedMember is a member of the cluster as the local member knows it.
type EmbeddedMember struct {
	Name       string // "" for a member added but not started
	ClientURLs []string
	Learner    bool
}

// Members lists the members as the local member knows them (no request).
func (e *Embedded) Members() []EmbeddedMember {
	var out []EmbeddedMember
	for _, m := range e.etcd.Server.Cluster().Members() {
		out = append(out, EmbeddedMember{Name: m.Name, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
	}
	return out
}

// IsLearner says whether the local member is a learner (added, not yet
// promoted to a voting member).
func (e *Embedded) IsLearner() bool { return e.etcd.Server.IsLearner() }

// Close stops etcd.
func (e *Embedded) Close() { e.close.Do(e.etcd.Close) }

// quietZap is the logger handed to etcd: errors only, to stderr, so etcd's
// chatter does not drown bosun's own logs.
func quietZap() *zap.Logger {
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	zc.OutputPaths = []string{"stderr"}
	zc.ErrorOutputPaths = []string{"stderr"}
	lg, err := zc.Build()
	if err != nil {
		return zap.NewNop()
	}
	return lg
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
