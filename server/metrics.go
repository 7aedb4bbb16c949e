package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"bosun/reconciler"
)

// metrics are the leader's counters, on /metrics of every replica.
type metrics struct {
	leader   prometheus.Gauge
	passes   prometheus.Counter
	failures prometheus.Counter
	// writeFailures counts failed writes of a revision (desired state,
	// history, status); each is retried.
	writeFailures prometheus.Counter
	duration      prometheus.Histogram
	actions       *prometheus.CounterVec
	revisions     *prometheus.CounterVec
	fetchFails    prometheus.Gauge
	// Jobs and CronJobs: runs by outcome (started, missed, missed_deadline,
	// forbidden, replaced), Jobs by outcome (complete, backoff_limit,
	// deadline), and how late each run's Job was created.
	cronRuns    *prometheus.CounterVec
	jobOutcomes *prometheus.CounterVec
	cronDelay   prometheus.Histogram
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
		writeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_revision_write_failures_total", Help: "Writes of a revision (desired state, history, status) that failed and were retried.",
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
		cronRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_cronjob_runs_total",
			Help: "Scheduled CronJob runs, by outcome: started, missed (superseded by a later run after downtime), missed_deadline (past startingDeadlineSeconds), forbidden (concurrencyPolicy Forbid), replaced (an active Job deleted by concurrencyPolicy Replace).",
		}, []string{"outcome"}),
		jobOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_job_outcomes_total", Help: "Jobs that finished, by outcome: complete, backoff_limit, deadline.",
		}, []string{"outcome"}),
		cronDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bosun_cronjob_start_delay_seconds", Help: "From a CronJob run's scheduled time to its Job written in etcd.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
	}
	reg.MustRegister(m.leader, m.passes, m.failures, m.writeFailures, m.duration, m.actions, m.revisions, m.fetchFails, m.cronRuns, m.jobOutcomes, m.cronDelay)
	return m
}

// observeEvents counts what a plan, once applied at applied, did to Jobs
// and CronJobs.
func (m *metrics) observeEvents(events []reconciler.Event, applied time.Time) {
	for _, e := range events {
		switch e.Reason {
		case reconciler.ReasonJobCreated:
			m.cronRuns.WithLabelValues("started").Inc()
			m.cronDelay.Observe(max(applied.Sub(e.Scheduled), 0).Seconds())
		case reconciler.ReasonMissedRuns:
			m.cronRuns.WithLabelValues("missed").Add(float64(e.Count))
		case reconciler.ReasonMissedDeadline:
			m.cronRuns.WithLabelValues("missed_deadline").Add(float64(e.Count))
		case reconciler.ReasonJobAlreadyActive:
			m.cronRuns.WithLabelValues("forbidden").Inc()
		case reconciler.ReasonJobReplaced:
			m.cronRuns.WithLabelValues("replaced").Inc()
		case reconciler.ReasonCompletionsReached:
			m.jobOutcomes.WithLabelValues("complete").Inc()
		case reconciler.ReasonBackoffLimitExceeded:
			m.jobOutcomes.WithLabelValues("backoff_limit").Inc()
		case reconciler.ReasonDeadlineExceeded:
			m.jobOutcomes.WithLabelValues("deadline").Inc()
		}
	}
}
