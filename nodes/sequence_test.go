package nodes

import (
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Record builders for the sequence tables.
func recRunning(name string) *containerRecord {
	return &containerRecord{Name: name, ID: name + "-0", Running: true}
}
func recPendingHook(name string) *containerRecord {
	r := recRunning(name)
	r.PostStartPending = true
	return r
}
func recStarting(name string) *containerRecord { // running, startup probe not passed
	r := recRunning(name)
	r.Probes = &containerProbes{tracks: [numProbeKinds]*probeTrack{probeStartup: {}}}
	return r
}
func recDone(name string, code int32) *containerRecord {
	return &containerRecord{Name: name, ID: name + "-0", Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}
}
func recRestarting(name string, code int32) *containerRecord {
	return &containerRecord{Name: name, ID: name + "-0", Last: &corev1.ContainerStateTerminated{ExitCode: code},
		Waiting: &corev1.ContainerStateWaiting{Reason: ReasonCrashLoopBackOff}}
}

var always = corev1.ContainerRestartPolicyAlways

// seqSpec is a pod with init containers i1, s1 (a sidecar), i2 and app
// containers a1, a2.
func seqSpec(policy corev1.RestartPolicy) *corev1.PodSpec {
	return &corev1.PodSpec{
		RestartPolicy: policy,
		InitContainers: []corev1.Container{
			{Name: "i1"}, {Name: "s1", RestartPolicy: &always}, {Name: "i2"},
		},
		Containers: []corev1.Container{{Name: "a1"}, {Name: "a2"}},
	}
}

func recs(rs ...*containerRecord) map[string]*containerRecord {
	m := map[string]*containerRecord{}
	for _, r := range rs {
		m[r.Name] = r
	}
	return m
}

func TestPlanPod_initSequence(t *testing.T) {
	A, N := corev1.RestartPolicyAlways, corev1.RestartPolicyNever
	for _, tc := range []struct {
		name   string
		policy corev1.RestartPolicy
		recs   map[string]*containerRecord
		want   podPlan
	}{
		{"nothing ran: the first init container starts", A, recs(),
			podPlan{Start: []string{"i1"}}},
		{"an init container running: wait", A, recs(recRunning("i1")),
			podPlan{}},
		{"first completed: the sidecar starts", A, recs(recDone("i1", 0)),
			podPlan{Start: []string{"s1"}}},
		{"sidecar running without probe or hook counts as started", A, recs(recDone("i1", 0), recRunning("s1")),
			podPlan{Start: []string{"i2"}}},
		{"sidecar waiting for its startup probe holds the next", A, recs(recDone("i1", 0), recStarting("s1")),
			podPlan{}},
		{"sidecar waiting for its postStart hook holds the next", A, recs(recDone("i1", 0), recPendingHook("s1")),
			podPlan{}},
		{"a failing init container is restarted (backoff is the worker's)", A, recs(recRestarting("i1", 1)),
			podPlan{Start: []string{"i1"}}},
		{"under Never a failed init container fails the pod", N, recs(recDone("i1", 1)),
			podPlan{InitFailed: true, Done: true}},
		{"under Never a failed init container stops the running sidecar", N, recs(recDone("i1", 0), recRunning("s1"), recDone("i2", 2)),
			podPlan{InitFailed: true, Done: true, StopNext: "s1"}},
		{"all init done: app containers start in order", A, recs(recDone("i1", 0), recRunning("s1"), recDone("i2", 0)),
			podPlan{Initialized: true, Start: []string{"a1", "a2"}}},
		{"a crashed sidecar restarts while the next init container runs", A, recs(recDone("i1", 0), recRestarting("s1", 1), recRunning("i2")),
			podPlan{Start: []string{"s1"}}},
		{"an app container's pending postStart holds back the next", A,
			recs(recDone("i1", 0), recRunning("s1"), recDone("i2", 0), recPendingHook("a1")),
			podPlan{Initialized: true}},
		{"a crashed sidecar restarts once initialized", A,
			recs(recDone("i1", 0), recRestarting("s1", 137), recDone("i2", 0), recRunning("a1"), recRunning("a2")),
			podPlan{Initialized: true, Start: []string{"s1"}}},
		{"once an app container ran, init containers never run again", A,
			recs(recRestarting("a1", 1)),
			podPlan{Initialized: true, Start: []string{"s1", "a1", "a2"}}},
		{"app containers done under Never: the sidecar stops", N,
			recs(recDone("i1", 0), recRunning("s1"), recDone("i2", 0), recDone("a1", 0), recDone("a2", 1)),
			podPlan{Initialized: true, Done: true, StopNext: "s1"}},
		{"done and the sidecar stopped: nothing more", N,
			recs(recDone("i1", 0), recDone("s1", 143), recDone("i2", 0), recDone("a1", 0), recDone("a2", 0)),
			podPlan{Initialized: true, Done: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := planPod(seqSpec(tc.policy), tc.recs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPlanPod_sidecarsStopLastFirst(t *testing.T) {
	spec := &corev1.PodSpec{RestartPolicy: corev1.RestartPolicyOnFailure,
		InitContainers: []corev1.Container{{Name: "s1", RestartPolicy: &always}, {Name: "s2", RestartPolicy: &always}},
		Containers:     []corev1.Container{{Name: "app"}},
	}
	rs := recs(recRunning("s1"), recRunning("s2"), recDone("app", 0))
	if p := planPod(spec, rs); p.StopNext != "s2" || !p.Done {
		t.Fatalf("first stop: %+v", p)
	}
	rs["s2"] = recDone("s2", 0)
	if p := planPod(spec, rs); p.StopNext != "s1" {
		t.Fatalf("second stop: %+v", p)
	}
	// OnFailure and an app container that failed: it restarts, the pod
	// is not done and the sidecars keep running.
	rs = recs(recRunning("s1"), recRunning("s2"), recRestarting("app", 1))
	if p := planPod(spec, rs); p.Done || p.StopNext != "" || !reflect.DeepEqual(p.Start, []string{"app"}) {
		t.Fatalf("restarting app: %+v", p)
	}
}

func TestRestartPolicyFor(t *testing.T) {
	for _, tc := range []struct {
		pod       corev1.RestartPolicy
		container string
		want      corev1.RestartPolicy
	}{
		{corev1.RestartPolicyAlways, "i1", corev1.RestartPolicyOnFailure},
		{corev1.RestartPolicyOnFailure, "i1", corev1.RestartPolicyOnFailure},
		{corev1.RestartPolicyNever, "i1", corev1.RestartPolicyNever},
		{corev1.RestartPolicyNever, "s1", corev1.RestartPolicyAlways},
		{corev1.RestartPolicyNever, "a1", corev1.RestartPolicyNever},
		{corev1.RestartPolicyAlways, "a1", corev1.RestartPolicyAlways},
	} {
		if got := restartPolicyFor(seqSpec(tc.pod), tc.container); got != tc.want {
			t.Errorf("pod %s, container %s: %s, want %s", tc.pod, tc.container, got, tc.want)
		}
	}
}

func TestPodPhase_initContainersAndSidecars(t *testing.T) {
	A, O, N := corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever
	for _, tc := range []struct {
		name   string
		policy corev1.RestartPolicy
		recs   map[string]*containerRecord
		want   corev1.PodPhase
	}{
		{"nothing ran", A, recs(), corev1.PodPending},
		{"init running", A, recs(recRunning("i1")), corev1.PodPending},
		{"init crash looping", A, recs(recRestarting("i1", 1)), corev1.PodPending},
		{"init failed under Never", N, recs(recDone("i1", 1)), corev1.PodFailed},
		{"sidecar not started yet", A, recs(recDone("i1", 0), recStarting("s1")), corev1.PodPending},
		{"app running", A, recs(recDone("i1", 0), recRunning("s1"), recDone("i2", 0), recRunning("a1"), recRunning("a2")), corev1.PodRunning},
		{"app running, sidecar restarting", A, recs(recDone("i1", 0), recRestarting("s1", 1), recDone("i2", 0), recRunning("a1"), recRunning("a2")), corev1.PodRunning},
		{"apps done under Never, sidecar still running", N, recs(recDone("i1", 0), recRunning("s1"), recDone("i2", 0), recDone("a1", 0), recDone("a2", 0)), corev1.PodRunning},
		{"apps succeeded, sidecar stopped", N, recs(recDone("i1", 0), recDone("s1", 143), recDone("i2", 0), recDone("a1", 0), recDone("a2", 0)), corev1.PodSucceeded},
		{"an app failed, sidecar stopped", N, recs(recDone("i1", 0), recDone("s1", 0), recDone("i2", 0), recDone("a1", 0), recDone("a2", 1)), corev1.PodFailed},
		{"OnFailure, apps succeeded", O, recs(recDone("i1", 0), recDone("s1", 0), recDone("i2", 0), recDone("a1", 0), recDone("a2", 0)), corev1.PodSucceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: *seqSpec(tc.policy)}
			st := buildStatus(statusInput{Pod: pod, Records: tc.recs})
			if st.Phase != tc.want {
				t.Errorf("phase %s, want %s", st.Phase, tc.want)
			}
		})
	}
}

func TestBuildStatus_initContainers(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pod := &corev1.Pod{Spec: *seqSpec(corev1.RestartPolicyAlways)}
	cond := func(st corev1.PodStatus, ct corev1.PodConditionType) corev1.PodCondition {
		for _, c := range st.Conditions {
			if c.Type == ct {
				return c
			}
		}
		t.Fatalf("no condition %s", ct)
		return corev1.PodCondition{}
	}

	// Before anything ran every container waits in PodInitializing.
	st := buildStatus(statusInput{Pod: pod, Records: recs(), Now: t0})
	if len(st.InitContainerStatuses) != 3 || len(st.ContainerStatuses) != 2 {
		t.Fatalf("statuses: %d init, %d app", len(st.InitContainerStatuses), len(st.ContainerStatuses))
	}
	for _, cs := range append(st.InitContainerStatuses, st.ContainerStatuses...) {
		if cs.State.Waiting == nil || cs.State.Waiting.Reason != ReasonPodInitializing {
			t.Errorf("%s: %+v, want waiting PodInitializing", cs.Name, cs.State)
		}
	}
	if c := cond(st, corev1.PodInitialized); c.Status != corev1.ConditionFalse || c.Reason != ReasonContainersNotInitialized ||
		c.Message != "containers with incomplete status: [i1 s1 i2]" {
		t.Errorf("Initialized = %+v", c)
	}

	// i1 done, the sidecar running but not started (its startup probe):
	// i1 reads ready (completed), the sidecar neither started nor ready.
	rs := recs(recDone("i1", 0), recStarting("s1"))
	st = buildStatus(statusInput{Pod: pod, Records: rs, Now: t0})
	i1, s1 := st.InitContainerStatuses[0], st.InitContainerStatuses[1]
	if !i1.Ready || i1.State.Terminated == nil || s1.Ready || s1.Started == nil || *s1.Started || s1.State.Running == nil {
		t.Errorf("i1 %+v\ns1 %+v", i1, s1)
	}
	if c := cond(st, corev1.PodInitialized); c.Message != "containers with incomplete status: [s1 i2]" {
		t.Errorf("Initialized = %+v", c)
	}

	// Initialized, apps running, the sidecar counts toward readiness.
	rs = recs(recDone("i1", 0), recRunning("s1"), recDone("i2", 0), recRunning("a1"), recRunning("a2"))
	st = buildStatus(statusInput{Pod: pod, Records: rs, Now: t0})
	if c := cond(st, corev1.PodInitialized); c.Status != corev1.ConditionTrue {
		t.Errorf("Initialized = %+v", c)
	}
	if c := cond(st, corev1.PodReady); c.Status != corev1.ConditionTrue || st.Phase != corev1.PodRunning {
		t.Errorf("Ready = %+v, phase %s", c, st.Phase)
	}
	rs["s1"] = recRestarting("s1", 1)
	st = buildStatus(statusInput{Pod: pod, Records: rs, Now: t0})
	if c := cond(st, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Message != "containers with unready status: [s1]" {
		t.Errorf("Ready with the sidecar restarting = %+v", c)
	}
	if c := cond(st, corev1.PodInitialized); c.Status != corev1.ConditionTrue {
		t.Errorf("a restarting sidecar un-initialized the pod: %+v", c)
	}

	// A container whose postStart hook runs is running, not started.
	rs = recs(recDone("i1", 0), recRunning("s1"), recDone("i2", 0), recPendingHook("a1"))
	st = buildStatus(statusInput{Pod: pod, Records: rs, Now: t0})
	if a1 := st.ContainerStatuses[0]; a1.State.Running == nil || *a1.Started || a1.Ready {
		t.Errorf("a1 with its hook running: %+v", a1)
	}
	if a2 := st.ContainerStatuses[1]; a2.State.Waiting == nil || a2.State.Waiting.Reason != ReasonPodInitializing {
		t.Errorf("a2 = %+v", a2.State)
	}

	// A sidecar's probes are in the Probes condition.
	side := corev1.Container{Name: "s1", RestartPolicy: &always, ReadinessProbe: httpProbe(1, 1)}
	pod2 := &corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{side}, Containers: []corev1.Container{{Name: "app"}}}}
	st = buildStatus(statusInput{Pod: pod2, Records: recs(), Now: t0})
	if c := cond(st, ConditionProbes); !strings.Contains(c.Message, "s1 readiness: not yet probed") {
		t.Errorf("Probes = %+v", c)
	}
}
