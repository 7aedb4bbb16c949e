package promquery_test

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/goleak"

	"bosun/promquery"
	"bosun/promquery/promtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scraped starts an app with t_requests_total{code="200"} 7 and
// {code="500"} 3 and a Prometheus scraping it, and waits until Prometheus
// has its samples.
func scraped(t *testing.T) *promquery.Client {
	t.Helper()
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "t_requests_total", Help: "test"}, []string{"code"})
	requests.WithLabelValues("200").Add(7)
	requests.WithLabelValues("500").Add(3)
	reg.MustRegister(requests)
	app := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(app.Close)
	// Started without jobs and given one: Scrape's reload is tested too.
	prom := promtest.Start(t, promtest.Config{})
	prom.Scrape(t, promtest.Job{Name: "app", Targets: []string{strings.TrimPrefix(app.URL, "http://")}})
	c, err := promquery.New(prom.URL, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	promtest.Wait(t, "the first scrape", 30*time.Second, func(ctx context.Context) error {
		_, err := c.Scalar(ctx, `sum(t_requests_total)`, time.Time{})
		return err
	})
	return c
}

// TestScalar_realPrometheus runs every kind of answer through a real
// Prometheus; one server serves all cases (starting one takes a second).
func TestScalar_realPrometheus(t *testing.T) {
	c := scraped(t)
	ctx := context.Background()
	for _, tc := range []struct {
		expr string
		at   time.Time
		want float64
		// errIs or errText, when set: the error wanted.
		errIs   error
		errText string
	}{
		{expr: `sum(t_requests_total)`, want: 10},
		{expr: `t_requests_total{code="500"}`, want: 3},
		{expr: `sum(t_requests_total{code="500"}) / sum(t_requests_total)`, want: 0.3},
		{expr: `1 + 1`, want: 2},                 // a scalar
		{expr: `scalar(up{job="app"})`, want: 1}, // a scalar from a vector
		{expr: `t_requests_total`, errText: "query returned 2 series; it must return one number (use sum(...))"},
		{expr: `t_nothing_total`, errIs: promquery.ErrNoData, errText: "query returned no data"},
		{expr: `sum(t_requests_total)`, at: time.Now().Add(-time.Hour), errIs: promquery.ErrNoData},
		{expr: `sum(t_requests_total{code="404"}) / sum(t_requests_total{code="404"}) or vector(0)/0`, errIs: promquery.ErrNotANumber, errText: "NaN"},
		{expr: `0/0`, errIs: promquery.ErrNotANumber, errText: "query returned NaN (0/0: nothing in the window?)"},
		{expr: `1/0`, errIs: promquery.ErrNotANumber, errText: "query returned +Inf (a division by 0?)"},
		{expr: `-1/0`, errIs: promquery.ErrNotANumber, errText: "query returned -Inf (a division by 0?)"},
		{expr: `t_requests_total[1m]`, errText: "query returned a range vector of 2 series; it must return one number"},
		// client_golang does not decode string results: its error passes through.
		{expr: `"canary"`, errText: `: bad_response: unexpected value type "string"`},
		{expr: `sum(t_requests_total`, errText: "prometheus http://127.0.0.1:"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := c.Scalar(ctx, tc.expr, tc.at)
			if tc.errIs == nil && tc.errText == "" {
				if err != nil || math.Abs(got-tc.want) > 1e-9 {
					t.Fatalf("Scalar = %v, %v; want %v", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Scalar = %v, nil; want an error", got)
			}
			if tc.errIs != nil && !errors.Is(err, tc.errIs) {
				t.Errorf("err = %v; want errors.Is %v", err, tc.errIs)
			}
			if !strings.Contains(err.Error(), tc.errText) {
				t.Errorf("err = %q; want it to contain %q", err, tc.errText)
			}
			t.Logf("%s: %v", tc.expr, err)
		})
	}
}

func TestScalar_prometheusErrorIsPassedThrough(t *testing.T) {
	url := promtest.Start(t, promtest.Config{}).URL
	c, err := promquery.New(url, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Scalar(context.Background(), `sum(rate(x[5m])`, time.Time{})
	want := "prometheus " + url + ": bad_data: invalid parameter \"query\": 1:16: parse error: unclosed left parenthesis"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

func TestScalar_connectionErrorNamesServerNotCredentials(t *testing.T) {
	l := httptest.NewServer(http.NotFoundHandler())
	addr := strings.TrimPrefix(l.URL, "http://")
	l.Close() // nothing listens there now
	c, err := promquery.New("http://bosun:s3cret@"+addr+"/prom", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Scalar(context.Background(), `up`, time.Time{})
	if err == nil {
		t.Fatal("no error from a closed port")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "prometheus http://"+addr+"/prom: ") || !strings.Contains(msg, "connection refused") {
		t.Errorf("err = %q; want it to name the server and the refusal", msg)
	}
	for _, leak := range []string{"s3cret", "bosun", "api/v1/query", "up"} {
		if strings.Contains(strings.TrimPrefix(msg, "prometheus http://"+addr+"/prom: "), leak) {
			t.Errorf("err = %q shows %q", msg, leak)
		}
	}
}

func TestScalar_sendsBasicAuthAndBoundsTime(t *testing.T) {
	gotAuth := make(chan string, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pw, _ := r.BasicAuth()
		gotAuth <- user + ":" + pw
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, err := promquery.New(strings.Replace(srv.URL, "http://", "http://bosun:s3cret@", 1), 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Scalar(context.Background(), `up`, time.Time{})
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Scalar took %s with a 200ms timeout", took)
	}
	want := "prometheus " + srv.URL + ": no answer within 200ms"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v; want %s", err, want)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v; want errors.Is context.DeadlineExceeded", err)
	}
	if a := <-gotAuth; a != "bosun:s3cret" {
		t.Errorf("basic auth = %q", a)
	}
}

// A server that is not Prometheus (the API of bosun, by mistake) and the
// warnings Prometheus sends with a partial answer: a real Prometheus gives
// neither on demand, so a test server plays it.
func TestScalar_notPrometheusAndWarnings(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/warn/api/v1/query":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"status":"success","warnings":["remote read failed: store-2 down"],"data":{"resultType":"scalar","result":[1700000000,"0.25"]}}`)
		default:
			http.Error(w, "404 page not found", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	c, _ := promquery.New(srv.URL+"/warn", time.Second)
	v, err := c.Scalar(context.Background(), `x`, time.Time{})
	var warn *promquery.WarningsError
	if !errors.As(err, &warn) || v != 0.25 || err.Error() != "prometheus "+srv.URL+"/warn warned: remote read failed: store-2 down" {
		t.Errorf("Scalar = %v, %v; want 0.25 with a *WarningsError", v, err)
	}
	c, _ = promquery.New(srv.URL, time.Second)
	_, err = c.Scalar(context.Background(), `x`, time.Time{})
	if want := "prometheus " + srv.URL + ": client_error: client error: 404: 404 page not found"; err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

func TestNew_refusesWhatIsNotABaseURL(t *testing.T) {
	for _, bad := range []string{"", "127.0.0.1:9090", "ftp://host:21", "http://", "http://host:9090/?x=1", "http://u:s3cret@host:9090/?x=1", "http://a b"} {
		_, err := promquery.New(bad, 0)
		if err == nil {
			t.Errorf("New(%q): no error", bad)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("New(%q) = %v: shows the password", bad, err)
		}
	}
	if _, err := promquery.New("http://host:9090", -time.Second); err == nil {
		t.Error("negative timeout accepted")
	}
	c, err := promquery.New("https://u:p@prom.example:9090/prefix/", 0)
	if err != nil || c.Server() != "https://prom.example:9090/prefix/" {
		t.Errorf("New = %v, %v", c, err)
	}
}
