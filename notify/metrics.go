package notify

import "github.com/prometheus/client_golang/prometheus"

// metrics are the notifier's, labelled by sink name (never by URL).
type metrics struct {
	sent, failed, dropped, retries *prometheus.CounterVec
	queue                          *prometheus.GaugeVec
	duration, latency              *prometheus.HistogramVec
}

func newMetrics() *metrics {
	sink := []string{"sink"}
	return &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_notify_sent_total", Help: "Notifications delivered, by sink.",
		}, sink),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_notify_failed_total", Help: "Notifications given up on (a permanent error, or every attempt failed), by sink.",
		}, sink),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_notify_dropped_total", Help: "Notifications dropped undelivered: the oldest of a full queue, or those queued when the leadership ended, by sink.",
		}, sink),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_notify_retries_total", Help: "Failed delivery attempts that were retried, by sink.",
		}, sink),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bosun_notify_queue_length", Help: "Notifications waiting in a sink's queue.",
		}, sink),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bosun_notify_request_duration_seconds", Help: "Time of one delivery attempt (an HTTP request), by sink.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, sink),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bosun_notify_delivery_latency_seconds", Help: "Time from an outcome to its delivery, retries included, by sink.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}, sink),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.sent, m.failed, m.dropped, m.retries, m.queue, m.duration, m.latency} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
