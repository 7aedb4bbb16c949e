package nodes

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func httpProbe(success, failure int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
		PeriodSeconds:    1,
		SuccessThreshold: success,
		FailureThreshold: failure,
	}
}

func TestTimingOf_kubernetesDefaults(t *testing.T) {
	got := timingOf(&corev1.Probe{}, probeReadiness)
	want := probeTiming{Period: 10 * time.Second, Timeout: time.Second, Success: 1, Failure: 3}
	if got != want {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	got = timingOf(&corev1.Probe{InitialDelaySeconds: 5, PeriodSeconds: 2, TimeoutSeconds: 3, SuccessThreshold: 4, FailureThreshold: 6}, probeLiveness)
	want = probeTiming{InitialDelay: 5 * time.Second, Period: 2 * time.Second, Timeout: 3 * time.Second, Success: 1, Failure: 6}
	if got != want {
		t.Errorf("liveness = %+v, want %+v (success threshold is always 1)", got, want)
	}
}

func TestFirstProbeDelay_countsFromContainerStart(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tm := probeTiming{InitialDelay: 10 * time.Second}
	if d := firstProbeDelay(tm, t0, t0.Add(4*time.Second)); d != 6*time.Second {
		t.Errorf("delay = %s, want 6s", d)
	}
	if d := firstProbeDelay(tm, t0, t0.Add(time.Minute)); d != 0 {
		t.Errorf("delay after the initial delay = %s, want 0", d)
	}
}

// step is one probe result fed to the state machine and what must follow.
type step struct {
	kind    probeKind
	ok      bool
	changed bool
	kill    string // the kill reason, "" for none
	started bool   // the startup probe just passed
	ignored bool
	ready   bool // readiness after the step
}

func TestContainerProbes_decisions(t *testing.T) {
	R, L, S := probeReadiness, probeLiveness, probeStartup
	for _, tc := range []struct {
		name      string
		container corev1.Container
		readyAt0  bool
		steps     []step
	}{
		{
			name:      "no probes: ready at once",
			container: corev1.Container{Name: "c"},
			readyAt0:  true,
		},
		{
			name:      "readiness: not ready until the success threshold, unready after the failure threshold",
			container: corev1.Container{Name: "c", ReadinessProbe: httpProbe(2, 2)},
			steps: []step{
				{kind: R, ok: true, changed: true},
				{kind: R, ok: true, changed: true, ready: true},
				{kind: R, ok: true, ready: true},
				{kind: R, ok: false, changed: true, ready: true},
				{kind: R, ok: true, changed: true, ready: true},
				{kind: R, ok: false, changed: true, ready: true},
				{kind: R, ok: false, changed: true, ready: false},
			},
		},
		{
			name:      "readiness: repeated identical failures change nothing",
			container: corev1.Container{Name: "c", ReadinessProbe: httpProbe(1, 3)},
			steps: []step{
				{kind: R, ok: false, changed: true},
				{kind: R, ok: false},
				{kind: R, ok: false},
				{kind: R, ok: false},
			},
		},
		{
			name:      "liveness: kill after failureThreshold consecutive failures",
			container: corev1.Container{Name: "c", LivenessProbe: httpProbe(1, 3)},
			readyAt0:  true,
			steps: []step{
				{kind: L, ok: true, changed: true, ready: true},
				{kind: L, ok: true, ready: true},
				{kind: L, ok: false, changed: true, ready: true},
				{kind: L, ok: false, ready: true},
				{kind: L, ok: true, changed: true, ready: true},
				{kind: L, ok: false, changed: true, ready: true},
				{kind: L, ok: false, ready: true},
				{kind: L, ok: false, kill: ReasonLivenessProbeFailed, ready: true},
				{kind: L, ok: false, ignored: true, ready: true},
			},
		},
		{
			name:      "startup gates liveness and readiness until it passes",
			container: corev1.Container{Name: "c", StartupProbe: httpProbe(1, 30), LivenessProbe: httpProbe(1, 1), ReadinessProbe: httpProbe(1, 1)},
			steps: []step{
				{kind: L, ok: false, ignored: true},
				{kind: R, ok: true, ignored: true},
				{kind: S, ok: false, changed: true},
				{kind: S, ok: false},
				{kind: S, ok: true, changed: true, started: true},
				{kind: S, ok: true, ignored: true},
				{kind: R, ok: true, changed: true, ready: true},
				{kind: L, ok: false, changed: true, kill: ReasonLivenessProbeFailed, ready: true},
			},
		},
		{
			name:      "startup failing its budget kills",
			container: corev1.Container{Name: "c", StartupProbe: httpProbe(1, 2)},
			steps: []step{
				{kind: S, ok: false, changed: true},
				{kind: S, ok: false, kill: ReasonStartupProbeFailed},
				{kind: S, ok: true, ignored: true},
			},
		},
		{
			name:      "a result of a probe the container does not have is ignored",
			container: corev1.Container{Name: "c", ReadinessProbe: httpProbe(1, 1)},
			steps:     []step{{kind: L, ok: false, ignored: true}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newContainerProbes(&tc.container)
			if p.ready() != tc.readyAt0 {
				t.Fatalf("ready at start = %v, want %v", p.ready(), tc.readyAt0)
			}
			for i, s := range tc.steps {
				msg := ""
				if !s.ok {
					msg = "HTTP probe failed with statuscode: 500"
				}
				d := p.observe(s.kind, s.ok, msg)
				kill := ""
				if d.Kill {
					kill = d.KillReason
				}
				if d.Ignored != s.ignored || d.Changed != s.changed || kill != s.kill || d.Started != s.started || p.ready() != s.ready {
					t.Errorf("step %d (%s ok=%v): decision %+v ready=%v, want changed=%v kill=%q started=%v ignored=%v ready=%v",
						i, s.kind, s.ok, d, p.ready(), s.changed, s.kill, s.started, s.ignored, s.ready)
				}
				if d.Kill && !strings.Contains(d.KillMessage, "statuscode: 500") {
					t.Errorf("step %d: kill message %q does not name the failure", i, d.KillMessage)
				}
			}
		})
	}
}

func TestContainerProbes_activeFollowsStartup(t *testing.T) {
	c := corev1.Container{Name: "c", StartupProbe: httpProbe(1, 3), LivenessProbe: httpProbe(1, 3), ReadinessProbe: httpProbe(1, 3)}
	p := newContainerProbes(&c)
	if got := p.active(); len(got) != 1 || got[0] != probeStartup {
		t.Fatalf("active before startup passed = %v", got)
	}
	p.observe(probeStartup, true, "")
	if got := p.active(); len(got) != 2 || got[0] != probeReadiness || got[1] != probeLiveness {
		t.Fatalf("active after startup passed = %v", got)
	}
}

func TestContainerProbes_resumeFromKeepsReadyAcrossAgentRestart(t *testing.T) {
	c := corev1.Container{Name: "c", StartupProbe: httpProbe(1, 3), ReadinessProbe: httpProbe(1, 3)}
	p := newContainerProbes(&c)
	p.resumeFrom(true, true)
	if !p.ready() || !p.started {
		t.Fatalf("resumed: ready=%v started=%v", p.ready(), p.started)
	}
	q := newContainerProbes(&c)
	q.resumeFrom(false, true) // ready without started cannot be
	if q.ready() || q.started {
		t.Fatalf("resumed unstarted: ready=%v started=%v", q.ready(), q.started)
	}
}

func TestProbeSummary(t *testing.T) {
	web := corev1.Container{Name: "web", ReadinessProbe: httpProbe(1, 3), LivenessProbe: httpProbe(1, 3)}
	side := corev1.Container{Name: "side"}
	containers := []corev1.Container{web, side}

	configured, ok, failed, msg := probeSummary([]corev1.Container{side}, nil)
	if configured {
		t.Errorf("no probes: configured = true (%q)", msg)
	}
	configured, ok, failed, msg = probeSummary(containers, nil)
	if !configured || ok || failed || msg != "web readiness: not yet probed; web liveness: ok" {
		t.Errorf("before any result: %v %v %v %q", configured, ok, failed, msg)
	}
	p := newContainerProbes(&web)
	p.observe(probeReadiness, false, "HTTP probe failed with statuscode: 500")
	p.observe(probeLiveness, true, "")
	_, ok, failed, msg = probeSummary(containers, map[string]*containerProbes{"web": p})
	if ok || !failed || msg != "web readiness: HTTP probe failed with statuscode: 500; web liveness: ok" {
		t.Errorf("readiness failing: %v %v %q", ok, failed, msg)
	}
	p.observe(probeReadiness, true, "")
	_, ok, failed, msg = probeSummary(containers, map[string]*containerProbes{"web": p})
	if !ok || failed || msg != "web readiness: ok; web liveness: ok" {
		t.Errorf("all passing: %v %v %q", ok, failed, msg)
	}
}

func TestProbePort_numberOrContainerPortName(t *testing.T) {
	c := &corev1.Container{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}
	for _, tc := range []struct {
		port    intstr.IntOrString
		want    int
		wantErr string
	}{
		{intstr.FromInt32(9090), 9090, ""},
		{intstr.FromString("http"), 8080, ""},
		{intstr.FromString("grpc"), 0, `port "grpc": no container port of that name`},
		{intstr.FromInt32(0), 0, "out of range"},
	} {
		got, err := probePort(tc.port, c)
		if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("probePort(%v) = %d, %v; want %d, %q", tc.port.String(), got, err, tc.want, tc.wantErr)
		}
	}
}

