package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"bosun/canary"
	"bosun/reconciler"
	"bosun/store"
)

// cluster implements reconciler.Cluster on the store, writing through the
// leadership so that every write is fenced.
type cluster struct {
	st    *store.Store
	cache *store.Cache
	lead  *store.Leadership
	log   *slog.Logger
	now   func() time.Time
	// grace is how long a node may be absent before its pods count as lost.
	grace time.Duration
	// nodes is the node grace state (reconciler.NodeGrace), nil until the
	// first pass. Only the reconcile loop touches it.
	nodes *reconciler.NodeGrace
	m     *metrics
	// events records node health, cordon and drain events (events.go).
	events *serverEvents
	// snap is the state the last plan was made from: Apply finds there
	// the node (so the key) of a pod it deletes or binds.
	snap *store.Snapshot
	// migrated is set once old-layout pod keys were moved (at takeover).
	migrated bool
	// readFrom is the revision the first plan must see: etcd's at
	// takeover, so that a new leader never plans from a cache that has
	// not yet seen the previous leader's last writes.
	readFrom int64
	// canaries gives what the leader knows of the canary branches and
	// the canaries' queries (nil: nothing).
	canaries func() (map[string]canary.Candidate, map[string]canary.Measurement)
	// health are the node health writes the last Observe decided
	// (nodehealth.go), for the leader to write after the plan's actions;
	// drains what it knows of the drains in progress (true: done).
	health []store.Op
	drains map[string]bool
}

// readOwnWritesTimeout bounds the wait for the cache to show the leader's
// last write; a cache that far behind fails the pass, which is retried.
const readOwnWritesTimeout = 10 * time.Second

// Observe reads the replica's cache, once it shows the leader's own last
// write: a plan made from an older state would repeat the last one's
// creations. A new leader first moves pods stored in the old key layout,
// and waits for its cache to reach etcd's revision at takeover.
func (c *cluster) Observe(ctx context.Context) (reconciler.Observed, error) {
	if !c.migrated {
		n, err := c.lead.MigratePodKeys(ctx)
		if err != nil {
			return reconciler.Observed{}, err
		}
		if n > 0 && c.log != nil {
			c.log.Info("moved pods to the per-node key layout", "pods", n)
		}
		if err := c.reencrypt(ctx); err != nil {
			return reconciler.Observed{}, err
		}
		if c.readFrom, err = c.st.Revision(ctx); err != nil {
			return reconciler.Observed{}, err
		}
		c.migrated = true
	}
	wctx, cancel := context.WithTimeout(ctx, readOwnWritesTimeout)
	err := c.cache.WaitFor(wctx, max(c.readFrom, c.lead.Revision()))
	cancel()
	if err != nil {
		return reconciler.Observed{}, fmt.Errorf("cache behind the leader's writes: %w", err)
	}
	snap, err := c.cache.Snapshot(ctx)
	if err != nil {
		return reconciler.Observed{}, err
	}
	c.snap = snap
	now := c.now()
	if c.nodes == nil {
		g := reconciler.StartNodeGrace(c.grace, snap.Pods, now)
		c.nodes = &g
	}
	o := observed(snap)
	if c.canaries != nil {
		o.CanaryBranches, o.Measurements = c.canaries()
	}
	// NodeGrace.Observe copies the node list: the snapshot is shared.
	*c.nodes, o.Nodes, o.NodeGraceExpires = c.nodes.Observe(snap.Nodes, now)
	o.Nodes, o.Drains = withControls(o.Nodes, snap.NodeControls)
	if err := c.observeNodes(snap, o, now); err != nil {
		return reconciler.Observed{}, err
	}
	if o.Volumes, err = observeVolumes(ctx, c.st, c.log); err != nil {
		return reconciler.Observed{}, err
	}
	return o, nil
}

// podNode is the node a pod is stored under, as the last observed state
// has it ("" when unbound or unknown).
func (c *cluster) podNode(namespace, name string) string {
	if c.snap == nil {
		return ""
	}
	if p := c.snap.Pod(namespace, name); p != nil {
		return p.Spec.NodeName
	}
	return ""
}

// observed is the planner's view of a snapshot (the leader replaces its
// nodes with those NodeGrace counts, merged with the cordons again).
func observed(snap *store.Snapshot) reconciler.Observed {
	o := reconciler.Observed{Nodes: snap.Nodes, Pods: snap.Pods, Deployments: snap.Deployments, Services: snap.Services,
		ConfigMaps: snap.ConfigMaps, Secrets: snap.Secrets, Namespaces: snap.Namespaces, Jobs: snap.Jobs, CronJobs: snap.CronJobs,
		Canaries: snap.Canaries, DaemonSets: snap.DaemonSets, StatefulSets: snap.StatefulSets, Claims: snap.Claims,
		Ingresses: snap.Ingresses, IngressClasses: snap.IngressClasses}
	// Cordons and drains (nodehealth.go), so that a preview places pods
	// as the leader would.
	o.Nodes, o.Drains = withControls(o.Nodes, snap.NodeControls)
	for _, t := range snap.Terminating {
		o.Terminating = append(o.Terminating, reconciler.TerminatingPod{Namespace: t.Namespace, Name: t.Name, Node: t.Node, Owner: t.Owner})
	}
	return o
}

