package reconciler

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"bosun/kube"
	"bosun/manifest"
)

// ---- builders ----

func rollingUpdate(d appsv1.Deployment, surge, unavailable string) appsv1.Deployment {
	s, u := intstr.Parse(surge), intstr.Parse(unavailable)
	d.Spec.Strategy = appsv1.DeploymentStrategy{
		Type:          appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &s, MaxUnavailable: &u},
	}
	return d
}

func recreate(d appsv1.Deployment) appsv1.Deployment {
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	return d
}

func withDeadline(d appsv1.Deployment, seconds int32) appsv1.Deployment {
	d.Spec.ProgressDeadlineSeconds = &seconds
	return d
}

func hashOf(d appsv1.Deployment) string { return manifest.TemplateHash(&d.Spec.Template) }

func storedDeployment(t testing.TB, o Observed, name string) *appsv1.Deployment {
	t.Helper()
	for i := range o.Deployments {
		if o.Deployments[i].Name == name {
			return &o.Deployments[i]
		}
	}
	t.Fatalf("no deployment %s stored", name)
	return nil
}

func progressingOf(d *appsv1.Deployment) appsv1.DeploymentCondition {
	if c := condition(d.Status.Conditions, appsv1.DeploymentProgressing); c != nil {
		return *c
	}
	return appsv1.DeploymentCondition{}
}

// ---- fenceposts ----

func TestFenceposts_percentOfReplicasSurgeUpUnavailableDown(t *testing.T) {
	ru := func(surge, unavailable string) appsv1.DeploymentStrategy {
		return rollingUpdate(appsv1.Deployment{}, surge, unavailable).Spec.Strategy
	}
	tests := []struct {
		name               string
		strategy           appsv1.DeploymentStrategy
		replicas           int
		surge, unavailable int
	}{
		{"defaults of 3: 0.75 up and down", appsv1.DeploymentStrategy{}, 3, 1, 0},
		{"defaults of 4", appsv1.DeploymentStrategy{}, 4, 1, 1},
		{"defaults of 10: 2.5 up and down", appsv1.DeploymentStrategy{}, 10, 3, 2},
		{"percents of 10", ru("30%", "20%"), 10, 3, 2},
		{"percents of 7", ru("10%", "50%"), 7, 1, 3},
		{"absolute", ru("2", "0"), 5, 2, 0},
		{"both round to 0: one unavailable", ru("0%", "25%"), 1, 0, 1},
		{"zero replicas", appsv1.DeploymentStrategy{}, 0, 0, 1},
		{"unavailable beyond replicas is all of them", ru("0", "10"), 4, 0, 4},
		{"100%", ru("100%", "100%"), 4, 4, 4},
		{"Recreate: no surge, none unavailable", appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}, 4, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, u := fenceposts(tt.strategy, tt.replicas)
			if s != tt.surge || u != tt.unavailable {
				t.Errorf("fenceposts(%d) = surge %d, unavailable %d; want %d, %d", tt.replicas, s, u, tt.surge, tt.unavailable)
			}
		})
	}
}

// ---- the step function ----

// pods builds rollout pods named prefix0, prefix1, ... of a revision, with
// the given availability, in deletion order.
func rpods(prefix string, revision int64, avail ...bool) []rolloutPod {
	var out []rolloutPod
	for i, a := range avail {
		name := fmt.Sprintf("%s%d", prefix, i)
		out = append(out, rolloutPod{ref: podRef{pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}, key: name}, revision: revision, available: a})
	}
	return out
}

func names(ps []rolloutPod) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.ref.key)
	}
	return out
}

