package ingress

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	builds         prometheus.Counter
	buildSeconds   prometheus.Histogram
	routes         prometheus.Gauge
	ingresses      prometheus.Gauge
	certificates   prometheus.Gauge
	inflight       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_ingress_requests_total",
			Help: "Requests the ingress proxy answered, by Ingress (empty when none matched: 404) and status code.",
		}, []string{"namespace", "ingress", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bosun_ingress_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its answer (of an upgraded connection: to its close), by Ingress.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"namespace", "ingress"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_ingress_upstream_errors_total",
			Help: "Requests that got no answer from their backend, by Ingress and reason (no_service, no_port or no_endpoint: 503; connect or response: 502).",
		}, []string{"namespace", "ingress", "reason"}),
		builds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_ingress_table_builds_total",
			Help: "Route tables built and swapped in (one per change of Ingresses, Services, endpoints or Secrets).",
		}),
		buildSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bosun_ingress_table_build_duration_seconds",
			Help:    "Time to build a route table.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		routes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bosun_ingress_routes",
			Help: "Paths in the current route table.",
		}),
		ingresses: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bosun_ingress_ingresses",
			Help: "Ingresses served by the current route table.",
		}),
		certificates: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bosun_ingress_certificates",
			Help: "TLS certificates (from Ingresses' tls Secrets) in the current route table.",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bosun_ingress_requests_in_flight",
			Help: "Requests (and upgraded connections) being served.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.upstreamErrors, m.builds, m.buildSeconds, m.routes, m.ingresses, m.certificates, m.inflight)
	}
	return m
}
