package scheduler

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/kube"
)

func TestSchedule_volumes(t *testing.T) {
	vnode := func(name string, capacity, used int64) Node {
		n := node(name, 4000, 8*gi)
		n.VolumeCapacity, n.VolumesUsed = capacity, used
		return n
	}
	withClaims := func(p Pod, cs ...Claim) Pod { p.Claims = cs; return p }
	boundTo := func(p Pod, n string) Pod { p.NodeName = n; return p }
	claim := func(key, node string, req int64) Claim { return Claim{Key: key, Node: node, Request: req} }

	tests := []struct {
		name          string
		nodes         []Node
		pods          []Pod
		bindings      map[string]string
		unschedulable map[string]string
	}{
		{
			name:     "a bound claim takes its pod to its node",
			nodes:    []Node{vnode("a", 0, 0), vnode("b", 0, 0), vnode("c", 0, 0)},
			pods:     []Pod{withClaims(pod("default/p", 0, 0), claim("default/data", "b", gi))},
			bindings: map[string]string{"default/p": "b"},
		},
		{
			name:  "a claim bound to a node that is gone leaves the pod pending, saying where the data is",
			nodes: []Node{vnode("a", 0, 0), vnode("b", 0, 0)},
			pods:  []Pod{withClaims(pod("default/p", 0, 0), claim("default/data", "gone", gi))},
			unschedulable: map[string]string{"default/p": "0/2 nodes are available: 2 node(s) had volume node affinity conflict; " +
				"persistentvolumeclaim default/data is bound to node gone (not available; its data is there)"},
		},
		{
			name:     "an unbound claim goes where it fits",
			nodes:    []Node{vnode("a", 10*gi, 9*gi), vnode("b", 10*gi, 5*gi)},
			pods:     []Pod{withClaims(pod("default/p", 0, 0), claim("default/data", "", 2*gi))},
			bindings: map[string]string{"default/p": "b"},
		},
		{
			name:     "exact fit of volume capacity",
			nodes:    []Node{vnode("a", 10*gi, 8*gi)},
			pods:     []Pod{withClaims(pod("default/p", 0, 0), claim("default/data", "", 2*gi))},
			bindings: map[string]string{"default/p": "a"},
		},
		{
			name:     "no volume capacity stated: no limit",
			nodes:    []Node{vnode("a", 0, 100*gi)},
			pods:     []Pod{withClaims(pod("default/p", 0, 0), claim("default/data", "", 1000*gi))},
			bindings: map[string]string{"default/p": "a"},
		},
		{
			name:          "a claim larger than every node's capacity",
			nodes:         []Node{vnode("a", gi, 0), vnode("b", gi, 0)},
			pods:          []Pod{withClaims(pod("default/p", 0, 0), claim("default/data", "", 2*gi))},
			unschedulable: map[string]string{"default/p": "0/2 nodes are available: 2 node(s) did not have enough free storage"},
		},
		{
			name:  "claims bound earlier in the same call take capacity",
			nodes: []Node{vnode("a", 3*gi, 0)},
			pods: []Pod{
				withClaims(pod("default/p1", 0, 0), claim("default/d1", "", 2*gi)),
				withClaims(pod("default/p2", 0, 0), claim("default/d2", "", 2*gi)),
			},
			bindings:      map[string]string{"default/p1": "a"},
			unschedulable: map[string]string{"default/p2": "0/1 nodes are available: 1 node(s) did not have enough free storage"},
		},
		{
			name:  "two pods sharing an unbound ReadWriteOnce claim land on one node",
			nodes: []Node{vnode("a", 0, 0), vnode("b", 0, 0)},
			pods: []Pod{
				withClaims(withOwner(pod("default/p1", 0, 0), "Deployment/default/web"), claim("default/data", "", gi)),
				withClaims(withOwner(pod("default/p2", 0, 0), "Deployment/default/web"), claim("default/data", "", gi)),
			},
			bindings: map[string]string{"default/p1": "a", "default/p2": "a"},
		},
		{
			name:  "a pod bound elsewhere holds the claim's node",
			nodes: []Node{vnode("a", 0, 0), vnode("b", 0, 0)},
			pods: []Pod{
				boundTo(withClaims(pod("default/p1", 0, 0), claim("default/data", "b", gi)), "b"),
				withClaims(pod("default/p2", 0, 0), claim("default/data", "", gi)),
			},
			bindings: map[string]string{"default/p2": "b"},
		},
		{
			name:  "a ReadWriteOncePod claim in use keeps a second pod out",
			nodes: []Node{vnode("a", 0, 0)},
			pods: []Pod{
				boundTo(withClaims(pod("default/p1", 0, 0), Claim{Key: "default/data", Node: "a", OncePod: true}), "a"),
				withClaims(pod("default/p2", 0, 0), Claim{Key: "default/data", Node: "a", OncePod: true}),
			},
			unschedulable: map[string]string{"default/p2": "0/1 nodes are available: 1 node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"},
		},
		{
			name:  "a ReadWriteOncePod claim of a pod being deleted keeps its replacement out",
			nodes: []Node{vnode("a", 0, 0)},
			pods: []Pod{
				withClaims(pod("default/p2", 0, 0), Claim{Key: "default/data", Node: "a", OncePod: true, Stopping: 1}),
			},
			unschedulable: map[string]string{"default/p2": "0/1 nodes are available: 1 node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"},
		},
		{
			name:  "a ReadWriteOnce claim of a pod being deleted does not",
			nodes: []Node{vnode("a", 0, 0)},
			pods: []Pod{
				withClaims(pod("default/p2", 0, 0), Claim{Key: "default/data", Node: "a", Stopping: 1}),
			},
			bindings: map[string]string{"default/p2": "a"},
		},
		{
			name:  "resources fail before volumes, as in kube-scheduler",
			nodes: []Node{vnode("a", gi, 0), vnode("b", 0, 0)},
			pods: []Pod{
				withClaims(pod("default/p", 5000, 0), claim("default/data", "", 2*gi)),
			},
			unschedulable: map[string]string{"default/p": "0/2 nodes are available: 2 insufficient cpu"},
		},
		{
			name:  "the bound node's capacity is not charged again",
			nodes: []Node{vnode("a", 2*gi, 2*gi)},
			pods: []Pod{
				withClaims(pod("default/p", 0, 0), claim("default/data", "a", 2*gi)),
			},
			bindings: map[string]string{"default/p": "a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Schedule(tt.nodes, tt.pods)
			want := tt.bindings
			if want == nil {
				want = map[string]string{}
			}
			wantU := tt.unschedulable
			if wantU == nil {
				wantU = map[string]string{}
			}
			if !maps.Equal(res.Bindings, want) {
				t.Errorf("bindings = %v, want %v", res.Bindings, want)
			}
			if !maps.Equal(res.Unschedulable, wantU) {
				t.Errorf("unschedulable = %q, want %q", res.Unschedulable, wantU)
			}
		})
	}
}

func withOwner(p Pod, owner string) Pod { p.Owner = owner; return p }

func TestNodeOf_volumeCapacity(t *testing.T) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a"}}
	if got := NodeOf(n).VolumeCapacity; got != 0 {
		t.Errorf("no capacity stated: %d, want 0 (no limit)", got)
	}
	n.Status.Allocatable = corev1.ResourceList{kube.ResourceLocalStorage: resource.MustParse("10Gi")}
	if got := NodeOf(n).VolumeCapacity; got != 10*gi {
		t.Errorf("10Gi: %d", got)
	}
}
