package server

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/store"
)

// TestSubnets_recordsRefusesAndForgetsDeletedNodes: the leader's allocator
// on a real etcd records the cluster network, gives a node that asks for
// nothing the first free /24, records a hand-given subnet, refuses an
// overlapping one naming the other node, keeps a lapsed node's subnet and
// reports a deleted node once.
func TestSubnets_recordsRefusesAndForgetsDeletedNodes(t *testing.T) {
	ctx := context.Background()
	st := store.NewTest(t)
	lead := newLeadership(t, st)
	m := newSubnetMetrics(prometheus.NewRegistry())
	sn, err := newSubnets(PodNetwork{Backend: store.BackendVXLAN}, st, lead.Apply, slog.New(slog.DiscardHandler), m)
	if err != nil {
		t.Fatal(err)
	}
	register := func(name, cidr string) *store.NodeLease {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDR: cidr}}
		l, err := st.RegisterNode(ctx, n, 0)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	la := register("a", "")
	register("b", "10.88.0.0/25") // a's will be 10.88.0.0/24: taken first by name
	register("c", "192.168.9.0/24")
	if deleted, err := sn.sync(ctx); err != nil || len(deleted) != 0 {
		t.Fatalf("sync: %v %v", deleted, err)
	}
	cn, ok, err := st.ClusterNetwork(ctx)
	if err != nil || !ok || cn != (store.ClusterNetwork{ClusterCIDR: "10.88.0.0/16", NodeCIDRMaskSize: 24, Backend: "vxlan"}) {
		t.Errorf("cluster network %+v %v %v", cn, ok, err)
	}
	recs, _, err := st.NodeSubnets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if recs["a"].PodCIDR != "10.88.0.0/24" || recs["c"].PodCIDR != "192.168.9.0/24" || recs["b"].PodCIDR != "" ||
		!strings.Contains(recs["b"].Refused, "overlaps the pod subnet of node a (10.88.0.0/24)") || recs["b"].RefusedRequest != "10.88.0.0/25" {
		t.Errorf("records %+v", recs)
	}
	if got := testutil.ToFloat64(m.allocations); got != 2 {
		t.Errorf("allocations %v", got)
	}
	if got := testutil.ToFloat64(m.refusals); got != 1 {
		t.Errorf("refusals %v", got)
	}
	if got := testutil.ToFloat64(m.free); got != 255 {
		t.Errorf("free %v", got)
	}

	// a's lease lapses: it keeps its subnet; a new node gets the next one.
	if err := la.Close(ctx); err != nil {
		t.Fatal(err)
	}
	register("d", "")
	if deleted, err := sn.sync(ctx); err != nil || len(deleted) != 0 {
		t.Fatalf("sync: %v %v", deleted, err)
	}
	recs, _, _ = st.NodeSubnets(ctx)
	if recs["a"].PodCIDR != "10.88.0.0/24" || recs["d"].PodCIDR != "10.88.1.0/24" {
		t.Errorf("records after a lapsed: %+v", recs)
	}
	// bosun node delete a: its subnet is free, it is reported deleted once.
	d, err := st.DeleteNode(ctx, "a")
	if err != nil || d.PodCIDR != "10.88.0.0/24" || d.Registered {
		t.Fatalf("delete: %+v %v", d, err)
	}
	if deleted, err := sn.sync(ctx); err != nil || len(deleted) != 1 || deleted[0] != "a" {
		t.Errorf("sync after the delete: %v %v, want [a]", deleted, err)
	}
	if deleted, _ := sn.sync(ctx); len(deleted) != 0 {
		t.Errorf("deleted again: %v", deleted)
	}
	// b asked for a subnet inside a's: granted now that a is gone.
	recs, _, _ = st.NodeSubnets(ctx)
	if recs["b"].PodCIDR != "10.88.0.0/25" || recs["b"].Refused != "" {
		t.Errorf("b after a's delete: %+v", recs["b"])
	}
}

func TestPodNetwork_config(t *testing.T) {
	for _, c := range []struct {
		p    PodNetwork
		want string
	}{
		{PodNetwork{}, ""},
		{PodNetwork{ClusterCIDR: "10.0.0.0/8", MaskSize: 20}, ""},
		{PodNetwork{ClusterCIDR: "10.88.0.0"}, "--cluster-cidr"},
		{PodNetwork{MaskSize: 12}, "--node-cidr-mask-size 12"},
		{PodNetwork{Backend: "udp"}, `--backend "udp": want host-gw or vxlan`},
	} {
		_, err := c.p.withDefaults().config()
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.p, err, c.want)
		}
	}
}