func TestRolloutStep(t *testing.T) {
	const Y, N = true, false
	tests := []struct {
		name string
		in   rolloutInput
		// deleteOld in order; deleteCurrent; create
		deleteOld     []string
		deleteCurrent []string
		create        int
	}{
		{name: "first step of 3 at 25%/25%: one surge pod, every old pod serves",
			in:     rolloutInput{replicas: 3, maxSurge: 1, old: rpods("v1-", 1, Y, Y, Y)},
			create: 1},
		{name: "first step of 4 at 25%/25%: one old pod goes, two new within the surge",
			in:        rolloutInput{replicas: 4, maxSurge: 1, maxUnavailable: 1, old: rpods("v1-", 1, Y, Y, Y, Y)},
			deleteOld: []string{"v1-0"}, create: 2},
		{name: "an available new pod lets an old one go and another new one come",
			in:        rolloutInput{replicas: 3, maxSurge: 1, current: rpods("v2-", 2, Y), old: rpods("v1-", 1, Y, Y, Y)},
			deleteOld: []string{"v1-0"}, create: 1},
		{name: "a new pod not yet available holds everything",
			in: rolloutInput{replicas: 3, maxSurge: 1, current: rpods("v2-", 2, N), old: rpods("v1-", 1, Y, Y, Y)}},
		{name: "unavailable old pods go first, whatever the budget",
			in:        rolloutInput{replicas: 3, maxSurge: 1, current: rpods("v2-", 2, N), old: rpods("v1-", 1, N, Y, Y)},
			deleteOld: []string{"v1-0"}, create: 1},
		{name: "several generations: the oldest revision goes first",
			in: rolloutInput{replicas: 4, maxSurge: 0, maxUnavailable: 2,
				old: append(rpods("v2-", 2, Y, Y), rpods("v1-", 1, Y, Y)...)},
			deleteOld: []string{"v1-0", "v1-1"}, create: 2},
		{name: "several generations: unavailable ones of any revision before available ones",
			in: rolloutInput{replicas: 4, maxSurge: 1, maxUnavailable: 1,
				old: append(rpods("v2-", 2, N, N), rpods("v1-", 1, Y, Y, Y, Y)...)},
			deleteOld: []string{"v2-0", "v2-1", "v1-0"}, create: 2},
		{name: "unknown revision (0) is older than any recorded",
			in: rolloutInput{replicas: 2, maxSurge: 0, maxUnavailable: 1,
				old: append(rpods("v1-", 1, Y), rpods("x-", 0, Y)...)},
			deleteOld: []string{"x-0"}, create: 1},
		{name: "maxSurge 0: remove first, then replace",
			in:        rolloutInput{replicas: 3, maxSurge: 0, maxUnavailable: 1, old: rpods("v1-", 1, Y, Y, Y)},
			deleteOld: []string{"v1-0"}, create: 1},
		{name: "last old pods go once enough new ones serve",
			in:        rolloutInput{replicas: 3, maxSurge: 1, current: rpods("v2-", 2, Y, Y, Y), old: rpods("v1-", 1, Y)},
			deleteOld: []string{"v1-0"}},
		{name: "already over budget: nothing added",
			in: rolloutInput{replicas: 3, maxSurge: 1, current: rpods("v2-", 2, N, N, N), old: rpods("v1-", 1, Y, Y, Y)}},
		{name: "scale down during a rollout: new pods beyond replicas go",
			in:            rolloutInput{replicas: 2, maxSurge: 1, current: rpods("v2-", 2, Y, Y, Y), old: rpods("v1-", 1, Y)},
			deleteCurrent: []string{"v2-0"}, deleteOld: []string{"v1-0"}},
		{name: "no old pods: plain scale up",
			in:     rolloutInput{replicas: 5, maxSurge: 1, current: rpods("v2-", 2, Y, Y)},
			create: 3},
		{name: "complete: nothing to do",
			in: rolloutInput{replicas: 3, maxSurge: 1, current: rpods("v2-", 2, Y, Y, Y)}},
		{name: "failed: available old pods stay, nothing added",
			in: rolloutInput{replicas: 4, maxSurge: 2, maxUnavailable: 1, failed: true,
				current: rpods("v2-", 2, N, N), old: rpods("v1-", 1, Y, Y, Y)}},
		{name: "failed: unavailable old pods still go",
			in: rolloutInput{replicas: 4, maxSurge: 1, maxUnavailable: 1, failed: true,
				current: rpods("v2-", 2, N), old: rpods("v1-", 1, N, Y, Y, Y)},
			deleteOld: []string{"v1-0"}},
		{name: "failed: a finished new pod is replaced, nothing more",
			in: rolloutInput{replicas: 4, maxSurge: 2, maxUnavailable: 1, failed: true, replacedCurrent: 1,
				current: rpods("v2-", 2, N), old: rpods("v1-", 1, Y, Y, Y)},
			create: 1},
		{name: "failed with no old pod left: scales to replicas",
			in:     rolloutInput{replicas: 3, maxSurge: 1, failed: true, current: rpods("v2-", 2, N)},
			create: 2},
		{name: "zero replicas: everything goes",
			in:        rolloutInput{replicas: 0, maxUnavailable: 1, current: rpods("v2-", 2, Y), old: rpods("v1-", 1, Y, N)},
			deleteOld: []string{"v1-1", "v1-0"}, deleteCurrent: []string{"v2-0"}},
		{name: "Recreate: every old pod goes, nothing is created in the same step",
			in:        rolloutInput{recreate: true, replicas: 3, old: rpods("v1-", 1, Y, Y, N)},
			deleteOld: []string{"v1-0", "v1-1", "v1-2"}},
		{name: "Recreate: once no old pod is left, create",
			in:     rolloutInput{recreate: true, replicas: 3},
			create: 3},
		{name: "Recreate: old pods deleted but still stopping on their node: wait",
			in: rolloutInput{recreate: true, replicas: 3, terminating: 2}},
		{name: "Recreate back to a template whose pods survive: they stay",
			in:        rolloutInput{recreate: true, replicas: 3, current: rpods("v1-", 3, Y), old: rpods("v2-", 2, N, N)},
			deleteOld: []string{"v2-0", "v2-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := rolloutStep(tt.in)
			if got := names(dec.deleteOld); !slices.Equal(got, tt.deleteOld) {
				t.Errorf("deleteOld = %v, want %v", got, tt.deleteOld)
			}
			if got := names(dec.deleteCurrent); !slices.Equal(got, tt.deleteCurrent) {
				t.Errorf("deleteCurrent = %v, want %v", got, tt.deleteCurrent)
			}
			if dec.create != tt.create {
				t.Errorf("create = %d, want %d", dec.create, tt.create)
			}
			checkStepFixpoint(t, tt.in, dec)
		})
	}
}

