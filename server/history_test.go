package server

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/manifest"
	"bosun/reconciler"
	"bosun/store"
)

func entry(commit, result string) store.HistoryEntry {
	return store.HistoryEntry{Revision: store.Revision{Commit: commit}, Result: result}
}

func results(b *book) []string {
	var out []string
	for _, e := range b.entries {
		out = append(out, e.Commit+":"+e.Result)
	}
	return out
}

func TestBook_newerRevisionSupersedesAndHistoryIsBounded(t *testing.T) {
	b := &book{limit: 3}
	b.add(entry("a", store.ResultProgressing))
	// A rejected revision supersedes nothing: the rollout goes on.
	b.add(entry("b", store.ResultRejected))
	if got := results(b); got[1] != "a:progressing" {
		t.Fatalf("after a rejection: %v", got)
	}
	ops := b.add(entry("c", store.ResultProgressing))
	if got := results(b); got[0] != "c:progressing" || got[2] != "a:superseded" {
		t.Fatalf("after c: %v", got)
	}
	if len(ops) != 2 { // a superseded, c added
		t.Fatalf("ops = %v", ops)
	}
	ops = b.add(entry("d", store.ResultRejected))
	if got := results(b); len(got) != 3 || got[2] != "b:rejected" {
		t.Fatalf("bounded to 3: %v", got)
	}
	if last := ops[len(ops)-1].String(); last != "delete /bosun/history/00000000000000000001" {
		t.Fatalf("last op = %s, want the oldest entry deleted", last)
	}
	if b.entries[0].Seq != 4 {
		t.Fatalf("seq = %d, want 4", b.entries[0].Seq)
	}
}

func deployment(replicas int32, image string) appsv1.Deployment {
	return appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}}}},
		},
	}
}

func TestRolloutOutcome(t *testing.T) {
	want := deployment(2, "v2")
	set := &manifest.Set{Deployments: []appsv1.Deployment{want}}
	complete := deployment(2, "v2")
	complete.Status = appsv1.DeploymentStatus{Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2, ReadyReplicas: 2}
	for _, tc := range []struct {
		name         string
		observed     appsv1.Deployment
		done, failed bool
	}{
		{"the previous template's status does not count", func() appsv1.Deployment {
			d := deployment(2, "v1")
			d.Status = complete.Status
			return d
		}(), false, false},
		{"in progress", func() appsv1.Deployment {
			d := deployment(2, "v2")
			d.Status = appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 1, AvailableReplicas: 2}
			return d
		}(), false, false},
		{"complete", complete, true, false},
		{"deadline exceeded", func() appsv1.Deployment {
			d := deployment(2, "v2")
			hash := manifest.TemplateHash(&d.Spec.Template)
			d.Annotations = map[string]string{reconciler.AnnotationRevisionHistory: `[{"revision":1,"hash":"` + hash + `"}]`}
			d.Status.Conditions = []appsv1.DeploymentCondition{{
				Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: reconciler.ReasonProgressDeadlineExceeded,
				Message: `ReplicaSet "web-` + hash + `" has timed out progressing.`,
			}}
			return d
		}(), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done, failed, msg := reconciler.RevisionOutcome(set, reconciler.Observed{Deployments: []appsv1.Deployment{tc.observed}})
			if done != tc.done || failed != tc.failed {
				t.Errorf("done %v failed %v (%q), want %v %v", done, failed, msg, tc.done, tc.failed)
			}
		})
	}
}

func TestBook_settleRecordsTimeToReady(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := &book{limit: 10}
	e := entry("a", store.ResultProgressing)
	e.SeenAt = t0
	b.add(e)
	d := deployment(1, "v1")
	d.Status = appsv1.DeploymentStatus{Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1, ReadyReplicas: 1}
	set := &manifest.Set{Deployments: []appsv1.Deployment{deployment(1, "v1")}}
	if ops := b.settle(set, reconciler.Observed{Deployments: []appsv1.Deployment{d}}, t0.Add(1500*time.Millisecond)); len(ops) != 1 {
		t.Fatalf("ops = %v", ops)
	}
	if got := b.entries[0]; got.Result != store.ResultApplied || time.Duration(got.ReadyAfter) != 1500*time.Millisecond {
		t.Fatalf("entry = %+v", got)
	}
	if ops := b.settle(set, reconciler.Observed{}, t0.Add(time.Hour)); ops != nil {
		t.Fatalf("a settled entry settled again: %v", ops)
	}
}

// TestRolloutOutcome_standalonePods: a standalone Pod settles once the pod
// of this revision's spec is ready or done; one that failed for good fails
// the revision, saying why.
func TestRolloutOutcome_standalonePods(t *testing.T) {
	want := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "task"},
		Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "app", Image: "task:2"}}},
	}
	set := &manifest.Set{Pods: []corev1.Pod{want}}
	observed := func(hashOf *corev1.Pod, phase corev1.PodPhase, exit int32) reconciler.Observed {
		p := want.DeepCopy()
		p.Annotations = map[string]string{reconciler.AnnotationSpecHash: reconciler.SpecHash(hashOf)}
		p.Status.Phase = phase
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: exit, Reason: map[bool]string{true: "Completed", false: "Error"}[exit == 0]}}}}
		return reconciler.Observed{Pods: []*corev1.Pod{p}}
	}
	old := want.DeepCopy()
	old.Spec.Containers[0].Image = "task:1"
	for _, tc := range []struct {
		name         string
		observed     reconciler.Observed
		done, failed bool
		msg          string
	}{
		{"not there yet", reconciler.Observed{}, false, false, ""},
		{"the previous spec's pod does not count", observed(old, corev1.PodSucceeded, 0), false, false, ""},
		{"succeeded", observed(&want, corev1.PodSucceeded, 0), true, false, ""},
		{"failed for good", observed(&want, corev1.PodFailed, 3), false, true, "Pod default/task failed: container app exited with 3 (Error)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done, failed, msg := reconciler.RevisionOutcome(set, tc.observed)
			if done != tc.done || failed != tc.failed || msg != tc.msg {
				t.Errorf("done %v failed %v %q, want %v %v %q", done, failed, msg, tc.done, tc.failed, tc.msg)
			}
		})
	}
}
