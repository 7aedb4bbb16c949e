package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"bosun/canary"
	"bosun/reconciler"
)

// metrics are the leader's counters, on /metrics of every replica.
type metrics struct {
	leader prometheus.Gauge
	// elections counts the leaderships this replica won, leaderLost those
	// it lost without resigning (its session expired or went unconfirmed).
	elections, leaderLost prometheus.Counter
	passes                prometheus.Counter
	failures              prometheus.Counter
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
	// Canaries: weight and phase per canary, events by reason, query
	// evaluations by result.
	canaryWeight *prometheus.GaugeVec
	canaryPhase  *prometheus.GaugeVec
	canaryReady  *prometheus.GaugeVec
	canaryEvents *prometheus.CounterVec
	canaryChecks *prometheus.CounterVec
	nodes        *nodeMetrics // nodehealth.go
	// subnets are the node subnet allocator's (subnets.go).
	subnets *subnetMetrics
	windows *windowMetrics // syncwindow.go
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bosun_leader", Help: "1 while this replica is the leader.",
		}),
		elections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_leader_elections_total", Help: "Leaderships this replica won.",
		}),
		leaderLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_leader_lost_total", Help: "Leaderships this replica lost without resigning: its session expired, or its renewal went unconfirmed past the session TTL (etcd unreachable or without quorum).",
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
		canaryWeight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bosun_canary_weight_percent", Help: "Share of new connections a running canary receives (0 when it does not run).",
		}, []string{"namespace", "deployment"}),
		canaryPhase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bosun_canary_phase", Help: "1 for the phase each canary is in (Progressing, Aborted, Failed, Promoted, Idle), 0 for the others.",
		}, []string{"namespace", "deployment", "phase"}),
		canaryReady: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bosun_canary_ready_pods", Help: "Ready pods of each running canary.",
		}, []string{"namespace", "deployment"}),
		canaryEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_canary_events_total", Help: "Canary events by reason: CanaryStarted, CanaryStepped, CanaryAborted, CanaryFailed, CanaryPromoted, CanaryEnded.",
		}, []string{"namespace", "deployment", "reason"}),
		canaryChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_canary_queries_total", Help: "Evaluations of canaries' Prometheus queries, by result (ok, error).",
		}, []string{"result"}),
	}
	m.subnets = newSubnetMetrics(reg)
	m.windows = newWindowMetrics(reg)
	reg.MustRegister(m.canaryWeight, m.canaryPhase, m.canaryReady, m.canaryEvents, m.canaryChecks)
	m.nodes = newNodeMetrics(reg)
	reg.MustRegister(m.leader, m.elections, m.leaderLost, m.passes, m.failures, m.writeFailures, m.duration, m.actions, m.revisions, m.fetchFails, m.cronRuns, m.jobOutcomes, m.cronDelay)
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

// canaryPhases are the phases bosun_canary_phase reports.
var canaryPhases = []canary.Phase{canary.Progressing, canary.Aborted, canary.Failed, canary.Promoted, canary.Idle}

// observeCanaries records the canaries as a plan leaves them, and their
// events. A canary no longer summarised keeps its last values until the
// process restarts; its phase says where it ended.
func (m *metrics) observeCanaries(sums []reconciler.CanarySummary, events []canary.Event) {
	for _, s := range sums {
		var w float64
		if s.State.Active() {
			w = float64(s.State.Weight)
		}
		m.canaryWeight.WithLabelValues(s.Namespace, s.Name).Set(w)
		m.canaryReady.WithLabelValues(s.Namespace, s.Name).Set(float64(s.Ready))
		for _, ph := range canaryPhases {
			v := 0.0
			if s.State != nil && s.State.Phase == ph {
				v = 1
			}
			m.canaryPhase.WithLabelValues(s.Namespace, s.Name, string(ph)).Set(v)
		}
	}
	for _, e := range events {
		m.canaryEvents.WithLabelValues(e.Namespace, e.Name, e.Reason).Inc()
	}
}
