package nodes_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"bosun/store"
)

// TestAgent_metricsFollowPods runs a pod that starts, one whose liveness
// probe fails (restarts) and one whose image cannot be pulled on a real
// containerd, and reads the agent's metrics from its registry.
func TestAgent_metricsFollowPods(t *testing.T) {
	h := newHarness(t)
	reg := prometheus.NewPedanticRegistry()
	h.cfg.Registerer = reg
	h.startAgent()

	h.putPod(helloPod("fine", "m1"))
	h.putPod(probePod("sick", "m2", func(c *corev1.Container) {
		c.LivenessProbe = httpGetProbe("/nope", intstr.FromString("http"), 1)
		c.LivenessProbe.InitialDelaySeconds = 1
	}))
	pull := helloPod("nopull", "m3")
	// localhost is reached over plain HTTP, and nothing listens on port 1.
	pull.Spec.Containers[0].Image = "127.0.0.1:1/bosun/none:v1"
	h.putPod(pull)

	h.waitStatus("default", "fine", 30*time.Second, "running", running)
	h.waitStatus("default", "sick", 60*time.Second, "restarted", func(ps *store.PodStatus) bool {
		return ps != nil && containerStatus(*ps, "app").RestartCount >= 1
	})
	h.waitStatus("default", "nopull", 30*time.Second, "failing its pull", func(ps *store.PodStatus) bool {
		w := containerStatus(*psOr(ps), "app").State.Waiting
		return w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff")
	})

	get := func(name string, labels map[string]string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.Metric {
				if matches(m, labels) {
					switch {
					case m.Counter != nil:
						return m.Counter.GetValue()
					case m.Histogram != nil:
						return float64(m.Histogram.GetSampleCount())
					}
				}
			}
		}
		return 0
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"bosun_agent_pod_starts_total", nil, 2}, // fine and sick
		{"bosun_agent_pod_start_duration_seconds", nil, 2},
		{"bosun_agent_container_starts_total", nil, 3},
		{"bosun_agent_container_restarts_total", nil, 1},
		{"bosun_agent_probe_failures_total", map[string]string{"probe": "liveness"}, 1},
		{"bosun_agent_image_pulls_total", map[string]string{"result": "error"}, 1},
		{"bosun_agent_image_pull_duration_seconds", nil, 1},
		{"bosun_agent_container_start_failures_total", map[string]string{"reason": "ErrImagePull"}, 1},
	} {
		if got := get(c.name, c.labels); got < c.min {
			t.Errorf("%s%v = %v, want >= %v", c.name, c.labels, got, c.min)
		}
	}
	// The pod that never left Pending is no start; a start is counted
	// once however often the status is written.
	if got := get("bosun_agent_pod_starts_total", nil); got != 2 {
		t.Errorf("bosun_agent_pod_starts_total = %v, want 2", got)
	}

	for _, name := range []string{"fine", "sick", "nopull"} {
		h.deletePod("default", name)
	}
	for _, name := range []string{"fine", "sick", "nopull"} {
		h.waitStatus("default", name, time.Minute, "deleted", func(ps *store.PodStatus) bool { return ps == nil })
	}
}

func psOr(ps *store.PodStatus) *store.PodStatus {
	if ps == nil {
		return &store.PodStatus{}
	}
	return ps
}

func matches(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, l := range m.Label {
		if v, ok := labels[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(labels)
}
