package server

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/reconciler"
)

// TestMetrics_daemonSetRolloutProgress: bosun_daemonset_pods shows each
// DaemonSet's nodes by state as the plan leaves them: a put's status wins
// over the observed one, a deleted DaemonSet's series go.
func TestMetrics_daemonSetRolloutProgress(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	ds := func(name string, desired, updated, available int32) appsv1.DaemonSet {
		return appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: desired, CurrentNumberScheduled: desired, NumberReady: available,
				UpdatedNumberScheduled: updated, NumberAvailable: available}}
	}
	logs, gone := ds("logs", 3, 0, 3), ds("gone", 2, 2, 2)
	next := ds("logs", 3, 1, 2)
	observed := reconciler.Observed{DaemonSets: []appsv1.DaemonSet{logs, gone}}
	m.observeDaemonSets(observed, []reconciler.Action{
		{Type: reconciler.PutDaemonSet, DaemonSet: &next},
		{Type: reconciler.DeleteDaemonSet, Namespace: "default", Name: "gone"},
	})
	for state, want := range map[string]float64{"desired": 3, "current": 3, "ready": 2, "updated": 1, "available": 2} {
		if got := testutil.ToFloat64(m.daemonSets.WithLabelValues("default", "logs", state)); got != want {
			t.Errorf("bosun_daemonset_pods{name=logs,state=%s} = %v, want %v", state, got, want)
		}
	}
	if n := testutil.CollectAndCount(m.daemonSets); n != 5 {
		t.Errorf("%d series, want 5 (the deleted DaemonSet's gone)", n)
	}
}
