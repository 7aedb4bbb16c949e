package server

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"bosun/store"
)

// quorumInterval is how often a replica checks the etcd members.
const quorumInterval = time.Second

// quorumMonitor checks the etcd members this replica reaches every
// quorumInterval: the API's status and /readyz read its last check, so that
// they say at once that etcd has no quorum instead of timing out, and it
// exports bosun_etcd_members, bosun_etcd_members_reachable,
// bosun_etcd_quorum and bosun_etcd_leader_changes_total.
type quorumMonitor struct {
	checker *store.HealthChecker
	log     *slog.Logger
	last    atomic.Pointer[store.ClusterHealth]

	members, reachable, quorum prometheus.Gauge
	leaderChanges, checks      prometheus.Counter
}

func newQuorumMonitor(cli *clientv3.Client, reg prometheus.Registerer, log *slog.Logger) *quorumMonitor {
	m := &quorumMonitor{checker: store.NewHealthChecker(cli, time.Second), log: log,
		members: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bosun_etcd_members",
			Help: "Voting members of the etcd cluster, as this replica last read the member list."}),
		reachable: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bosun_etcd_members_reachable",
			Help: "Voting etcd members this replica reaches that have a raft leader."}),
		quorum: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bosun_etcd_quorum",
			Help: "1 while a majority of the etcd members is reachable from this replica (writes can be made)."}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "bosun_etcd_leader_changes_total",
			Help: "Changes of the etcd raft leader seen by this replica's checks."}),
		checks: prometheus.NewCounter(prometheus.CounterOpts{Name: "bosun_etcd_health_checks_total",
			Help: "Checks of the etcd members by this replica."}),
	}
	reg.MustRegister(m.members, m.reachable, m.quorum, m.leaderChanges, m.checks)
	return m
}

// Health is the last check; nil before the first.
func (m *quorumMonitor) Health() *store.ClusterHealth { return m.last.Load() }

// Run checks until ctx ends.
func (m *quorumMonitor) Run(ctx context.Context) error {
	t := time.NewTicker(quorumInterval)
	defer t.Stop()
	var prevLeader string
	for {
		h := m.checker.Check(ctx, time.Now())
		if ctx.Err() != nil {
			return nil
		}
		m.checks.Inc()
		prev := m.last.Swap(&h)
		m.members.Set(float64(h.Voters))
		m.reachable.Set(float64(h.Reachable))
		m.quorum.Set(btof(h.Quorum))
		leader := ""
		for _, mh := range h.Members {
			if mh.Leader {
				leader = mh.Name
			}
		}
		if leader != "" && prevLeader != "" && leader != prevLeader {
			m.leaderChanges.Inc()
			m.log.Info("etcd raft leader changed", "from", prevLeader, "to", leader)
		}
		if leader != "" {
			prevLeader = leader
		}
		switch {
		case prev == nil && !h.Quorum, prev != nil && prev.Quorum && !h.Quorum:
			m.log.Error(h.Message())
		case prev != nil && !prev.Quorum && h.Quorum:
			m.log.Info("etcd has a quorum again: changes resume", "reachable", h.Reachable, "members", h.Voters)
		case prev != nil && h.Quorum && prev.Message() != h.Message() && h.Message() != "":
			m.log.Warn(h.Message())
		case prev != nil && h.Quorum && prev.Message() != "" && h.Message() == "":
			m.log.Info("every etcd member is reachable", "members", h.Voters)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func btof(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
