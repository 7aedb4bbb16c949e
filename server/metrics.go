package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the leader's counters, on /metrics of every replica.
type metrics struct {
	leader     prometheus.Gauge
	passes     prometheus.Counter
	failures   prometheus.Counter
	duration   prometheus.Histogram
	actions    *prometheus.CounterVec
	revisions  *prometheus.CounterVec
	fetchFails prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bosun_leader", Help: "1 while this replica is the leader.",
		}),
		passes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_reconcile_passes_total", Help: "Reconcile passes (observe, plan, apply) of the leader.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_reconcile_failures_total", Help: "Reconcile passes that failed and were retried.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bosun_reconcile_duration_seconds", Help: "Time of one reconcile pass.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_actions_total", Help: "Actions the leader applied, by type.",
		}, []string{"type"}),
		revisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_revisions_total", Help: "Revisions seen, by result (accepted, rejected).",
		}, []string{"result"}),
		fetchFails: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bosun_git_fetch_failures", Help: "Consecutive failed fetches of the repository (0 when healthy).",
		}),
	}
	reg.MustRegister(m.leader, m.passes, m.failures, m.duration, m.actions, m.revisions, m.fetchFails)
	return m
}
