package server

import (
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"bosun/canary"
	"bosun/gitsource"
	"bosun/reconciler"
	"bosun/store"
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
	// git is the Git source's (bosun_git_*), given to each leadership's
	// Source.
	git *gitsource.Metrics
	// plan times reconciler.Plan alone (the pass's duration adds observing
	// and applying); rollouts counts revisions' rollouts by outcome, and
	// rolloutTime times the complete ones.
	plan        prometheus.Histogram
	rollouts    *prometheus.CounterVec
	rolloutTime prometheus.Histogram
	// The scheduler's results, as the plans' actions carry them (Plan runs
	// the pure scheduler): pods bound, and pods no node could take by
	// reason.
	placements    prometheus.Counter
	unschedulable *prometheus.CounterVec
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
	// daemonSets is each DaemonSet's rollout progress (observeDaemonSets).
	daemonSets   *prometheus.GaugeVec
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
		plan: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bosun_plan_duration_seconds", Help: "Time of one plan (reconciler.Plan: desired against observed, scheduling included) of a reconcile pass.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		rollouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_rollouts_total", Help: "Rollouts of accepted revisions that ended, by outcome: complete (every object ready), failed (a Deployment missed its progress deadline or a pod failed), aborted (superseded by a newer revision before it finished).",
		}, []string{"outcome"}),
		rolloutTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bosun_rollout_duration_seconds", Help: "From a revision seen to its rollout complete.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 14),
		}),
		placements: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_scheduler_placements_total", Help: "Pods the leader's plans bound to a node (scheduled, or pinned by spec.nodeName).",
		}),
		unschedulable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_scheduler_unschedulable_total", Help: "Verdicts that a pod fits no node, written when new or changed, by each reason a node was filtered out for: " + strings.Join(unschedulableReasons, ", ") + ".",
		}, []string{"reason"}),
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
	m.daemonSets = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "bosun_daemonset_pods", Help: "Nodes of each DaemonSet by state, from its status as the leader's last plan wrote it: desired (nodes that should run its pod), current (that do), ready, updated (run the current template) and available; a rollout is done when updated and available reach desired.",
	}, []string{"namespace", "name", "state"})
	reg.MustRegister(m.daemonSets)
	m.git = gitsource.NewMetrics(reg)
	m.subnets = newSubnetMetrics(reg)
	m.windows = newWindowMetrics(reg)
	reg.MustRegister(m.canaryWeight, m.canaryPhase, m.canaryReady, m.canaryEvents, m.canaryChecks)
	m.nodes = newNodeMetrics(reg)
	reg.MustRegister(m.leader, m.elections, m.leaderLost, m.passes, m.failures, m.writeFailures, m.duration, m.actions, m.revisions, m.cronRuns, m.jobOutcomes, m.cronDelay,
		m.plan, m.rollouts, m.rolloutTime, m.placements, m.unschedulable)
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

// planning times one plan (reconciler.Driver.Planning).
func (m *metrics) planning() func() {
	start := time.Now()
	return func() { m.plan.Observe(time.Since(start).Seconds()) }
}

// rolloutOutcomes counts the rollouts that ended between two states of the
// history (before and after the leader's write): an entry that was
// progressing and is now applied, rollout failed or superseded.
func (m *metrics) rolloutOutcomes(before, after []store.HistoryEntry) {
	progressing := map[int64]bool{}
	for _, e := range before {
		if e.Result == store.ResultProgressing {
			progressing[e.Seq] = true
		}
	}
	if len(progressing) == 0 {
		return
	}
	for _, e := range after {
		if !progressing[e.Seq] {
			continue
		}
		switch e.Result {
		case store.ResultApplied:
			m.rollouts.WithLabelValues("complete").Inc()
			m.rolloutTime.Observe(time.Duration(e.ReadyAfter).Seconds())
		case store.ResultRolloutFailed:
			m.rollouts.WithLabelValues("failed").Inc()
		case store.ResultSuperseded:
			m.rollouts.WithLabelValues("aborted").Inc()
		}
	}
}