// checkStepFixpoint applies dec to in (created pods not yet available) and
// steps again: with nothing else changed, the second step decides nothing.
func checkStepFixpoint(t *testing.T, in rolloutInput, dec rolloutDecision) {
	t.Helper()
	gone := map[string]bool{}
	for _, p := range append(slices.Clone(dec.deleteOld), dec.deleteCurrent...) {
		gone[p.ref.key] = true
	}
	next := in
	next.replacedCurrent = 0
	next.current = slices.DeleteFunc(slices.Clone(in.current), func(p rolloutPod) bool { return gone[p.ref.key] })
	next.old = slices.DeleteFunc(slices.Clone(in.old), func(p rolloutPod) bool { return gone[p.ref.key] })
	for i := range dec.create {
		next.current = append(next.current, rpods(fmt.Sprintf("new%d-", i), 9, false)...)
	}
	if len(next.old) > 0 && in.recreate {
		t.Fatal("Recreate left old pods")
	}
	again := rolloutStep(next)
	if in.recreate && len(in.old) > 0 {
		// The second step of Recreate creates; the third is a fixpoint.
		next.current = append(next.current, rpods("second-", 9, make([]bool, again.create)...)...)
		again = rolloutStep(next)
	}
	if len(again.deleteOld)+len(again.deleteCurrent)+again.create > 0 {
		t.Errorf("second step not empty: delete old %v, current %v, create %d", names(again.deleteOld), names(again.deleteCurrent), again.create)
	}
}

// ---- revision history ----

