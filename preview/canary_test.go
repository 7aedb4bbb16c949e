package preview

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/canary"
	"bosun/manifest"
)

// TestSimulate_storedCanaryConverges: a canary whose step is due is
// stepped and stored once, as the leader would, and the simulation ends
// (it did not apply PutCanary and ran all MaxSteps plans). Like every
// decision that waits for time, the next step is not simulated.
func TestSimulate_storedCanaryConverges(t *testing.T) {
	web := strings.Replace(deployment("web", 4, "registry.local/web:1.0", "100m", "64Mi", ""), "metadata:\n  name: web\n",
		"metadata:\n  name: web\n  annotations:\n    bosun.dev/canary-branch: canary/web\n    bosun.dev/canary-steps: \"5,25,50\"\n    bosun.dev/canary-step-interval: 2s\n", 1)
	cur := set(t, web)
	o := running(t, cur, node("n1", "8", "16Gi"))
	tmpl := cur.Deployments[0].Spec.Template.DeepCopy()
	tmpl.Spec.Containers[0].Image = "registry.local/web:2.0"
	o.Canaries = []canary.State{{Namespace: "default", Name: "web", Branch: "canary/web", Commit: "c2", Template: tmpl,
		Hash: manifest.TemplateHash(tmpl), Phase: canary.Progressing, Weight: 5, StartedAt: now.Add(-time.Minute), StepStartedAt: now.Add(-time.Minute)}}
	s := simulate(cur, o, now)
	if s.steps >= 20 || len(s.last.Actions) > 0 {
		t.Fatalf("the simulation took %d steps and ended with %d actions", s.steps, len(s.last.Actions))
	}
	if len(s.o.Canaries) != 1 || s.o.Canaries[0].Weight != 25 {
		t.Fatalf("canaries after the simulation: %+v", s.o.Canaries)
	}
	canaryPods := 0
	for _, p := range s.o.Pods {
		if p.Labels[canary.LabelTrack] == canary.TrackCanary && p.Status.Phase == corev1.PodRunning {
			canaryPods++
		}
	}
	if canaryPods != 1 {
		t.Fatalf("%d canary pods at 25 %% of 4", canaryPods)
	}
}
