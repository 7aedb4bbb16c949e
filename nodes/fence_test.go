package nodes

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestPlanFence(t *testing.T) {
	pod := func(name string, uid types.UID, node string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: uid}, Spec: corev1.PodSpec{NodeName: node}}
	}
	type local = map[string][]types.UID
	cases := []struct {
		name      string
		local     local
		bound     []*corev1.Pod
		stale     map[string][]types.UID
		keep      []string
		staleSize int
	}{
		{name: "nothing here, nothing bound", local: local{}, stale: map[string][]types.UID{}},
		{name: "a bound pod not started yet: nothing to stop", local: local{}, bound: []*corev1.Pod{pod("a", "1", "n1")}, stale: map[string][]types.UID{}},
		{name: "still bound: kept untouched", local: local{"default/a": {"1"}}, bound: []*corev1.Pod{pod("a", "1", "n1")},
			stale: map[string][]types.UID{}, keep: []string{"default/a"}},
		{name: "deleted while cut off", local: local{"default/a": {"1"}, "default/b": {"2"}}, bound: []*corev1.Pod{pod("b", "2", "n1")},
			stale: map[string][]types.UID{"default/a": {"1"}}, keep: []string{"default/b"}, staleSize: 1},
		{name: "bound to another node: its key is under ours by mistake", local: local{"default/a": {"1"}}, bound: []*corev1.Pod{pod("a", "1", "n2")},
			stale: map[string][]types.UID{"default/a": {"1"}}, staleSize: 1},
		{name: "replaced by a pod of the same name", local: local{"default/a": {"1"}}, bound: []*corev1.Pod{pod("a", "9", "n1")},
			stale: map[string][]types.UID{"default/a": {"1"}}, staleSize: 1},
		{name: "an old instance beside the bound one", local: local{"default/a": {"9", "1", "1"}}, bound: []*corev1.Pod{pod("a", "9", "n1")},
			stale: map[string][]types.UID{"default/a": {"1"}}, staleSize: 1},
		{name: "everything moved away", local: local{"default/a": {"1"}, "default/b": {"2", "3"}}, bound: []*corev1.Pod{nil},
			stale: map[string][]types.UID{"default/a": {"1"}, "default/b": {"2", "3"}}, staleSize: 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := planFence("n1", c.local, c.bound)
			if !reflect.DeepEqual(p.Stale, c.stale) || !reflect.DeepEqual(p.Keep, c.keep) || p.StaleCount() != c.staleSize {
				t.Errorf("planFence = stale %v keep %v (%d); want stale %v keep %v (%d)", p.Stale, p.Keep, p.StaleCount(), c.stale, c.keep, c.staleSize)
			}
		})
	}
}

func TestCutOffStopDue(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		lostAt time.Time
		now    time.Time
		after  time.Duration
		due    bool
		wait   time.Duration
	}{
		{name: "off by default: pods keep running however long", lostAt: t0, now: t0.Add(time.Hour)},
		{name: "lease held", now: t0, after: 30 * time.Second},
		{name: "lost just now", lostAt: t0, now: t0, after: 30 * time.Second, wait: 30 * time.Second},
		{name: "lost a while ago", lostAt: t0, now: t0.Add(20 * time.Second), after: 30 * time.Second, wait: 10 * time.Second},
		{name: "lost for the grace period", lostAt: t0, now: t0.Add(30 * time.Second), after: 30 * time.Second, due: true},
		{name: "lost for longer", lostAt: t0, now: t0.Add(time.Minute), after: 30 * time.Second, due: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			due, wait := cutOffStopDue(c.lostAt, c.now, c.after)
			if due != c.due || wait != c.wait {
				t.Errorf("cutOffStopDue = %v, %s; want %v, %s", due, wait, c.due, c.wait)
			}
		})
	}
}
