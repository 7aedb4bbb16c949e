package scheduler

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const gi = 1 << 30

func node(name string, cpu, mem int64, labels ...string) Node {
	n := Node{Name: name, Allocatable: Resources{MilliCPU: cpu, Memory: mem}}
	for i := 0; i+1 < len(labels); i += 2 {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[labels[i]] = labels[i+1]
	}
	return n
}

func pod(key string, cpu, mem int64) Pod {
	return Pod{Key: key, Requests: Resources{MilliCPU: cpu, Memory: mem}}
}

func TestSchedule(t *testing.T) {
	withOwner := func(p Pod, owner string) Pod { p.Owner = owner; return p }
	withSelector := func(p Pod, kv ...string) Pod {
		p.NodeSelector = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			p.NodeSelector[kv[i]] = kv[i+1]
		}
		return p
	}
	boundTo := func(p Pod, n string) Pod { p.NodeName = n; return p }
	cordoned := func(n Node) Node { n.Unschedulable = true; return n }
	draining := func(n Node) Node { n.Draining = true; return n }
	closed := func(n Node) Node { n.Closed = true; return n }
	daemon := func(p Pod) Pod { p.Daemon = true; return p }
	tolerating := func(p Pod, tl ...corev1.Toleration) Pod { p.Tolerations = tl; return p }

	tests := []struct {
		name          string
		nodes         []Node
		pods          []Pod
		bindings      map[string]string
		unschedulable map[string]string
	}{
		{
			name:     "fits on the only node",
			nodes:    []Node{node("n1", 1000, gi)},
			pods:     []Pod{pod("default/a", 500, gi/2)},
			bindings: map[string]string{"default/a": "n1"},
		},
		{
			name:     "exact fit is allowed",
			nodes:    []Node{node("n1", 1000, gi)},
			pods:     []Pod{pod("default/a", 1000, gi)},
			bindings: map[string]string{"default/a": "n1"},
		},
		{
			name:     "prefers the least allocated node",
			nodes:    []Node{node("n1", 1000, gi), node("n2", 4000, 4*gi)},
			pods:     []Pod{pod("default/a", 500, gi/2)},
			bindings: map[string]string{"default/a": "n2"},
		},
		{
			name:     "ties go to the node whose name sorts first, whatever the input order",
			nodes:    []Node{node("n3", 1000, gi), node("n1", 1000, gi), node("n2", 1000, gi)},
			pods:     []Pod{pod("default/a", 100, 100)},
			bindings: map[string]string{"default/a": "n1"},
		},
		{
			name:     "placements are accounted before the next pod",
			nodes:    []Node{node("n1", 1000, gi), node("n2", 1000, gi)},
			pods:     []Pod{pod("default/a", 600, 0), pod("default/b", 600, 0), pod("default/c", 600, 0)},
			bindings: map[string]string{"default/a": "n1", "default/b": "n2"},
			unschedulable: map[string]string{
				"default/c": "0/2 nodes are available: 2 insufficient cpu",
			},
		},
		{
			name:     "bound pods count as used and are not in the result",
			nodes:    []Node{node("n1", 1000, gi), node("n2", 1000, gi)},
			pods:     []Pod{boundTo(pod("default/x", 900, 0), "n1"), pod("default/a", 500, 0)},
			bindings: map[string]string{"default/a": "n2"},
		},
		{
			name:     "pods bound to an unknown node are ignored",
			nodes:    []Node{node("n1", 1000, gi)},
			pods:     []Pod{boundTo(pod("default/x", 900, 0), "gone"), pod("default/a", 500, 0)},
			bindings: map[string]string{"default/a": "n1"},
		},
		{
			name:  "node selector picks the labelled node",
			nodes: []Node{node("n1", 8000, 8*gi), node("n2", 1000, gi, "disk", "ssd", "zone", "a")},
			pods: []Pod{
				withSelector(pod("default/a", 100, 0), "disk", "ssd"),
				withSelector(pod("default/b", 100, 0), "disk", "ssd", "zone", "a"),
			},
			bindings: map[string]string{"default/a": "n2", "default/b": "n2"},
		},
		{
			name:  "selector must match every label and value",
			nodes: []Node{node("n1", 1000, gi, "disk", "hdd"), node("n2", 1000, gi, "disk", "ssd")},
			pods:  []Pod{withSelector(pod("default/a", 100, 0), "disk", "ssd", "zone", "a")},
			unschedulable: map[string]string{
				"default/a": "0/2 nodes are available: 2 node(s) didn't match node selector",
			},
		},
		{
			name:  "insufficient cpu and selector mismatch are counted per node",
			nodes: []Node{node("n1", 1000, gi, "disk", "ssd"), node("n2", 8000, gi), node("n3", 8000, gi)},
			pods:  []Pod{withSelector(pod("default/a", 2000, 0), "disk", "ssd")},
			unschedulable: map[string]string{
				"default/a": "0/3 nodes are available: 1 insufficient cpu, 2 node(s) didn't match node selector",
			},
		},
		{
			name:  "insufficient memory",
			nodes: []Node{node("n1", 1000, gi), node("n2", 1000, 2*gi)},
			pods:  []Pod{pod("default/a", 100, 3*gi)},
			unschedulable: map[string]string{
				"default/a": "0/2 nodes are available: 2 insufficient memory",
			},
		},
		{
			name:  "a node short of both counts for both",
			nodes: []Node{node("n1", 1000, gi), node("n2", 8000, gi)},
			pods:  []Pod{pod("default/a", 4000, 2*gi)},
			unschedulable: map[string]string{
				"default/a": "0/2 nodes are available: 1 insufficient cpu, 2 insufficient memory",
			},
		},
		{
			name:     "cordoned nodes are skipped",
			nodes:    []Node{cordoned(node("n1", 8000, 8*gi)), node("n2", 1000, gi)},
			pods:     []Pod{pod("default/a", 100, 0)},
			bindings: map[string]string{"default/a": "n2"},
		},
		{
			name:  "all nodes cordoned",
			nodes: []Node{cordoned(node("n1", 8000, 8*gi)), cordoned(node("n2", 1000, gi))},
			pods:  []Pod{pod("default/a", 100, 0)},
			unschedulable: map[string]string{
				"default/a": "0/2 nodes are available: 2 node(s) were unschedulable",
			},
		},
		{
			name: "no nodes registered",
			pods: []Pod{pod("default/a", 100, 0)},
			unschedulable: map[string]string{
				"default/a": "0/0 nodes are available: no nodes registered",
			},
		},
		{
			name:  "replicas of one owner spread across equal nodes",
			nodes: []Node{node("n1", 4000, 4*gi), node("n2", 4000, 4*gi), node("n3", 4000, 4*gi)},
			pods: []Pod{
				withOwner(pod("default/web-1", 100, 0), "Deployment/default/web"),
				withOwner(pod("default/web-2", 100, 0), "Deployment/default/web"),
				withOwner(pod("default/web-3", 100, 0), "Deployment/default/web"),
			},
			bindings: map[string]string{"default/web-1": "n1", "default/web-2": "n2", "default/web-3": "n3"},
		},
		{
			name: "spreading beats a slightly emptier node",
			// n2 is a little emptier, but already runs a replica of web.
			nodes: []Node{node("n1", 4000, 4*gi), node("n2", 4400, 4*gi)},
			pods: []Pod{
				boundTo(withOwner(pod("default/web-1", 100, 0), "Deployment/default/web"), "n2"),
				withOwner(pod("default/web-2", 100, 0), "Deployment/default/web"),
			},
			bindings: map[string]string{"default/web-2": "n1"},
		},
		{
			name:  "spreading is per owner",
			nodes: []Node{node("n1", 4000, 4*gi), node("n2", 4000, 4*gi)},
			pods: []Pod{
				boundTo(withOwner(pod("default/api-1", 100, 0), "Deployment/default/api"), "n1"),
				withOwner(pod("default/web-1", 100, 0), "Deployment/default/web"),
				withOwner(pod("default/web-2", 100, 0), "Deployment/default/web"),
			},
			// web-1 avoids n1 only because api-1 uses some of it; web-2 then spreads to n1.
			bindings: map[string]string{"default/web-1": "n2", "default/web-2": "n1"},
		},
		{
			name:  "request-less pods still spread over nodes",
			nodes: []Node{node("n1", 1000, gi), node("n2", 1000, gi)},
			pods:  []Pod{pod("default/a", 0, 0), pod("default/b", 0, 0)},
			// b sees n1 as holding a's default 100m/200Mi and picks n2.
			bindings: map[string]string{"default/a": "n1", "default/b": "n2"},
		},
		{
			// kube-scheduler's NodeUnschedulable: a toleration of the
			// unschedulable taint lifts a plain cordon; {operator: Exists}
			// tolerates it too.
			name:  "a toleration lifts a cordon, Exists included",
			nodes: []Node{cordoned(node("n1", 4000, 4*gi))},
			pods: []Pod{
				tolerating(pod("default/exact", 100, 0), corev1.Toleration{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}),
				tolerating(pod("default/everything", 100, 0), corev1.Toleration{Operator: corev1.TolerationOpExists}),
				pod("default/plain", 100, 0),
			},
			bindings:      map[string]string{"default/exact": "n1", "default/everything": "n1"},
			unschedulable: map[string]string{"default/plain": "0/1 nodes are available: 1 node(s) were unschedulable"},
		},
		{
			// A draining node takes only daemon pods, whatever the others
			// tolerate: else a pod the drain moves comes back, for ever.
			name:  "a draining node takes only DaemonSets' pods",
			nodes: []Node{draining(cordoned(node("n1", 4000, 4*gi)))},
			pods: []Pod{
				daemon(tolerating(pod("default/logs", 100, 0), corev1.Toleration{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})),
				tolerating(pod("default/everything", 100, 0), corev1.Toleration{Operator: corev1.TolerationOpExists}),
			},
			bindings:      map[string]string{"default/logs": "n1"},
			unschedulable: map[string]string{"default/everything": "0/1 nodes are available: 1 node(s) were unschedulable"},
		},
		{
			name:  "a node gone, in its grace, takes no pod at all",
			nodes: []Node{closed(cordoned(node("n1", 4000, 4*gi))), node("n2", 1000, gi)},
			pods: []Pod{
				daemon(tolerating(pod("default/logs", 100, 0), corev1.Toleration{Operator: corev1.TolerationOpExists})),
				tolerating(pod("default/everything", 2000, 0), corev1.Toleration{Operator: corev1.TolerationOpExists}),
			},
			bindings:      map[string]string{"default/logs": "n2"},
			unschedulable: map[string]string{"default/everything": "0/2 nodes are available: 1 insufficient cpu, 1 node(s) were unschedulable"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Schedule(tt.nodes, tt.pods)
			want := Result{Bindings: tt.bindings, Unschedulable: tt.unschedulable}
			if want.Bindings == nil {
				want.Bindings = map[string]string{}
			}
			if want.Unschedulable == nil {
				want.Unschedulable = map[string]string{}
			}
			if !maps.Equal(got.Bindings, want.Bindings) {
				t.Errorf("bindings = %v, want %v", got.Bindings, want.Bindings)
			}
			if !maps.Equal(got.Unschedulable, want.Unschedulable) {
				t.Errorf("unschedulable = %q, want %q", got.Unschedulable, want.Unschedulable)
			}
		})
	}
}

