package nodes_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"bosun/nodes"
	"bosun/store"
)

func probe(h corev1.ProbeHandler, failure int32) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: h, PeriodSeconds: 1, FailureThreshold: failure}
}

func httpGetProbe(path string, port intstr.IntOrString, failure int32) *corev1.Probe {
	return probe(corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: port}}, failure)
}

func tcpProbe(port int32, failure int32) *corev1.Probe {
	return probe(corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(port)}}, failure)
}

func execProbe(failure int32, cmd ...string) *corev1.Probe {
	return probe(corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: cmd}}, failure)
}

func condition(ps *store.PodStatus, t corev1.PodConditionType) corev1.PodCondition {
	if ps != nil {
		for _, c := range ps.Status.Conditions {
			if c.Type == t {
				return c
			}
		}
	}
	return corev1.PodCondition{}
}

func probePod(name string, uid types.UID, mutate func(c *corev1.Container)) *corev1.Pod {
	p := helloPod(name, uid)
	p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	mutate(&p.Spec.Containers[0])
	return p
}

// TestAgent_probesAndLogs runs pods with readiness, liveness and startup
// probes of every handler on a real containerd, then follows a container's
// log through the log handler across a restart and the pod's deletion.
func TestAgent_probesAndLogs(t *testing.T) {
	h := newHarness(t)
	h.startAgent()
	begin := time.Now()

	h.putPod(probePod("unready", "a1", func(c *corev1.Container) {
		c.Env = []corev1.EnvVar{{Name: "FAIL_READY", Value: "1"}}
		c.ReadinessProbe = httpGetProbe("/healthz", intstr.FromString("http"), 1)
	}))
	h.putPod(probePod("ready", "a2", func(c *corev1.Container) {
		c.ReadinessProbe = httpGetProbe("/healthz", intstr.FromInt32(8080), 3)
		c.LivenessProbe = tcpProbe(8080, 3)
	}))
	h.putPod(probePod("live", "a3", func(c *corev1.Container) {
		// The startup probe holds the liveness probe off until the app
		// listens (however long a loaded machine takes to start it), so
		// the liveness failure is the app's 404, never a refused connection.
		c.StartupProbe = tcpProbe(8080, 60)
		c.LivenessProbe = httpGetProbe("/nope", intstr.FromString("http"), 1)
	}))
	h.putPod(probePod("startup", "a4", func(c *corev1.Container) {
		c.StartupProbe = execProbe(60, "/bosun-hello", "-probe", "http://127.0.0.1:9999/")
		c.LivenessProbe = httpGetProbe("/nope", intstr.FromInt32(8080), 1)
	}))
	h.putPod(probePod("exec", "a5", func(c *corev1.Container) {
		c.StartupProbe = tcpProbe(8080, 10)
		c.ReadinessProbe = execProbe(3, "/bosun-hello", "-probe", "http://127.0.0.1:8080/healthz")
	}))
	h.putPod(probePod("tcpfail", "a6", func(c *corev1.Container) {
		c.ReadinessProbe = tcpProbe(9999, 1)
	}))

	// Readiness failing: Running but not Ready, and the conditions say why.
	ps := h.waitStatus("default", "unready", 30*time.Second, "running with a failing readiness probe", func(ps *store.PodStatus) bool {
		return ps != nil && ps.Status.Phase == corev1.PodRunning &&
			strings.Contains(condition(ps, nodes.ConditionProbes).Message, "app readiness: HTTP probe failed with statuscode: 500")
	})
	if cs := containerStatus(ps, "app"); cs.Ready || cs.State.Running == nil || cs.Started == nil || !*cs.Started {
		t.Errorf("unready container: ready=%v running=%v started=%v", cs.Ready, cs.State.Running != nil, cs.Started)
	}
	if c := condition(&ps, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Message != "containers with unready status: [app]" {
		t.Errorf("unready Ready condition = %+v", c)
	}
	if c := condition(&ps, nodes.ConditionProbes); c.Status != corev1.ConditionFalse {
		t.Errorf("unready Probes condition = %+v", c)
	}

	// Readiness passing (httpGet by number), liveness by tcpSocket.
	ps = h.waitStatus("default", "ready", 30*time.Second, "ready", running)
	t.Logf("ready pod Ready %s after creation", time.Since(begin).Round(time.Millisecond))
	// The liveness probe has no initial delay, so its first try may come
	// before the app listens; a later success clears it.
	ps = h.waitStatus("default", "ready", 10*time.Second, "both probes passing", func(ps *store.PodStatus) bool {
		return ps != nil && condition(ps, nodes.ConditionProbes).Status == corev1.ConditionTrue
	})
	if c := condition(&ps, nodes.ConditionProbes); c.Message != "app readiness: ok; app liveness: ok" {
		t.Errorf("ready Probes condition = %+v", c)
	}
	// Probe successes that change nothing are not written: the status key
	// keeps its revision over three periods of two probes.
	key := store.PodStatusKey(h.cfg.NodeName, "default", "ready")
	rev := func() int64 {
		resp, err := h.st.Client().Get(context.Background(), key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get %s: %v", key, err)
		}
		return resp.Kvs[0].ModRevision
	}
	r0 := rev()
	time.Sleep(3 * time.Second)
	if r1 := rev(); r1 != r0 {
		t.Errorf("status of a steadily ready pod rewritten: mod revision %d -> %d", r0, r1)
	}

	// Liveness failing: killed and restarted, with the reason recorded.
	ps = h.waitStatus("default", "live", 30*time.Second, "restarted by its liveness probe", func(ps *store.PodStatus) bool {
		if ps == nil {
			return false
		}
		cs := containerStatus(*ps, "app")
		lt := cs.LastTerminationState.Terminated
		return cs.RestartCount >= 1 && lt != nil && lt.Reason == nodes.ReasonLivenessProbeFailed
	})
	if lt := containerStatus(ps, "app").LastTerminationState.Terminated; !strings.Contains(lt.Message, "statuscode: 404") {
		t.Errorf("liveness termination message = %q", lt.Message)
	}
	t.Logf("live pod restarted by liveness %s after creation", time.Since(begin).Round(time.Millisecond))

	// A startup probe with a long budget holds off a liveness probe that
	// would kill at its first failure: the container keeps running,
	// neither started nor ready, for several periods.
	ps = h.waitStatus("default", "startup", 10*time.Second, "probed by its failing startup probe", func(ps *store.PodStatus) bool {
		return ps != nil && strings.Contains(condition(ps, nodes.ConditionProbes).Message, "app startup: command")
	})
	cs := containerStatus(ps, "app")
	if cs.State.Running == nil {
		t.Fatalf("startup pod not running: %+v", cs.State)
	}
	if ranFor := time.Since(cs.State.Running.StartedAt.Time); ranFor < 3*time.Second {
		time.Sleep(3*time.Second - ranFor)
		ps = h.waitStatus("default", "startup", time.Second, "present", func(ps *store.PodStatus) bool { return ps != nil })
		cs = containerStatus(ps, "app")
	}
	if cs.RestartCount != 0 || cs.Ready || cs.Started == nil || *cs.Started || cs.State.Running == nil {
		t.Errorf("startup pod after %s: restarts=%d ready=%v started=%v running=%v", time.Since(cs.State.Running.StartedAt.Time).Round(time.Second),
			cs.RestartCount, cs.Ready, cs.Started, cs.State.Running != nil)
	}
	if msg := condition(&ps, nodes.ConditionProbes).Message; !strings.Contains(msg, "exited with 1") || !strings.Contains(msg, "app liveness: ok") {
		t.Errorf("startup Probes message = %q", msg)
	}

	// exec readiness (after a tcpSocket startup probe) passes; a tcpSocket
	// readiness probe against a closed port fails.
	h.waitStatus("default", "exec", 20*time.Second, "ready through an exec probe", running)
	ps = h.waitStatus("default", "tcpfail", 20*time.Second, "failing its tcpSocket probe", func(ps *store.PodStatus) bool {
		return ps != nil && strings.Contains(condition(ps, nodes.ConditionProbes).Message, "connection refused")
	})
	if containerStatus(ps, "app").Ready {
		t.Error("tcpfail ready with a failing probe")
	}

	// Logs: follow the ready pod's app through the handler, kill the app,
	// and see the new instance's first line on the same stream.
	a, err := nodes.New(h.cfg, h.st)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(nodes.LogHandler(a.StateDir()))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/logs/default/ready/app?follow=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("follow: %v %v", resp, err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func(what string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stream ended waiting for %s", what)
			}
			return l
		case <-time.After(20 * time.Second):
			t.Fatalf("no %s on the followed stream", what)
		}
		return ""
	}
	if l := next("first line"); !strings.Contains(l, "pod ready listening") {
		t.Fatalf("first followed line = %q", l)
	}
	ps = h.waitStatus("default", "ready", time.Second, "present", func(ps *store.PodStatus) bool { return ps != nil })
	pid := h.taskPid(strings.TrimPrefix(containerStatus(ps, "app").ContainerID, "containerd://"))
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if l := next("the restarted instance's line"); !strings.Contains(l, "pod ready listening") {
		t.Fatalf("line after restart = %q", l)
	}
	h.waitStatus("default", "ready", 20*time.Second, "ready again", func(ps *store.PodStatus) bool {
		return running(ps) && containerStatus(*ps, "app").RestartCount == 1
	})
	var prev strings.Builder
	if err := nodes.WriteLogs(context.Background(), a.StateDir(), nodes.LogOptions{Namespace: "default", Pod: "ready", Container: "app", Previous: true}, &prev); err != nil ||
		strings.Count(prev.String(), "listening") != 1 {
		t.Errorf("previous log = %q, %v", prev.String(), err)
	}
	// Deleting the pod ends the stream, with no line repeated: the only
	// line left is the app's answer to SIGTERM.
	h.deletePod("default", "ready")
	for l := range lines {
		if !strings.Contains(l, "shutting down") {
			t.Errorf("unexpected line after the restart: %q", l)
		}
	}
	if ctx.Err() != nil {
		t.Error("the followed stream did not end when the pod was deleted")
	}

	for _, name := range []string{"unready", "live", "startup", "exec", "tcpfail"} {
		h.deletePod("default", name)
	}
	for _, name := range []string{"unready", "live", "startup", "exec", "tcpfail"} {
		// A minute: five pods torn down at once took over 20 s once under
		// the full test run's load (as initContainersSidecarsAndHooks did).
		h.waitStatus("default", name, time.Minute, "deleted", func(ps *store.PodStatus) bool { return ps == nil })
	}
	h.stopAgent()
	srv.Close()
	checkNoGoroutines(t)
}
