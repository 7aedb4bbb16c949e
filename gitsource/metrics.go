package gitsource

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Git source's Prometheus metrics (bosun_git_*). One
// Metrics outlives the Sources it is given to (a server makes a new Source
// each time it becomes the leader): the counters add up over them, and the
// gauges describe the Source that runs now, and are absent while none does
// (a replica that does not lead fetches nothing).
//
// A nil *Metrics records nothing.
type Metrics struct {
	fetches  *prometheus.CounterVec
	duration prometheus.Histogram
	failures prometheus.Counter

	revisionAge  *prometheus.Desc
	lastFetch    *prometheus.Desc
	consecutive  *prometheus.Desc
	revisionTime *prometheus.Desc

	now func() time.Time

	mu  sync.Mutex
	src *Source // the Source whose Run runs now; nil when none
}

// NewMetrics returns the Git source's metrics, registered with reg (nil:
// not registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_git_fetches_total",
			Help: "Fetches of the followed branch, by result: ok (new commit or not) or error.",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bosun_git_fetch_duration_seconds",
			Help:    "Time of one fetch of the followed branch (export of a new commit included), failed ones too.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_git_fetch_failures_total",
			Help: "Fetches of the followed branch that failed (server down, credentials or host key refused, timeout).",
		}),
		revisionAge: prometheus.NewDesc("bosun_git_revision_age_seconds",
			"Seconds since the commit time of the followed branch's head as last fetched (absent while this replica does not lead).", nil, nil),
		revisionTime: prometheus.NewDesc("bosun_git_revision_timestamp_seconds",
			"Commit time (Unix seconds) of the followed branch's head as last fetched (absent while this replica does not lead).", nil, nil),
		lastFetch: prometheus.NewDesc("bosun_git_last_fetch_timestamp_seconds",
			"When the last successful fetch ended (Unix seconds; absent before the first and while this replica does not lead).", nil, nil),
		consecutive: prometheus.NewDesc("bosun_git_fetch_consecutive_failures",
			"Failed fetches since the last success (0 when healthy; absent while this replica does not lead).", nil, nil),
		now: time.Now,
	}
	if reg != nil {
		reg.MustRegister(m.fetches, m.duration, m.failures, m)
	}
	return m
}

// Describe implements prometheus.Collector for the gauges read from the
// running Source.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.revisionAge
	ch <- m.revisionTime
	ch <- m.lastFetch
	ch <- m.consecutive
}

// Collect implements prometheus.Collector: the running Source's revision
// and fetch health, nothing when none runs.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	src := m.src
	m.mu.Unlock()
	if src == nil {
		return
	}
	st := src.Status()
	ch <- prometheus.MustNewConstMetric(m.consecutive, prometheus.GaugeValue, float64(st.Failures))
	if !st.LastFetch.IsZero() {
		ch <- prometheus.MustNewConstMetric(m.lastFetch, prometheus.GaugeValue, unixSeconds(st.LastFetch))
	}
	if st.Revision != nil && !st.Revision.Time.IsZero() {
		ch <- prometheus.MustNewConstMetric(m.revisionTime, prometheus.GaugeValue, unixSeconds(st.Revision.Time))
		ch <- prometheus.MustNewConstMetric(m.revisionAge, prometheus.GaugeValue, max(m.now().Sub(st.Revision.Time).Seconds(), 0))
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// running says that s's Run has started; the returned func says it ended.
func (m *Metrics) running(s *Source) func() {
	if m == nil {
		return func() {}
	}
	m.mu.Lock()
	m.src = s
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		if m.src == s {
			m.src = nil
		}
		m.mu.Unlock()
	}
}

// fetched records one fetch of the followed branch that took took; err is
// its error, unless the fetch was cut short by shutdown (aborted), which is
// not counted.
func (m *Metrics) fetched(took time.Duration, err error, aborted bool) {
	if m == nil || aborted {
		return
	}
	m.duration.Observe(took.Seconds())
	if err != nil {
		m.fetches.WithLabelValues("error").Inc()
		m.failures.Inc()
		return
	}
	m.fetches.WithLabelValues("ok").Inc()
}