func TestNextHistory(t *testing.T) {
	r := func(n int64, hash string) Revision {
		return Revision{Revision: n, Hash: hash, Images: []string{"img:" + hash}}
	}
	tests := []struct {
		name  string
		prev  []Revision
		hash  string
		limit int
		want  []Revision
	}{
		{"first template is revision 1", nil, "a", 10, []Revision{r(1, "a")}},
		{"same template keeps its entry", []Revision{r(1, "a")}, "a", 10, []Revision{r(1, "a")}},
		{"new template is the next revision, newest first", []Revision{r(2, "b"), r(1, "a")}, "c", 10,
			[]Revision{r(3, "c"), r(2, "b"), r(1, "a")}},
		{"revert moves the old entry to the front under the next number", []Revision{r(2, "b"), r(1, "a")}, "a", 10,
			[]Revision{r(3, "a"), r(2, "b")}},
		{"bounded by the limit plus the current", []Revision{r(3, "c"), r(2, "b"), r(1, "a")}, "d", 1,
			[]Revision{r(4, "d"), r(3, "c")}},
		{"limit 0 keeps only the current", []Revision{r(3, "c"), r(2, "b")}, "c", 0, []Revision{r(3, "c")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := nextHistory(tt.prev, tt.hash, []string{"img:" + tt.hash}, tt.limit)
			if !slices.EqualFunc(got, tt.want, equalRevision) {
				t.Errorf("nextHistory = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// ---- through Plan ----

func TestRollout_revisionsAreRecordedAndARevertReusesPods(t *testing.T) {
	n1, n2 := node("n1", "4"), node("n2", "4")
	v1 := rollingUpdate(deployment("web", 2, "web:1", "100m"), "1", "0")
	v2 := rollingUpdate(deployment("web", 2, "web:2", "100m"), "1", "0")
	o := settled(t, set([]appsv1.Deployment{v1}, nil, nil), n1, n2)
	d := storedDeployment(t, o, "web")
	if got := d.Annotations[AnnotationRevision]; got != "1" {
		t.Errorf("revision of the first template = %q, want 1", got)
	}

	// Roll to v2 part way: one v2 pod runs next to the two v1 pods.
	_, o = planApplied(t, set([]appsv1.Deployment{v2}, nil, nil), o)
	o = runPods(o)
	d = storedDeployment(t, o, "web")
	if got := d.Annotations[AnnotationRevision]; got != "2" {
		t.Errorf("revision of the second template = %q, want 2", got)
	}

	// git revert: v1 is current again, as revision 3, and its pods serve on.
	actions, o := planApplied(t, set([]appsv1.Deployment{v1}, nil, nil), o)
	for _, a := range actions {
		if a.Type == CreatePod {
			t.Errorf("revert created %s: the pods of the reverted-to template still run", a.Pod.Name)
		}
	}
	d = storedDeployment(t, o, "web")
	hist, err := RevisionHistory(d)
	if err != nil {
		t.Fatal(err)
	}
	want := []Revision{{Revision: 3, Hash: hashOf(v1), Images: []string{"web:1"}}, {Revision: 2, Hash: hashOf(v2), Images: []string{"web:2"}}}
	if !slices.EqualFunc(hist, want, equalRevision) || d.Annotations[AnnotationRevision] != "3" {
		t.Errorf("after revert: revision %s, history %+v; want 3, %+v", d.Annotations[AnnotationRevision], hist, want)
	}
	if complete, failed, msg := RolloutStatus(d); !complete || failed {
		t.Errorf("RolloutStatus after revert = %v, %v, %q; want complete", complete, failed, msg)
	}
	for _, p := range o.Pods {
		if p.Labels[LabelPodTemplateHash] != hashOf(v1) {
			t.Errorf("pod %s of template %s survived the revert", p.Name, p.Labels[LabelPodTemplateHash])
		}
	}
}

func TestRollout_minReadySecondsHoldsOldPodsUntilNewOnesServeLongEnough(t *testing.T) {
	n1 := node("n1", "4")
	v1 := rollingUpdate(deployment("web", 2, "web:1", "100m"), "1", "0")
	v2 := rollingUpdate(deployment("web", 2, "web:2", "100m"), "1", "0")
	v2.Spec.MinReadySeconds = 30
	o := settled(t, set([]appsv1.Deployment{v1}, nil, nil), n1)
	desired := set([]appsv1.Deployment{v2}, nil, nil)
	o = apply(t, o, Plan(desired, o, t0).Actions)
	readySince := t0.Add(10 * time.Second)
	o = setPod(t, o, podOf(v2, 0), func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(readySince)}}
	})

	// Ready for 29 s: not available, so no old pod may go.
	if actions := Plan(desired, o, readySince.Add(29*time.Second)).Actions; hasType(actions, DeletePod) {
		t.Errorf("old pod deleted before the new one was available:\n%s", strings.Join(summarize(actions), "\n"))
	}
	// Ready for 30 s: available; one old pod goes and one new pod comes.
	actions := Plan(desired, o, readySince.Add(30*time.Second)).Actions
	if got := count(actions, DeletePod); got != 1 || count(actions, CreatePod) != 1 {
		t.Errorf("at minReadySeconds: actions\n%s\nwant one DeletePod and one CreatePod", strings.Join(summarize(actions), "\n"))
	}
}

func TestRollout_recreateDeletesEveryOldPodThenCreates(t *testing.T) {
	n1 := node("n1", "4")
	v1 := recreate(deployment("web", 3, "web:1", "100m"))
	v2 := recreate(deployment("web", 3, "web:2", "100m"))
	o := settled(t, set([]appsv1.Deployment{v1}, nil, nil), n1)
	desired := set([]appsv1.Deployment{v2}, nil, nil)

	first := Plan(desired, o, t0).Actions
	if count(first, DeletePod) != 3 || count(first, CreatePod) != 0 {
		t.Fatalf("first plan:\n%s\nwant the 3 old pods deleted and nothing created", strings.Join(summarize(first), "\n"))
	}
	o = apply(t, o, first)
	second := Plan(desired, o, t0.Add(time.Second)).Actions
	if count(second, CreatePod) != 3 || count(second, DeletePod) != 0 {
		t.Fatalf("second plan:\n%s\nwant the 3 new pods created", strings.Join(summarize(second), "\n"))
	}
	o = apply(t, o, second)
	if again := Plan(desired, o, t0.Add(2*time.Second)).Actions; len(again) > 0 {
		t.Errorf("third plan not empty:\n%s", strings.Join(summarize(again), "\n"))
	}
}

func TestRollout_deploymentStatusIsWrittenOnlyWhenItChanges(t *testing.T) {
	n1 := node("n1", "4")
	v1 := deployment("web", 2, "web:1", "100m")
	desired := set([]appsv1.Deployment{v1}, nil, nil)
	o := settled(t, desired, n1)
	d := storedDeployment(t, o, "web")
	prog, avail := progressingOf(d), condition(d.Status.Conditions, appsv1.DeploymentAvailable)
	if prog.Status != corev1.ConditionTrue || prog.Reason != ReasonNewReplicaSetAvailable ||
		prog.Message != fmt.Sprintf("ReplicaSet %q has successfully progressed.", "web-"+hashOf(v1)) {
		t.Errorf("Progressing = %+v", prog)
	}
	if avail == nil || avail.Status != corev1.ConditionTrue || avail.Reason != ReasonMinimumReplicasAvailable {
		t.Errorf("Available = %+v", avail)
	}
	// Hours later, nothing changed: nothing is written.
	for _, later := range []time.Duration{time.Hour, 24 * time.Hour} {
		if actions := Plan(desired, o, t0.Add(later)).Actions; len(actions) > 0 {
			t.Errorf("plan %v later:\n%s", later, strings.Join(summarize(actions), "\n"))
		}
	}
	// A pod stops being ready: Available flips, and only its transition time moves.
	at := t0.Add(2 * time.Hour)
	o = setPod(t, o, podOf(v1, 0), func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse })
	actions := Plan(desired, o, at).Actions
	if len(actions) != 1 || actions[0].Type != PutDeployment {
		t.Fatalf("actions:\n%s\nwant one PutDeployment", strings.Join(summarize(actions), "\n"))
	}
	// 2 replicas at 25%: maxUnavailable 0, so one unready pod costs availability.
	st := actions[0].Deployment.Status
	a := condition(st.Conditions, appsv1.DeploymentAvailable)
	if a.Status != corev1.ConditionFalse || !a.LastTransitionTime.Time.Equal(at) || !a.LastUpdateTime.Time.Equal(at) {
		t.Errorf("Available after a pod stopped serving = %+v", a)
	}
	if p := condition(st.Conditions, appsv1.DeploymentProgressing); !p.LastUpdateTime.Equal(&prog.LastUpdateTime) || p.Reason != ReasonNewReplicaSetAvailable {
		t.Errorf("Progressing changed though no rollout runs: %+v, was %+v", p, prog)
	}
	if st.AvailableReplicas != 1 || st.UnavailableReplicas != 1 || st.ReadyReplicas != 1 {
		t.Errorf("status = %+v", st)
	}
}

func TestRolloutStatus(t *testing.T) {
	v1 := deployment("web", 3, "web:1", "")
	stored := func(gen, observed int64, st appsv1.DeploymentStatus, historyHash string, conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
		d := v1.DeepCopy()
		d.Generation = gen
		st.ObservedGeneration = observed
		st.Conditions = conds
		d.Status = st
		raw, _ := json.Marshal([]Revision{{Revision: 1, Hash: historyHash}})
		d.Annotations = map[string]string{AnnotationRevisionHistory: string(raw)}
		return d
	}
	timedOut := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
		Reason: ReasonProgressDeadlineExceeded, Message: `ReplicaSet "web-x" has timed out progressing.`}
	h := hashOf(v1)
	tests := []struct {
		name             string
		d                *appsv1.Deployment
		complete, failed bool
		msg              string
	}{
		{"complete", stored(2, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 3}, h),
			true, false, `deployment "web" successfully rolled out`},
		{"spec not yet seen", stored(3, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}, h),
			false, false, "Waiting for deployment spec update to be observed..."},
		{"updating", stored(2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, AvailableReplicas: 3}, h),
			false, false, `Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...`},
		{"old pods left", stored(2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 3, AvailableReplicas: 4}, h),
			false, false, `Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...`},
		{"not yet available", stored(2, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 2}, h),
			false, false, `Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available...`},
		{"failed", stored(2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 2, AvailableReplicas: 2}, h, timedOut),
			false, true, `deployment "web" exceeded its progress deadline: ReplicaSet "web-x" has timed out progressing.`},
		{"failure of another template is not this one's", stored(2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 2, AvailableReplicas: 2}, "other", timedOut),
			false, false, `Waiting for deployment "web" rollout to finish: 2 out of 3 new replicas have been updated...`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			complete, failed, msg := RolloutStatus(tt.d)
			if complete != tt.complete || failed != tt.failed || msg != tt.msg {
				t.Errorf("RolloutStatus = %v, %v, %q; want %v, %v, %q", complete, failed, msg, tt.complete, tt.failed, tt.msg)
			}
		})
	}
}

