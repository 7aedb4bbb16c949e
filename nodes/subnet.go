package nodes

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/store"
)

// TaintNetworkUnavailable is on a node while it waits for its pod subnet:
// the scheduler places nothing there until its pod network exists
// (Kubernetes' node.kubernetes.io/network-unavailable).
const TaintNetworkUnavailable = "node.kubernetes.io/network-unavailable"

// ErrSubnetRefused wraps the leader's refusal of the pod subnet a node
// asks for (--pod-cidr overlapping another node's, another subnet than its
// recorded one, or a cluster CIDR with none left): the agent stops with
// it, before anything on the machine changes.
var ErrSubnetRefused = errors.New("pod subnet refused")

// subnetProgressInterval is how often a waiting agent says it still waits.
const subnetProgressInterval = 5 * time.Second

// podSubnet returns the pod subnet this node runs its pods in. The leader
// gives it (store.NodeSubnet): the subnet asked for (Config.PodCIDR), or,
// when none is asked for, one from the cluster CIDR; a node that had one
// gets it back. The agent waits for the leader's record, saying so every
// few seconds. An agent that asks for a subnet while no leader is elected
// (a cluster without a server, as in the nodes package's tests) checks it
// against the recorded subnets and the registered nodes itself and goes
// on; the leader records it when it comes, and a refusal then stops the
// agent (watchSubnet).
func (a *Agent) podSubnet(ctx context.Context) (string, error) {
	var want netip.Prefix
	if a.request != "" {
		want = netip.MustParsePrefix(a.request) // checked by setDefaults
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes := a.st.Changes(wctx, store.NodeSubnetsPrefix+a.cfg.NodeName)
	progress := time.NewTicker(subnetProgressInterval)
	defer progress.Stop()
	start := time.Now()
	first := true
	for {
		rec, ok, err := a.st.NodeSubnet(ctx, a.cfg.NodeName)
		switch {
		case err != nil:
			a.log.Warn("read this node's pod subnet; retrying", "err", err)
		case ok && rec.PodCIDR != "" && (!want.IsValid() || samePrefix(rec.PodCIDR, want)):
			return rec.PodCIDR, nil
		case ok && rec.Refused != "" && requestIs(rec.RefusedRequest, want):
			return "", fmt.Errorf("node %s: %w: %s", a.cfg.NodeName, ErrSubnetRefused, rec.Refused)
		}
		if first && want.IsValid() {
			first = false
			leader, err := a.st.Leader(ctx)
			if err == nil && leader == "" {
				if err := a.checkAlone(ctx, want); err != nil {
					return "", err
				}
				a.log.Warn("no leader to record this node's pod subnet: checked against the recorded subnets and the registered nodes only", "podCIDR", want)
				return want.String(), nil
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-changes:
		case <-progress.C:
			leader, _ := a.st.Leader(ctx)
			if leader == "" {
				leader = "(none elected yet)"
			}
			a.log.Info("waiting for the leader to give this node a pod subnet", "asked", orAny(a.request),
				"waited", time.Since(start).Round(time.Second), "leader", leader)
		}
	}
}

// checkAlone is the check an agent makes of the subnet it asks for when no
// leader is there to make it: no other node's record overlaps it, nor a
// node registered on this machine (podCIDRCheck).
func (a *Agent) checkAlone(ctx context.Context, want netip.Prefix) error {
	records, _, err := a.st.NodeSubnets(ctx)
	if err != nil {
		return err
	}
	for name, r := range records {
		p, err := netip.ParsePrefix(r.PodCIDR)
		if name == a.cfg.NodeName || err != nil {
			continue
		}
		if p.Overlaps(want) {
			return fmt.Errorf("node %s: %w: pod subnet %s overlaps the pod subnet of node %s (%s): give it a --pod-cidr of its own, or none to get one from the cluster CIDR",
				a.cfg.NodeName, ErrSubnetRefused, want, name, p)
		}
	}
	registered, err := a.st.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("read nodes: %w", err)
	}
	host, _ := os.Hostname()
	refuse, warn := podCIDRCheck(a.cfg.NodeName, host, want.String(), registered)
	if refuse != nil {
		return fmt.Errorf("node %s: %w", a.cfg.NodeName, refuse)
	}
	if warn != "" {
		a.log.Warn(warn)
	}
	return nil
}

// watchSubnet sends the reason this node must stop once its subnet record
// is refused or deleted (bosun node delete) while it runs, then closes.
func (a *Agent) watchSubnet(ctx context.Context, cidr string) <-chan error {
	out := make(chan error, 1)
	go func() {
		defer close(out)
		changes := a.st.Changes(ctx, store.NodeSubnetsPrefix+a.cfg.NodeName)
		seen := false
		for range changes {
			rec, ok, err := a.st.NodeSubnet(ctx, a.cfg.NodeName)
			if err != nil {
				continue
			}
			switch {
			case ok && rec.PodCIDR == cidr:
				seen = true
			case ok && rec.Refused != "" && rec.RefusedRequest == cidr:
				out <- fmt.Errorf("node %s: %w: %s", a.cfg.NodeName, ErrSubnetRefused, rec.Refused)
				return
			case !ok && seen:
				out <- fmt.Errorf("node %s: its pod subnet %s was freed (bosun node delete): stopping; start the agent again to register anew", a.cfg.NodeName, cidr)
				return
			}
		}
	}()
	return out
}

// samePrefix reports whether s parses to p (masked).
func samePrefix(s string, p netip.Prefix) bool {
	q, err := netip.ParsePrefix(s)
	return err == nil && q.Masked() == p.Masked()
}

// requestIs reports whether a refusal of the request s is one of want
// (the zero Prefix: any subnet).
func requestIs(s string, want netip.Prefix) bool {
	if !want.IsValid() {
		return s == ""
	}
	return samePrefix(s, want)
}

func orAny(s string) string {
	if s == "" {
		return "any (from the cluster CIDR)"
	}
	return s
}

// pendingNode marks a node object as waiting for its pod network: not
// Ready, and tainted so that nothing is placed on it.
func pendingNode(n *corev1.Node) {
	n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: TaintNetworkUnavailable, Effect: corev1.TaintEffectNoSchedule})
	for i := range n.Status.Conditions {
		if c := &n.Status.Conditions[i]; c.Type == corev1.NodeReady {
			c.Status, c.Reason, c.Message = corev1.ConditionFalse, "PodSubnetPending", "waiting for the leader to give the node a pod subnet"
		}
	}
	n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{
		Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue, Reason: "PodSubnetPending",
		Message: "waiting for the leader to give the node a pod subnet", LastHeartbeatTime: n.Status.Conditions[0].LastHeartbeatTime,
		LastTransitionTime: n.Status.Conditions[0].LastTransitionTime,
	})
}