func TestSchedule_sameInputSameResult(t *testing.T) {
	nodes, pods := randomCluster(rand.New(rand.NewPCG(7, 7)), 50, 2000)
	first := Schedule(nodes, pods)
	// Reversing the node list must not change anything: ordering is by name.
	reversed := make([]Node, len(nodes))
	for i, n := range nodes {
		reversed[len(nodes)-1-i] = n
	}
	for i := range 3 {
		got := Schedule(reversed, pods)
		if !maps.Equal(got.Bindings, first.Bindings) || !maps.Equal(got.Unschedulable, first.Unschedulable) {
			t.Fatalf("run %d differs from the first run", i)
		}
	}
}

// TestSchedule_neverOvercommits checks, over many seeded random clusters, that no
// node ends up with more requested than allocatable, that placements respect
// selectors and cordons, and that every unbound pod is either bound or explained.
func TestSchedule_neverOvercommits(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 1))
		nodes, pods := randomCluster(rng, 1+rng.IntN(12), rng.IntN(200))
		res := Schedule(nodes, pods)

		byName := map[string]Node{}
		for _, n := range nodes {
			byName[n.Name] = n
		}
		used := map[string]Resources{}
		for _, p := range pods {
			if p.NodeName != "" {
				if _, ok := res.Bindings[p.Key]; ok {
					t.Fatalf("seed %d: bound pod %s was placed again", seed, p.Key)
				}
				used[p.NodeName] = add(used[p.NodeName], p.Requests)
				continue
			}
			target, bound := res.Bindings[p.Key]
			reason, failed := res.Unschedulable[p.Key]
			if bound == failed {
				t.Fatalf("seed %d: pod %s bound=%v unschedulable=%v, want exactly one", seed, p.Key, bound, failed)
			}
			if failed {
				if reason == "" {
					t.Fatalf("seed %d: pod %s unschedulable without a reason", seed, p.Key)
				}
				continue
			}
			n := byName[target]
			if n.Unschedulable {
				t.Fatalf("seed %d: pod %s placed on cordoned node %s", seed, p.Key, target)
			}
			if !matches(n.Labels, p.NodeSelector) {
				t.Fatalf("seed %d: pod %s placed on %s against its selector", seed, p.Key, target)
			}
			used[target] = add(used[target], p.Requests)
		}
		for name, u := range used {
			// Pre-bound pods in randomCluster are generated within capacity.
			a := byName[name].Allocatable
			if u.MilliCPU > a.MilliCPU || u.Memory > a.Memory {
				t.Fatalf("seed %d: node %s over-committed: used %+v of %+v", seed, name, u, a)
			}
		}
	}
}

