package reconciler

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"bosun/canary"
	"bosun/manifest"
)

func withCanary(d appsv1.Deployment, ann ...string) appsv1.Deployment {
	d.Annotations = map[string]string{canary.AnnotationBranch: "canary/web", canary.AnnotationWeight: "10", canary.AnnotationStepInterval: "5m"}
	for i := 0; i+1 < len(ann); i += 2 {
		d.Annotations[ann[i]] = ann[i+1]
	}
	return d
}

func candidateOf(commit string, d appsv1.Deployment) canary.Candidate {
	t := d.Spec.Template
	return canary.Candidate{Branch: "canary/web", Commit: commit, Subject: "v2", Template: &t, Hash: hashOf(d)}
}

// tracks renders each pod as "<hash> <track> <weight>", in pod order.
func tracks(o Observed) []string {
	var out []string
	for _, p := range o.Pods {
		out = append(out, p.Labels[LabelPodTemplateHash]+" "+p.Labels[canary.LabelTrack]+" "+p.Annotations[canary.AnnotationPodWeight])
	}
	return out
}

func countTracks(o Observed, hash, track, weight string) int {
	n := 0
	for _, s := range tracks(o) {
		if s == hash+" "+track+" "+weight {
			n++
		}
	}
	return n
}

func storedCanary(o Observed) *canary.State {
	for i := range o.Canaries {
		return &o.Canaries[i]
	}
	return nil
}

// settle plans, applies and lets every pod run until nothing changes.
func settle(t *testing.T, desired *manifest.Set, o Observed, now time.Time) Observed {
	t.Helper()
	for i := range 30 {
		actions := Plan(desired, o, now.Add(time.Duration(i)*time.Second)).Actions
		if len(actions) == 0 {
			return o
		}
		o = runPods(apply(t, o, actions))
	}
	t.Fatalf("did not settle:\n%s", strings.Join(summarize(Plan(desired, o, now).Actions), "\n"))
	return o
}

func TestPlan_canaryRunsBesideStableWithExactWeightsAndIsPromotedByMerge(t *testing.T) {
	n1, n2 := node("n1", "4"), node("n2", "4")
	v1 := rollingUpdate(deployment("web", 4, "web:1", "100m"), "1", "0")
	v2 := rollingUpdate(deployment("web", 4, "web:2", "100m"), "1", "0")
	o := settled(t, set([]appsv1.Deployment{v1}, nil, nil), n1, n2)
	stableUIDs := map[string]string{}
	for _, p := range o.Pods {
		stableUIDs[p.Name] = string(p.UID)
	}

	// main names the branch; the branch holds v2.
	main := set([]appsv1.Deployment{withCanary(v1)}, nil, nil)
	o.CanaryBranches = map[string]canary.Candidate{"default/web": candidateOf("c2", v2)}
	res := Plan(main, o, t0)
	if n := count(res.Actions, PutCanary); n != 1 {
		t.Fatalf("PutCanary %d times", n)
	}
	if got := reasonsOf(res.CanaryEvents); !strings.HasPrefix(got, "CanaryStarted") {
		t.Fatalf("events: %s", got)
	}
	o = runPods(apply(t, o, res.Actions))
	if countTracks(o, hashOf(v2), "canary", "10") != 1 || countTracks(o, hashOf(v1), "stable", "90") != 4 || len(o.Pods) != 5 {
		t.Fatalf("want 1 canary pod at 10 and 4 stable at 90: %v", tracks(o))
	}
	for _, p := range o.Pods {
		if uid, ok := stableUIDs[p.Name]; ok && uid != string(p.UID) {
			t.Fatalf("stable pod %s was replaced to relabel it", p.Name)
		}
	}
	if again := Plan(main, o, t0.Add(time.Second)).Actions; len(again) != 0 {
		t.Fatalf("not converged:\n%s", strings.Join(summarize(again), "\n"))
	}
	d := storedDeployment(t, o, "web")
	if d.Status.Replicas != 4 || d.Status.UpdatedReplicas != 4 {
		t.Fatalf("the canary pod counts in the Deployment's status: %+v", d.Status)
	}
	canaryPod := ""
	for _, p := range o.Pods {
		if p.Labels[canary.LabelTrack] == canary.TrackCanary {
			canaryPod = p.Name + " " + string(p.UID)
		}
	}

	// More canary pods on demand; the weight does not change.
	main3 := set([]appsv1.Deployment{withCanary(v1, canary.AnnotationReplicas, "3")}, nil, nil)
	o3 := settle(t, main3, o, t0.Add(2*time.Second))
	if countTracks(o3, hashOf(v2), "canary", "10") != 3 || countTracks(o3, hashOf(v1), "stable", "90") != 4 {
		t.Fatalf("canary-replicas 3: %v", tracks(o3))
	}

	// Merge: main runs v2, still naming the branch. The canary pod stays
	// (same name and UID) as a stable pod; the old ones roll out.
	merged := set([]appsv1.Deployment{withCanary(v2)}, nil, nil)
	res = Plan(merged, o, t0.Add(3*time.Second))
	if got := reasonsOf(res.CanaryEvents); !strings.HasPrefix(got, "CanaryPromoted") {
		t.Fatalf("events: %s", got)
	}
	for _, a := range res.Actions {
		if a.Type == DeletePod && strings.Contains(canaryPod, a.Name) {
			t.Fatalf("promotion deleted the canary pod %s", a.Name)
		}
	}
	o = settle(t, merged, runPods(apply(t, o, res.Actions)), t0.Add(4*time.Second))
	if countTracks(o, hashOf(v2), "", "") != 4 || len(o.Pods) != 4 {
		t.Fatalf("after the merge: %v", tracks(o))
	}
	found := false
	for _, p := range o.Pods {
		found = found || p.Name+" "+string(p.UID) == canaryPod
	}
	if !found || storedCanary(o).Phase != canary.Promoted {
		t.Fatalf("the canary pod %s did not become stable (%v), phase %s", canaryPod, tracks(o), storedCanary(o).Phase)
	}
}

