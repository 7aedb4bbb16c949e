package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPrintJobsAndCronJobs_kubectlColumns(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(-d)} }
	one, two, three := int32(1), int32(2), int32(3)
	jobs := []batchv1.Job{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "pi", CreationTimestamp: *at(5 * time.Minute)},
			Spec: batchv1.JobSpec{Completions: &three, Parallelism: &two},
			Status: batchv1.JobStatus{Succeeded: 3, StartTime: at(5 * time.Minute), CompletionTime: at(4 * time.Minute),
				Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "flaky", CreationTimestamp: *at(time.Minute)},
			Spec: batchv1.JobSpec{Completions: &one},
			Status: batchv1.JobStatus{Failed: 2, StartTime: at(time.Minute),
				Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded"}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "batch", Name: "queue", CreationTimestamp: *at(30 * time.Second)},
			Spec:   batchv1.JobSpec{Parallelism: &three},
			Status: batchv1.JobStatus{Active: 3, StartTime: at(30 * time.Second)}},
	}
	want := `NAMESPACE   NAME    STATUS     COMPLETIONS   DURATION   AGE
default     pi      Complete   3/3           60s        5m
default     flaky   Failed     0/1           60s        60s
batch       queue   Running    0/1 of 3      30s        30s
`
	if got := table(t, "jobs", jobs, now); got != want {
		t.Errorf("jobs:\n%s\nwant:\n%s", got, want)
	}

	berlin := "Europe/Berlin"
	suspend := true
	crons := []batchv1.CronJob{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "tick", CreationTimestamp: *at(3 * time.Hour)},
			Spec: batchv1.CronJobSpec{Schedule: "* * * * *"},
			Status: batchv1.CronJobStatus{LastScheduleTime: at(20 * time.Second),
				Active: []corev1.ObjectReference{{Name: "tick-1"}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "backup", CreationTimestamp: *at(3 * time.Hour)},
			Spec: batchv1.CronJobSpec{Schedule: "30 2 * * *", TimeZone: &berlin, Suspend: &suspend}},
	}
	want = `NAMESPACE   NAME     SCHEDULE     TIMEZONE        SUSPEND   ACTIVE   LAST SCHEDULE   AGE
default     tick     * * * * *    <none>          false     1        20s             3h
default     backup   30 2 * * *   Europe/Berlin   true      0        <none>          3h
`
	if got := table(t, "cronjobs", crons, now); got != want {
		t.Errorf("cronjobs:\n%s\nwant:\n%s", got, want)
	}
}

func table(t *testing.T, kind string, items any, now time.Time) string {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"items": items})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := printTable(&b, kind, raw, false, now); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
