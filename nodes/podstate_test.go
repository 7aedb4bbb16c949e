package nodes

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestBackoffDelay_doublesFromZeroToMax(t *testing.T) {
	base, max := 10*time.Second, 5*time.Minute
	want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for n, w := range want {
		if got := backoffDelay(n, base, max); got != w {
			t.Errorf("backoffDelay(%d) = %s, want %s", n, got, w)
		}
	}
	if got := backoffDelay(1000, base, max); got != max {
		t.Errorf("backoffDelay(1000) = %s, want max", got)
	}
}

func TestPlanExit(t *testing.T) {
	base, max := 10*time.Second, 5*time.Minute
	for _, tc := range []struct {
		name    string
		policy  corev1.RestartPolicy
		code    int32
		ranFor  time.Duration
		backoff int
		want    exitPlan
	}{
		{"always restarts success at once", corev1.RestartPolicyAlways, 0, time.Second, 0, exitPlan{true, 0, 1}},
		{"default policy is always", "", 1, time.Second, 0, exitPlan{true, 0, 1}},
		{"second crash waits base", corev1.RestartPolicyAlways, 1, time.Second, 1, exitPlan{true, 10 * time.Second, 2}},
		{"third crash doubles", corev1.RestartPolicyAlways, 1, time.Second, 2, exitPlan{true, 20 * time.Second, 3}},
		{"long run resets backoff", corev1.RestartPolicyAlways, 1, 10 * time.Minute, 5, exitPlan{true, 0, 1}},
		{"onFailure restarts failure", corev1.RestartPolicyOnFailure, 2, time.Second, 0, exitPlan{true, 0, 1}},
		{"onFailure keeps success", corev1.RestartPolicyOnFailure, 0, time.Second, 3, exitPlan{false, 0, 3}},
		{"never keeps failure", corev1.RestartPolicyNever, 137, time.Second, 0, exitPlan{false, 0, 0}},
	} {
		if got := planExit(tc.policy, tc.code, tc.ranFor, tc.backoff, base, max); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func running() corev1.ContainerStatus {
	return corev1.ContainerStatus{State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
}
func terminated(code int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
}
func waiting() corev1.ContainerStatus {
	return corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: ReasonContainerCreating}}}
}
func restarting(code int32) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: ReasonCrashLoopBackOff}}}
	cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: code}
	return cs
}

func TestPodPhase(t *testing.T) {
	A, O, N := corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever
	for _, tc := range []struct {
		name   string
		policy corev1.RestartPolicy
		cs     []corev1.ContainerStatus
		want   corev1.PodPhase
	}{
		{"no containers yet", A, nil, corev1.PodPending},
		{"one not started", A, []corev1.ContainerStatus{running(), waiting()}, corev1.PodPending},
		{"all running", A, []corev1.ContainerStatus{running(), running()}, corev1.PodRunning},
		{"crash looping is running", A, []corev1.ContainerStatus{restarting(1)}, corev1.PodRunning},
		{"never, one failed one running", N, []corev1.ContainerStatus{terminated(1), running()}, corev1.PodRunning},
		{"never, failed", N, []corev1.ContainerStatus{terminated(1), terminated(0)}, corev1.PodFailed},
		{"never, succeeded", N, []corev1.ContainerStatus{terminated(0), terminated(0)}, corev1.PodSucceeded},
		{"onFailure, succeeded", O, []corev1.ContainerStatus{terminated(0)}, corev1.PodSucceeded},
		{"onFailure, restarting failure", O, []corev1.ContainerStatus{restarting(1)}, corev1.PodRunning},
	} {
		spec := &corev1.PodSpec{RestartPolicy: tc.policy}
		for i := range tc.cs {
			tc.cs[i].Name = fmt.Sprintf("c%d", i)
			spec.Containers = append(spec.Containers, corev1.Container{Name: tc.cs[i].Name})
		}
		if got := podPhase(spec, nil, tc.cs); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestBuildStatus_readyOnlyWhenAllRunning(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "a"}, {Name: "side", Image: "b"}}}}
	recs := map[string]*containerRecord{
		"app": {Name: "app", ID: "x-app-0", Running: true, StartedAt: t0, RestartCount: 1,
			Last: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error"}},
	}
	st := buildStatus(statusInput{Pod: pod, Records: recs, PodIP: "10.0.0.2", HostIP: "192.0.2.1", StartTime: t0, Now: t0})
	if st.Phase != corev1.PodPending || st.PodIP != "10.0.0.2" || len(st.ContainerStatuses) != 2 {
		t.Fatalf("status = %+v", st)
	}
	app := st.ContainerStatuses[0]
	if !app.Ready || app.RestartCount != 1 || app.ContainerID != "containerd://x-app-0" || app.LastTerminationState.Terminated.ExitCode != 137 {
		t.Errorf("app status = %+v", app)
	}
	if w := st.ContainerStatuses[1].State.Waiting; w == nil || w.Reason != ReasonContainerCreating {
		t.Errorf("side status = %+v", st.ContainerStatuses[1])
	}
	for _, c := range st.Conditions {
		if c.Type == corev1.PodReady && c.Status != corev1.ConditionFalse {
			t.Errorf("Ready = %s with a container not running", c.Status)
		}
	}

	recs["side"] = &containerRecord{Name: "side", ID: "x-side-0", Running: true, StartedAt: t0}
	t1 := t0.Add(time.Minute)
	st2 := buildStatus(statusInput{Pod: pod, Records: recs, PodIP: "10.0.0.2", StartTime: t0, Prev: &st, Now: t1})
	if st2.Phase != corev1.PodRunning {
		t.Errorf("phase = %s", st2.Phase)
	}
	for _, c := range st2.Conditions {
		want := metav1.NewTime(t0) // unchanged conditions keep their time
		if c.Type == corev1.PodReady || c.Type == corev1.ContainersReady {
			want = metav1.NewTime(t1)
		}
		if c.Status != corev1.ConditionTrue || !c.LastTransitionTime.Equal(&want) {
			t.Errorf("condition %s = %s at %s, want True at %s", c.Type, c.Status, c.LastTransitionTime, want)
		}
	}
	// Rebuilding from unchanged records gives an equal status: no write.
	st3 := buildStatus(statusInput{Pod: pod, Records: recs, PodIP: "10.0.0.2", StartTime: t0, Prev: &st2, Now: t1.Add(time.Hour)})
	if !statusEqual(&st2, &st3) {
		t.Error("unchanged records built a different status")
	}
}