func hasType(actions []Action, typ ActionType) bool { return count(actions, typ) > 0 }

func count(actions []Action, typ ActionType) int {
	n := 0
	for _, a := range actions {
		if a.Type == typ {
			n++
		}
	}
	return n
}

// ---- simulation ----

// sim drives Plan step by step the way the server does: plan, apply, let the
// node agent report, advance the clock.
type sim struct {
	t       *testing.T
	desired *manifest.Set
	o       Observed
	now     time.Time
	// readyAfter is how long a bound pod takes to become ready; pods of the
	// hashes in never do not.
	readyAfter time.Duration
	never      map[string]bool
	born       map[string]time.Time
}

func newSim(t *testing.T, desired *manifest.Set, nodes ...corev1.Node) *sim {
	s := &sim{t: t, desired: desired, now: t0, readyAfter: 3 * time.Second, never: map[string]bool{}, born: map[string]time.Time{}}
	s.o = Observed{Nodes: nodes}
	// Bring the first template up and let it serve for a while.
	for range 50 {
		s.step()
	}
	if actions := Plan(s.desired, s.o, s.now).Actions; len(actions) > 0 {
		t.Fatalf("initial template did not settle:\n%s", strings.Join(summarize(actions), "\n"))
	}
	return s
}

func (s *sim) step() []Action {
	s.t.Helper()
	actions := Plan(s.desired, s.o, s.now).Actions
	s.o = apply(s.t, s.o, actions)
	for i, p := range s.o.Pods {
		k := key(p.Namespace, p.Name)
		if _, ok := s.born[k]; !ok {
			s.born[k] = s.now
		}
		if p.Spec.NodeName == "" || kube.PodReady(p) || s.never[p.Labels[LabelPodTemplateHash]] || s.now.Sub(s.born[k]) < s.readyAfter {
			continue
		}
		replacePod(s.o.Pods, i).Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(s.now)}}}
	}
	s.now = s.now.Add(time.Second)
	return actions
}

