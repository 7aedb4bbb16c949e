package reconciler

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"bosun/manifest"
)

// Cluster is what the driver needs of the cluster state: a consistent view
// of it, and a way to write actions. The server implements it on etcd,
// fencing every write on its leadership.
type Cluster interface {
	Observe(ctx context.Context) (Observed, error)
	Apply(ctx context.Context, actions []Action) error
}

// Driver runs one reconcile pass at a time: observe, plan, apply.
type Driver struct {
	Cluster Cluster
	Logger  *slog.Logger
	// Now returns the time passed to Plan; default time.Now.
	Now func() time.Time
}

// Reconcile plans desired against the observed cluster and applies the
// actions. It returns what it observed and how many actions it applied.
func (d *Driver) Reconcile(ctx context.Context, desired *manifest.Set) (Observed, int, error) {
	observed, err := d.Cluster.Observe(ctx)
	if err != nil {
		return observed, 0, fmt.Errorf("observe: %w", err)
	}
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	actions := Plan(desired, observed, now())
	if len(actions) == 0 {
		return observed, 0, nil
	}
	for _, a := range actions {
		d.Logger.Info("action", "type", a.Type, "object", a.Object(), "reason", a.Reason)
	}
	if err := d.Cluster.Apply(ctx, actions); err != nil {
		return observed, 0, fmt.Errorf("apply %d actions: %w", len(actions), err)
	}
	return observed, len(actions), nil
}

// Object names the object an action is about, for logs.
func (a Action) Object() string {
	switch {
	case a.Pod != nil:
		return "pod/" + a.Pod.Namespace + "/" + a.Pod.Name
	case a.Deployment != nil:
		return "deployment/" + a.Deployment.Namespace + "/" + a.Deployment.Name
	case a.Service != nil:
		return "service/" + a.Service.Namespace + "/" + a.Service.Name
	}
	kind := map[ActionType]string{DeletePod: "pod/", DeleteDeployment: "deployment/", DeleteService: "service/"}[a.Type]
	return kind + a.Namespace + "/" + a.Name
}
