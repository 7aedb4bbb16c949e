package preview

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/kube"
	"bosun/manifest"
	"bosun/reconciler"
)

// One model: what the preview predicts is what reconciler.Plan does when a
// driver applies its actions step by step until it has nothing left to do.
// The driver here is written apart from the preview's simulation, from the
// rules it documents: every bound pod that is not ready starts and becomes
// Ready at the step's time, deleted pods are gone, and the clock moves on by
// one second plus the longest minReadySeconds.
func TestCompute_predictsWhatThePlannerDoesStepByStep(t *testing.T) {
	for seed := range uint64(60) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			cur, next, nodes := randomRevisions(t, rng)
			o := running(t, cur, nodes...)
			res := Compute(cur, next, o, now)

			t.Logf("verdict %q; rollouts %v", res.Verdict, res.Rollouts)
			end, steps := driveToFixedPoint(t, next, o)
			sim := simulate(next, o, now)
			if got, want := podSummary(sim.o), podSummary(end); !slices.Equal(got, want) {
				t.Fatalf("end state:\npreview %q\nplanner %q", got, want)
			}
			if sim.steps != steps.total {
				t.Errorf("preview took %d steps, the planner %d", sim.steps, steps.total)
			}
			for _, rc := range res.Rollouts {
				k := rc.Namespace + "/" + rc.Name
				if rc.Replaced != steps.replaced[k] || rc.Peak != steps.peak[k] || rc.Steps != steps.touched[k] {
					t.Errorf("%s: preview replaced %d, peak %d, %d steps; the planner %d, %d, %d",
						k, rc.Replaced, rc.Peak, rc.Steps, steps.replaced[k], steps.peak[k], steps.touched[k])
				}
			}
			// Fits exactly when no pod the planner made is left unschedulable.
			if stuck := unschedulable(end); res.Fits && stuck != "" || !res.Fits && stuck == "" && !strings.Contains(res.Verdict, "of the rolling update") {
				t.Errorf("verdict %v %q, but at the end unschedulable: %q", res.Fits, res.Verdict, stuck)
			}
		})
	}
}

type stepCounts struct {
	total                   int
	replaced, peak, touched map[string]int
}

// driveToFixedPoint is a driver of its own: plan, apply, start pods, tick.
func driveToFixedPoint(t *testing.T, desired *manifest.Set, o reconciler.Observed) (reconciler.Observed, stepCounts) {
	t.Helper()
	tick := time.Second
	hashes := map[string]string{}
	for _, d := range desired.Deployments {
		tick = max(tick, time.Second+time.Duration(d.Spec.MinReadySeconds)*time.Second)
		hashes[d.Namespace+"/"+d.Name] = manifest.TemplateHash(&d.Spec.Template)
	}
	sc := stepCounts{replaced: map[string]int{}, peak: map[string]int{}, touched: map[string]int{}}
	peaks := func(o reconciler.Observed) {
		n := map[string]int{}
		for _, p := range o.Pods {
			if kind, name := kube.Controller(p); kind == "Deployment" && !kube.PodFinished(p) {
				n[p.Namespace+"/"+name]++
			}
		}
		for k := range hashes {
			sc.peak[k] = max(sc.peak[k], n[k])
		}
	}
	peaks(o)
	at := now
	for sc.total < MaxSteps {
		actions := reconciler.Plan(desired, o, at).Actions
		if len(actions) == 0 {
			break
		}
		sc.total++
		touched := map[string]bool{}
		for _, a := range actions {
			var p *corev1.Pod
			switch a.Type {
			case reconciler.DeletePod:
				for _, op := range o.Pods {
					if op.Namespace == a.Namespace && op.Name == a.Name {
						p = op
					}
				}
			case reconciler.CreatePod:
				p = a.Pod
			}
			if p == nil {
				continue
			}
			if kind, name := kube.Controller(p); kind == "Deployment" {
				k := p.Namespace + "/" + name
				touched[k] = true
				if a.Type == reconciler.DeletePod && p.Labels[reconciler.LabelPodTemplateHash] != hashes[k] {
					sc.replaced[k]++
				}
			}
		}
		for k := range touched {
			sc.touched[k]++
		}
		for _, a := range actions {
			o = apply(o, a)
		}
		o.Pods = slices.Clone(o.Pods) // observed pods are shared: replace, never modify
		for i, p := range o.Pods {
			if p.Spec.NodeName != "" && !kube.PodReady(p) && !kube.PodFinished(p) {
				p = p.DeepCopy()
				o.Pods[i] = p
				p.Status.Phase = corev1.PodRunning
				p.Status.Conditions = append(slices.DeleteFunc(slices.Clone(p.Status.Conditions), func(c corev1.PodCondition) bool {
					return c.Type == corev1.PodReady || c.Type == corev1.ContainersReady
				}), corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at)},
					corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at)})
			}
		}
		peaks(o)
		at = at.Add(tick)
	}
	return o, sc
}

// podSummary lists the pods of a cluster: name, node, ready.
func podSummary(o reconciler.Observed) []string {
	var out []string
	for _, p := range o.Pods {
		out = append(out, fmt.Sprintf("%s/%s on %q ready %v", p.Namespace, p.Name, p.Spec.NodeName, kube.PodReady(p)))
	}
	slices.Sort(out)
	return out
}

func unschedulable(o reconciler.Observed) string {
	var out []string
	for _, p := range o.Pods {
		if p.Spec.NodeName == "" {
			out = append(out, p.Name)
		}
	}
	return strings.Join(out, ", ")
}

// randomRevisions makes a current and a next revision of a few Deployments
// (images, replicas, strategies, minReadySeconds changing at random) and
// the nodes they run on, sometimes too small.
func randomRevisions(t *testing.T, rng *rand.Rand) (cur, next *manifest.Set, nodes []corev1.Node) {
	for i := range 1 + rng.IntN(3) {
		nodes = append(nodes, node(fmt.Sprintf("n%d", i), fmt.Sprint(2+rng.IntN(6)), "16Gi"))
	}
	strategies := []string{"", strategySurgeOnly, strategyRecreate,
		"  strategy:\n    rollingUpdate:\n      maxSurge: 0\n      maxUnavailable: 1\n",
		"  strategy:\n    rollingUpdate:\n      maxSurge: 50%\n      maxUnavailable: 50%\n"}
	var curDocs, nextDocs []string
	for i := range 1 + rng.IntN(3) {
		name := fmt.Sprintf("app%d", i)
		replicas := rng.IntN(6)
		cpu := []string{"100m", "500m", "1"}[rng.IntN(3)]
		strategy := strategies[rng.IntN(len(strategies))]
		withMinReady := func(doc string, s int) string {
			if s == 0 {
				return doc
			}
			return strings.Replace(doc, "  template:\n", fmt.Sprintf("  minReadySeconds: %d\n  template:\n", s), 1)
		}
		minReady := rng.IntN(3) * 5
		curDocs = append(curDocs, withMinReady(deployment(name, replicas, "registry.local/app:1", cpu, "64Mi", strategy), minReady))
		image, nextReplicas := "registry.local/app:1", replicas
		if rng.IntN(3) > 0 {
			image = "registry.local/app:2"
		}
		if rng.IntN(3) == 0 {
			nextReplicas = rng.IntN(7)
		}
		if rng.IntN(4) == 0 {
			minReady = rng.IntN(3) * 5
		}
		nextDocs = append(nextDocs, withMinReady(deployment(name, nextReplicas, image, cpu, "64Mi", strategy), minReady))
	}
	return set(t, curDocs...), set(t, nextDocs...), nodes
}
