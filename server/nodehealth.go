package server

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"bosun/reconciler"
	"bosun/store"
)

// Nodes as the leader plans with them and as the API shows them.
//
// A node is known while it is registered (its agent's lease), has a
// cordon or drain record (store.NodeControl) or has pods bound to it. The
// leader keeps a health record (store.NodeHealth) for each known node: Ready
// while it is registered, NotReady from the moment its registration is
// gone, with since when and why; the record goes when the node is no longer
// known. Operators' records are merged into the nodes the leader plans with:
// a cordoned node is unschedulable, a draining one is drained
// (reconciler.Drain).

// withControls returns nodes with the operators' records merged in
// (cordoned: Spec.Unschedulable), and the drains in progress by node. nodes
// is not modified: a cordoned node is copied.
func withControls(nodes []corev1.Node, controls []store.NodeControl) ([]corev1.Node, map[string]reconciler.Drain) {
	if len(controls) == 0 {
		return nodes, nil
	}
	byName := make(map[string]*store.NodeControl, len(controls))
	var drains map[string]reconciler.Drain
	for i := range controls {
		c := &controls[i]
		byName[c.Node] = c
		if c.Drain != nil {
			if drains == nil {
				drains = map[string]reconciler.Drain{}
			}
			drains[c.Node] = reconciler.Drain{Force: c.Drain.Force}
		}
	}
	out := slices.Clone(nodes)
	for i := range out {
		if c := byName[out[i].Name]; c != nil && (c.Unschedulable || c.Drain != nil) && !out[i].Spec.Unschedulable {
			out[i].Spec.Unschedulable = true // a bool of a copied struct: nothing shared is written
		}
	}
	return out, drains
}

// knownNodes is snap.KnownNodes as a set.
func knownNodes(snap *store.Snapshot) map[string]bool {
	known := map[string]bool{}
	for _, name := range snap.KnownNodes() {
		known[name] = true
	}
	return known
}

// healthChanges decides the leader's writes of node health records from a
// snapshot: put, a record for each known node that lacks one or whose
// health changed; gone, the nodes no longer known whose records go. lastSeen is
// the grace state's last registration of each absent node (for the record
// of a node that just went away), grace the node grace period. Pure: now
// is passed in.
func healthChanges(snap *store.Snapshot, lastSeen map[string]reconciler.SeenNode, grace time.Duration, now time.Time) (put []store.NodeHealth, gone []string) {
	known := knownNodes(snap)
	registered := make(map[string]bool, len(snap.Nodes))
	for i := range snap.Nodes {
		registered[snap.Nodes[i].Name] = true
	}
	prev := make(map[string]*store.NodeHealth, len(snap.NodeHealth))
	for i := range snap.NodeHealth {
		prev[snap.NodeHealth[i].Node] = &snap.NodeHealth[i]
	}
	pods := map[string]int{}
	for _, p := range snap.Pods {
		pods[p.Spec.NodeName]++
	}
	for _, name := range sortedKeys(known) {
		old := prev[name]
		if registered[name] {
			if old == nil || !old.Ready {
				put = append(put, store.NodeHealth{Node: name, Ready: true, Since: now, Reason: store.ReasonNodeReady, Message: "bosun agent is running"})
			}
			continue
		}
		h := store.NodeHealth{Node: name, Ready: false, Since: now, Reason: store.ReasonNodeLeaseExpired}
		if old != nil && !old.Ready {
			h.Since, h.LastSeen = old.Since, old.LastSeen
		}
		if h.LastSeen == nil {
			if s, ok := lastSeen[name]; ok && s.Node.Status.Allocatable != nil {
				n := s.Node.DeepCopy()
				h.LastSeen = n
			}
		}
		h.Message = notReadyMessage(h.Since, grace, pods[name], now)
		if old == nil || old.Ready || old.Message != h.Message || (old.LastSeen == nil) != (h.LastSeen == nil) {
			put = append(put, h)
		}
	}
	for name := range prev {
		if !known[name] {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	return put, gone
}

// notReadyMessage says what became of an absent node's pods: replaced
// elsewhere once the grace period after since is over.
func notReadyMessage(since time.Time, grace time.Duration, pods int, now time.Time) string {
	at := since.Add(grace)
	lapsed := "the node's lease expired at " + since.UTC().Format(time.RFC3339)
	switch {
	case now.Before(at):
		return fmt.Sprintf("%s; its pods (%d) are replaced on other nodes at %s (after the %s grace period) unless it returns",
			lapsed, pods, at.UTC().Format(time.RFC3339), grace)
	case pods == 0:
		return fmt.Sprintf("%s; after the %s grace period its pods were replaced on other nodes (at %s)", lapsed, grace, at.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("%s; after the %s grace period its pods are replaced on other nodes (since %s); %d still bound to it (finished, or their spec names the node)",
		lapsed, grace, at.UTC().Format(time.RFC3339), pods)
}

// healthOps turns healthChanges into fenced writes.
func healthOps(put []store.NodeHealth, gone []string) ([]store.Op, error) {
	ops := make([]store.Op, 0, len(put)+len(gone))
	for i := range put {
		op, err := store.PutNodeHealth(&put[i])
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	for _, name := range gone {
		ops = append(ops, store.DeleteNodeHealth(name))
	}
	return ops, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// nodeMetrics are the leader's metrics of nodes and drains.
type nodeMetrics struct {
	nodes     *prometheus.GaugeVec
	notReady  prometheus.Counter
	drains    *prometheus.CounterVec
	evictions prometheus.Counter
}

func newNodeMetrics(reg prometheus.Registerer) *nodeMetrics {
	m := &nodeMetrics{
		nodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bosun_nodes", Help: "Known nodes by state: ready, not_ready, cordoned (unschedulable, ready or not), draining.",
		}, []string{"state"}),
		notReady: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_node_not_ready_total", Help: "Times a node's registration lapsed and the leader recorded it NotReady.",
		}),
		drains: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_node_drains_total", Help: "Drains the leader saw, by event: started, completed (no pod left on the node).",
		}, []string{"event"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_node_drain_evictions_total", Help: "Pods the leader deleted to drain a node.",
		}),
	}
	reg.MustRegister(m.nodes, m.notReady, m.drains, m.evictions)
	return m
}

