package main

import (
	"testing"

	"bosun/reconciler"
)

func TestDrainLine(t *testing.T) {
	tests := []struct {
		p    reconciler.DrainProgress
		want string
	}{
		{reconciler.DrainProgress{Pods: map[string]int{"Deployment/default/web": 2, "Job/batch/backup": 1}, Left: 3, Stopping: 1,
			Waiting: []string{"pod batch/backup-x of job batch/backup runs to completion (--force evicts it)"}},
			"3 pods left (deployment default/web: 2, job batch/backup: 1), 1 stopping; waiting: pod batch/backup-x of job batch/backup runs to completion (--force evicts it)"},
		{reconciler.DrainProgress{Pods: map[string]int{"Deployment/default/web": 1}, Left: 1}, "1 pod left (deployment default/web: 1)"},
		{reconciler.DrainProgress{Stopping: 2}, "0 pods left, 2 stopping"},
		{reconciler.DrainProgress{Done: true}, "no pod left"},
	}
	for _, tt := range tests {
		if got := drainLine(&tt.p); got != tt.want {
			t.Errorf("drainLine(%+v) =\n%q\nwant\n%q", tt.p, got, tt.want)
		}
	}
}
