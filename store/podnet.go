package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Keys of the pod network (issue 11): the leader records each node's pod
// subnet, and the cluster's network settings that agents follow.
const (
	// NodeSubnetsPrefix holds one NodeSubnet per node, written by the
	// leader (and deleted with the node by DeleteNode).
	NodeSubnetsPrefix = "nodesubnets/"
	// ClusterNetworkKey is the ClusterNetwork, written by the leader.
	ClusterNetworkKey = "cluster/network"
	// nodeControlPrefix holds nodecontrol/<node> (cordon, drain), written
	// by servers on an admin call; DeleteNode removes it with the node.
	nodeControlPrefix = "nodecontrol/"
)

// NodeSubnet is the leader's record of a node's pod subnet. PodCIDR, once
// set, is the node's until the record is deleted (bosun node delete):
// the leader never gives an overlapping subnet to another node. Refused
// answers a request the leader did not grant (RefusedRequest, "" for "any
// subnet"): the agent that asked exits with it.
type NodeSubnet struct {
	Node           string `json:"node"`
	PodCIDR        string `json:"podCIDR,omitempty"`
	Refused        string `json:"refused,omitempty"`
	RefusedRequest string `json:"refusedRequest,omitempty"`
}

// Backends of the pod network between nodes.
const (
	BackendHostGW = "host-gw"
	BackendVXLAN  = "vxlan"
)

// ClusterNetwork is the cluster's pod network, as the leader's flags set
// it: agents route between nodes with Backend and masquerade what leaves
// ClusterCIDR.
type ClusterNetwork struct {
	ClusterCIDR      string `json:"clusterCIDR"`
	NodeCIDRMaskSize int    `json:"nodeCIDRMaskSize"`
	Backend          string `json:"backend"`
}

// NodeSubnetKey is the record of node's pod subnet.
func NodeSubnetKey(node string) string { return Prefix + NodeSubnetsPrefix + node }

// NodeSubnets reads every record, by node, and the revision read at.
func (s *Store) NodeSubnets(ctx context.Context) (map[string]NodeSubnet, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, Prefix+NodeSubnetsPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("list node subnets: %w", err)
	}
	out := make(map[string]NodeSubnet, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var ns NodeSubnet
		if err := json.Unmarshal(kv.Value, &ns); err != nil {
			return nil, 0, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		ns.Node = strings.TrimPrefix(string(kv.Key), Prefix+NodeSubnetsPrefix)
		out[ns.Node] = ns
	}
	return out, resp.Header.Revision, nil
}

// NodeSubnet reads the record of one node; ok is false when there is none.
func (s *Store) NodeSubnet(ctx context.Context, node string) (ns NodeSubnet, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, NodeSubnetKey(node))
	if err != nil {
		return NodeSubnet{}, false, fmt.Errorf("read the pod subnet of node %s: %w", node, err)
	}
	if len(resp.Kvs) == 0 {
		return NodeSubnet{}, false, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &ns); err != nil {
		return NodeSubnet{}, false, fmt.Errorf("decode %s: %w", resp.Kvs[0].Key, err)
	}
	ns.Node = node
	return ns, true, nil
}

// ClusterNetwork reads the cluster's network settings; ok is false before
// a leader wrote them.
func (s *Store) ClusterNetwork(ctx context.Context) (cn ClusterNetwork, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, Prefix+ClusterNetworkKey)
	if err != nil {
		return ClusterNetwork{}, false, fmt.Errorf("read the cluster network: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return ClusterNetwork{}, false, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &cn); err != nil {
		return ClusterNetwork{}, false, fmt.Errorf("decode %s: %w", resp.Kvs[0].Key, err)
	}
	return cn, true, nil
}

// PutNodeSubnet writes a node's record (leader only).
func PutNodeSubnet(ns NodeSubnet) (Op, error) { return putOp(NodeSubnetKey(ns.Node), ns) }

// DeleteNodeSubnet deletes a node's record (leader only).
func DeleteNodeSubnet(node string) Op { return Op{key: NodeSubnetKey(node)} }

// PutClusterNetwork writes the cluster's network settings (leader only).
func PutClusterNetwork(cn ClusterNetwork) (Op, error) { return putOp(Prefix+ClusterNetworkKey, cn) }

// DeletedNode says what DeleteNode removed.
type DeletedNode struct {
	Registered bool   // the node's registration was there
	PodCIDR    string // the subnet freed ("" if none was recorded)
	Statuses   int64  // pod statuses removed
	Control    bool   // a cordon/drain record was removed
}

// DeleteNode forgets a node, in one transaction: its registration, its pod
// subnet record (freeing the subnet), its pod statuses and its cordon and
// drain records. The pods bound to it stay for the leader, which replaces
// them (a node without a registration nor a subnet record is gone, with no
// grace). An agent of that node still running is no longer registered and
// holds no subnet.
func (s *Store) DeleteNode(ctx context.Context, node string) (DeletedNode, error) {
	if node == "" || strings.Contains(node, "/") {
		return DeletedNode{}, fmt.Errorf("delete node %q: not a node name", node)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	statuses := Prefix + PodStatusPrefix + node + "/"
	control := Prefix + nodeControlPrefix + node
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpDelete(NodeKey(node)),
		clientv3.OpDelete(NodeSubnetKey(node), clientv3.WithPrevKV()),
		clientv3.OpDelete(statuses, clientv3.WithPrefix()),
		clientv3.OpDelete(control),
		clientv3.OpDelete(control+"/", clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return DeletedNode{}, fmt.Errorf("delete node %s: %w", node, err)
	}
	var d DeletedNode
	d.Registered = resp.Responses[0].GetResponseDeleteRange().Deleted > 0
	if prev := resp.Responses[1].GetResponseDeleteRange().PrevKvs; len(prev) > 0 {
		var ns NodeSubnet
		if json.Unmarshal(prev[0].Value, &ns) == nil {
			d.PodCIDR = ns.PodCIDR
		}
	}
	d.Statuses = resp.Responses[2].GetResponseDeleteRange().Deleted
	d.Control = resp.Responses[3].GetResponseDeleteRange().Deleted+resp.Responses[4].GetResponseDeleteRange().Deleted > 0
	return d, nil
}