// isDrainEviction reports whether a DeletePod action is a drain's (its
// reason is the planner's: "drain node N..." or "evicted: node N drained").
func isDrainEviction(a reconciler.Action) bool {
	return a.Type == reconciler.DeletePod && (strings.HasPrefix(a.Reason, "drain node ") ||
		strings.HasPrefix(a.Reason, "evicted: node ") && strings.Contains(a.Reason, " drained"))
}

// observeNodes decides the node health writes of a pass (taken by the
// leader with takeHealth, written after the plan's actions), and reports
// nodes and drains in metrics and logs.
func (c *cluster) observeNodes(snap *store.Snapshot, o reconciler.Observed, now time.Time) error {
	put, gone := healthChanges(snap, c.nodes.LastSeen, c.grace, now)
	ops, err := healthOps(put, gone)
	if err != nil {
		return err
	}
	c.health = ops
	nm := c.m.nodes
	for _, h := range put {
		c.events.nodeHealth(h, now)
		if !h.Ready && h.Since.Equal(now) {
			nm.notReady.Inc()
			if c.log != nil {
				c.log.Warn("node not ready", "node", h.Node, "reason", h.Reason, "message", h.Message)
			}
		} else if h.Ready && c.log != nil {
			c.log.Info("node ready", "node", h.Node)
		}
	}
	c.events.nodeControls(snap.NodeControls, o)
	registered := make(map[string]bool, len(snap.Nodes))
	for i := range snap.Nodes {
		registered[snap.Nodes[i].Name] = true
	}
	counts := map[string]float64{"ready": 0, "not_ready": 0, "cordoned": 0, "draining": float64(len(o.Drains))}
	for name := range knownNodes(snap) {
		if registered[name] {
			counts["ready"]++
		} else {
			counts["not_ready"]++
		}
	}
	for _, ctl := range snap.NodeControls {
		if ctl.Unschedulable || ctl.Drain != nil {
			counts["cordoned"]++
		}
	}
	for state, v := range counts {
		nm.nodes.WithLabelValues(state).Set(v)
	}
	if c.drains == nil {
		c.drains = map[string]bool{}
	}
	for name, d := range o.Drains {
		done, seen := c.drains[name]
		if !seen {
			nm.drains.WithLabelValues("started").Inc()
		}
		p := reconciler.DrainStatus(name, o, d)
		if p.Done && !done {
			nm.drains.WithLabelValues("completed").Inc()
			if c.log != nil {
				c.log.Info("node drained", "node", name)
			}
		}
		c.drains[name] = p.Done
	}
	for name := range c.drains {
		if _, ok := o.Drains[name]; !ok {
			delete(c.drains, name)
		}
	}
	return nil
}

// takeHealth returns the node health writes the last Observe decided, once.
func (c *cluster) takeHealth() []store.Op {
	ops := c.health
	c.health = nil
	return ops
}