// Apply turns actions into store writes. A pod the planner left without an
// identity gets one here: a random UID and the creation time. A CronJob
// put that starts a run is written first, in a transaction of its own with
// the run's Job and the Job's first pods, so that a failover can neither
// lose the run nor start it twice (the Job exists exactly when
// lastScheduleTime says it ran), and so that its pods start after one
// write, not two.
func (c *cluster) Apply(ctx context.Context, actions []reconciler.Action) error {
	ops := make([]store.Op, 0, len(actions))
	runs := map[types.UID]int{} // a run's Job UID -> its group
	var groups [][]store.Op
	done := make([]bool, len(actions))
	for i, a := range actions {
		if a.Type != reconciler.PutCronJob || a.Job == nil {
			continue
		}
		job, err := store.PutJob(a.Job)
		if err != nil {
			return err
		}
		cj, err := store.PutCronJob(a.CronJob)
		if err != nil {
			return err
		}
		runs[a.Job.UID] = len(groups)
		groups = append(groups, []store.Op{job, cj})
		done[i] = true
	}
	for i, a := range actions {
		if a.Type != reconciler.CreatePod || len(runs) == 0 {
			continue
		}
		if owner := metav1.GetControllerOfNoCopy(a.Pod); owner != nil && owner.Kind == "Job" {
			if g, ok := runs[owner.UID]; ok {
				op, err := store.PutPod(c.newPod(a.Pod))
				if err != nil {
					return err
				}
				groups[g] = append(groups[g], op)
				done[i] = true
			}
		}
	}
	for _, g := range groups {
		if err := c.lead.Apply(ctx, g); err != nil {
			return err
		}
	}
	for i, a := range actions {
		if done[i] {
			continue
		}
		var op store.Op
		var err error
		switch a.Type {
		case reconciler.CreatePod:
			op, err = store.PutPod(c.newPod(a.Pod))
		case reconciler.UpdatePod:
			// Binding moves the pod's key under its node: one delete and
			// one put in the same transaction.
			op, err = store.MovePod(c.podNode(a.Pod.Namespace, a.Pod.Name), c.newPod(a.Pod))
		case reconciler.DeletePod:
			op = store.DeletePod(c.podNode(a.Namespace, a.Name), a.Namespace, a.Name)
		case reconciler.PutDeployment:
			op, err = store.PutDeployment(a.Deployment)
		case reconciler.DeleteDeployment:
			op = store.DeleteDeployment(a.Namespace, a.Name)
		case reconciler.PutService:
			op, err = store.PutService(a.Service)
		case reconciler.DeleteService:
			op = store.DeleteService(a.Namespace, a.Name)
		case reconciler.PutConfigMap:
			op, err = store.PutConfigMap(a.ConfigMap)
		case reconciler.DeleteConfigMap:
			op = store.DeleteConfigMap(a.Namespace, a.Name)
		case reconciler.PutSecret:
			op, err = store.PutSecret(a.Secret)
		case reconciler.DeleteSecret:
			op = store.DeleteSecret(a.Namespace, a.Name)
		case reconciler.PutNamespace:
			op, err = store.PutNamespace(a.NamespaceObject)
		case reconciler.DeleteNamespace:
			op = store.DeleteNamespace(a.Name)
		case reconciler.PutJob:
			op, err = store.PutJob(a.Job)
		case reconciler.DeleteJob:
			op = store.DeleteJob(a.Namespace, a.Name)
		case reconciler.PutCronJob:
			op, err = store.PutCronJob(a.CronJob)
		case reconciler.DeleteCronJob:
			op = store.DeleteCronJob(a.Namespace, a.Name)
		case reconciler.PutCanary:
			op, err = store.PutCanary(a.Canary)
		case reconciler.DeleteCanary:
			op = store.DeleteCanary(a.Namespace, a.Name)
		case reconciler.PutDaemonSet:
			op, err = store.PutDaemonSet(a.DaemonSet)
		case reconciler.DeleteDaemonSet:
			op = store.DeleteDaemonSet(a.Namespace, a.Name)
		case reconciler.PutStatefulSet:
			op, err = store.PutStatefulSet(a.StatefulSet)
		case reconciler.DeleteStatefulSet:
			op = store.DeleteStatefulSet(a.Namespace, a.Name)
		case reconciler.PutClaim:
			op, err = store.PutClaim(a.Claim)
		case reconciler.DeleteClaim:
			op = store.DeleteClaim(a.Namespace, a.Name)
		case reconciler.PutIngress:
			op, err = store.PutIngress(a.Ingress)
		case reconciler.DeleteIngress:
			op = store.DeleteIngress(a.Namespace, a.Name)
		case reconciler.PutIngressClass:
			op, err = store.PutIngressClass(a.IngressClass)
		case reconciler.DeleteIngressClass:
			op = store.DeleteIngressClass(a.Name)
		default:
			return fmt.Errorf("unknown action %q", a.Type)
		}
		if err != nil {
			return err
		}
		ops = append(ops, op)
	}
	if err := c.lead.Apply(ctx, ops); err != nil {
		return err
	}
	for _, a := range actions {
		c.m.actions.WithLabelValues(string(a.Type)).Inc()
		if isDrainEviction(a) {
			c.m.nodes.evictions.Inc()
		}
	}
	return nil
}

// newPod is a pod as the store keeps it: with an identity, and of its
// status only what the leader decides.
func (c *cluster) newPod(pod *corev1.Pod) *corev1.Pod {
	p := pod.DeepCopy()
	if p.UID == "" {
		p.UID = newUID()
	}
	if p.CreationTimestamp.IsZero() {
		p.CreationTimestamp = metav1.NewTime(c.now())
	}
	p.Status = schedulingStatus(p.Status)
	return p
}

// schedulingStatus keeps of a pod's status only what the leader decides:
// the scheduling verdict. The rest is the node agent's to report.
func schedulingStatus(st corev1.PodStatus) corev1.PodStatus {
	var out corev1.PodStatus
	for _, c := range st.Conditions {
		if c.Type == corev1.PodScheduled {
			out.Conditions = append(out.Conditions, c)
			if c.Status == corev1.ConditionFalse {
				out.Phase = corev1.PodPending
			}
		}
	}
	return out
}

func newUID() types.UID {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]))
}