func TestBuildStatus_probesDriveReadinessAndConditions(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	web := corev1.Container{Name: "web", Image: "img", ReadinessProbe: httpProbe(1, 3)}
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{web}}}
	probes := newContainerProbes(&web)
	recs := map[string]*containerRecord{"web": {Name: "web", ID: "x", Running: true, StartedAt: t0, Probes: probes}}
	probes.observe(probeReadiness, false, "HTTP probe failed with statuscode: 500")
	st := buildStatus(statusInput{Pod: pod, Records: recs, Now: t0})
	cs := st.ContainerStatuses[0]
	if cs.Ready || cs.Started == nil || !*cs.Started || st.Phase != corev1.PodRunning {
		t.Errorf("failing readiness: ready=%v started=%v phase=%s", cs.Ready, cs.Started, st.Phase)
	}
	conds := map[corev1.PodConditionType]corev1.PodCondition{}
	for _, c := range st.Conditions {
		conds[c.Type] = c
	}
	if c := conds[corev1.PodReady]; c.Status != corev1.ConditionFalse || c.Message != "containers with unready status: [web]" {
		t.Errorf("Ready condition = %+v", c)
	}
	if c := conds[ConditionProbes]; c.Status != corev1.ConditionFalse || c.Message != "web readiness: HTTP probe failed with statuscode: 500" {
		t.Errorf("Probes condition = %+v", c)
	}

	// Passing: Ready flips with a new transition time; a rebuild with
	// nothing changed is equal (and so not written again).
	probes.observe(probeReadiness, true, "")
	t1 := t0.Add(time.Minute)
	st2 := buildStatus(statusInput{Pod: pod, Records: recs, Prev: &st, Now: t1})
	for _, c := range st2.Conditions {
		if (c.Type == corev1.PodReady || c.Type == ConditionProbes) && (c.Status != corev1.ConditionTrue || !c.LastTransitionTime.Time.Equal(t1) || c.Message != "" && c.Type == corev1.PodReady) {
			t.Errorf("after passing: %+v", c)
		}
		if c.Type == corev1.PodScheduled && !c.LastTransitionTime.Time.Equal(t0) {
			t.Errorf("unchanged condition moved: %+v", c)
		}
	}
	probes.observe(probeReadiness, true, "")
	st3 := buildStatus(statusInput{Pod: pod, Records: recs, Prev: &st2, Now: t1.Add(time.Minute)})
	if !statusEqual(&st2, &st3) {
		t.Error("a probe success that changes nothing changed the status")
	}
}

