package nodes

import (
	"context"
	"time"

	"github.com/containerd/containerd/v2/client"
	corev1 "k8s.io/api/core/v1"
)

// minGraceAfterPreStop is what a container gets after SIGTERM when its
// preStop hook used up the grace period, as kubelet gives (2 s).
const minGraceAfterPreStop = 2 * time.Second

// stopHook is a container's preStop hook and what it needs to run.
type stopHook struct {
	handler   *corev1.LifecycleHandler
	container *corev1.Container
	podIP     string
}

// hookOf returns the preStop hook of container name in pod, or nil.
func hookOf(pod *corev1.Pod, name, podIP string) *stopHook {
	c := specOf(pod, name)
	if c == nil || c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
		return nil
	}
	return &stopHook{handler: c.Lifecycle.PreStop, container: c, podIP: podIP}
}

// runPreStop runs the hook within the grace period, as kubelet does before
// SIGTERM: `sleep` waits (the usual way to let clients' DNS and load
// balancers drop the pod first), `exec` runs a command in the container,
// `httpGet` calls the pod. It returns the grace left for SIGTERM.
func (a *Agent) runPreStop(ctx context.Context, h *stopHook, ctr client.Container, task client.Task, grace time.Duration) time.Duration {
	if h == nil {
		return grace
	}
	start := time.Now()
	hctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	if err := a.runHandler(hctx, h.handler, h.container, h.podIP, ctr, task); err != nil {
		a.log.Warn("preStop hook failed", "container", ctr.ID(), "err", err)
	}
	return max(grace-time.Since(start), minGraceAfterPreStop)
}