func TestPlan_abortedCanaryGoesAndStableTakesEverything(t *testing.T) {
	v1 := deployment("web", 2, "web:1", "100m")
	v2 := deployment("web", 2, "web:2", "100m")
	o := settled(t, set([]appsv1.Deployment{v1}, nil, nil), node("n1", "4"))
	main := set([]appsv1.Deployment{withCanary(v1)}, nil, nil)
	o.CanaryBranches = map[string]canary.Candidate{"default/web": candidateOf("c2", v2)}
	o = settle(t, main, o, t0)
	if countTracks(o, hashOf(v2), "canary", "10") != 1 {
		t.Fatalf("no canary: %v", tracks(o))
	}
	for i, p := range o.Pods {
		if p.Labels[canary.LabelTrack] == canary.TrackCanary {
			replacePod(o.Pods, i).Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", RestartCount: 1}}
		}
	}
	res := Plan(main, o, t0.Add(time.Minute))
	if got := reasonsOf(res.CanaryEvents); got != "CanaryAborted: restarts: pod "+podOf(v2, 0)[len("default/"):]+" container app restarted 1 times" {
		t.Fatalf("events: %s", got)
	}
	o = settle(t, main, runPods(apply(t, o, res.Actions)), t0.Add(time.Minute))
	if len(o.Pods) != 2 || countTracks(o, hashOf(v1), "", "") != 2 {
		t.Fatalf("after the abort: %v", tracks(o))
	}
	if c := storedCanary(o); c.Phase != canary.Aborted || len(c.AbortedCommits) != 1 {
		t.Fatalf("stored %+v", c)
	}
	// Removing the annotation deletes the stored canary.
	o = settle(t, set([]appsv1.Deployment{v1}, nil, nil), o, t0.Add(2*time.Minute))
	if len(o.Canaries) != 0 {
		t.Fatalf("canary kept after the annotation went: %+v", o.Canaries)
	}
}

func reasonsOf(evs []canary.Event) string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Reason+": "+e.Message)
	}
	return strings.Join(out, "\n")
}
