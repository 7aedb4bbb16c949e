package podnet

import (
	"context"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"bosun/store"
)

// RunConfig configures Run.
type RunConfig struct {
	Config
	// Resync is how often the kernel is checked even without a change;
	// default 30s. A failed Sync is retried after RetryDelay (default 5s).
	Resync, RetryDelay time.Duration
	// Registerer receives bosun_podnet_* metrics; nil: none.
	Registerer prometheus.Registerer
}

type runMetrics struct {
	routes prometheus.Gauge
	syncs  *prometheus.CounterVec
	dur    prometheus.Histogram
}

func newRunMetrics(reg prometheus.Registerer) *runMetrics {
	m := &runMetrics{
		routes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bosun_podnet_routes", Help: "Routes to other nodes' pod subnets this node carries.",
		}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_podnet_syncs_total", Help: "Reconciles of the routes between nodes, by result (ok, error).",
		}, []string{"result"}),
		dur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bosun_podnet_sync_duration_seconds", Help: "Time of one reconcile of the routes between nodes.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.routes, m.syncs, m.dur)
	}
	return m
}

// Run keeps this node's routes to the other nodes' pod subnets until ctx
// ends: on every change of the nodes, their subnet records or the cluster
// network, and every Resync. The state stays in the kernel when it
// returns (pods keep talking across nodes while an agent restarts).
func Run(ctx context.Context, cfg RunConfig, st *store.Store) error {
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 5 * time.Second
	}
	s, err := NewSyncer(cfg.Config)
	if err != nil {
		return err
	}
	defer s.Close()
	log := s.log.With("component", "podnet")
	s.log = log
	m := newRunMetrics(cfg.Registerer)
	changes := st.Changes(ctx, store.NodesPrefix, store.NodeSubnetsPrefix, store.ClusterNetworkKey)
	resync := time.NewTicker(cfg.Resync)
	defer resync.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	// lastIP remembers the address of nodes whose registration lapsed:
	// their route stays as it was.
	lastIP := map[string]netip.Addr{}
	lastErr := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		case <-resync.C:
		case <-retry.C:
		}
		start := time.Now()
		c, ok, err := readCluster(ctx, st, lastIP)
		if err == nil && !ok {
			log.Info("no cluster network recorded yet (no leader since the upgrade?): routes wait for it")
			continue
		}
		var stats Stats
		if err == nil {
			stats, err = s.Sync(c)
		}
		m.dur.Observe(time.Since(start).Seconds())
		m.routes.Set(float64(stats.Routes))
		if err != nil {
			m.syncs.WithLabelValues("error").Inc()
			if err.Error() != lastErr {
				log.Error("routes between nodes", "err", err)
				lastErr = err.Error()
			}
			retry.Reset(cfg.RetryDelay)
			continue
		}
		m.syncs.WithLabelValues("ok").Inc()
		if lastErr != "" {
			log.Info("routes between nodes recovered")
			lastErr = ""
		}
		if stats.Added+stats.Removed > 0 {
			log.Info("routes between nodes synced", "routes", stats.Routes, "added", stats.Added, "removed", stats.Removed,
				"backend", c.Backend, "took", time.Since(start).Round(time.Microsecond))
		}
	}
}

// readCluster reads the cluster network, the nodes and their records.
func readCluster(ctx context.Context, st *store.Store, lastIP map[string]netip.Addr) (Cluster, bool, error) {
	cn, ok, err := st.ClusterNetwork(ctx)
	if err != nil || !ok {
		return Cluster{}, false, err
	}
	nodes, err := st.Nodes(ctx)
	if err != nil {
		return Cluster{}, false, err
	}
	records, _, err := st.NodeSubnets(ctx)
	if err != nil {
		return Cluster{}, false, err
	}
	c := Cluster{Backend: cn.Backend}
	c.ClusterCIDR, _ = netip.ParsePrefix(cn.ClusterCIDR)
	for _, n := range nodes {
		if ip, ok := internalIP(n); ok {
			lastIP[n.Name] = ip
		}
	}
	for name := range lastIP {
		if _, ok := records[name]; !ok {
			delete(lastIP, name) // deleted: forget it
		}
	}
	for name, r := range records {
		p, err := netip.ParsePrefix(r.PodCIDR)
		if err != nil {
			continue // a refusal: no subnet
		}
		c.Peers = append(c.Peers, Peer{Name: name, IP: lastIP[name], PodCIDR: p})
	}
	return c, true, nil
}

func internalIP(n corev1.Node) (netip.Addr, bool) {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ip, err := netip.ParseAddr(a.Address)
			return ip, err == nil
		}
	}
	return netip.Addr{}, false
}