// budget counts the pods of Deployment d (not finished) and those available
// at now, per template hash.
func (s *sim) budget(d appsv1.Deployment, at time.Time) (total, avail int, byHash map[string]int) {
	byHash = map[string]int{}
	for _, p := range s.o.Pods {
		if owner := metav1.GetControllerOf(p); owner == nil || owner.Name != d.Name || kube.PodFinished(p) {
			continue
		}
		total++
		byHash[p.Labels[LabelPodTemplateHash]]++
		if available(p, time.Duration(d.Spec.MinReadySeconds)*time.Second, at) {
			avail++
		}
	}
	return total, avail, byHash
}

// checkBudget pins the rolling update's promise at one step.
func (s *sim) checkBudget(step int, d appsv1.Deployment, at time.Time) {
	s.t.Helper()
	r := int(*d.Spec.Replicas)
	surge, unavailable := fenceposts(d.Spec.Strategy, r)
	total, avail, byHash := s.budget(d, at)
	if total > r+surge {
		s.t.Fatalf("step %d: %d pods (%v), more than %d replicas + %d surge", step, total, byHash, r, surge)
	}
	if avail < r-unavailable {
		s.t.Fatalf("step %d: %d pods available (%v), fewer than %d replicas - %d unavailable", step, avail, byHash, r, unavailable)
	}
}

func TestRollout_simulationKeepsSurgeAndAvailabilityAndCompletes(t *testing.T) {
	nodes := []corev1.Node{node("n1", "8"), node("n2", "8"), node("n3", "8")}
	tests := []struct {
		name               string
		replicas           int32
		surge, unavailable string
		minReady           int32
		// deadline is progressDeadlineSeconds (0: the default); readyAfter
		// how long new pods take to become ready (0: 3 s).
		deadline   int32
		readyAfter time.Duration
	}{
		{name: "defaults of 4", replicas: 4, surge: "25%", unavailable: "25%"},
		{name: "defaults of 3: surge only", replicas: 3, surge: "25%", unavailable: "25%"},
		{name: "no surge", replicas: 5, surge: "0", unavailable: "2"},
		{name: "percents of 10", replicas: 10, surge: "30%", unavailable: "20%"},
		{name: "big surge", replicas: 4, surge: "100%", unavailable: "0"},
		{name: "minReadySeconds", replicas: 6, surge: "2", unavailable: "1", minReady: 5},
		{name: "one replica", replicas: 1, surge: "1", unavailable: "0"},
		{name: "slow pods: longer than the deadline, progressing all along", replicas: 6, surge: "1", unavailable: "0",
			deadline: 10, readyAfter: 8 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mk := func(image string) appsv1.Deployment {
				d := rollingUpdate(deployment("web", tt.replicas, image, "100m"), tt.surge, tt.unavailable)
				d.Spec.MinReadySeconds = tt.minReady
				if tt.deadline > 0 {
					d = withDeadline(d, tt.deadline)
				}
				return d
			}
			v1, v2 := mk("web:1"), mk("web:2")
			s := newSim(t, set([]appsv1.Deployment{v1}, nil, nil), nodes...)
			if tt.readyAfter > 0 {
				s.readyAfter = tt.readyAfter
			}
			s.desired = set([]appsv1.Deployment{v2}, nil, nil)
			for step := 1; ; step++ {
				at := s.now
				actions := s.step()
				s.checkBudget(step, v2, at)
				d := storedDeployment(t, s.o, "web")
				if complete, failed, msg := RolloutStatus(d); failed {
					t.Fatalf("step %d: rollout failed: %s", step, msg)
				} else if complete && len(actions) == 0 {
					break
				}
				if step > 300 {
					t.Fatalf("rollout did not complete in 300 steps; status %+v", d.Status)
				}
			}
			total, avail, byHash := s.budget(v2, s.now)
			if total != int(tt.replicas) || avail != total || byHash[hashOf(v2)] != total {
				t.Errorf("after the rollout: %d pods, %d available, by template %v; want all %d on %s", total, avail, byHash, tt.replicas, hashOf(v2))
			}
			d := storedDeployment(t, s.o, "web")
			if p := progressingOf(d); p.Reason != ReasonNewReplicaSetAvailable || p.Status != corev1.ConditionTrue {
				t.Errorf("Progressing after the rollout = %+v", p)
			}
		})
	}
}

