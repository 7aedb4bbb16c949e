package nodes

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	corev1 "k8s.io/api/core/v1"

	"bosun/store"
)

// podRunner is the one part of a node that differs between a real agent
// and a simulated one: how the pods bound to it run. Run's loop does the
// rest (registration, lease, the watch of the node's pods, one worker per
// pod key, deregistration) the same way for both.
type podRunner interface {
	// setUp prepares the runtime before the node registers, changing
	// nothing on the machine. It returns the context workers run in and
	// the node's containerRuntimeVersion.
	setUp(ctx context.Context) (context.Context, string, error)
	// startNetwork prepares the pod network once the node's pod subnet is
	// known (Config.PodCIDR).
	startNetwork(ctx context.Context) error
	// discover returns what a previous agent left running, to adopt: per
	// pod key, the containers by pod UID.
	discover(ctx context.Context) (map[string]map[string][]adoptedContainer, error)
	// newWorker returns the worker of one pod key; it reports on done
	// once its pod is gone and torn down.
	newWorker(key string, done chan<- podTask) podTask
	// leftRunning says what a stopping agent leaves behind, for its log.
	leftRunning() string
	// close releases what setUp acquired.
	close()
}

// podTask is Run's loop's handle on the worker of one pod key.
type podTask interface {
	podKey() string
	// set hands the worker its pod as bound now (nil: no longer bound
	// here). Only Run's goroutine calls it; it does not block.
	set(p *corev1.Pod)
	// adoptPrevious gives the worker, before it starts, the containers a previous
	// agent left for its key and the status that agent last wrote.
	adoptPrevious(byUID map[string][]adoptedContainer, prior *store.PodStatus)
	// whenClean asks the worker to send itself on ch (once; ch has room)
	// as soon as it runs nothing but the pod it was last handed: every
	// instance of another UID, or of a pod handed as nil, torn down. A
	// worker that ends (its pod gone) reports on done instead.
	whenClean(ch chan<- podTask)
	// launch begins the work. Goroutines the worker starts are counted in
	// wg; they end when ctx does.
	launch(ctx context.Context, wg *sync.WaitGroup)
}

// containerdRunner runs pods on containerd: a podWorker per pod.
type containerdRunner struct{ a *Agent }

// setUp connects to containerd.
func (r containerdRunner) setUp(ctx context.Context) (context.Context, string, error) {
	a := r.a
	c, err := client.New(a.cfg.ContainerdAddress, client.WithDefaultNamespace(a.cfg.Namespace), client.WithTimeout(10*time.Second))
	if err != nil {
		return nil, "", fmt.Errorf("connect to containerd at %s: %w", a.cfg.ContainerdAddress, err)
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	a.client = c
	ctx = namespaces.WithNamespace(ctx, a.cfg.Namespace)
	ver, err := c.Version(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("containerd at %s: %w", a.cfg.ContainerdAddress, err)
	}
	ok = true
	return ctx, "containerd://" + ver.Version, nil
}

// startNetwork prepares the pod network (the bridge's CNI configuration)
// and the state directory, once the node's pod subnet is known.
func (r containerdRunner) startNetwork(context.Context) error {
	a := r.a
	var err error
	if a.net, err = newNetwork(&a.cfg); err != nil {
		return err
	}
	for _, d := range []string{"logs", "pods"} {
		if err := os.MkdirAll(a.cfg.StateDir+"/"+d, 0o755); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
	}
	// Pods' volumes hold ConfigMap and Secret files: only root may look.
	if err := os.Chmod(a.cfg.StateDir+"/pods", 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	return nil
}

func (r containerdRunner) discover(ctx context.Context) (map[string]map[string][]adoptedContainer, error) {
	found, err := r.a.discover(ctx)
	if err == nil {
		r.a.sweepLeftovers(ctx, found) // leftovers.go
	}
	return found, err
}

func (r containerdRunner) newWorker(key string, done chan<- podTask) podTask {
	return newPodWorker(r.a, key, done)
}

func (r containerdRunner) leftRunning() string { return "containers keep running" }

func (r containerdRunner) close() { r.a.client.Close() }