func TestNextProbe_readinessRetriesSoonerUntilItFirstPasses(t *testing.T) {
	ready := timingOf(&corev1.Probe{PeriodSeconds: 1}, probeReadiness)
	var got []time.Duration
	for failed := 1; failed <= 6; failed++ {
		got = append(got, nextProbe(probeReadiness, ready, false, failed))
	}
	want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("retries %v, want %v", got, want)
	}
	for _, tt := range []struct {
		name   string
		k      probeKind
		timing probeTiming
		passed bool
		failed int
	}{
		{"passed once: the period", probeReadiness, ready, true, 3},
		{"no failure yet: the period", probeReadiness, ready, false, 0},
		{"liveness: the period", probeLiveness, timingOf(&corev1.Probe{PeriodSeconds: 1}, probeLiveness), false, 1},
		{"startup: the period", probeStartup, timingOf(&corev1.Probe{PeriodSeconds: 1}, probeStartup), false, 1},
		{"successThreshold 2: the period", probeReadiness, timingOf(&corev1.Probe{PeriodSeconds: 1, SuccessThreshold: 2}, probeReadiness), false, 1},
	} {
		if d := nextProbe(tt.k, tt.timing, tt.passed, tt.failed); d != time.Second {
			t.Errorf("%s: %v", tt.name, d)
		}
	}
}
