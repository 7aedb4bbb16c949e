package api

import (
	"cmp"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"bosun/canary"
	"bosun/store"
)

// canaryStarted is when the planted canary started.
var canaryStarted = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// seedCanary writes, beside seed's pods, main's Deployment web asking for
// a stepped canary of branch canary/web-v2 (and db asking for none), the
// canary's stored state at step 2 of 3 with a pod template carrying an env
// value, two stable pods of web and two canary pods (one not ready).
func seedCanary(t *testing.T) *store.Store {
	t.Helper()
	st := store.NewTest(t)
	ctx := context.Background()
	lead, err := st.Campaign(ctx, "replica-1", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lead.Resign(context.Background()) })
	replicas := int32(4)
	web := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", Annotations: map[string]string{
		canary.AnnotationBranch: "canary/web-v2", canary.AnnotationSteps: "5,25,50", canary.AnnotationStepInterval: "2m",
		canary.AnnotationQuery: "sum(rate(errors[1m]))", canary.AnnotationMax: "0.05"}},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
	db := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db"}}
	value := 0.01
	state := &canary.State{Namespace: "default", Name: "web", Branch: "canary/web-v2", Commit: "abc123def4567890", Subject: "web v2",
		Template: &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "hello:v2",
			Env: []corev1.EnvVar{{Name: "API_TOKEN", Value: "tok-from-git-123"}}}}}},
		Hash: "c4n4ry", Phase: canary.Progressing, Step: 1, Weight: 25,
		StartedAt: canaryStarted, StepStartedAt: canaryStarted.Add(2 * time.Minute),
		Checks: []canary.Check{
			{At: canaryStarted.Add(time.Minute), Signal: "metric", Value: &value, OK: true, Message: "metric: sum(rate(errors[1m])) = 0.01, within bounds"},
			{At: canaryStarted.Add(3 * time.Minute), Signal: "metric", Value: &value, OK: true, Message: "metric: newest"},
		},
		AbortedCommits: []string{"0ld0ld0ld0ld"}}
	var ops []store.Op
	for _, d := range []*appsv1.Deployment{web, db} {
		op, err := store.PutDeployment(d)
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, op)
	}
	op, err := store.PutCanary(state)
	if err != nil {
		t.Fatal(err)
	}
	ops = append(ops, op)
	owned := func(name, track, hash, ip string, ready bool) *corev1.Pod {
		p := readyPod(name, ip, map[string]string{"app": "web", canary.LabelTrack: track, "pod-template-hash": hash}, ready)
		yes := true
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: types.UID("web"), Controller: &yes}}
		return p
	}
	pods := []*corev1.Pod{
		owned("web-stable-0", canary.TrackStable, "st4bl3", "10.88.0.2", true),
		owned("web-stable-1", canary.TrackStable, "st4bl3", "10.88.0.3", true),
		owned("web-c4n4ry-1", canary.TrackCanary, "c4n4ry", "10.88.0.8", false),
		owned("web-c4n4ry-0", canary.TrackCanary, "c4n4ry", "10.88.0.7", true),
	}
	for _, p := range pods {
		op, _ := store.PutPod(&corev1.Pod{ObjectMeta: p.ObjectMeta, Spec: p.Spec})
		ops = append(ops, op)
	}
	if err := lead.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if err := st.PutPodStatus(ctx, p.Namespace, p.Name, store.PodStatus{UID: p.UID, Node: cmp.Or(p.Spec.NodeName, "n1"), Status: p.Status}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// TestCanaries_stateSpecPodsAndWeightsWithoutTheTemplate: GET
// /api/v1/canaries/{ns}/{name} answers the stored state (never the pod
// template and its env values), the spec from main's annotations, the
// canary's pods, the stable pods, the weights and when the next step is
// due; the list and the status summary say the same; a Deployment without
// a canary is a 404 that says so.
func TestCanaries_stateSpecPodsAndWeightsWithoutTheTemplate(t *testing.T) {
	st := seedCanary(t)
	h := newHandler(t, st)
	var c CanaryStatus
	for _, path := range []string{"/api/v1/canaries/default/web", "/api/v1/canaries/web"} {
		rec := get(t, h, "GET", path, &c)
		if rec != 200 {
			t.Fatalf("%s: code %d", path, rec)
		}
	}
	if c.State.Template != nil {
		t.Errorf("the state carries its pod template")
	}
	if c.State.Phase != canary.Progressing || c.State.Hash != "c4n4ry" || c.State.Commit != "abc123def4567890" || len(c.State.Checks) != 2 || len(c.State.AbortedCommits) != 1 {
		t.Errorf("state = %+v", c.State)
	}
	if c.Spec == nil || c.Spec.Branch != "canary/web-v2" || len(c.Spec.Steps) != 3 || c.Spec.Interval != "2m0s" || c.Spec.Query == "" || c.Spec.Max == nil || *c.Spec.Max != 0.05 || c.Spec.FailureLimit != 1 {
		t.Errorf("spec = %+v", c.Spec)
	}
	if len(c.Pods) != 2 || c.Pods[0].Name != "web-c4n4ry-0" || !c.Pods[0].Ready || c.Pods[0].IP != "10.88.0.7" || c.Pods[0].Node != "n1" || c.Pods[1].Ready {
		t.Errorf("pods = %+v", c.Pods)
	}
	// 25% of 4 replicas: 1 pod.
	if c.Weight != 25 || c.StableWeight != 75 || c.Desired != 1 || c.Stable != 2 || c.StableReady != 2 || c.StableDesired != 4 {
		t.Errorf("weights %d/%d, desired %d, stable %d ready %d of %d", c.Weight, c.StableWeight, c.Desired, c.Stable, c.StableReady, c.StableDesired)
	}
	if want := canaryStarted.Add(4 * time.Minute); !c.NextStepAt.Equal(want) || !c.NextStepNeedsCheck {
		t.Errorf("next step at %v (needs check %v), want %v after a check", c.NextStepAt, c.NextStepNeedsCheck, want)
	}

	rec := getRaw(t, h, "/api/v1/canaries")
	if strings.Contains(rec, "tok-from-git-123") || strings.Contains(rec, "API_TOKEN") || strings.Contains(rec, `"template"`) {
		t.Errorf("the list shows the pod template: %s", rec)
	}
	var list CanaryList
	get(t, h, "GET", "/api/v1/canaries", &list)
	if len(list.Items) != 1 || list.Items[0].Name != "web" {
		t.Errorf("list = %+v", list.Items)
	}
	get(t, h, "GET", "/api/v1/canaries?namespace=other", &list)
	if len(list.Items) != 0 {
		t.Errorf("namespace other: %+v", list.Items)
	}

	var s Status
	get(t, h, "GET", "/api/v1/status", &s)
	want := CanarySummary{Namespace: "default", Name: "web", Branch: "canary/web-v2", Commit: "abc123def4", Phase: canary.Progressing,
		Weight: 25, Step: 2, Steps: 3, Ready: 1, Desired: 1, LastCheck: "metric: newest"}
	if len(s.Canaries) != 1 || s.Canaries[0] != want {
		t.Errorf("status canaries = %+v, want %+v", s.Canaries, want)
	}
	if raw := getRaw(t, h, "/api/v1/status"); strings.Contains(raw, "tok-from-git-123") {
		t.Errorf("status shows the template: %s", raw)
	}

	var e Error
	if code := get(t, h, "GET", "/api/v1/canaries/default/db", &e); code != 404 || !strings.Contains(e.Error, "names no canary branch") {
		t.Errorf("db: code %d, error %q", code, e.Error)
	}
	if code := get(t, h, "GET", "/api/v1/canaries/default/nope", &e); code != 404 || e.Error != "no canary for deployment default/nope: no such Deployment" {
		t.Errorf("nope: code %d, error %q", code, e.Error)
	}
}

// TestBuildCanaries_waitingEndedAndAborted: a Deployment that asks for a
// canary whose branch was never fetched is Waiting; an ended canary (no
// annotation any more) keeps its state and has no spec; an aborted one
// runs no pods and has no weight.
func TestBuildCanaries_waitingEndedAndAborted(t *testing.T) {
	ann := map[string]string{canary.AnnotationBranch: "canary/api", canary.AnnotationWeight: "10"}
	snap := &store.Snapshot{
		Deployments: []appsv1.Deployment{
			{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "api", Annotations: ann}},
			{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "web", Annotations: ann}},
			{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "old"}},
		},
		Canaries: []canary.State{
			{Namespace: "prod", Name: "web", Branch: "canary/api", Commit: "1234567890ab", Phase: canary.Aborted, Step: 0, Weight: 10,
				Reason: "readiness: pod web-x not ready for 30s"},
			{Namespace: "prod", Name: "old", Branch: "canary/old", Phase: canary.Promoted},
		},
	}
	got := BuildCanaries(snap)
	if len(got) != 3 || got[0].Name != "api" || got[1].Name != "old" || got[2].Name != "web" {
		t.Fatalf("canaries = %+v", got)
	}
	if s := got[0].Summary(); s.Phase != PhaseWaiting || s.Branch != "canary/api" || s.Step != 0 || !strings.Contains(s.Reason, "fetch branch canary/api") {
		t.Errorf("waiting = %+v", s)
	}
	if got[1].Spec != nil || got[1].State.Phase != canary.Promoted {
		t.Errorf("ended = %+v", got[1])
	}
	if s := got[2].Summary(); s.Weight != 0 || s.Desired != 0 || s.Step != 0 || s.Reason == "" {
		t.Errorf("aborted = %+v", s)
	}
}

func getRaw(t *testing.T, h http.Handler, path string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Body.String()
}