// randomCluster makes nodes of mixed sizes, some labelled or cordoned, and pods
// of mixed owners and sizes, some with selectors and some already bound (always
// within the bound node's capacity).
func randomCluster(rng *rand.Rand, nNodes, nPods int) ([]Node, []Pod) {
	nodes := make([]Node, nNodes)
	free := make([]Resources, nNodes)
	for i := range nodes {
		nodes[i] = node(fmt.Sprintf("n%03d", i), int64(1+rng.IntN(8))*1000, int64(1+rng.IntN(8))*gi)
		if rng.IntN(3) == 0 {
			nodes[i].Labels = map[string]string{"disk": "ssd"}
		}
		nodes[i].Unschedulable = rng.IntN(10) == 0
		free[i] = nodes[i].Allocatable
	}
	pods := make([]Pod, nPods)
	for i := range pods {
		p := pod(fmt.Sprintf("default/p%04d", i), int64(rng.IntN(2000)), int64(rng.IntN(2*gi)))
		if rng.IntN(2) == 0 {
			p.Owner = fmt.Sprintf("Deployment/default/d%d", rng.IntN(5))
		}
		if rng.IntN(5) == 0 {
			p.NodeSelector = map[string]string{"disk": "ssd"}
		}
		if nNodes > 0 && rng.IntN(4) == 0 {
			n := rng.IntN(nNodes)
			if free[n].MilliCPU >= p.Requests.MilliCPU && free[n].Memory >= p.Requests.Memory {
				p.NodeName = nodes[n].Name
				free[n].MilliCPU -= p.Requests.MilliCPU
				free[n].Memory -= p.Requests.Memory
			}
		}
		pods[i] = p
	}
	return nodes, pods
}

