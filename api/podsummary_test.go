package api

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/store"
)

func csRunning(name string, ready bool, restarts int32) corev1.ContainerStatus {
	started := true
	return corev1.ContainerStatus{Name: name, Ready: ready, Started: &started, RestartCount: restarts,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
}
func csWaiting(name, reason string, restarts int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, RestartCount: restarts,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}
}
func csDone(name string, code int32, reason string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason}}}
}

func TestSummarizePod_kubectlStatusColumn(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	twoInits := []corev1.Container{{Name: "i1"}, {Name: "i2"}}
	withSidecar := []corev1.Container{{Name: "proxy", RestartPolicy: &always}}
	initialized := func(ok bool) []corev1.PodCondition {
		st := corev1.ConditionFalse
		if ok {
			st = corev1.ConditionTrue
		}
		return []corev1.PodCondition{{Type: corev1.PodInitialized, Status: st}, {Type: corev1.PodReady, Status: st}}
	}
	for _, tc := range []struct {
		name    string
		inits   []corev1.Container
		status  corev1.PodStatus
		deleted bool
		want    PodSummary
	}{
		{"running", nil, corev1.PodStatus{Phase: corev1.PodRunning, Conditions: initialized(true),
			ContainerStatuses: []corev1.ContainerStatus{csRunning("app", true, 2)}},
			false, PodSummary{Ready: 1, Total: 1, Status: "Running", Restarts: 2}},
		{"first init container running", twoInits, corev1.PodStatus{Phase: corev1.PodPending, Conditions: initialized(false),
			InitContainerStatuses: []corev1.ContainerStatus{csRunning("i1", false, 0), csWaiting("i2", "PodInitializing", 0)},
			ContainerStatuses:     []corev1.ContainerStatus{csWaiting("app", "PodInitializing", 0)}},
			false, PodSummary{Total: 1, Status: "Init:0/2"}},
		{"second init container running", twoInits, corev1.PodStatus{Phase: corev1.PodPending, Conditions: initialized(false),
			InitContainerStatuses: []corev1.ContainerStatus{csDone("i1", 0, "Completed"), csRunning("i2", false, 0)},
			ContainerStatuses:     []corev1.ContainerStatus{csWaiting("app", "PodInitializing", 0)}},
			false, PodSummary{Total: 1, Status: "Init:1/2"}},
		{"init container failed", twoInits, corev1.PodStatus{Phase: corev1.PodFailed, Conditions: initialized(false),
			InitContainerStatuses: []corev1.ContainerStatus{csDone("i1", 1, "Error"), csWaiting("i2", "PodInitializing", 0)},
			ContainerStatuses:     []corev1.ContainerStatus{csWaiting("app", "PodInitializing", 0)}},
			false, PodSummary{Total: 1, Status: "Init:Error"}},
		{"init container crash looping", twoInits, corev1.PodStatus{Phase: corev1.PodPending, Conditions: initialized(false),
			InitContainerStatuses: []corev1.ContainerStatus{csWaiting("i1", "CrashLoopBackOff", 4), csWaiting("i2", "PodInitializing", 0)},
			ContainerStatuses:     []corev1.ContainerStatus{csWaiting("app", "PodInitializing", 0)}},
			false, PodSummary{Total: 1, Status: "Init:CrashLoopBackOff", Restarts: 4}},
		{"init done, app being created", twoInits, corev1.PodStatus{Phase: corev1.PodPending, Conditions: initialized(true),
			InitContainerStatuses: []corev1.ContainerStatus{csDone("i1", 0, "Completed"), csDone("i2", 0, "Completed")},
			ContainerStatuses:     []corev1.ContainerStatus{csWaiting("app", "PodInitializing", 0)}},
			false, PodSummary{Total: 1, Status: "PodInitializing"}},
		{"sidecar and app ready", withSidecar, corev1.PodStatus{Phase: corev1.PodRunning, Conditions: initialized(true),
			InitContainerStatuses: []corev1.ContainerStatus{csRunning("proxy", true, 1)},
			ContainerStatuses:     []corev1.ContainerStatus{csRunning("app", true, 0)}},
			false, PodSummary{Ready: 2, Total: 2, Status: "Running", Restarts: 1}},
		{"sidecar not started yet", withSidecar, corev1.PodStatus{Phase: corev1.PodPending, Conditions: initialized(false),
			InitContainerStatuses: []corev1.ContainerStatus{{Name: "proxy", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
			ContainerStatuses:     []corev1.ContainerStatus{csWaiting("app", "PodInitializing", 0)}},
			false, PodSummary{Total: 2, Status: "Init:0/1"}},
		{"job done, sidecar stopped", withSidecar, corev1.PodStatus{Phase: corev1.PodSucceeded, Conditions: initialized(true),
			InitContainerStatuses: []corev1.ContainerStatus{csDone("proxy", 0, "Completed")},
			ContainerStatuses:     []corev1.ContainerStatus{csDone("job", 0, "Completed")}},
			false, PodSummary{Total: 2, Status: "Completed"}},
		{"app failed", nil, corev1.PodStatus{Phase: corev1.PodFailed,
			ContainerStatuses: []corev1.ContainerStatus{csDone("app", 1, "Error")}},
			false, PodSummary{Total: 1, Status: "Error"}},
		{"app crash looping", nil, corev1.PodStatus{Phase: corev1.PodRunning,
			ContainerStatuses: []corev1.ContainerStatus{csWaiting("app", "CrashLoopBackOff", 5)}},
			false, PodSummary{Total: 1, Status: "CrashLoopBackOff", Restarts: 5}},
		{"unschedulable", nil, corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable"}}},
			false, PodSummary{Status: "Pending(Unschedulable)"}},
		{"being deleted", nil, corev1.PodStatus{Phase: corev1.PodRunning,
			ContainerStatuses: []corev1.ContainerStatus{csRunning("app", true, 0)}},
			true, PodSummary{Ready: 1, Total: 1, Status: "Terminating"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{Spec: corev1.PodSpec{InitContainers: tc.inits}, Status: tc.status}
			for _, cs := range tc.status.ContainerStatuses {
				p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: cs.Name})
			}
			if tc.deleted {
				now := metav1.Now()
				p.DeletionTimestamp = &now
			}
			if got := SummarizePod(p); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestBuildStatus_listsInitializingPods(t *testing.T) {
	p := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec:       corev1.PodSpec{InitContainers: []corev1.Container{{Name: "setup"}}, Containers: []corev1.Container{{Name: "app"}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending,
			Conditions:            []corev1.PodCondition{{Type: corev1.PodInitialized, Status: corev1.ConditionFalse}},
			InitContainerStatuses: []corev1.ContainerStatus{csWaiting("setup", "CrashLoopBackOff", 3)},
			ContainerStatuses:     []corev1.ContainerStatus{csWaiting("app", "PodInitializing", 0)}},
	}
	st := BuildStatus("", &store.Snapshot{Pods: []*corev1.Pod{&p}})
	if want := []string{"default/web: Init:CrashLoopBackOff"}; !reflect.DeepEqual(st.Pods.Initializing, want) {
		t.Errorf("initializing = %q, want %q", st.Pods.Initializing, want)
	}
}
