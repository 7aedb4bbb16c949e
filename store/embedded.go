package store

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// EmbeddedConfig configures an in-process single-member etcd.
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
	TLS    *TLSFiles
	Logger *slog.Logger
}

// TLSFiles names the PEM files of a TLS identity and the CA its peers'
// certificates must chain to.
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
}

// Embedded is a running in-process etcd.
type Embedded struct {
	etcd      *embed.Etcd
	endpoints []string
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
	peerAddr, err := freeAddr()
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	ec := embed.NewConfig()
	ec.Name = "bosun"
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
	ec.ListenPeerUrls = []url.URL{{Scheme: "http", Host: peerAddr}}
	adv, _ := url.Parse(advertisedPeer)
	ec.AdvertisePeerUrls = []url.URL{*adv}
	ec.InitialCluster = ec.Name + "=" + advertisedPeer
	ec.AutoCompactionMode = "revision"
	ec.AutoCompactionRetention = "10000"
	// etcd keeps the raft entries since its last snapshot in memory
	// (10,000 by default). The leader's transactions of a big revision are
	// up to 1 MiB each, so at 30,000 pods that log held ~60 MB of the heap
	// (twice that in RSS). A single member has no follower to catch up:
	// snapshot more often and keep fewer entries.
	ec.SnapshotCount = embeddedSnapshotCount
	ec.SnapshotCatchUpEntries = embeddedSnapshotCatchUp
	if cfg.MaxTxnOps > 0 {
		ec.MaxTxnOps = cfg.MaxTxnOps
	}
	if cfg.FastTicks {
		ec.TickMs, ec.ElectionMs = 10, 100
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(quietZap())
	e, err := embed.StartEtcd(ec)
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
	if cfg.Logger != nil {
		cfg.Logger.Info("embedded etcd ready", "dir", cfg.Dir, "client", client.String())
	}
	return &Embedded{etcd: e, endpoints: []string{client.String()}}, nil
}

// Endpoints returns the client URLs.
func (e *Embedded) Endpoints() []string { return e.endpoints }

// Close stops etcd.
func (e *Embedded) Close() { e.etcd.Close() }

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
