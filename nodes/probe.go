package nodes

// The prober state machine: probe results in, readiness and kill decisions
// out. Pure: no I/O, no clock (times are passed in). The worker owns one
// containerProbes per running container instance; the goroutines that run
// probes (probe_runner.go) only report results.

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ConditionProbes is the pod condition that summarises the latest probe
// results: True when every configured probe's last result passed.
const ConditionProbes corev1.PodConditionType = "bosun.dev/Probes"

// Termination reasons of a container killed by a failing probe.
const (
	ReasonLivenessProbeFailed = "LivenessProbeFailed"
	ReasonStartupProbeFailed  = "StartupProbeFailed"
)

// probeKind names one of a container's three probes.
type probeKind int

const (
	probeStartup probeKind = iota
	probeReadiness
	probeLiveness
	numProbeKinds
)

func (k probeKind) String() string {
	switch k {
	case probeStartup:
		return "startup"
	case probeReadiness:
		return "readiness"
	case probeLiveness:
		return "liveness"
	}
	return fmt.Sprintf("probe(%d)", int(k))
}

// probeOf returns the container's probe of kind k (nil when not set).
func probeOf(c *corev1.Container, k probeKind) *corev1.Probe {
	switch k {
	case probeStartup:
		return c.StartupProbe
	case probeReadiness:
		return c.ReadinessProbe
	case probeLiveness:
		return c.LivenessProbe
	}
	return nil
}

// probeTiming is a probe's timing and thresholds with Kubernetes' defaults
// applied: initialDelaySeconds 0, periodSeconds 10, timeoutSeconds 1,
// successThreshold 1, failureThreshold 3.
type probeTiming struct {
	InitialDelay time.Duration
	Period       time.Duration
	Timeout      time.Duration
	Success      int
	Failure      int
}

func timingOf(p *corev1.Probe, k probeKind) probeTiming {
	pos := func(v, def int32) int {
		if v <= 0 {
			return int(def)
		}
		return int(v)
	}
	t := probeTiming{
		Period:  time.Duration(pos(p.PeriodSeconds, 10)) * time.Second,
		Timeout: time.Duration(pos(p.TimeoutSeconds, 1)) * time.Second,
		Success: pos(p.SuccessThreshold, 1),
		Failure: pos(p.FailureThreshold, 3),
	}
	if p.InitialDelaySeconds > 0 {
		t.InitialDelay = time.Duration(p.InitialDelaySeconds) * time.Second
	}
	if k != probeReadiness {
		t.Success = 1 // the API requires 1 for liveness and startup
	}
	return t
}

// firstProbeDelay is how long after now a probe's first run is due: its
// initialDelaySeconds count from the container's start (as kubelet counts
// them), also for probes that only start once the startup probe passed.
func firstProbeDelay(t probeTiming, startedAt, now time.Time) time.Duration {
	d := startedAt.Add(t.InitialDelay).Sub(now)
	if d < 0 {
		return 0
	}
	return d
}

// probeTrack is the state of one probe of one container instance.
type probeTrack struct {
	timing    probeTiming
	successes int // consecutive
	failures  int // consecutive
	// passing is the thresholded result: readiness and startup start
	// failing (not ready, not started), liveness starts passing.
	passing bool
	ran     bool // a result has been seen
	lastOK  bool
	lastMsg string // the last failure's message
}

// containerProbes is the prober state machine of one container instance.
type containerProbes struct {
	tracks  [numProbeKinds]*probeTrack // nil: not configured
	started bool                       // the startup probe passed, or there is none
	killed  bool                       // a kill was decided; later results are ignored
}

// newContainerProbes returns the state of a fresh instance of c.
func newContainerProbes(c *corev1.Container) *containerProbes {
	p := &containerProbes{}
	for k := probeKind(0); k < numProbeKinds; k++ {
		if pr := probeOf(c, k); pr != nil {
			p.tracks[k] = &probeTrack{timing: timingOf(pr, k), passing: k == probeLiveness}
		}
	}
	p.started = p.tracks[probeStartup] == nil
	return p
}

// resumeFrom seeds the state of an instance adopted from a previous agent
// with what that agent last published, so that an agent restart does not
// flip a started, ready container to unready until its probes run again.
func (p *containerProbes) resumeFrom(started, ready bool) {
	if started && p.tracks[probeStartup] != nil {
		t := p.tracks[probeStartup]
		t.passing, t.ran, t.lastOK = true, true, true
		p.started = true
	}
	if ready && p.started && p.tracks[probeReadiness] != nil {
		t := p.tracks[probeReadiness]
		t.passing, t.ran, t.lastOK = true, true, true
	}
}

// active lists the probes that should be running now: the startup probe
// until it passes, then readiness and liveness.
func (p *containerProbes) active() []probeKind {
	if p == nil || p.killed {
		return nil
	}
	if !p.started {
		return []probeKind{probeStartup}
	}
	var out []probeKind
	for _, k := range []probeKind{probeReadiness, probeLiveness} {
		if p.tracks[k] != nil {
			out = append(out, k)
		}
	}
	return out
}