// observeDaemonSets sets bosun_daemonset_pods from the DaemonSets as a
// plan whose actions were applied leaves them: observed, with the status
// of each PutDaemonSet, without the deleted ones.
func (m *metrics) observeDaemonSets(observed reconciler.Observed, actions []reconciler.Action) {
	dss := make(map[string]*appsv1.DaemonSet, len(observed.DaemonSets))
	for i := range observed.DaemonSets {
		ds := &observed.DaemonSets[i]
		dss[ds.Namespace+"/"+ds.Name] = ds
	}
	for _, a := range actions {
		switch {
		case a.Type == reconciler.PutDaemonSet && a.DaemonSet != nil:
			dss[a.DaemonSet.Namespace+"/"+a.DaemonSet.Name] = a.DaemonSet
		case a.Type == reconciler.DeleteDaemonSet:
			delete(dss, a.Namespace+"/"+a.Name)
		}
	}
	m.daemonSets.Reset()
	for _, ds := range dss {
		st := &ds.Status
		for state, v := range map[string]int32{"desired": st.DesiredNumberScheduled, "current": st.CurrentNumberScheduled,
			"ready": st.NumberReady, "updated": st.UpdatedNumberScheduled, "available": st.NumberAvailable} {
			m.daemonSets.WithLabelValues(ds.Namespace, ds.Name, state).Set(float64(v))
		}
	}
}

// observeScheduling counts what the scheduler decided in a plan whose
// actions were applied: pods bound to a node that observed had unbound (or
// had not: new pods, new instances), and verdicts that a pod fits no node
// (the plan writes one only when it is new or its reason changed).
func (m *metrics) observeScheduling(observed reconciler.Observed, actions []reconciler.Action) {
	var bound map[string]*corev1.Pod // action pods with a node, by ns/name
	for _, a := range actions {
		if (a.Type != reconciler.CreatePod && a.Type != reconciler.UpdatePod) || a.Pod == nil {
			continue
		}
		if a.Pod.Spec.NodeName != "" {
			if bound == nil {
				bound = map[string]*corev1.Pod{}
			}
			bound[a.Pod.Namespace+"/"+a.Pod.Name] = a.Pod
			continue
		}
		for _, c := range a.Pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				for _, r := range unschedulableReasonsOf(c.Message) {
					m.unschedulable.WithLabelValues(r).Inc()
				}
			}
		}
	}
	if len(bound) == 0 {
		return
	}
	placed := len(bound)
	for _, p := range observed.Pods {
		if b, ok := bound[p.Namespace+"/"+p.Name]; ok && p.UID == b.UID && p.Spec.NodeName != "" {
			placed-- // bound before this plan
		}
	}
	m.placements.Add(float64(placed))
}

// unschedulableMarks map the phrases of the scheduler's explanations (in
// kube-scheduler's words, scheduler.explain) to the bounded reason label of
// bosun_scheduler_unschedulable_total; the first that matches a part
// wins. TestUnschedulableReasons pins them against the real scheduler.
var unschedulableMarks = []struct{ phrase, reason string }{
	{"no nodes registered", "no_nodes"},
	{"were unschedulable", "node_cordoned"},
	{"untolerated taint", "taint"},
	{"didn't match node selector", "node_selector"},
	{"volume node affinity", "volume_node_affinity"},
	{"enough free storage", "volume_capacity"},
	{"ReadWriteOncePod", "volume_in_use"},
	{"node affinity", "node_affinity"},
	{"Too many pods", "too_many_pods"},
	{"insufficient cpu", "insufficient_cpu"},
	{"insufficient memory", "insufficient_memory"},
	{"topology spread", "topology_spread"},
	{"anti-affinity", "pod_anti_affinity"},
	{"pod affinity", "pod_affinity"},
}

// unschedulableReasons are the values of the reason label.
var unschedulableReasons = func() []string {
	var out []string
	for _, mk := range unschedulableMarks {
		out = append(out, mk.reason)
	}
	return append(out, "other")
}()

// unschedulableReasonsOf are the reasons of a scheduler's explanation,
// "0/3 nodes are available: 1 insufficient cpu, 2 node(s) had untolerated
// taint {k: v}": each once, in the order of the message.
func unschedulableReasonsOf(msg string) []string {
	_, parts, ok := strings.Cut(msg, ": ")
	if !ok {
		parts = msg
	}
	var out []string
	for _, part := range strings.Split(parts, ", ") {
		reason := "other"
		for _, mk := range unschedulableMarks {
			if strings.Contains(part, mk.phrase) {
				reason = mk.reason
				break
			}
		}
		if !slices.Contains(out, reason) {
			out = append(out, reason)
		}
	}
	return out
}