func TestRollout_simulationNeverReadyFailsAfterDeadlineAndKeepsOldPods(t *testing.T) {
	nodes := []corev1.Node{node("n1", "8"), node("n2", "8")}
	tests := []struct {
		name               string
		surge, unavailable string
	}{
		{"surge only: every old pod serves", "1", "0"},
		{"defaults of 4: one old pod may go", "25%", "25%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mk := func(image string) appsv1.Deployment {
				return withDeadline(rollingUpdate(deployment("web", 4, image, "100m"), tt.surge, tt.unavailable), 30)
			}
			v1, v2, v3 := mk("web:1"), mk("web:2"), mk("web:3")
			_, unavailable := fenceposts(v2.Spec.Strategy, 4)
			s := newSim(t, set([]appsv1.Deployment{v1}, nil, nil), nodes...)
			s.never[hashOf(v2)] = true
			s.desired = set([]appsv1.Deployment{v2}, nil, nil)

			start := s.now
			var failedAt time.Time
			var oldAtFailure int
			for step := 1; step < 120; step++ {
				at := s.now
				actions := s.step()
				s.checkBudget(step, v2, at)
				_, _, byHash := s.budget(v2, at)
				complete, failed, msg := RolloutStatus(storedDeployment(t, s.o, "web"))
				if complete {
					t.Fatalf("step %d: a rollout whose pods never become ready completed", step)
				}
				switch {
				case failed && failedAt.IsZero():
					failedAt, oldAtFailure = at, byHash[hashOf(v1)]
					if !strings.Contains(msg, "web-"+hashOf(v2)) {
						t.Errorf("failure message %q does not name the template", msg)
					}
				case !failedAt.IsZero():
					if hasType(actions, CreatePod) || hasType(actions, DeletePod) {
						t.Fatalf("step %d: failed rollout still acts:\n%s", step, strings.Join(summarize(actions), "\n"))
					}
					if !failed {
						t.Fatalf("step %d: failure did not stick: %s", step, msg)
					}
				}
			}
			if failedAt.IsZero() {
				t.Fatal("rollout never marked failed")
			}
			if d := failedAt.Sub(start); d <= 30*time.Second || d > 32*time.Second {
				t.Errorf("failed %v after the template changed, want just over the 30 s deadline", d)
			}
			if oldAtFailure < 4-unavailable {
				t.Errorf("%d old pods kept, want at least %d", oldAtFailure, 4-unavailable)
			}

			// A new commit starts fresh: the failure of v2 is not v3's.
			s.desired = set([]appsv1.Deployment{v3}, nil, nil)
			s.step()
			d := storedDeployment(t, s.o, "web")
			if p := progressingOf(d); p.Status != corev1.ConditionTrue || p.Reason != ReasonNewReplicaSetCreated {
				t.Errorf("Progressing after a new template = %+v", p)
			}
			if _, _, byHash := s.budget(v3, s.now); byHash[hashOf(v2)] != 0 || byHash[hashOf(v3)] == 0 {
				t.Errorf("after a new template: pods by template %v; want v2's gone (never available) and v3's started", byHash)
			}
			for step := 1; ; step++ {
				at := s.now
				actions := s.step()
				s.checkBudget(step, v3, at)
				if complete, failed, msg := RolloutStatus(storedDeployment(t, s.o, "web")); failed {
					t.Fatalf("v3 failed: %s", msg)
				} else if complete && len(actions) == 0 {
					break
				}
				if step > 100 {
					t.Fatal("v3 did not complete")
				}
			}
		})
	}
}