func TestRequestsOf(t *testing.T) {
	q := resource.MustParse
	always := corev1.ContainerRestartPolicyAlways
	ct := func(req, lim corev1.ResourceList) corev1.Container {
		return corev1.Container{Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}
	}
	tests := []struct {
		name string
		spec corev1.PodSpec
		want Resources
	}{
		{name: "nothing requested", spec: corev1.PodSpec{Containers: []corev1.Container{{}}}},
		{
			name: "containers sum",
			spec: corev1.PodSpec{Containers: []corev1.Container{
				ct(corev1.ResourceList{"cpu": q("250m"), "memory": q("64Mi")}, nil),
				ct(corev1.ResourceList{"cpu": q("1"), "memory": q("1Gi")}, nil),
			}},
			want: Resources{MilliCPU: 1250, Memory: 64<<20 + 1<<30},
		},
		{
			name: "limits stand in for missing requests, per resource",
			spec: corev1.PodSpec{Containers: []corev1.Container{
				ct(corev1.ResourceList{"cpu": q("100m")}, corev1.ResourceList{"cpu": q("2"), "memory": q("128Mi")}),
			}},
			want: Resources{MilliCPU: 100, Memory: 128 << 20},
		},
		{
			name: "a large init container dominates",
			spec: corev1.PodSpec{
				InitContainers: []corev1.Container{ct(corev1.ResourceList{"cpu": q("2")}, nil)},
				Containers:     []corev1.Container{ct(corev1.ResourceList{"cpu": q("500m"), "memory": q("1Gi")}, nil)},
			},
			want: Resources{MilliCPU: 2000, Memory: 1 << 30},
		},
		{
			name: "sidecars add to the containers",
			spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{
					RestartPolicy: &always,
					Resources:     corev1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": q("100m")}},
				}},
				Containers: []corev1.Container{ct(corev1.ResourceList{"cpu": q("500m")}, nil)},
			},
			want: Resources{MilliCPU: 600},
		},
		{
			name: "overhead is added",
			spec: corev1.PodSpec{
				Overhead:   corev1.ResourceList{"cpu": q("10m"), "memory": q("1Mi")},
				Containers: []corev1.Container{ct(corev1.ResourceList{"cpu": q("90m")}, nil)},
			},
			want: Resources{MilliCPU: 100, Memory: 1 << 20},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RequestsOf(&tt.spec); got != tt.want {
				t.Errorf("RequestsOf = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// BenchmarkSchedule10kPods1kNodes places 10,000 pods of 100 owners onto 1,000
// nodes, 10% of them labelled and 5% of the pods selecting the label.
func BenchmarkSchedule10kPods1kNodes(b *testing.B) {
	nodes := make([]Node, 1000)
	for i := range nodes {
		nodes[i] = node(fmt.Sprintf("node-%04d", i), 32000, 128*gi)
		if i%10 == 0 {
			nodes[i].Labels = map[string]string{"disk": "ssd"}
		}
	}
	pods := make([]Pod, 10000)
	for i := range pods {
		pods[i] = Pod{
			Key:      fmt.Sprintf("default/web-%d-%d", i%100, i),
			Owner:    fmt.Sprintf("Deployment/default/web-%d", i%100),
			Requests: Resources{MilliCPU: 100 + int64(i%7)*50, Memory: (64 + int64(i%5)*64) << 20},
		}
		if i%20 == 0 {
			pods[i].NodeSelector = map[string]string{"disk": "ssd"}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res := Schedule(nodes, pods)
		if len(res.Bindings) != len(pods) {
			b.Fatalf("bound %d of %d pods", len(res.Bindings), len(pods))
		}
	}
	b.ReportMetric(float64(len(pods)*b.N)/b.Elapsed().Seconds(), "pods/s")
}

// BenchmarkSchedule10kPods1kNodesAntiAffinitySpread places 10,000 pods of
// 100 owners onto 1,000 nodes in 10 zones; every pod has a required
// anti-affinity to its own replicas on kubernetes.io/hostname and a
// DoNotSchedule spread over zones (maxSkew 1), and every other owner also
// a preferred anti-affinity to the previous owner's pods.
func BenchmarkSchedule10kPods1kNodesAntiAffinitySpread(b *testing.B) {
	nodes := make([]Node, 1000)
	for i := range nodes {
		name := fmt.Sprintf("node-%04d", i)
		nodes[i] = node(name, 32000, 128*gi, "kubernetes.io/hostname", name, "zone", fmt.Sprintf("zone-%d", i%10))
	}
	pods := make([]Pod, 10000)
	for i := range pods {
		app := fmt.Sprintf("web-%d", i%100)
		p := Pod{
			Key:       fmt.Sprintf("default/%s-%d", app, i),
			Namespace: "default",
			Labels:    map[string]string{"app": app},
			Owner:     "Deployment/default/" + app,
			Requests:  Resources{MilliCPU: 100 + int64(i%7)*50, Memory: (64 + int64(i%5)*64) << 20},
			Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
					TopologyKey: "kubernetes.io/hostname", LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
				}},
			}},
			TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
				MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule,
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			}},
		}
		if i%2 == 1 {
			p.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution = []corev1.WeightedPodAffinityTerm{{
				Weight: 50, PodAffinityTerm: corev1.PodAffinityTerm{
					TopologyKey:   "kubernetes.io/hostname",
					LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("web-%d", i%100-1)}},
				},
			}}
		}
		pods[i] = p
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res := Schedule(nodes, pods)
		if len(res.Bindings) != len(pods) {
			b.Fatalf("bound %d of %d pods: %v", len(res.Bindings), len(pods), res.Unschedulable)
		}
	}
	b.ReportMetric(float64(len(pods)*b.N)/b.Elapsed().Seconds(), "pods/s")
}
