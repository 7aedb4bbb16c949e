package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
)

// Sub-prefixes of what servers record about nodes, beside the agents' own
// registrations (NodesPrefix).
const (
	// NodeControlPrefix holds an operator's orders for a node (NodeControl):
	// cordon and drain. Written by the server that takes the API call, never
	// by an agent (etcd RBAC grants agents no write there): a node cannot
	// uncordon itself.
	NodeControlPrefix = "nodecontrol/"
	// NodeHealthPrefix holds the leader's record of each known node's health
	// (NodeHealth), so that a node whose lease lapsed stays visible,
	// NotReady, with since when.
	NodeHealthPrefix = "nodehealth/"
)

// Reasons of a NodeHealth record.
const (
	ReasonNodeReady        = "AgentReady"
	ReasonNodeLeaseExpired = "NodeLeaseExpired"
)

// NodeControl is what an operator ordered for a node: `bosun node cordon`
// sets Unschedulable, `bosun node drain` also sets Drain. Uncordon deletes
// the record.
type NodeControl struct {
	Node string `json:"node"`
	// Unschedulable keeps new pods off the node (the leader plans with the
	// node's Spec.Unschedulable set).
	Unschedulable bool `json:"unschedulable"`
	// Drain, when set, has the leader evict the node's pods as a rolling
	// update replaces them.
	Drain *NodeDrain `json:"drain,omitempty"`
	// Who asked (the API token's name) and when.
	Who  string    `json:"who,omitempty"`
	When time.Time `json:"when,omitzero"`
}

// NodeDrain is a drain in progress.
type NodeDrain struct {
	// Force also evicts pods no controller replaces (standalone Pods from
	// Git, recreated elsewhere) and running Jobs' pods (counted as failed
	// and replaced), as kubectl drain --force does.
	Force bool `json:"force,omitempty"`
}

// NodeHealth is the leader's record of a node's health. A node is known
// while it is registered, has a NodeControl record or has pods bound to
// it; the record goes with it.
type NodeHealth struct {
	Node  string `json:"node"`
	Ready bool   `json:"ready"`
	// Since is when Ready last changed (or when the leader first saw the
	// node).
	Since time.Time `json:"since"`
	// Reason and Message say why, as a NodeReady condition does:
	// "NodeLeaseExpired", "the node's lease expired; its 3 pods are replaced
	// elsewhere at 12:00:31 if it does not return".
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// LastSeen is the node's last registration, kept while it is NotReady
	// so that it can still be listed with its capacity, labels and address.
	LastSeen *corev1.Node `json:"lastSeen,omitempty"`
}

// NodeControlKey is the etcd key of a node's NodeControl.
func NodeControlKey(node string) string { return Prefix + NodeControlPrefix + node }

// NodeHealthKey is the etcd key of a node's NodeHealth.
func NodeHealthKey(node string) string { return Prefix + NodeHealthPrefix + node }

// PutNodeControl writes a node's NodeControl. It is a plain write, not a
// fenced one: any server takes the API call, leader or not.
func (s *Store) PutNodeControl(ctx context.Context, c *NodeControl) error {
	op, err := putOp(NodeControlKey(c.Node), c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := s.cli.Put(ctx, op.key, string(op.value)); err != nil {
		return fmt.Errorf("put node control of %s: %w", c.Node, err)
	}
	return nil
}

// DeleteNodeControl deletes a node's NodeControl (uncordon); it reports
// whether there was one.
func (s *Store) DeleteNodeControl(ctx context.Context, node string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Delete(ctx, NodeControlKey(node))
	if err != nil {
		return false, fmt.Errorf("delete node control of %s: %w", node, err)
	}
	return resp.Deleted > 0, nil
}

// PutNodeHealth writes a node's health record (the leader, fenced).
func PutNodeHealth(h *NodeHealth) (Op, error) { return putOp(NodeHealthKey(h.Node), h) }

// DeleteNodeHealth deletes a node's health record (the leader, fenced).
func DeleteNodeHealth(node string) Op { return Op{key: NodeHealthKey(node)} }

// NodeControls reads every NodeControl from etcd (tools and tests; servers
// read their cache's Snapshot).
func (s *Store) NodeControls(ctx context.Context) ([]NodeControl, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, Prefix+NodeControlPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list node controls: %w", err)
	}
	var out []NodeControl
	for _, kv := range resp.Kvs {
		if err := appendDecoded(kv.Value, &out); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
	}
	return out, nil
}

// KnownNodes are the names of the nodes the snapshot knows, sorted: those
// registered, with an operator's record (NodeControl), or with pods bound
// to them. The leader keeps a NodeHealth record for each; the API lists
// each, NotReady when it is not registered.
func (s *Snapshot) KnownNodes() []string {
	known := map[string]bool{}
	for i := range s.Nodes {
		known[s.Nodes[i].Name] = true
	}
	for _, c := range s.NodeControls {
		known[c.Node] = true
	}
	for _, p := range s.Pods {
		if p.Spec.NodeName != "" {
			known[p.Spec.NodeName] = true
		}
	}
	out := make([]string, 0, len(known))
	for name := range known {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