// ready is the container's readiness (assuming it runs): started, and its
// readiness probe passing if it has one.
func (p *containerProbes) ready() bool {
	if p == nil {
		return true
	}
	if !p.started {
		return false
	}
	r := p.tracks[probeReadiness]
	return r == nil || r.passing
}

// probeDecision is what follows one probe result.
type probeDecision struct {
	// Changed: something the status shows changed (readiness, started, a
	// probe's last result or its message).
	Changed bool
	// Started: the startup probe just passed; readiness and liveness
	// probes start now.
	Started bool
	// Kill: stop the container and restart it as its restartPolicy says,
	// with this termination reason and message.
	Kill        bool
	KillReason  string
	KillMessage string
	StopProbe   bool // the reporting probe stops (startup passed, or a kill)
	Ignored     bool // the result was not for an active probe
}

// observe feeds one result of probe k. A result of a probe that is not
// active (a startup probe after it passed, liveness before startup passed,
// anything after a kill) is ignored.
func (p *containerProbes) observe(k probeKind, ok bool, msg string) probeDecision {
	if p == nil || k < 0 || k >= numProbeKinds || p.tracks[k] == nil || p.killed {
		return probeDecision{Ignored: true}
	}
	if (k == probeStartup) == p.started {
		return probeDecision{Ignored: true}
	}
	t := p.tracks[k]
	var d probeDecision
	wasReady := p.ready()
	if !ok && msg == "" {
		msg = "probe failed"
	}
	if !ok {
		msg = strings.TrimSpace(msg)
	} else {
		msg = ""
	}
	if !t.ran || t.lastOK != ok || t.lastMsg != msg {
		d.Changed = true
	}
	t.ran, t.lastOK, t.lastMsg = true, ok, msg
	if ok {
		t.successes++
		t.failures = 0
		if t.successes >= t.timing.Success {
			t.passing = true
		}
	} else {
		t.failures++
		t.successes = 0
		if t.failures >= t.timing.Failure {
			t.passing = false
		}
	}
	switch k {
	case probeStartup:
		if t.passing {
			p.started = true
			d.Started, d.Changed, d.StopProbe = true, true, true
		} else if t.failures >= t.timing.Failure {
			p.killed = true
			d.Kill, d.KillReason, d.StopProbe = true, ReasonStartupProbeFailed, true
			d.KillMessage = "Startup probe failed: " + msg
		}
	case probeLiveness:
		if !t.passing {
			p.killed = true
			d.Kill, d.KillReason, d.StopProbe = true, ReasonLivenessProbeFailed, true
			d.KillMessage = "Liveness probe failed: " + msg
		}
	}
	if p.ready() != wasReady {
		d.Changed = true
	}
	return d
}

// probeSummary is the bosun.dev/Probes condition of a pod: ok when every
// configured probe's last result passed (a liveness probe that has not run
// yet counts as passing, as kubelet's initial liveness result is Success;
// readiness and startup probes that have not run do not), and a message
// naming each probe: "web readiness: HTTP probe failed with statuscode:
// 500; web liveness: ok". Probes of containers without state (not started
// yet) read "not yet probed". configured is false when no container of the
// pod has a probe.
func probeSummary(containers []corev1.Container, state map[string]*containerProbes) (configured, ok, anyFailed bool, msg string) {
	ok = true
	var parts []string
	for i := range containers {
		c := &containers[i]
		p := state[c.Name]
		for _, k := range []probeKind{probeStartup, probeReadiness, probeLiveness} {
			if probeOf(c, k) == nil {
				continue
			}
			configured = true
			var t *probeTrack
			if p != nil {
				t = p.tracks[k]
			}
			s := "ok"
			switch {
			case t != nil && t.ran && !t.lastOK:
				s, ok, anyFailed = t.lastMsg, false, true
			case t != nil && t.ran:
			case k == probeLiveness:
			default:
				s, ok = "not yet probed", false
			}
			parts = append(parts, fmt.Sprintf("%s %s: %s", c.Name, k, s))
		}
	}
	return configured, ok, anyFailed, strings.Join(parts, "; ")
}

// probePort resolves a probe's port (a number or the name of one of the
// container's ports).
func probePort(port intstr.IntOrString, c *corev1.Container) (int, error) {
	if port.Type == intstr.String {
		for _, p := range c.Ports {
			if p.Name == port.StrVal {
				return int(p.ContainerPort), nil
			}
		}
		return 0, fmt.Errorf("port %q: no container port of that name", port.StrVal)
	}
	if port.IntVal < 1 || port.IntVal > 65535 {
		return 0, fmt.Errorf("port %d: out of range 1-65535", port.IntVal)
	}
	return int(port.IntVal), nil
}
