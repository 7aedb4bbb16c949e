package nodes_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"bosun/nodes"
	"bosun/nodes/containerdtest"
	"bosun/store"
)

// hello is a container of the example image; with args it runs the
// image's task mode (-print, -sleep, -write, -exit) instead of serving.
func hello(name string, args ...string) corev1.Container {
	return corev1.Container{Name: name, Image: containerdtest.HelloRef("v1"), Args: args}
}

// sidecar is a sidecar init container serving on port, started once its
// startup probe answers.
func sidecar(name string, port int32) corev1.Container {
	always := corev1.ContainerRestartPolicyAlways
	c := hello(name)
	c.RestartPolicy = &always
	c.Env = []corev1.EnvVar{{Name: "PORT", Value: fmt.Sprint(port)}}
	c.StartupProbe = httpGetProbe("/healthz", intstr.FromInt32(port), 30)
	return c
}

func lifecyclePod(name string, uid types.UID, policy corev1.RestartPolicy, inits []corev1.Container, apps ...corev1.Container) *corev1.Pod {
	p := helloPod(name, uid)
	p.Spec.RestartPolicy = policy
	p.Spec.InitContainers = inits
	if len(apps) > 0 {
		p.Spec.Containers = apps
	}
	return p
}

func initStatus(ps store.PodStatus, name string) corev1.ContainerStatus {
	for _, cs := range ps.Status.InitContainerStatuses {
		if cs.Name == name {
			return cs
		}
	}
	return corev1.ContainerStatus{}
}

func phase(p corev1.PodPhase) func(*store.PodStatus) bool {
	return func(ps *store.PodStatus) bool { return ps != nil && ps.Status.Phase == p }
}

