package proxy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netns"

	"bosun/store"
)

// RunConfig configures a Runner. The zero value programs the table "bosun"
// in the current network namespace.
type RunConfig struct {
	// Table is the nftables table (family ip) the runner owns; default
	// DefaultTable. Agents of several clusters in one network namespace
	// (the end-to-end tests) each need their own.
	Table string
	// NetNS is the network namespace to program; 0 or -1: the current one.
	NetNS netns.NsHandle
	// MinSyncInterval is the shortest time between two syncs: changes that
	// come sooner after a sync are applied together once it has passed
	// (the first change after a quiet time is applied at once). Default
	// 10 ms.
	MinSyncInterval time.Duration
	// MaxRetryInterval bounds the backoff between retries of a failed
	// sync, which starts at 100 ms and doubles; default 30 s.
	MaxRetryInterval time.Duration
	// KeepBridgeNetfilter leaves net.bridge.bridge-nf-call-iptables alone
	// (by default Run turns it on; see Run).
	KeepBridgeNetfilter bool
	// Registerer receives the runner's metrics (bosun_proxy_*); nil
	// registers none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Runner keeps a node's Service rules equal to the store: it follows the
// store's cache, computes the service ports (PortsBuilder) and syncs them
// into a Table. Create it with New and run it with Run.
type Runner struct {
	cfg   RunConfig
	cache *store.Cache
	log   *slog.Logger
	m     *runnerMetrics
}

// New returns a Runner that follows cache, which must serve (at least)
// services, pods and pod statuses, and be run by the caller.
func New(cfg RunConfig, cache *store.Cache) *Runner {
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	if cfg.MinSyncInterval <= 0 {
		cfg.MinSyncInterval = 10 * time.Millisecond
	}
	if cfg.MaxRetryInterval <= 0 {
		cfg.MaxRetryInterval = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: cfg, cache: cache, log: log.With("component", "proxy", "table", cfg.Table), m: newRunnerMetrics(cfg.Registerer)}
}

// CacheConfig is the configuration of a cache that serves a Runner alone
// (a node agent's): only the prefixes it reads.
func CacheConfig() store.CacheConfig {
	return store.CacheConfig{Prefixes: []string{store.ServicesPrefix, store.PodsPrefix, store.PodStatusPrefix}, Name: "proxy"}
}

// firstRetry is the first delay before a failed sync is retried.
const firstRetry = 100 * time.Millisecond

// Run programs the table until ctx ends, and returns nil then. It turns on
// bridged traffic's netfilter hooks (see bridgeNetfilter), waits for the
// cache's first list, and then, on every change of services, pods or pod
// statuses, computes the service ports and syncs them: the first sync
// rebuilds the table from nothing, the next ones change what differs, each
// in one transaction. A failed sync (or a failure to open the table) is
// retried with backoff, and the retry rebuilds. Run leaves the rules in
// place when it stops, so that Services keep answering while the agent
// restarts; the next start rebuilds them (Cleanup removes them).
func (r *Runner) Run(ctx context.Context) error {
	if !r.cfg.KeepBridgeNetfilter {
		if err := bridgeNetfilter(ctx, r.cfg.NetNS); err != nil {
			r.log.Warn("bridged traffic does not go through netfilter: a pod reaching its own Service, or one on the same node, may not get its replies", "err", err)
		}
	}
	changes := r.cache.Changes(ctx, store.ServicesPrefix, store.PodsPrefix, store.PodStatusPrefix)
	var table *Table
	defer func() {
		if table != nil {
			if err := table.Close(); err != nil {
				r.log.Warn("close table", "err", err)
			}
		}
	}()
	builder := NewPortsBuilder()
	var skipped []string // the last warned about
	var (
		dirty     bool      // the store changed (or a sync failed) since the last sync
		pending   bool      // the table misses the builder's result: sync even if nothing was recomputed
		notBefore time.Time // the next sync waits until then
		backoff   = firstRetry
		timer     = time.NewTimer(time.Hour)
		timerC    <-chan time.Time // nil: the timer is off
	)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-changes:
			if !ok {
				return nil
			}
			dirty = true
		case <-timerC:
			timerC = nil
		}
		if !dirty {
			continue
		}
		if wait := time.Until(notBefore); wait > 0 {
			if timerC == nil {
				timer.Reset(wait)
				timerC = timer.C
			}
			continue
		}
		dirty = false
		snap, err := r.cache.Snapshot(ctx)
		if err != nil {
			return nil // only when ctx ended
		}
		ports, pstats := builder.Update(snap.Services, snap.Pods)
		if !slices.Equal(pstats.Skipped, skipped) {
			skipped = pstats.Skipped
			if len(skipped) > 0 {
				r.log.Warn("service ports left out of the rules", "skipped", skipped)
			}
		}
		if !pending && !pstats.Full && pstats.Changed == 0 && pstats.Removed == 0 {
			continue // nothing the rules see changed
		}
		if table == nil {
			table, err = Open(Config{Table: r.cfg.Table, NetNS: r.cfg.NetNS, Logger: r.log})
		}
		var sstats SyncStats
		var took time.Duration
		if err == nil {
			start := time.Now()
			sstats, err = table.Sync(ports)
			took = time.Since(start)
		}
		if err != nil {
			r.m.syncs.WithLabelValues("error").Inc()
			r.log.Warn("sync failed; retrying", "err", err, "in", backoff, "revision", snap.Revision)
			pending, dirty = true, true
			notBefore = time.Now().Add(backoff)
			timer.Reset(backoff)
			timerC = timer.C
			backoff = min(2*backoff, r.cfg.MaxRetryInterval)
			continue
		}
		pending, backoff = false, firstRetry
		notBefore = time.Now().Add(r.cfg.MinSyncInterval)
		r.m.observe(sstats, took, pstats)
		attrs := []any{"full", sstats.Full, "took", took, "revision", snap.Revision,
			"services", pstats.Services, "ports", pstats.Ports, "endpoints", pstats.Endpoints,
			"recomputed", pstats.Recomputed, "servicesChanged", pstats.Changed, "added", sstats.Added, "changed", sstats.Changed, "removed", sstats.Removed,
			"conntrackFlushed", sstats.ConntrackFlushed}
		if sstats.Full {
			r.log.Info("programmed the Service rules", attrs...)
		} else if r.log.Enabled(ctx, slog.LevelDebug) {
			slices.Sort(pstats.Which)
			r.log.Debug("synced the Service rules", append(attrs, "which", pstats.Which)...)
		}
	}
}