func TestProcessArgs_kubernetesSemantics(t *testing.T) {
	ep, cmd := []string{"/ep"}, []string{"--default"}
	for _, tc := range []struct {
		name          string
		command, args []string
		want          []string
	}{
		{"image defaults", nil, nil, []string{"/ep", "--default"}},
		{"args replace cmd", nil, []string{"-x"}, []string{"/ep", "-x"}},
		{"command replaces both", []string{"/bin/sh"}, nil, []string{"/bin/sh"}},
		{"command and args", []string{"/bin/sh"}, []string{"-c", "true"}, []string{"/bin/sh", "-c", "true"}},
	} {
		if got := processArgs(ep, cmd, tc.command, tc.args); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestPullPolicy_defaults(t *testing.T) {
	for img, want := range map[string]corev1.PullPolicy{
		"nginx":                    corev1.PullAlways,
		"nginx:latest":             corev1.PullAlways,
		"localhost:5000/app":       corev1.PullAlways,
		"localhost/bosun-hello:v1": corev1.PullIfNotPresent,
		"app@sha256:0123":          corev1.PullIfNotPresent,
	} {
		if got := pullPolicy(&corev1.Container{Image: img}); got != want {
			t.Errorf("%s: %s, want %s", img, got, want)
		}
	}
	if got := pullPolicy(&corev1.Container{Image: "nginx", ImagePullPolicy: corev1.PullNever}); got != corev1.PullNever {
		t.Errorf("explicit policy ignored: %s", got)
	}
}

func TestNames_boundedAndUnique(t *testing.T) {
	long := strings.Repeat("a", 200)
	id1 := containerID("default", long, "0a1b2c3d-0000", "app", 1)
	id2 := containerID("default", long, "0a1b2c3d-0000", "app", 2)
	if len(id1) > 76 || id1 == id2 {
		t.Errorf("ids %q (%d), %q", id1, len(id1), id2)
	}
	if got := containerID("default", "web", "0a1b2c3d-0000-1111", "app", 3); got != "default-web-app-0a1b2c3d-3" {
		t.Errorf("short id = %q", got)
	}
	if got := sandboxName("default", "web", "0a1b2c3d-0000"); got != "bosun-default-web-0a1b2c3d" {
		t.Errorf("sandbox = %q", got)
	}
}

func TestConfig_defaultsAndValidation(t *testing.T) {
	c := Config{NodeName: "n1", StateDir: t.TempDir(), PodCIDR: "10.89.3.7/24"}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.PodCIDR != "10.89.3.0/24" || c.DNSServer != "10.89.3.1" || c.Namespace != "bosun" || c.RestartBackoff != 10*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	if _, ok := c.Capacity[corev1.ResourcePods]; !ok {
		t.Error("no pods capacity")
	}
	for name, bad := range map[string]Config{
		"no node name":  {StateDir: "/x"},
		"no state dir":  {NodeName: "n"},
		"bad cidr":      {NodeName: "n", StateDir: "/x", PodCIDR: "10.0.0.0"},
		"ipv6 cidr":     {NodeName: "n", StateDir: "/x", PodCIDR: "fd00::/64"},
		"long bridge":   {NodeName: "n", StateDir: "/x", BridgeName: "a-very-long-bridge-name"},
		"bad node name": {NodeName: "N_1", StateDir: "/x"},
	} {
		if err := bad.setDefaults(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
