package gitsource

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics_countFetchesAndDescribeTheRunningSource(t *testing.T) {
	up := newUpstream(t)
	up.commit("first", map[string]string{"deploy/web.yaml": "kind: Pod\n"})
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	m.now = func() time.Time { return time.Now().Add(time.Hour) }

	// Nothing runs: the gauges of the running Source are absent.
	if n, err := testutil.GatherAndCount(reg, "bosun_git_revision_age_seconds", "bosun_git_fetch_consecutive_failures"); err != nil || n != 0 {
		t.Fatalf("before Run: %d series (err %v), want none", n, err)
	}

	s := newSource(t, Config{URL: up.bare, Poll: time.Hour, Metrics: m})
	revs, stop := runSource(t, s)
	receive(t, revs)
	eventually(t, "one ok fetch", func() bool { return testutil.ToFloat64(m.fetches.WithLabelValues("ok")) == 1 })
	if got := testutil.CollectAndCount(m.duration); got != 1 {
		t.Errorf("duration series = %d, want 1", got)
	}
	want := `
# HELP bosun_git_fetch_consecutive_failures Failed fetches since the last success (0 when healthy; absent while this replica does not lead).
# TYPE bosun_git_fetch_consecutive_failures gauge
bosun_git_fetch_consecutive_failures 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "bosun_git_fetch_consecutive_failures"); err != nil {
		t.Error(err)
	}
	age := gathered(t, reg, "bosun_git_revision_age_seconds")
	if age < 3500 || age > 3700 {
		t.Errorf("revision age = %v s, want about an hour (the clock is an hour ahead)", age)
	}
	if ts := gathered(t, reg, "bosun_git_last_fetch_timestamp_seconds"); time.Since(time.Unix(int64(ts), 0)) > time.Minute {
		t.Errorf("last fetch timestamp = %v, want about now", ts)
	}
	if err := stop(); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("Run: %v", err)
	}
	if n, _ := testutil.GatherAndCount(reg, "bosun_git_revision_age_seconds", "bosun_git_fetch_consecutive_failures"); n != 0 {
		t.Errorf("after Run: %d series, want none (this replica no longer fetches)", n)
	}
	// The counters outlive the Source.
	if got := testutil.ToFloat64(m.fetches.WithLabelValues("ok")); got != 1 {
		t.Errorf("fetches ok after Run = %v, want 1", got)
	}
}

func TestMetrics_failedFetchesAreCounted(t *testing.T) {
	m := NewMetrics(nil)
	s := newSource(t, Config{URL: filepath.Join(t.TempDir(), "nowhere.git"), Metrics: m})
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, _, err := s.Fetch(ctx); err == nil {
			t.Fatal("fetch of a missing repository: no error")
		}
		cancel()
	}
	if got := testutil.ToFloat64(m.failures); got != 2 {
		t.Errorf("bosun_git_fetch_failures_total = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.fetches.WithLabelValues("error")); got != 2 {
		t.Errorf("bosun_git_fetches_total{result=error} = %v, want 2", got)
	}
	// A fetch cut short by shutdown is no failure of the server.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Fetch(ctx)
	if got := testutil.ToFloat64(m.failures); got != 2 {
		t.Errorf("after a cancelled fetch: failures = %v, want 2", got)
	}
	var nilMetrics *Metrics // records nothing, panics never
	nilMetrics.fetched(time.Second, nil, false)
	nilMetrics.running(s)()
}

// gathered is the value of the one series of the gauge name in reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s: no single series", name)
	return 0
}