// bridgeNetfilterPath is the sysctl that sends bridged IPv4 traffic
// through netfilter.
const bridgeNetfilterPath = "/proc/sys/net/bridge/bridge-nf-call-iptables"

// bridgeNetfilter turns on net.bridge.bridge-nf-call-iptables in ns (0 or
// -1: the current network namespace), loading br_netfilter when the sysctl
// is not there. Without it, a pod's reply to another pod on the same bridge
// is switched by the bridge without passing conntrack, so the reverse NAT
// of a Service connection between two pods of one node (or of a pod to
// itself through its own Service) never happens. kube-proxy requires the
// same.
func bridgeNetfilter(ctx context.Context, ns netns.NsHandle) error {
	if _, err := os.Stat(bridgeNetfilterPath); errors.Is(err, fs.ErrNotExist) {
		if out, err := exec.CommandContext(ctx, "modprobe", "br_netfilter").CombinedOutput(); err != nil {
			return fmt.Errorf("load br_netfilter: %v: %s", err, strings.TrimSpace(string(out)))
		}
	}
	if ns <= 0 { // 0 or -1 (netns.None()): the current namespace
		return writeSysctl(bridgeNetfilterPath, "1")
	}
	// /proc/sys/net is the namespace of the thread that opens it: write from
	// a thread of ns, which dies with its goroutine (never unlocked).
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		errc <- writeSysctl(bridgeNetfilterPath, "1")
	}()
	return <-errc
}

func writeSysctl(path, value string) error {
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == value {
		return nil
	}
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("set %s: %w", path, err)
	}
	return nil
}

// runnerMetrics are a Runner's Prometheus metrics.
type runnerMetrics struct {
	syncSeconds *prometheus.HistogramVec
	syncs       *prometheus.CounterVec
	ports       prometheus.Gauge
	endpoints   prometheus.Gauge
	lastSync    prometheus.Gauge
}

func newRunnerMetrics(reg prometheus.Registerer) *runnerMetrics {
	m := &runnerMetrics{
		syncSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bosun_proxy_sync_seconds", Help: "Time to program one change of the Service rules into the kernel (one nftables transaction), by kind: full (a rebuild) or incremental.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"kind"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_proxy_syncs_total", Help: "Syncs of the Service rules, by result (ok, error).",
		}, []string{"result"}),
		ports: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bosun_proxy_service_ports", Help: "Service ports (ClusterIP, port, protocol) programmed by the last sync.",
		}),
		endpoints: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bosun_proxy_endpoints", Help: "Endpoints of all service ports programmed by the last sync.",
		}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bosun_proxy_last_sync_timestamp_seconds", Help: "When the Service rules were last synced successfully (Unix time).",
		}),
	}
	m.syncs.WithLabelValues("ok")
	m.syncs.WithLabelValues("error")
	if reg != nil {
		reg.MustRegister(m.syncSeconds, m.syncs, m.ports, m.endpoints, m.lastSync)
	}
	return m
}

func (m *runnerMetrics) observe(s SyncStats, took time.Duration, p PortsStats) {
	kind := "incremental"
	if s.Full {
		kind = "full"
	}
	m.syncSeconds.WithLabelValues(kind).Observe(took.Seconds())
	m.syncs.WithLabelValues("ok").Inc()
	m.ports.Set(float64(p.Ports))
	m.endpoints.Set(float64(p.Endpoints))
	m.lastSync.SetToCurrentTime()
}

// CheckTableName reports whether name can be the runner's table: a name
// nft(8) lists without quoting (a letter, then letters, digits, '_' and
// '-'), at most 64 bytes.
func CheckTableName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("table name %q: want 1 to 64 characters", name)
	}
	for i, c := range name {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '_' || c == '-')) {
			return fmt.Errorf("table name %q: want a letter, then letters, digits, '_' or '-'", name)
		}
	}
	return nil
}