// ctrFacts are what containerd knows of a container: its labels and when
// it was created (nanoseconds, unlike the status' times).
func (h *harness) ctrFacts(cs corev1.ContainerStatus) (map[string]string, time.Time) {
	h.t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	c, err := h.ctd.LoadContainer(ctx, strings.TrimPrefix(cs.ContainerID, "containerd://"))
	if err != nil {
		h.t.Fatalf("container of %s: %v", cs.Name, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return info.Labels, info.CreatedAt
}

// exitedFacts is ctrFacts of an exited container once the agent has
// labelled it with its exit: the agent writes the label while it reaps the
// task, after the status reports the exit, so on a loaded machine the
// status can come first.
func (h *harness) exitedFacts(cs corev1.ContainerStatus) (map[string]string, time.Time) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		labels, created := h.ctrFacts(cs)
		if labels[nodes.LabelFinishedAt] != "" || time.Now().After(deadline) {
			return labels, created
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func finishedAt(t testing.TB, labels map[string]string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, labels[nodes.LabelFinishedAt])
	if err != nil {
		t.Fatalf("finished-at label: %v (labels %v)", err, labels)
	}
	return at
}

// taskRunning reports whether the container's task runs (false once it or
// the container is gone).
func (h *harness) taskRunning(id string) bool {
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	c, err := h.ctd.LoadContainer(ctx, id)
	if err != nil {
		return false
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		return false
	}
	st, err := task.Status(ctx)
	return err == nil && st.Status == client.Running
}

// TestAgent_initContainersSidecarsAndHooks runs pods with init containers,
// sidecars, postStart hooks and gRPC probes on a real containerd, through
// an agent restart and deletion.
func TestAgent_initContainersSidecarsAndHooks(t *testing.T) {
	h := newHarness(t)
	h.startAgent()
	A, N := corev1.RestartPolicyAlways, corev1.RestartPolicyNever

	h.putPod(lifecyclePod("init", "b1", A, []corev1.Container{
		hello("one", "-print", "first init container", "-sleep", "300ms"),
		hello("two", "-print", "second init container"),
	}))
	h.putPod(lifecyclePod("initfail", "b2", A, []corev1.Container{hello("setup", "-print", "failing", "-exit", "1")}))
	h.putPod(lifecyclePod("initnever", "b3", N, []corev1.Container{hello("setup", "-exit", "3")}))
	needsSidecar := hello("app")
	needsSidecar.Env = []corev1.EnvVar{{Name: "REQUIRE_AT_START", Value: "http://127.0.0.1:9090/healthz"}, {Name: "DRAIN_FOR", Value: "1500ms"}}
	h.putPod(lifecyclePod("sidecar", "b4", A, []corev1.Container{sidecar("proxy", 9090)}, needsSidecar))
	// The sidecar's name sorts before the app's: adoption must not restart
	// it before it has seen that the app is done.
	h.putPod(lifecyclePod("complete", "b5", N, []corev1.Container{sidecar("a-shipper", 9090)}, hello("job", "-print", "done", "-sleep", "300ms")))
	hooked := hello("app")
	hooked.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
		Command: []string{"/bosun-hello", "-write", "/tmp/hook=ran", "-sleep", "1s"}}}}
	h.putPod(lifecyclePod("hooks", "b6", A, nil, hooked))
	failingHook := hello("app")
	failingHook.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
		Command: []string{"/bosun-hello", "-print", "hook says no", "-exit", "2"}}}}
	h.putPod(lifecyclePod("hookfail", "b7", A, nil, failingHook))
	grpcApp := func(fail string) corev1.Container {
		c := hello("app")
		c.Env = []corev1.EnvVar{{Name: "GRPC_PORT", Value: "9000"}, {Name: "FAIL_GRPC", Value: fail}}
		service := "hello"
		c.ReadinessProbe = probe(corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9000, Service: &service}}, 1)
		return c
	}
	h.putPod(lifecyclePod("grpc", "b8", A, nil, grpcApp("0")))
	h.putPod(lifecyclePod("grpcfail", "b9", A, nil, grpcApp("1")))

	t.Log("init containers run in order, each to completion, before the app")
	func() {
		ps := h.waitStatus("default", "init", 30*time.Second, "running", running)
		one, two, app := initStatus(ps, "one"), initStatus(ps, "two"), containerStatus(ps, "app")
		for _, cs := range []corev1.ContainerStatus{one, two} {
			if term := cs.State.Terminated; term == nil || term.ExitCode != 0 || term.Reason != "Completed" || !cs.Ready {
				t.Errorf("%s: %+v ready=%v", cs.Name, cs.State, cs.Ready)
			}
		}
		oneLabels, _ := h.exitedFacts(one)
		twoLabels, twoCreated := h.exitedFacts(two)
		_, appCreated := h.ctrFacts(app)
		if oneDone, twoDone := finishedAt(t, oneLabels), finishedAt(t, twoLabels); !oneDone.Before(twoCreated) || !twoDone.Before(appCreated) {
			t.Errorf("out of order: one finished %s, two created %s, finished %s, app created %s",
				oneDone.Format(time.StampMicro), twoCreated.Format(time.StampMicro), twoDone.Format(time.StampMicro), appCreated.Format(time.StampMicro))
		} else {
			t.Logf("one finished -> two created %s; two finished -> app created %s",
				twoCreated.Sub(oneDone).Round(time.Millisecond), appCreated.Sub(twoDone).Round(time.Millisecond))
		}
		var log strings.Builder
		if err := nodes.WriteLogs(context.Background(), h.cfg.StateDir, nodes.LogOptions{Namespace: "default", Pod: "init", Container: "one"}, &log); err != nil ||
			log.String() != "first init container\n" {
			t.Errorf("log of init container one = %q, %v", log.String(), err)
		}
		if c := condition(&ps, corev1.PodInitialized); c.Status != corev1.ConditionTrue {
			t.Errorf("Initialized = %+v", c)
		}
	}()

	t.Log("an app restart does not run init containers again")
	func() {
		ps := h.waitStatus("default", "init", time.Second, "present", running)
		before := h.containers()["init"]
		pid := h.taskPid(strings.TrimPrefix(containerStatus(ps, "app").ContainerID, "containerd://"))
		if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		ps = h.waitStatus("default", "init", 20*time.Second, "app restarted", func(ps *store.PodStatus) bool {
			return running(ps) && containerStatus(*ps, "app").RestartCount == 1
		})
		for _, name := range []string{"one", "two"} {
			if cs := initStatus(ps, name); cs.RestartCount != 0 || cs.State.Terminated == nil {
				t.Errorf("%s after the app's restart: %+v", name, cs)
			}
		}
		after := h.containers()["init"]
		if len(after) != len(before) {
			t.Errorf("containers before %v, after %v", before, after)
		}
	}()

	t.Log("a failing init container crash-loops and holds the app")
	func() {
		ps := h.waitStatus("default", "initfail", 30*time.Second, "in CrashLoopBackOff", func(ps *store.PodStatus) bool {
			if ps == nil {
				return false
			}
			cs := initStatus(*ps, "setup")
			return cs.RestartCount >= 2 && cs.State.Waiting != nil && cs.State.Waiting.Reason == nodes.ReasonCrashLoopBackOff
		})
		if ps.Status.Phase != corev1.PodPending {
			t.Errorf("phase %s", ps.Status.Phase)
		}
		if w := containerStatus(ps, "app").State.Waiting; w == nil || w.Reason != nodes.ReasonPodInitializing {
			t.Errorf("app = %+v", containerStatus(ps, "app").State)
		}
		if lt := initStatus(ps, "setup").LastTerminationState.Terminated; lt == nil || lt.ExitCode != 1 {
			t.Errorf("last termination = %+v", lt)
		}
		if c := condition(&ps, corev1.PodInitialized); c.Status != corev1.ConditionFalse || c.Reason != nodes.ReasonContainersNotInitialized {
			t.Errorf("Initialized = %+v", c)
		}
	}()

	t.Log("under restartPolicy Never a failed init container fails the pod")
	func() {
		ps := h.waitStatus("default", "initnever", 30*time.Second, "failed", phase(corev1.PodFailed))
		if term := initStatus(ps, "setup").State.Terminated; term == nil || term.ExitCode != 3 || term.Reason != "Error" {
			t.Errorf("setup = %+v", initStatus(ps, "setup").State)
		}
		if ids := h.containers()["initnever"]; len(ids) != 1 {
			t.Errorf("containers of initnever: %v (the app must never be created)", ids)
		}
	}()

	t.Log("a sidecar is serving before the app starts")
	func() {
		ps := h.waitStatus("default", "sidecar", 30*time.Second, "running", running)
		if app := containerStatus(ps, "app"); app.RestartCount != 0 {
			t.Errorf("app restarted %d times: it started before its sidecar served", app.RestartCount)
		}
		if side := initStatus(ps, "proxy"); side.State.Running == nil || !side.Ready || side.Started == nil || !*side.Started {
			t.Errorf("sidecar = %+v", side)
		}
	}()

	t.Log("a Never pod completes although its sidecar would run forever")
	func() {
		ps := h.waitStatus("default", "complete", 30*time.Second, "succeeded", phase(corev1.PodSucceeded))
		if term := containerStatus(ps, "job").State.Terminated; term == nil || term.ExitCode != 0 {
			t.Errorf("job = %+v", containerStatus(ps, "job").State)
		}
		if term := initStatus(ps, "a-shipper").State.Terminated; term == nil {
			t.Errorf("sidecar not stopped: %+v", initStatus(ps, "a-shipper").State)
		}
		if c := condition(&ps, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Reason != "PodCompleted" {
			t.Errorf("Ready = %+v", c)
		}
	}()

	t.Log("postStart exec runs before the container counts as started")
	func() {
		// The hook sleeps 1s after its write: the container is ready no
		// sooner than 1s after it started (status times are in seconds).
		ps := h.waitStatus("default", "hooks", 20*time.Second, "ready", running)
		startedAt := containerStatus(ps, "app").State.Running.StartedAt.Time
		if readyAt := condition(&ps, corev1.PodReady).LastTransitionTime.Time; readyAt.Sub(startedAt) < time.Second {
			t.Errorf("ready at %s, %s after it started: before its postStart hook returned", readyAt, readyAt.Sub(startedAt))
		}
		if got := httpGet(t, "http://"+ps.Status.PodIP+":8080/file?path=/tmp/hook"); got != "ran" {
			t.Errorf("file written by the hook = %q", got)
		}
	}()

	t.Log("a failing postStart hook kills the container")
	func() {
		ps := h.waitStatus("default", "hookfail", 30*time.Second, "restarted after its hook failed", func(ps *store.PodStatus) bool {
			if ps == nil {
				return false
			}
			cs := containerStatus(*ps, "app")
			return cs.RestartCount >= 1 && cs.LastTerminationState.Terminated != nil
		})
		lt := containerStatus(ps, "app").LastTerminationState.Terminated
		if lt.Reason != nodes.ReasonPostStartHookError || !strings.Contains(lt.Message, "FailedPostStartHook") || !strings.Contains(lt.Message, "exited with 2") {
			t.Errorf("termination = %s: %q", lt.Reason, lt.Message)
		}
		if running(&ps) {
			t.Error("ready with a failing postStart hook")
		}
	}()

	t.Log("gRPC readiness probes")
	func() {
		h.waitStatus("default", "grpc", 20*time.Second, "ready through its gRPC probe", running)
		ps := h.waitStatus("default", "grpcfail", 20*time.Second, "failing its gRPC probe", func(ps *store.PodStatus) bool {
			return ps != nil && strings.Contains(condition(ps, nodes.ConditionProbes).Message, `service unhealthy (responded with "NOT_SERVING")`)
		})
		if ps.Status.Phase != corev1.PodRunning || containerStatus(ps, "app").Ready {
			t.Errorf("grpcfail: phase %s, ready %v", ps.Status.Phase, containerStatus(ps, "app").Ready)
		}
	}()

	t.Log("after an agent restart completed init containers stay completed")
	func() {
		// Crash-looping pods would change their containers meanwhile.
		// Their teardown took over 20 s once with every package's tests
		// running beside it (the cause not established): a minute.
		for _, name := range []string{"initfail", "hookfail"} {
			h.deletePod("default", name)
			h.waitStatus("default", name, time.Minute, "deleted", func(ps *store.PodStatus) bool { return ps == nil })
		}
		before := h.containers()
		h.stopAgent()
		h.startAgent()
		ps := h.waitStatus("default", "init", 20*time.Second, "running", running)
		for _, name := range []string{"one", "two"} {
			if cs := initStatus(ps, name); cs.RestartCount != 0 || cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
				t.Errorf("%s after adoption: %+v", name, cs)
			}
		}
		h.waitStatus("default", "complete", 10*time.Second, "still succeeded", phase(corev1.PodSucceeded))
		ps = h.waitStatus("default", "initnever", 10*time.Second, "still failed", phase(corev1.PodFailed))
		if term := initStatus(ps, "setup").State.Terminated; term == nil || term.ExitCode != 3 {
			t.Errorf("initnever after adoption: %+v", initStatus(ps, "setup").State)
		}
		h.waitStatus("default", "sidecar", 10*time.Second, "running", running)
		time.Sleep(time.Second) // let a wrongly restarted init container show
		// (and the new agent's statuses replace the old one's)
		ps = h.waitStatus("default", "complete", time.Second, "succeeded", phase(corev1.PodSucceeded))
		if term := initStatus(ps, "a-shipper").State.Terminated; term == nil {
			t.Errorf("stopped sidecar after adoption: %+v", initStatus(ps, "a-shipper").State)
		}
		after := h.containers()
		for _, pod := range []string{"init", "complete", "initnever", "sidecar"} {
			if strings.Join(before[pod], ",") != strings.Join(after[pod], ",") {
				t.Errorf("%s: containers before %v, after adoption %v", pod, before[pod], after[pod])
			}
		}
	}()

	t.Log("deletion stops the app before its sidecar")
	func() {
		ps := h.waitStatus("default", "sidecar", time.Second, "running", running)
		appID := strings.TrimPrefix(containerStatus(ps, "app").ContainerID, "containerd://")
		sideID := strings.TrimPrefix(initStatus(ps, "proxy").ContainerID, "containerd://")
		h.deletePod("default", "sidecar")
		deadline := time.Now().Add(20 * time.Second)
		for h.taskRunning(appID) && time.Now().Before(deadline) {
			if !h.taskRunning(sideID) {
				t.Fatal("the sidecar stopped while the app still ran")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !h.taskRunning(sideID) {
			t.Error("the sidecar was gone when the app stopped")
		}
		h.waitStatus("default", "sidecar", 20*time.Second, "deleted", func(ps *store.PodStatus) bool { return ps == nil })
	}()

	names := []string{"init", "initnever", "complete", "hooks", "grpc", "grpcfail"}
	for _, name := range names {
		h.deletePod("default", name)
	}
	for _, name := range names {
		h.waitStatus("default", name, 20*time.Second, "deleted", func(ps *store.PodStatus) bool { return ps == nil })
	}
	h.stopAgent()
	if n := len(h.containers()); n != 0 {
		t.Errorf("containers left: %v", h.containers())
	}
	checkNoGoroutines(t)
}
