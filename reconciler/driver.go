package reconciler

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	// Now is the clock whose time is passed to Plan (the server passes
	// time.Now, tests a fake). Required: this package reads no clock.
	Now func() time.Time
	// Planning, when set, is called as Plan starts and returns what to call
	// once it has returned (the server times plans with it: this package
	// reads no clock).
	Planning func() (done func())
}

// Reconcile plans desired against the observed cluster and applies the
// actions. It returns what it observed and what the plan decided; the
// plan's events are logged once its actions are applied.
func (d *Driver) Reconcile(ctx context.Context, desired *manifest.Set) (Observed, Result, error) {
	observed, err := d.Cluster.Observe(ctx)
	if err != nil {
		return observed, Result{}, fmt.Errorf("observe: %w", err)
	}
	var planned func()
	if d.Planning != nil {
		planned = d.Planning()
	}
	res := Plan(desired, observed, d.Now())
	if planned != nil {
		planned()
	}
	if len(res.Actions) == 0 {
		d.logEvents(res.Events)
		return observed, res, nil
	}
	d.logActions(res.Actions)
	if err := d.Cluster.Apply(ctx, res.Actions); err != nil {
		return observed, res, fmt.Errorf("apply %d actions: %w", len(res.Actions), err)
	}
	d.logEvents(res.Events)
	return observed, res, nil
}

// maxActionLogs is the most actions a pass logs one line each at info
// level; a larger plan (a new revision of thousands of pods) logs them at
// debug level and one summary at info, so that the log stays readable and
// writing it does not cost more than the plan.
const maxActionLogs = 100

func (d *Driver) logActions(actions []Action) {
	level := slog.LevelInfo
	if len(actions) > maxActionLogs {
		level = slog.LevelDebug
		counts := map[ActionType]int{}
		for _, a := range actions {
			counts[a.Type]++
		}
		attrs := []any{"actions", len(actions)}
		for _, t := range slices.Sorted(maps.Keys(counts)) {
			attrs = append(attrs, string(t), counts[t])
		}
		d.Logger.Info("applying a large plan; each action is logged at debug level", attrs...)
	}
	ctx := context.Background()
	if !d.Logger.Enabled(ctx, level) {
		return
	}
	for _, a := range actions {
		d.Logger.Log(ctx, level, "action", "type", a.Type, "object", a.Object(), "reason", a.Reason)
	}
}

func (d *Driver) logEvents(events []Event) {
	for _, e := range events {
		d.Logger.Info("event", "object", strings.ToLower(e.Kind)+"/"+e.Namespace+"/"+e.Name, "reason", e.Reason, "message", e.Message)
	}
}

// Object names the object an action is about, for logs: never its
// content, which for a Secret is secret.
func (a Action) Object() string {
	switch a.Type {
	case PutCanary:
		return "canary/" + a.Canary.Namespace + "/" + a.Canary.Name
	case DeleteCanary:
		return "canary/" + a.Namespace + "/" + a.Name
	}
	if m := a.meta(); m != nil {
		kind := map[ActionType]string{CreatePod: "pod/", UpdatePod: "pod/", PutDeployment: "deployment/", PutService: "service/",
			PutConfigMap: "configmap/", PutSecret: "secret/", PutNamespace: "namespace/", PutJob: "job/", PutCronJob: "cronjob/",
			PutDaemonSet: "daemonset/", PutStatefulSet: "statefulset/", PutClaim: "persistentvolumeclaim/", PutIngress: "ingress/",
			PutIngressClass: "ingressclass/"}[a.Type]
		if a.Type == PutIngressClass {
			return kind + m.GetName()
		}
		if a.Type == PutNamespace {
			return kind + m.GetName()
		}
		return kind + m.GetNamespace() + "/" + m.GetName()
	}
	kind := map[ActionType]string{DeletePod: "pod/", DeleteDeployment: "deployment/", DeleteService: "service/",
		DeleteConfigMap: "configmap/", DeleteSecret: "secret/", DeleteNamespace: "namespace/", DeleteJob: "job/", DeleteCronJob: "cronjob/",
		DeleteDaemonSet: "daemonset/", DeleteStatefulSet: "statefulset/", DeleteClaim: "persistentvolumeclaim/",
		DeleteIngress: "ingress/", DeleteIngressClass: "ingressclass/"}[a.Type]
	if a.Type == DeleteNamespace || a.Type == DeleteIngressClass {
		return kind + a.Name
	}
	return kind + a.Namespace + "/" + a.Name
}

// meta is the object a put action stores, or nil for a delete.
func (a Action) meta() metav1.Object {
	switch {
	case a.Pod != nil:
		return a.Pod
	case a.Deployment != nil:
		return a.Deployment
	case a.Service != nil:
		return a.Service
	case a.ConfigMap != nil:
		return a.ConfigMap
	case a.Secret != nil:
		return a.Secret
	case a.NamespaceObject != nil:
		return a.NamespaceObject
	case a.CronJob != nil: // before Job: a PutCronJob may carry the Job of a run
		return a.CronJob
	case a.Job != nil:
		return a.Job
	case a.DaemonSet != nil:
		return a.DaemonSet
	case a.StatefulSet != nil:
		return a.StatefulSet
	case a.Claim != nil:
		return a.Claim
	case a.Ingress != nil:
		return a.Ingress
	case a.IngressClass != nil:
		return a.IngressClass
	}
	return nil
}
