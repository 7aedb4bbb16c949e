package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"bosun/api"
	"bosun/manifest"
	"bosun/reconciler"
	"bosun/store"
)

const batchManifests = `apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: task
            image: localhost/bosun-hello:v1
            args: ["-print", "tick"]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: once
spec:
  suspend: true
  template:
    spec:
      restartPolicy: OnFailure
      containers:
      - name: task
        image: localhost/bosun-hello:v1
`

func loadBatch(t *testing.T) *manifest.Set {
	t.Helper()
	set, err := manifest.Policy{}.LoadFiles(map[string][]byte{"batch.yaml": []byte(batchManifests)})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestCluster_cronRunIsFencedAndWrittenWithItsSchedule runs the driver on a
// real etcd: a due run's Job is stored with the lastScheduleTime that
// records it; a deposed leader cannot start the next run; the leader after
// it does not start the same run again.
func TestCluster_cronRunIsFencedAndWrittenWithItsSchedule(t *testing.T) {
	ctx := context.Background()
	st := store.NewTest(t)
	set := loadBatch(t)
	created := time.Date(2026, 1, 1, 10, 0, 30, 0, time.UTC)
	due := created.Add(30 * time.Second)
	now := created
	cache := store.RunTestCache(t, st, store.CacheConfig{})
	leaderAt := func(id string) (*store.Leadership, *reconciler.Driver, *metrics) {
		lead, err := st.Campaign(ctx, id, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		m := newMetrics(prometheus.NewRegistry())
		cl := &cluster{st: st, cache: cache, lead: lead, now: func() time.Time { return now }, grace: time.Minute, m: m}
		return lead, &reconciler.Driver{Cluster: cl, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }}, m
	}
	lead, driver, m := leaderAt("a")
	if _, dec, err := driver.Reconcile(ctx, set); err != nil || !dec.Wake.Equal(due) {
		t.Fatalf("first pass: wake %v (want %v), %v", dec.Wake, due, err)
	}

	now = due.Add(3 * time.Millisecond)
	_, dec, err := driver.Reconcile(ctx, set)
	if err != nil {
		t.Fatal(err)
	}
	m.observeEvents(dec.Events, now)
	if got := testutil.ToFloat64(m.cronRuns.WithLabelValues("started")); got != 1 {
		t.Errorf("bosun_cronjob_runs_total{outcome=started} = %v", got)
	}
	snap, err := st.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	run := fmt.Sprintf("tick-%d", due.Unix()/60)
	if len(snap.CronJobs) != 1 || snap.CronJobs[0].Status.LastScheduleTime == nil || !snap.CronJobs[0].Status.LastScheduleTime.Time.Equal(due) {
		t.Fatalf("cronjob status %+v", snap.CronJobs)
	}
	if !hasJob(snap, run) || len(podsOfJob(snap, run)) != 1 {
		t.Fatalf("jobs %v, pods %d: want %s with its pod", jobNames(snap), len(podsOfJob(snap, run)), run)
	}

	// Deposed, the leader cannot start the next run.
	if err := lead.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	now = due.Add(time.Minute)
	if _, _, err := driver.Reconcile(ctx, set); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("deposed leader's pass: %v, want ErrNotLeader", err)
	}
	if snap, _ := st.Snapshot(ctx); len(snap.Jobs) != 2 { // the run and the suspended Job
		t.Fatalf("a deposed leader wrote: jobs %v", jobNames(snap))
	}

	// The next leader, planning the same minute again, starts nothing new.
	_, driver, _ = leaderAt("b")
	now = due.Add(2 * time.Second)
	if _, _, err := driver.Reconcile(ctx, set); err != nil {
		t.Fatal(err)
	}
	snap, _ = st.Snapshot(ctx)
	if len(snap.Jobs) != 2 || !hasJob(snap, run) || len(podsOfJob(snap, run)) != 1 {
		t.Fatalf("after failover: jobs %v, %d pods of %s", jobNames(snap), len(podsOfJob(snap, run)), run)
	}
}

func hasJob(snap *store.Snapshot, name string) bool {
	for _, j := range snap.Jobs {
		if j.Name == name {
			return true
		}
	}
	return false
}

func jobNames(snap *store.Snapshot) []string {
	var out []string
	for _, j := range snap.Jobs {
		out = append(out, j.Name)
	}
	return out
}

func podsOfJob(snap *store.Snapshot, job string) []string {
	var out []string
	for _, p := range snap.Pods {
		if p.Labels[reconciler.LabelJobName] == job {
			out = append(out, p.Name)
		}
	}
	return out
}

// TestRolloutOutcome_jobsAndCronJobsSettleOnceStored: a revision with a
// Job (here a suspended one, which never runs) and a CronJob is applied
// once the planner has stored them, not when they run or finish.
func TestRolloutOutcome_jobsAndCronJobsSettleOnceStored(t *testing.T) {
	set := loadBatch(t)
	if done, failed, msg := reconciler.RevisionOutcome(set, reconciler.Observed{}); done || failed {
		t.Fatalf("before the planner stored them: done %v failed %v %s", done, failed, msg)
	}
	var o reconciler.Observed
	for _, a := range reconciler.Plan(set, o, time.Now()).Actions {
		switch a.Type {
		case reconciler.PutJob:
			o.Jobs = append(o.Jobs, *a.Job)
		case reconciler.PutCronJob:
			o.CronJobs = append(o.CronJobs, *a.CronJob)
		}
	}
	if done, failed, msg := reconciler.RevisionOutcome(set, o); !done || failed {
		t.Fatalf("once stored: done %v failed %v %s", done, failed, msg)
	}
	changed := loadBatch(t)
	changed.Jobs[0].Spec.Template.Spec.Containers[0].Image = "localhost/bosun-hello:v2"
	if done, _, _ := reconciler.RevisionOutcome(changed, o); done {
		t.Fatalf("a changed Job counts as stored before the planner wrote it")
	}
}

func TestAnnotationExpired_apiAgreesWithTheReconciler(t *testing.T) {
	if api.AnnotationExpired != reconciler.AnnotationExpired {
		t.Fatalf("api hides Jobs marked %q, the reconciler marks them %q", api.AnnotationExpired, reconciler.AnnotationExpired)
	}
}
