package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"bosun/store"
)

var _ http.Flusher = (*codeWriter)(nil) // logs -f and event streams flush through it

func TestMetrics_requestsByRoutePatternAndCode(t *testing.T) {
	f := newAuthFixture(t, store.NewTest(t))
	reader := "Bearer " + plantedReader
	const remote = "192.0.2.7:4000"
	for _, c := range []struct {
		method, path, auth string
		want               int
	}{
		{"GET", "/api/v1/pods", reader, http.StatusOK},
		{"GET", "/api/v1/pods", reader, http.StatusOK},
		{"GET", "/api/v1/pods/some-pod-name-9x7", reader, http.StatusNotFound},
		{"GET", "/api/v1/pods", "", http.StatusUnauthorized},
		{"POST", "/api/v1/sync", reader, http.StatusForbidden},
		{"GET", "/healthz", "", http.StatusOK},
		{"GET", "/no/such/route-4d1", reader, http.StatusNotFound},
	} {
		if rec := f.do(c.method, c.path, c.auth, remote); rec.Code != c.want {
			t.Fatalf("%s %s: %d, want %d: %s", c.method, c.path, rec.Code, c.want, rec.Body)
		}
	}
	for _, c := range []struct {
		route, code string
		want        float64
	}{
		{"GET /api/v1/{kind}", "200", 2},
		{"GET /api/v1/{kind}", "401", 1},
		{"GET /api/v1/{kind}/{name}", "404", 1},
		{"POST /api/v1/sync", "403", 1},
		{"GET /healthz", "200", 1},
		{"unmatched", "404", 1},
	} {
		if got := testutil.ToFloat64(f.srv.reqMetrics.requests.WithLabelValues(c.route, c.code)); got != c.want {
			t.Errorf("bosun_api_requests_total{route=%q,code=%s} = %v, want %v", c.route, c.code, got, c.want)
		}
	}
	// Labels are patterns: no raw path (a name, anything a client sends).
	rec := f.do("GET", "/metrics", reader, remote)
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	body := rec.Body.String()
	for _, raw := range []string{"some-pod-name-9x7", "route-4d1"} {
		if strings.Contains(body, raw) {
			t.Errorf("/metrics carries the raw path part %q", raw)
		}
	}
	if !strings.Contains(body, `bosun_api_request_duration_seconds_count{route="GET /api/v1/{kind}"} 3`) {
		t.Errorf("/metrics lacks the duration of GET /api/v1/{kind}:\n%s", grepLines(body, "bosun_api_request"))
	}
}

func TestMetrics_codeWriterFlushesAndKeepsTheFirstCode(t *testing.T) {
	rec := httptest.NewRecorder()
	w := &codeWriter{ResponseWriter: rec}
	w.Write([]byte("a"))
	w.WriteHeader(http.StatusTeapot) // too late: net/http ignores it too
	w.Flush()
	if w.code != http.StatusOK || !rec.Flushed {
		t.Errorf("code %d flushed %v, want 200 and flushed", w.code, rec.Flushed)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
