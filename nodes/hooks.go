package nodes

// Lifecycle hooks and the order of stops: postStart after a container
// starts (the container is not started until it returns; a failure kills
// it), the handlers both hooks share, stopping a sidecar for good once its
// pod is done, and stopping a whole pod (app containers first, then its
// sidecars, last first).

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	corev1 "k8s.io/api/core/v1"
)

// hookResult is the outcome of a container instance's postStart hook, sent
// by the hook's goroutine to its pod worker.
type hookResult struct {
	container, id string
	err           error
	took          time.Duration
}

// runPostStart runs the container's postStart hook in a goroutine that
// lives as long as the instance; the result comes back on w.hooks. Like
// kubelet, the hook has no timeout of its own: it ends when it returns or
// when the container goes.
func (w *podWorker) runPostStart(r *podRun, c *corev1.Container, rec *containerRecord, inst *instance) {
	h, spec := c.Lifecycle.PostStart.DeepCopy(), c.DeepCopy()
	podIP, id, ctx := r.podIP, rec.ID, inst.ctx
	ctr, task := inst.ctr, inst.task
	w.waiters.Add(1)
	go func() {
		defer w.waiters.Done()
		start := time.Now()
		err := w.a.runHandler(ctx, h, spec, podIP, ctr, task)
		if ctx.Err() != nil {
			return // the instance is gone; its exit is what counts
		}
		select {
		case w.hooks <- hookResult{container: spec.Name, id: id, err: err, took: time.Since(start)}:
		case <-ctx.Done():
		}
	}()
}

// handleHook acts on a postStart result: the container now counts as
// started and its probes begin, or, when the hook failed, it is killed as
// a failing liveness probe kills it and restarts by its policy.
func (w *podWorker) handleHook(ctx context.Context, res hookResult) {
	r := w.cur
	if r == nil {
		return
	}
	rec, inst := r.recs[res.container], r.insts[res.container]
	if rec == nil || inst == nil || rec.ID != res.id || !rec.Running || !rec.PostStartPending {
		return // an instance that is gone
	}
	if res.err == nil {
		rec.PostStartPending = false
		w.log.Info("postStart hook done", "container", res.container, "took", res.took.Round(time.Millisecond))
		if c := specOf(r.pod, res.container); c != nil {
			w.startProbes(r, c, rec, inst)
		}
		return
	}
	rec.KillReason = ReasonPostStartHookError
	rec.KillMessage = "FailedPostStartHook: " + res.err.Error()
	w.log.Warn("postStart hook failed; killing the container", "container", res.container, "err", res.err)
	w.kill(inst, r.grace, hookOf(r.pod, res.container, r.podIP))
}

// stopForGood stops a sidecar of a pod that is done; its exit is final.
func (w *podWorker) stopForGood(r *podRun, name string) {
	rec, inst := r.recs[name], r.insts[name]
	if rec == nil || inst == nil || rec.Stopping || !rec.Running {
		return
	}
	rec.Stopping = true
	w.log.Info("stopping sidecar: the pod's app containers are done", "container", name)
	w.kill(inst, r.grace, hookOf(r.pod, name, r.podIP))
}

// runHandler runs a lifecycle hook handler against a container instance, as
// kubelet runs them: exec runs the command in the container (exit status 0
// passes), httpGet calls the pod (any HTTP answer passes; only a failure
// to get one fails), sleep waits. It returns when the handler is done or
// ctx ends.
func (a *Agent) runHandler(ctx context.Context, h *corev1.LifecycleHandler, c *corev1.Container, podIP string, ctr client.Container, task client.Task) error {
	t := probeTarget{container: c, podIP: podIP, ctr: ctr, task: task}
	switch {
	case h.Exec != nil:
		if ok, msg := a.prober.exec(ctx, t, h.Exec.Command, 0); !ok {
			return errors.New(msg)
		}
		return nil
	case h.HTTPGet != nil:
		return a.prober.hookGet(ctx, t, h.HTTPGet)
	case h.Sleep != nil:
		timer := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer timer.Stop()
		select {
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("container terminated before the sleep hook finished")
		}
	}
	return errors.New("hook has no handler (exec, httpGet or sleep)")
}

// stopAll stops every container of a run as kubelet stops a pod: the app
// containers (and an init container that is running) together, each with
// the pod's grace period, then the sidecars one at a time, last first,
// each with what is left of the grace period (at least 2 s), so that
// sidecars keep serving the app until it has stopped.
func (w *podWorker) stopAll(ctx context.Context, r *podRun) error {
	w.startReaps()
	for _, inst := range r.insts {
		if inst.cancel != nil {
			inst.cancel()
		}
	}
	deadline := time.Now().Add(r.grace)
	var sidecars []string // last first
	isSide := map[string]bool{}
	if r.pod != nil {
		for i := len(r.pod.Spec.InitContainers) - 1; i >= 0; i-- {
			if c := &r.pod.Spec.InitContainers[i]; isSidecar(c) && r.insts[c.Name] != nil {
				sidecars = append(sidecars, c.Name)
				isSide[c.Name] = true
			}
		}
	}
	var first []string
	for _, name := range sortedKeys(r.insts) {
		if !isSide[name] {
			first = append(first, name)
		}
	}
	if err := w.stopGroup(ctx, r, first, r.grace); err != nil {
		return err
	}
	for _, name := range sidecars {
		if err := w.stopGroup(ctx, r, []string{name}, max(time.Until(deadline), minGraceAfterPreStop)); err != nil {
			return err
		}
	}
	return nil
}

// stopGroup stops the named containers of the run in parallel and forgets
// those that stopped.
func (w *podWorker) stopGroup(ctx context.Context, r *podRun, names []string, grace time.Duration) error {
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		inst, hook := r.insts[name], hookOf(r.pod, name, r.podIP)
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst.waitReaped()
			errs[i] = w.a.stopContainer(ctx, inst.ctr, grace, hook)
		}()
	}
	wg.Wait()
	for i, name := range names {
		if errs[i] == nil {
			delete(r.insts, name)
		}
	}
	return errors.Join(errs...)
}
