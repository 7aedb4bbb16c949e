package nodes

import (
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// fencePlan is what a node must stop before it registers (reports Ready):
// the pod instances it runs that are no longer bound to it.
type fencePlan struct {
	// Stale lists, by pod key, the UIDs running here that are not bound
	// here now: the pod was deleted, bound to another node, or replaced by
	// a pod of the same name (a new UID).
	Stale map[string][]types.UID
	// Keep lists the keys whose only local instance is the one bound here:
	// they keep running untouched.
	Keep []string
}

// StaleCount is how many pod instances the plan stops.
func (p fencePlan) StaleCount() int {
	n := 0
	for _, uids := range p.Stale {
		n += len(uids)
	}
	return n
}

// planFence decides, without I/O, what node must stop before it reports
// Ready: local holds, by pod key (namespace/name), the UIDs of the pod
// instances with containers or a worker here; bound are the pods listed
// under the node's prefix in the store at a revision read after the node
// came back. A pod listed under the node's prefix but naming another node
// in spec.nodeName is not this node's (Run's loop does not run it either).
func planFence(node string, local map[string][]types.UID, bound []*corev1.Pod) fencePlan {
	want := make(map[string]types.UID, len(bound))
	for _, p := range bound {
		if p == nil || p.Spec.NodeName != node {
			continue
		}
		want[p.Namespace+"/"+p.Name] = p.UID
	}
	plan := fencePlan{Stale: map[string][]types.UID{}}
	for _, key := range slices.Sorted(maps.Keys(local)) {
		uid, ok := want[key]
		var stale []types.UID
		for _, u := range local[key] {
			if !ok || u != uid {
				stale = append(stale, u)
			}
		}
		if len(stale) > 0 {
			slices.Sort(stale)
			plan.Stale[key] = slices.Compact(stale)
			continue
		}
		plan.Keep = append(plan.Keep, key)
	}
	return plan
}

// cutOffStopDue says whether a node whose lease was lost at lostAt (and
// which has not reached etcd since) stops its pods at now, and if not,
// how long until it does (0: never). after is Config.CutOffStopAfter.
func cutOffStopDue(lostAt, now time.Time, after time.Duration) (due bool, wait time.Duration) {
	if after <= 0 || lostAt.IsZero() {
		return false, 0
	}
	if left := lostAt.Add(after).Sub(now); left > 0 {
		return false, left
	}
	return true, 0
}

// agentMetrics are the node agent's own counters (bosun_agent_*).
type agentMetrics struct {
	leaseLosses prometheus.Counter
	fencedPods  prometheus.Counter
	fences      prometheus.Histogram
	fencing     prometheus.Gauge
	cutOffStops prometheus.Counter
	*podMetrics // metrics.go
}

func newAgentMetrics(reg prometheus.Registerer) *agentMetrics {
	m := &agentMetrics{podMetrics: newPodMetrics(),
		leaseLosses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_agent_lease_losses_total",
			Help: "Times the node's lease was lost (expired, or not kept alive for its TTL): the node was cut off from etcd.",
		}),
		fencedPods: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_agent_fenced_pods_total",
			Help: "Pod instances the agent stopped before registering its node because they were no longer bound to it (deleted, or bound elsewhere while the node was cut off or its agent was down).",
		}),
		fences: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bosun_agent_fence_duration_seconds",
			Help:    "Time from the start of a fence (agent start, or etcd reachable again after a lease loss) until the node registered, stale pods stopped.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		fencing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bosun_agent_fencing",
			Help: "1 while the node is not registered: it is stopping stale pods or waiting for etcd before it reports Ready.",
		}),
		cutOffStops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_agent_cut_off_stops_total",
			Help: "Times the agent stopped every pod of its node because it had been cut off from etcd for --cut-off-stop-after.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.leaseLosses, m.fencedPods, m.fences, m.fencing, m.cutOffStops)
		reg.MustRegister(m.collectors()...)
	}
	return m
}
