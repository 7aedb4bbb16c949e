package nodes

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
)

// podMetrics follow the pods the agent runs (bosun_agent_*), beside the
// lease and fence ones of agentMetrics (fence.go). Labels are bounded: a
// probe kind, a result, a waiting reason; never a pod's name.
type podMetrics struct {
	podStarts      prometheus.Counter
	podStartTime   prometheus.Histogram
	restarts       prometheus.Counter
	startFailures  *prometheus.CounterVec
	probeFailures  *prometheus.CounterVec
	imagePulls     *prometheus.CounterVec
	imagePullTime  prometheus.Histogram
	containerStart prometheus.Counter
}

func newPodMetrics() *podMetrics {
	return &podMetrics{
		podStarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_agent_pod_starts_total",
			Help: "Pods the agent took and brought out of Pending (their containers started).",
		}),
		podStartTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bosun_agent_pod_start_duration_seconds",
			Help: "From the agent taking a pod bound to its node (before its sandbox, volumes and image pulls) to the pod's status first written out of Pending.",
			// 50 ms to about 7 min.
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		containerStart: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_agent_container_starts_total",
			Help: "Container instances the agent started (first starts and restarts).",
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_agent_container_restarts_total",
			Help: "Containers started again after a previous instance of theirs ran (crashed, exited, or killed by a failed probe).",
		}),
		startFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_agent_container_start_failures_total",
			Help: "Failed attempts to start a container, by waiting reason (ErrImagePull, ImagePullBackOff, ErrImageNeverPull, CreateContainerConfigError, CreateContainerError).",
		}, []string{"reason"}),
		probeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_agent_probe_failures_total",
			Help: "Failed probe attempts of running containers, by probe: startup, readiness, liveness.",
		}, []string{"probe"}),
		imagePulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_agent_image_pulls_total",
			Help: "Image pulls from a registry, by result (ok, error). Images already present are not pulled.",
		}, []string{"result"}),
		imagePullTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bosun_agent_image_pull_duration_seconds",
			Help: "Time of one image pull (resolve, fetch and unpack), failed ones too.",
			// 50 ms to about 7 min.
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
	}
}

func (m *podMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.podStarts, m.podStartTime, m.containerStart, m.restarts, m.startFailures,
		m.probeFailures, m.imagePulls, m.imagePullTime}
}

// podPublished records a pod whose status was just written as st, at now:
// the first one out of Pending of a run this agent took counts as a start.
func (m *podMetrics) podPublished(r *podRun, st *corev1.PodStatus, now time.Time) {
	if r.took.IsZero() || st.Phase == corev1.PodPending || st.Phase == "" {
		return
	}
	m.podStarts.Inc()
	m.podStartTime.Observe(max(now.Sub(r.took), 0).Seconds())
	r.took = time.Time{} // once per run
}

// containerStarted records a container instance started; restarted when a
// previous instance of it ran.
func (m *podMetrics) containerStarted(restarted bool) {
	m.containerStart.Inc()
	if restarted {
		m.restarts.Inc()
	}
}

// startFailed records a failed start of a container, by its waiting reason.
func (m *podMetrics) startFailed(reason string) {
	m.startFailures.WithLabelValues(reason).Inc()
}

// probed records the result of one probe attempt.
func (m *podMetrics) probed(k probeKind, ok bool) {
	if !ok {
		m.probeFailures.WithLabelValues(k.String()).Inc()
	}
}

// pulled records an image pull that took took and ended with err.
func (m *podMetrics) pulled(took time.Duration, err error) {
	m.imagePullTime.Observe(took.Seconds())
	if err != nil {
		m.imagePulls.WithLabelValues("error").Inc()
		return
	}
	m.imagePulls.WithLabelValues("ok").Inc()
}
