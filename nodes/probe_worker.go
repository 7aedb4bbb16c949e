package nodes

import (
	"context"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	corev1 "k8s.io/api/core/v1"
)

// probeResult is one probe run's outcome, sent by a probe goroutine to its
// pod worker. id names the container instance the probe ran against: a
// result for an instance that is no longer current is dropped.
type probeResult struct {
	container, id string
	kind          probeKind
	ok            bool
	msg           string
}

// specOf returns the spec of the pod's container (or init container)
// called name.
func specOf(pod *corev1.Pod, name string) *corev1.Container {
	if pod == nil {
		return nil
	}
	_, c := roleOf(&pod.Spec, name)
	return c
}

// startProbes starts the goroutines of the probes that are active for the
// instance (rec.Probes decides which). They run until the instance's
// context ends or the probe is stopped.
func (w *podWorker) startProbes(r *podRun, c *corev1.Container, rec *containerRecord, inst *instance) {
	now := time.Now()
	for _, k := range rec.Probes.active() {
		if inst.stopProbe[k] != nil {
			continue
		}
		p := probeOf(c, k)
		timing := rec.Probes.tracks[k].timing
		pctx, cancel := context.WithCancel(inst.ctx)
		inst.stopProbe[k] = cancel
		target := probeTarget{probe: p.DeepCopy(), container: c.DeepCopy(), podIP: r.podIP, ctr: inst.ctr, task: inst.task}
		first := firstProbeDelay(timing, rec.StartedAt, now)
		w.waiters.Add(1)
		go func() {
			defer w.waiters.Done()
			w.probeLoop(pctx, target, k, c.Name, rec.ID, timing, first)
		}()
	}
}

// probeLoop runs one probe of one container instance every period, from
// first on, and reports each result to the worker (see nextProbe).
func (w *podWorker) probeLoop(ctx context.Context, t probeTarget, k probeKind, container, id string, timing probeTiming, first time.Duration) {
	timer := time.NewTimer(first)
	defer timer.Stop()
	passed, failed := false, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		ok, msg := w.a.prober.run(ctx, t, timing.Timeout)
		if ctx.Err() != nil {
			return
		}
		select {
		case w.probes <- probeResult{container: container, id: id, kind: k, ok: ok, msg: msg}:
		case <-ctx.Done():
			return
		}
		if ok {
			passed = true
		} else {
			failed++
		}
		timer.Reset(nextProbe(k, timing, passed, failed))
	}
}

// firstReadyRetry is the first wait before a readiness probe that has never
// passed runs again.
const firstReadyRetry = 50 * time.Millisecond

// nextProbe is how long until a probe runs again: its period, but a
// readiness probe (successThreshold 1) that has not passed yet is retried
// sooner, 50 ms after its first failure, doubling up to the period: a
// container that listens a moment after it started is ready within about
// that moment, not a whole period later (kubelet waits the period). Until
// it first passes the container is not ready either way, so the failures
// change nothing else; liveness and startup probes, whose failures count
// toward a kill, keep their period.
func nextProbe(k probeKind, t probeTiming, passed bool, failed int) time.Duration {
	if k != probeReadiness || t.Success != 1 || passed || failed < 1 {
		return t.Period
	}
	d := firstReadyRetry << min(failed-1, 10)
	return min(d, t.Period)
}

// handleProbe feeds a probe result to the instance's prober state and acts
// on the decision: start the probes that follow a passed startup probe,
// kill the container on a failed liveness (or startup) probe, publish the
// status when it changed.
func (w *podWorker) handleProbe(ctx context.Context, res probeResult) {
	r := w.cur
	if r == nil {
		return
	}
	rec, inst := r.recs[res.container], r.insts[res.container]
	if rec == nil || inst == nil || rec.ID != res.id || !rec.Running || rec.Probes == nil {
		return // a result for an instance that is gone
	}
	d := rec.Probes.observe(res.kind, res.ok, res.msg)
	if d.Ignored {
		return
	}
	w.a.m.probed(res.kind, res.ok)
	if !res.ok {
		w.probeFailed(res.container, res.kind, res.msg)
	}
	if d.StopProbe && inst.stopProbe[res.kind] != nil {
		inst.stopProbe[res.kind]()
	}
	if d.Changed {
		if res.ok {
			w.log.Info("probe passed", "container", res.container, "probe", res.kind.String(), "ready", rec.Probes.ready())
		} else {
			w.log.Info("probe failed", "container", res.container, "probe", res.kind.String(), "msg", res.msg)
		}
	}
	if d.Started {
		if c := specOf(r.pod, res.container); c != nil {
			w.startProbes(r, c, rec, inst)
		}
	}
	if d.Kill {
		rec.KillReason, rec.KillMessage = d.KillReason, d.KillMessage
		w.log.Info("killing container", "container", res.container, "reason", d.KillReason, "msg", d.KillMessage)
		w.killing(res.container, d.KillReason, d.KillMessage)
		w.kill(inst, probeGrace(specOf(r.pod, res.container), res.kind, r.grace), hookOf(r.pod, res.container, r.podIP))
	}
	if d.Changed {
		w.publish(ctx, r, time.Now())
	}
}

// probeGrace is the grace period of a container killed by probe k: the
// probe's terminationGracePeriodSeconds when set, else the pod's.
func probeGrace(c *corev1.Container, k probeKind, pod time.Duration) time.Duration {
	if c != nil {
		if p := probeOf(c, k); p != nil && p.TerminationGracePeriodSeconds != nil && *p.TerminationGracePeriodSeconds >= 0 {
			return time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
		}
	}
	return pod
}

// kill stops the instance's process as deletion does (SIGTERM, grace,
// SIGKILL) without blocking the worker; the exit is then reported by the
// instance's exit watcher and handled as any exit (restart, backoff).
func (w *podWorker) kill(inst *instance, grace time.Duration, hook *stopHook) {
	task, ctx := inst.task, inst.ctx
	if task == nil || ctx == nil {
		return
	}
	w.waiters.Add(1)
	go func() {
		defer w.waiters.Done()
		exited, err := task.Wait(ctx)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("kill: wait", "container", inst.ctr.ID(), "err", err)
			}
			return
		}
		grace := w.a.runPreStop(ctx, hook, inst.ctr, task, grace)
		if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
			if ctx.Err() == nil {
				w.log.Warn("kill: SIGTERM", "container", inst.ctr.ID(), "err", err)
			}
		}
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-exited:
		case <-ctx.Done():
		case <-timer.C:
			w.log.Info("grace period over, killing", "container", inst.ctr.ID(), "grace", grace)
			if err := task.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !errdefs.IsNotFound(err) && ctx.Err() == nil {
				w.log.Warn("kill: SIGKILL", "container", inst.ctr.ID(), "err", err)
			}
		}
	}()
}
