package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// requestMetrics count the API's requests by route and status code
// (bosun_api_requests_total, bosun_api_request_duration_seconds). The
// route is the ServeMux pattern that matched ("GET /api/v1/{kind}/{name}"),
// never the raw path, so the labels stay bounded whatever clients ask;
// a request no pattern matches is "unmatched".
type requestMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newRequestMetrics(reg prometheus.Registerer) (*requestMetrics, error) {
	m := &requestMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_api_requests_total",
			Help: "API requests answered, by route (the pattern that matched, e.g. \"GET /api/v1/{kind}\"; unmatched for none) and HTTP status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bosun_api_request_duration_seconds",
			Help: "Time to answer an API request, by route; streams (logs -f, watches) count their whole life.",
			// 1 ms to about 16 s.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// instrument counts every request next answers.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		_, route := s.mux.Handler(r)
		if route == "" {
			route = "unmatched"
		}
		cw := &codeWriter{ResponseWriter: w}
		next.ServeHTTP(cw, r)
		code := cw.code
		if code == 0 {
			code = http.StatusOK // nothing written: net/http answers 200
		}
		s.reqMetrics.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		s.reqMetrics.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// codeWriter remembers the status code; it flushes (logs -f, Server-Sent
// Events) and unwraps (http.ResponseController) as the writer it wraps.
type codeWriter struct {
	http.ResponseWriter
	code int
}

func (w *codeWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *codeWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *codeWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *codeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
