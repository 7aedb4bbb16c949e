package nodes

import (
	"context"
	"strings"
	"sync"
	"time"

	"bosun/store"
)

// The agent's events, as kubelet's: what happened to a pod's containers on
// this node, written under /bosun/events/<node>/ (store.Recorder: never
// blocking the worker, repeats aggregated). Messages name images,
// containers, probes and errors, never environment values or file
// contents.

// Event reasons of the agent (kubelet's).
const (
	EventPulling   = "Pulling"
	EventPulled    = "Pulled"
	EventCreated   = "Created"
	EventStarted   = "Started"
	EventKilling   = "Killing"
	EventUnhealthy = "Unhealthy"
	EventBackOff   = "BackOff"
	EventFailed    = "Failed"
)

// newEventRecorder is the recorder of an agent's events (nil when it
// cannot be made: events are not worth refusing to run a node).
func newEventRecorder(cfg Config, st *store.Store) *store.Recorder {
	r, err := store.NewRecorder(st, store.RecorderConfig{Source: cfg.NodeName, Registerer: cfg.Registerer,
		Logger: cfg.Logger.With("component", "agent", "node", cfg.NodeName)})
	if err != nil {
		return nil
	}
	return r
}

// runEvents writes the agent's events until the returned stop is called.
func (a *Agent) runEvents(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.events.Run(ctx)
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// podRef names a pod for its events.
func podRef(namespace, name string) store.ObjectRef {
	return store.ObjectRef{Kind: "Pod", Namespace: namespace, Name: name}
}

// event records an event about the worker's pod.
func (w *podWorker) event(typ, reason, format string, args ...any) {
	w.a.events.Eventf(podRef(w.namespace, w.name), typ, reason, format, args...)
}

// imagePulling, imagePulled and imagePresent are ensureImage's events.
func (a *Agent) imagePulling(pod store.ObjectRef, image string) {
	a.events.Eventf(pod, store.EventNormal, EventPulling, "Pulling image %q", image)
}

func (a *Agent) imagePulled(pod store.ObjectRef, image string, took time.Duration, err error) {
	if err != nil {
		a.events.Eventf(pod, store.EventWarning, EventFailed, "Failed to pull image %q: %v", image, err)
		return
	}
	a.events.Eventf(pod, store.EventNormal, EventPulled, "Successfully pulled image %q in %s", image, took.Round(time.Millisecond))
}

func (a *Agent) imagePresent(pod store.ObjectRef, image string) {
	a.events.Eventf(pod, store.EventNormal, EventPulled, "Container image %q already present on machine", image)
}

// containerCreated and containerStarted follow a container's start.
func (w *podWorker) containerCreated(name string) {
	w.event(store.EventNormal, EventCreated, "Created container %s", name)
}

func (w *podWorker) containerStarted(name string) {
	w.event(store.EventNormal, EventStarted, "Started container %s", name)
}

// startFailed reports a start that failed with the waiting reason it left
// (ErrImagePull, ImagePullBackOff, CreateContainerConfigError...).
func (w *podWorker) startFailed(name, reason string, err error) {
	if reason == ReasonImagePullBackOff {
		w.event(store.EventNormal, EventBackOff, "Back-off pulling image for container %s", name)
		return
	}
	w.event(store.EventWarning, EventFailed, "Error: %s: container %s: %v", reason, name, err)
}

// probeFailed reports a failed probe result, with its probe and message:
// "Readiness probe failed: HTTP probe failed with statuscode: 500".
func (w *podWorker) probeFailed(container string, k probeKind, msg string) {
	if msg == "" {
		msg = "probe failed"
	}
	kind := k.String()
	w.event(store.EventWarning, EventUnhealthy, "%s%s probe failed (container %s): %s",
		strings.ToUpper(kind[:1]), kind[1:], container, strings.TrimSpace(msg))
}

// killing reports a container killed by a failing probe (or hook), to be
// restarted by its policy.
func (w *podWorker) killing(container, reason, msg string) {
	w.event(store.EventNormal, EventKilling, "Stopping container %s: %s: %s", container, reason, msg)
}

// stopping reports the containers of a run being stopped with their pod.
func (w *podWorker) stopping(r *podRun) {
	for name, rec := range r.recs {
		if rec != nil && rec.Running {
			w.event(store.EventNormal, EventKilling, "Stopping container %s", name)
		}
	}
}

// backOff reports a crashed container waiting to be restarted.
func (w *podWorker) backOff(container string, delay time.Duration) {
	w.event(store.EventWarning, EventBackOff, "Back-off %s restarting failed container %s", delay, container)
}