// TestRollout_revertOfAFailedRolloutReusesTheOldPods: a template fails, and
// git revert brings the previous one back: its pods never stopped serving, so
// only the pods the failed rollout removed are created again.
func TestRollout_revertOfAFailedRolloutReusesTheOldPods(t *testing.T) {
	nodes := []corev1.Node{node("n1", "8"), node("n2", "8")}
	v1 := withDeadline(deployment("web", 4, "web:1", "100m"), 10)
	v2 := withDeadline(deployment("web", 4, "web:2", "100m"), 10)
	s := newSim(t, set([]appsv1.Deployment{v1}, nil, nil), nodes...)
	s.never[hashOf(v2)] = true
	s.desired = set([]appsv1.Deployment{v2}, nil, nil)
	for range 20 {
		s.step()
	}
	if _, failed, _ := RolloutStatus(storedDeployment(t, s.o, "web")); !failed {
		t.Fatal("v2 did not fail")
	}
	_, _, byHash := s.budget(v1, s.now)
	survivors := byHash[hashOf(v1)]

	s.desired = set([]appsv1.Deployment{v1}, nil, nil)
	actions := s.step()
	if got := count(actions, CreatePod); got != 4-survivors {
		t.Errorf("revert created %d pods, want %d: the %d surviving v1 pods are reused", got, 4-survivors, survivors)
	}
	if got := count(actions, DeletePod); got != byHash[hashOf(v2)] {
		t.Errorf("revert deleted %d pods, want the %d v2 pods at once", got, byHash[hashOf(v2)])
	}
	d := storedDeployment(t, s.o, "web")
	if d.Annotations[AnnotationRevision] != "3" {
		t.Errorf("revision after revert = %q, want 3", d.Annotations[AnnotationRevision])
	}
	for step := 0; ; step++ {
		if complete, _, _ := RolloutStatus(storedDeployment(t, s.o, "web")); complete {
			break
		}
		if step > 20 {
			t.Fatal("revert did not complete")
		}
		s.step()
	}
}

func TestRollout_revisionAnnotationsFromGitAreOverriddenWithoutChurn(t *testing.T) {
	d := deployment("web", 1, "web:1", "100m")
	d.Annotations = map[string]string{AnnotationRevision: "99", "team": "payments"}
	desired := set([]appsv1.Deployment{d}, nil, nil)
	o := settled(t, desired, node("n1", "2"))
	stored := storedDeployment(t, o, "web")
	if stored.Annotations[AnnotationRevision] != "1" || stored.Annotations["team"] != "payments" {
		t.Errorf("annotations = %v", stored.Annotations)
	}
	if actions := Plan(desired, o, t0.Add(time.Hour)).Actions; len(actions) > 0 {
		t.Errorf("plan rewrites a settled Deployment:\n%s", strings.Join(summarize(actions), "\n"))
	}
}

// TestPlan_recreateWaitsForTerminatingPods drives Plan: the old pods are
// deleted, their node is still stopping them, and only when it has finished
// (or the node is lost) are the new pods created.
func TestPlan_recreateWaitsForTerminatingPods(t *testing.T) {
	d := deployment("web", 2, "app:v2", "100m")
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	nodes := []corev1.Node{node("n1", "4")}
	stopping := []TerminatingPod{
		{Namespace: "default", Name: "web-old-1", Node: "n1", Owner: "Deployment/default/web"},
		{Namespace: "default", Name: "other-1", Node: "n1", Owner: "Deployment/default/other"},
	}
	desired := &manifest.Set{Deployments: []appsv1.Deployment{d}}
	creates := func(o Observed) int {
		n := 0
		for _, a := range Plan(desired, o, t0).Actions {
			if a.Type == CreatePod {
				n++
			}
		}
		return n
	}
	if n := creates(Observed{Nodes: nodes, Terminating: stopping}); n != 0 {
		t.Errorf("created %d pods while an old one is stopping, want 0", n)
	}
	if n := creates(Observed{Nodes: nodes, Terminating: stopping[1:]}); n != 2 {
		t.Errorf("created %d pods once the old one is gone, want 2 (another Deployment's pods do not count)", n)
	}
	if n := creates(Observed{Nodes: nodes, Terminating: []TerminatingPod{{Namespace: "default", Name: "web-old-1", Node: "gone", Owner: "Deployment/default/web"}}}); n != 2 {
		t.Errorf("created %d pods while waiting on a lost node, want 2", n)
	}
}

// TestPlan_newPodsAvoidNamesStillStopping: a revert brings back a template
// whose pods are still being stopped; the new pods must not take their
// names, or each would wait for that teardown before it could start.
func TestPlan_newPodsAvoidNamesStillStopping(t *testing.T) {
	d := deployment("web", 2, "app:v1", "100m")
	hash := manifest.TemplateHash(&d.Spec.Template)
	stopping := []TerminatingPod{
		{Namespace: "default", Name: podName(&d, hash, 0), Node: "n1", Owner: "Deployment/default/web"},
		{Namespace: "default", Name: podName(&d, hash, 1), Node: "n1", Owner: "Deployment/default/web"},
	}
	actions := Plan(&manifest.Set{Deployments: []appsv1.Deployment{d}},
		Observed{Nodes: []corev1.Node{node("n1", "4")}, Terminating: stopping}, t0).Actions
	var created []string
	for _, a := range actions {
		if a.Type == CreatePod {
			created = append(created, a.Pod.Name)
		}
	}
	want := []string{podName(&d, hash, 2), podName(&d, hash, 3)}
	slices.Sort(created)
	slices.Sort(want)
	if !slices.Equal(created, want) {
		t.Errorf("created %v, want %v (ordinals 0 and 1 are still stopping)", created, want)
	}
}
