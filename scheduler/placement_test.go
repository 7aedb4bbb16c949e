package scheduler

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Builders for the placement tables. Pods are in namespace "default"
// unless a test says otherwise.

func tainted(n Node, taints ...corev1.Taint) Node { n.Taints = append(n.Taints, taints...); return n }

func taint(key, value string, effect corev1.TaintEffect) corev1.Taint {
	return corev1.Taint{Key: key, Value: value, Effect: effect}
}

func maxPods(n Node, m int) Node { n.MaxPods = m; return n }

// hostNode is a node labelled with its hostname, and zone when given.
func hostNode(name, zone string) Node {
	n := node(name, 4000, 4*gi, "kubernetes.io/hostname", name)
	if zone != "" {
		n.Labels["zone"] = zone
	}
	return n
}

func app(key string, labels ...string) Pod {
	p := pod(key, 100, 0)
	p.Namespace = "default"
	p.Labels = map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		p.Labels[labels[i]] = labels[i+1]
	}
	return p
}

func tolerating(p Pod, t ...corev1.Toleration) Pod {
	p.Tolerations = append(p.Tolerations, t...)
	return p
}

func bound(p Pod, node string) Pod { p.NodeName = node; return p }

func withAffinity(p Pod, a corev1.Affinity) Pod { p.Affinity = &a; return p }

func spreadOver(p Pod, c ...corev1.TopologySpreadConstraint) Pod {
	p.TopologySpreadConstraints = append(p.TopologySpreadConstraints, c...)
	return p
}

func sel(kv ...string) *metav1.LabelSelector {
	s := &metav1.LabelSelector{MatchLabels: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}

func podTerm(topologyKey string, s *metav1.LabelSelector) corev1.PodAffinityTerm {
	return corev1.PodAffinityTerm{TopologyKey: topologyKey, LabelSelector: s}
}

func antiAffinity(terms ...corev1.PodAffinityTerm) corev1.Affinity {
	return corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: terms}}
}

func podAffinity(terms ...corev1.PodAffinityTerm) corev1.Affinity {
	return corev1.Affinity{PodAffinity: &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: terms}}
}

func requiredNodes(terms ...corev1.NodeSelectorTerm) corev1.Affinity {
	return corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms},
	}}
}

func expr(key string, op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorRequirement {
	return corev1.NodeSelectorRequirement{Key: key, Operator: op, Values: values}
}

func exprTerm(e ...corev1.NodeSelectorRequirement) corev1.NodeSelectorTerm {
	return corev1.NodeSelectorTerm{MatchExpressions: e}
}

func spreadConstraint(key string, maxSkew int32, when corev1.UnsatisfiableConstraintAction, s *metav1.LabelSelector) corev1.TopologySpreadConstraint {
	return corev1.TopologySpreadConstraint{TopologyKey: key, MaxSkew: maxSkew, WhenUnsatisfiable: when, LabelSelector: s}
}

const hostname = "kubernetes.io/hostname"

type placementCase struct {
	name          string
	nodes         []Node
	pods          []Pod
	bindings      map[string]string
	unschedulable map[string]string
}

func runPlacement(t *testing.T, tests []placementCase) {
	t.Helper()
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

func TestSchedule_taintsAndTolerations(t *testing.T) {
	db := taint("dedicated", "db", corev1.TaintEffectNoSchedule)
	equalDB := corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "db", Effect: corev1.TaintEffectNoSchedule}
	big := node("big", 8000, 8*gi)
	small := node("small", 1000, gi)
	runPlacement(t, []placementCase{
		{
			name:     "a NoSchedule taint keeps out a pod without a toleration",
			nodes:    []Node{tainted(big, db), small},
			pods:     []Pod{app("default/a")},
			bindings: map[string]string{"default/a": "small"},
		},
		{
			name:  "the reason names the taint, as kube-scheduler does",
			nodes: []Node{tainted(big, db), tainted(small, taint("gpu", "", corev1.TaintEffectNoExecute))},
			pods:  []Pod{app("default/a")},
			unschedulable: map[string]string{
				"default/a": "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 1 node(s) had untolerated taint {gpu: }",
			},
		},
		{
			name:     "Equal with the same value tolerates",
			nodes:    []Node{tainted(big, db), small},
			pods:     []Pod{tolerating(app("default/a"), equalDB)},
			bindings: map[string]string{"default/a": "big"},
		},
		{
			name:  "Equal with another value does not",
			nodes: []Node{tainted(big, db)},
			pods: []Pod{tolerating(app("default/a"), corev1.Toleration{
				Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "web", Effect: corev1.TaintEffectNoSchedule,
			})},
			unschedulable: map[string]string{"default/a": "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: db}"},
		},
		{
			name:     "the empty operator is Equal",
			nodes:    []Node{tainted(big, db)},
			pods:     []Pod{tolerating(app("default/a"), corev1.Toleration{Key: "dedicated", Value: "db"})},
			bindings: map[string]string{"default/a": "big"},
		},
		{
			name:     "Exists tolerates any value of the key",
			nodes:    []Node{tainted(big, db)},
			pods:     []Pod{tolerating(app("default/a"), corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpExists})},
			bindings: map[string]string{"default/a": "big"},
		},
		{
			name:     "an empty key with Exists tolerates every taint",
			nodes:    []Node{tainted(big, db, taint("gpu", "", corev1.TaintEffectNoExecute))},
			pods:     []Pod{tolerating(app("default/a"), corev1.Toleration{Operator: corev1.TolerationOpExists})},
			bindings: map[string]string{"default/a": "big"},
		},
		{
			name:  "the effect must match when the toleration names one",
			nodes: []Node{tainted(big, db)},
			pods: []Pod{tolerating(app("default/a"), corev1.Toleration{
				Key: "dedicated", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute,
			})},
			unschedulable: map[string]string{"default/a": "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: db}"},
		},
		{
			name:  "every NoSchedule and NoExecute taint must be tolerated",
			nodes: []Node{tainted(big, db, taint("gpu", "yes", corev1.TaintEffectNoExecute))},
			pods:  []Pod{tolerating(app("default/a"), equalDB)},
			unschedulable: map[string]string{
				"default/a": "0/1 nodes are available: 1 node(s) had untolerated taint {gpu: yes}",
			},
		},
		{
			name:  "a NoExecute toleration with tolerationSeconds still lets the pod in",
			nodes: []Node{tainted(big, taint("maint", "", corev1.TaintEffectNoExecute))},
			pods: []Pod{tolerating(app("default/a"), corev1.Toleration{
				Key: "maint", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: new(int64(60)),
			})},
			bindings: map[string]string{"default/a": "big"},
		},
		{
			name:     "PreferNoSchedule is a score: the untainted node wins over a much emptier one",
			nodes:    []Node{tainted(big, taint("spot", "", corev1.TaintEffectPreferNoSchedule)), small},
			pods:     []Pod{app("default/a")},
			bindings: map[string]string{"default/a": "small"},
		},
		{
			name:     "PreferNoSchedule does not filter",
			nodes:    []Node{tainted(big, taint("spot", "", corev1.TaintEffectPreferNoSchedule))},
			pods:     []Pod{app("default/a")},
			bindings: map[string]string{"default/a": "big"},
		},
		{
			name:  "a tolerated PreferNoSchedule taint costs nothing",
			nodes: []Node{tainted(big, taint("spot", "", corev1.TaintEffectPreferNoSchedule)), small},
			pods: []Pod{tolerating(app("default/a"), corev1.Toleration{
				Key: "spot", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectPreferNoSchedule,
			})},
			bindings: map[string]string{"default/a": "big"},
		},
		{
			name:  "the message counts every filter that failed",
			nodes: []Node{tainted(hostNode("n1", ""), db), hostNode("n2", ""), hostNode("n3", "")},
			pods: []Pod{
				bound(app("default/web-1", "app", "web"), "n2"),
				bound(app("default/web-2", "app", "web"), "n3"),
				withAffinity(app("default/web-3", "app", "web"), antiAffinity(podTerm(hostname, sel("app", "web")))),
			},
			unschedulable: map[string]string{
				"default/web-3": "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 2 node(s) didn't match pod anti-affinity rules",
			},
		},
	})
}

func TestSchedule_maxPods(t *testing.T) {
	runPlacement(t, []placementCase{
		{
			name:     "a full node takes no more pods",
			nodes:    []Node{maxPods(node("n1", 8000, 8*gi), 2), node("n2", 1000, gi)},
			pods:     []Pod{bound(app("default/x"), "n1"), app("default/a"), app("default/b")},
			bindings: map[string]string{"default/a": "n1", "default/b": "n2"},
		},
		{
			name:  "Too many pods, in kube-scheduler's words",
			nodes: []Node{maxPods(node("n1", 8000, 8*gi), 1), maxPods(node("n2", 8000, 8*gi), 1)},
			pods:  []Pod{app("default/a"), app("default/b"), app("default/c")},
			bindings: map[string]string{
				"default/a": "n1", "default/b": "n2",
			},
			unschedulable: map[string]string{"default/c": "0/2 nodes are available: 2 Too many pods"},
		},
		{
			name:          "pods and cpu short together count for both",
			nodes:         []Node{maxPods(node("n1", 100, gi), 1)},
			pods:          []Pod{bound(app("default/x"), "n1"), app("default/a")},
			unschedulable: map[string]string{"default/a": "0/1 nodes are available: 1 Too many pods, 1 insufficient cpu"},
		},
		{
			name:     "0 means no limit",
			nodes:    []Node{node("n1", 8000, 8*gi)},
			pods:     []Pod{app("default/a"), app("default/b"), app("default/c")},
			bindings: map[string]string{"default/a": "n1", "default/b": "n1", "default/c": "n1"},
		},
	})
}

func TestSchedule_nodeAffinity(t *testing.T) {
	a := node("a", 1000, gi, "disk", "ssd", "cores", "4", "zone", "east")
	b := node("b", 2000, 2*gi, "disk", "hdd", "cores", "16")
	c := node("c", 4000, 4*gi)
	nodes := []Node{a, b, c}
	req := func(key string, terms ...corev1.NodeSelectorTerm) Pod {
		return withAffinity(app("default/"+key), requiredNodes(terms...))
	}
	runPlacement(t, []placementCase{
		{
			name:     "In",
			nodes:    nodes,
			pods:     []Pod{req("p", exprTerm(expr("disk", corev1.NodeSelectorOpIn, "ssd", "nvme")))},
			bindings: map[string]string{"default/p": "a"},
		},
		{
			name:  "NotIn: nodes without the label match too",
			nodes: nodes,
			pods:  []Pod{req("p", exprTerm(expr("disk", corev1.NodeSelectorOpNotIn, "hdd")))},
			// c is the emptiest.
			bindings: map[string]string{"default/p": "c"},
		},
		{
			name:     "Exists",
			nodes:    nodes,
			pods:     []Pod{req("p", exprTerm(expr("disk", corev1.NodeSelectorOpExists)))},
			bindings: map[string]string{"default/p": "b"},
		},
		{
			name:     "DoesNotExist",
			nodes:    nodes,
			pods:     []Pod{req("p", exprTerm(expr("zone", corev1.NodeSelectorOpDoesNotExist), expr("disk", corev1.NodeSelectorOpExists)))},
			bindings: map[string]string{"default/p": "b"},
		},
		{
			name:     "Gt compares integers",
			nodes:    nodes,
			pods:     []Pod{req("p", exprTerm(expr("cores", corev1.NodeSelectorOpGt, "8")))},
			bindings: map[string]string{"default/p": "b"},
		},
		{
			name:     "Lt compares integers",
			nodes:    nodes,
			pods:     []Pod{req("p", exprTerm(expr("cores", corev1.NodeSelectorOpLt, "8")))},
			bindings: map[string]string{"default/p": "a"},
		},
		{
			name:  "expressions of a term are ANDed",
			nodes: nodes,
			pods: []Pod{req("p", exprTerm(
				expr("disk", corev1.NodeSelectorOpExists),
				expr("cores", corev1.NodeSelectorOpLt, "8"),
			))},
			bindings: map[string]string{"default/p": "a"},
		},
		{
			name:  "terms are ORed",
			nodes: nodes,
			pods: []Pod{req("p",
				exprTerm(expr("disk", corev1.NodeSelectorOpIn, "ssd")),
				exprTerm(expr("disk", corev1.NodeSelectorOpIn, "hdd")),
			)},
			bindings: map[string]string{"default/p": "b"},
		},
		{
			name:  "matchFields on metadata.name",
			nodes: nodes,
			pods: []Pod{req("p", corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
				expr("metadata.name", corev1.NodeSelectorOpIn, "a"),
			}})},
			bindings: map[string]string{"default/p": "a"},
		},
		{
			name:  "matchFields NotIn",
			nodes: nodes,
			pods: []Pod{req("p", corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
				expr("metadata.name", corev1.NodeSelectorOpNotIn, "c"),
			}})},
			bindings: map[string]string{"default/p": "b"},
		},
		{
			name:  "no node matches: kube-scheduler's reason",
			nodes: nodes,
			pods:  []Pod{req("p", exprTerm(expr("disk", corev1.NodeSelectorOpIn, "tape")))},
			unschedulable: map[string]string{
				"default/p": "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector",
			},
		},
		{
			name:  "nodeSelector and node affinity must both match",
			nodes: nodes,
			pods: []Pod{func() Pod {
				p := req("p", exprTerm(expr("disk", corev1.NodeSelectorOpExists)))
				p.NodeSelector = map[string]string{"zone": "east"}
				return p
			}()},
			bindings: map[string]string{"default/p": "a"},
		},
		{
			name:  "preferred terms add their weights: the heavier wins",
			nodes: nodes,
			pods: []Pod{withAffinity(app("default/p"), corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{
					{Weight: 20, Preference: exprTerm(expr("disk", corev1.NodeSelectorOpIn, "hdd"))},
					{Weight: 80, Preference: exprTerm(expr("disk", corev1.NodeSelectorOpIn, "ssd"))},
				},
			}})},
			// a is the fullest node, yet it has the heavier preference.
			bindings: map[string]string{"default/p": "a"},
		},
		{
			name:  "weights of several matching terms add up",
			nodes: nodes,
			pods: []Pod{withAffinity(app("default/p"), corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{
					{Weight: 50, Preference: exprTerm(expr("disk", corev1.NodeSelectorOpIn, "hdd"))},
					{Weight: 30, Preference: exprTerm(expr("cores", corev1.NodeSelectorOpGt, "2"))},
					{Weight: 60, Preference: exprTerm(expr("zone", corev1.NodeSelectorOpIn, "east"))},
				},
			}})},
			// a: 30+60=90, b: 50+30=80.
			bindings: map[string]string{"default/p": "a"},
		},
		{
			name:  "a preference never overrides a filter",
			nodes: nodes,
			pods: []Pod{func() Pod {
				p := withAffinity(pod("default/p", 3000, 0), corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
					PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{
						{Weight: 100, Preference: exprTerm(expr("disk", corev1.NodeSelectorOpIn, "ssd"))},
					},
				}})
				return p
			}()},
			bindings: map[string]string{"default/p": "c"},
		},
	})
}

func TestSchedule_podAntiAffinity(t *testing.T) {
	three := []Node{hostNode("n1", "east"), hostNode("n2", "east"), hostNode("n3", "west")}
	replica := func(i string) Pod {
		return withAffinity(app("default/web-"+i, "app", "web"), antiAffinity(podTerm(hostname, sel("app", "web"))))
	}
	runPlacement(t, []placementCase{
		{
			name:  "replicas of one plan spread one per node; the fourth stays pending",
			nodes: three,
			pods:  []Pod{replica("1"), replica("2"), replica("3"), replica("4")},
			bindings: map[string]string{
				"default/web-1": "n1", "default/web-2": "n2", "default/web-3": "n3",
			},
			unschedulable: map[string]string{
				"default/web-4": "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules",
			},
		},
		{
			name:     "bound pods count",
			nodes:    three,
			pods:     []Pod{bound(app("default/x", "app", "web"), "n1"), bound(app("default/y", "app", "web"), "n2"), replica("1")},
			bindings: map[string]string{"default/web-1": "n3"},
		},
		{
			name:  "a zone topology key keeps the whole zone out",
			nodes: three,
			pods: []Pod{
				bound(app("default/x", "app", "web"), "n3"),
				withAffinity(app("default/p", "app", "web"), antiAffinity(podTerm("zone", sel("app", "web")))),
			},
			bindings: map[string]string{"default/p": "n1"},
		},
		{
			name:  "nodes without the topology label are never in a domain with a pod",
			nodes: []Node{node("bare", 1000, gi), hostNode("n1", "east")},
			pods: []Pod{
				bound(app("default/x", "app", "web"), "n1"),
				withAffinity(app("default/p", "app", "web"), antiAffinity(podTerm("zone", sel("app", "web")))),
			},
			bindings: map[string]string{"default/p": "bare"},
		},
		{
			name:  "only pods of the term's namespaces count (by default the pod's own)",
			nodes: []Node{hostNode("n1", ""), hostNode("n2", "")},
			pods: []Pod{
				func() Pod { p := bound(app("other/x", "app", "web"), "n2"); p.Namespace = "other"; return p }(),
				bound(app("default/y", "app", "web"), "n1"),
				withAffinity(app("default/p", "app", "web"), antiAffinity(podTerm(hostname, sel("app", "web")))),
			},
			bindings: map[string]string{"default/p": "n2"},
		},
		{
			name:  "namespaces listed in the term",
			nodes: []Node{hostNode("n1", ""), hostNode("n2", "")},
			pods: []Pod{
				func() Pod { p := bound(app("other/x", "app", "web"), "n2"); p.Namespace = "other"; return p }(),
				withAffinity(app("default/p"), antiAffinity(corev1.PodAffinityTerm{
					TopologyKey: hostname, LabelSelector: sel("app", "web"), Namespaces: []string{"other"},
				})),
			},
			bindings: map[string]string{"default/p": "n1"},
		},
		{
			name:  "an existing pod's anti-affinity keeps matching pods out of its domain",
			nodes: []Node{hostNode("n1", ""), hostNode("n2", "")},
			pods: []Pod{
				bound(withAffinity(app("default/db", "app", "db"), antiAffinity(podTerm(hostname, sel("app", "web")))), "n1"),
				bound(app("default/z", "app", "other"), "n2"),
				app("default/web", "app", "web"),
				app("default/cache", "app", "cache"),
			},
			bindings: map[string]string{"default/web": "n2", "default/cache": "n1"},
		},
		{
			name:  "and says so when nothing is left",
			nodes: []Node{hostNode("n1", "")},
			pods: []Pod{
				bound(withAffinity(app("default/db", "app", "db"), antiAffinity(podTerm(hostname, sel("app", "web")))), "n1"),
				app("default/web", "app", "web"),
			},
			unschedulable: map[string]string{
				"default/web": "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules",
			},
		},
		{
			name:  "matchExpressions in the selector",
			nodes: []Node{hostNode("n1", ""), hostNode("n2", "")},
			pods: []Pod{
				bound(app("default/x", "tier", "cache"), "n1"),
				withAffinity(app("default/p"), antiAffinity(podTerm(hostname, &metav1.LabelSelector{
					MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"cache", "db"}}},
				}))),
			},
			bindings: map[string]string{"default/p": "n2"},
		},
		{
			name:  "mismatchLabelKeys: only pods of another version count",
			nodes: []Node{hostNode("n1", ""), hostNode("n2", "")},
			pods: []Pod{
				bound(app("default/old", "app", "web", "version", "1"), "n1"),
				bound(app("default/new", "app", "web", "version", "2"), "n2"),
				withAffinity(app("default/p", "app", "web", "version", "2"), antiAffinity(corev1.PodAffinityTerm{
					TopologyKey: hostname, LabelSelector: sel("app", "web"), MismatchLabelKeys: []string{"version"},
				})),
			},
			bindings: map[string]string{"default/p": "n2"},
		},
	})
}

func TestSchedule_podAffinity(t *testing.T) {
	nodes := []Node{hostNode("n1", "east"), hostNode("n2", "west"), hostNode("n3", "west")}
	withCache := func(key string, topo string) Pod {
		return withAffinity(app(key, "app", "web"), podAffinity(podTerm(topo, sel("app", "cache"))))
	}
	runPlacement(t, []placementCase{
		{
			name:     "goes where a selected pod runs",
			nodes:    nodes,
			pods:     []Pod{bound(app("default/c", "app", "cache"), "n2"), withCache("default/p", hostname)},
			bindings: map[string]string{"default/p": "n2"},
		},
		{
			name:     "or anywhere in its zone",
			nodes:    nodes,
			pods:     []Pod{bound(pod("default/filler", 3000, 0), "n2"), bound(app("default/c", "app", "cache"), "n2"), withCache("default/p", "zone")},
			bindings: map[string]string{"default/p": "n3"},
		},
		{
			name:  "no selected pod anywhere",
			nodes: nodes,
			pods:  []Pod{withCache("default/p", hostname)},
			unschedulable: map[string]string{
				"default/p": "0/3 nodes are available: 3 node(s) didn't match pod affinity rules",
			},
		},
		{
			name:  "a pod that selects itself may start first, anywhere; the rest follow it",
			nodes: nodes,
			pods: []Pod{
				withAffinity(app("default/a", "app", "cache"), podAffinity(podTerm("zone", sel("app", "cache")))),
				withAffinity(app("default/b", "app", "cache"), podAffinity(podTerm("zone", sel("app", "cache")))),
			},
			bindings: map[string]string{"default/a": "n1", "default/b": "n1"},
		},
		{
			name:  "matchLabelKeys: only pods of the same version count",
			nodes: nodes,
			pods: []Pod{
				bound(app("default/c1", "app", "cache", "version", "1"), "n1"),
				bound(app("default/c2", "app", "cache", "version", "2"), "n3"),
				withAffinity(app("default/p", "version", "2"), podAffinity(corev1.PodAffinityTerm{
					TopologyKey: hostname, LabelSelector: sel("app", "cache"), MatchLabelKeys: []string{"version"},
				})),
			},
			bindings: map[string]string{"default/p": "n3"},
		},
		{
			name:  "preferred affinity pulls, preferred anti-affinity pushes",
			nodes: nodes,
			pods: []Pod{
				bound(app("default/c", "app", "cache"), "n1"),
				bound(app("default/noisy", "app", "batch"), "n2"),
				withAffinity(app("default/near"), corev1.Affinity{PodAffinity: &corev1.PodAffinity{
					PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{
						{Weight: 100, PodAffinityTerm: podTerm(hostname, sel("app", "cache"))},
					},
				}}),
				withAffinity(app("default/away"), corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
					PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{
						{Weight: 100, PodAffinityTerm: podTerm("zone", sel("app", "batch"))},
					},
				}}),
			},
			bindings: map[string]string{"default/near": "n1", "default/away": "n1"},
		},
		{
			name:  "a placed pod's preferred anti-affinity pushes the pods it selects",
			nodes: []Node{hostNode("n1", ""), hostNode("n2", "")},
			pods: []Pod{
				bound(withAffinity(app("default/db", "app", "db"), corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
					PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{
						{Weight: 100, PodAffinityTerm: podTerm(hostname, sel("app", "batch"))},
					},
				}}), "n2"),
				bound(pod("default/filler", 1000, 0), "n1"),
				app("default/batch", "app", "batch"),
			},
			// n1 is fuller, but db on n2 would rather not have batch beside it.
			bindings: map[string]string{"default/batch": "n1"},
		},
	})
}

func TestSchedule_topologySpread(t *testing.T) {
	zones := []Node{hostNode("a1", "a"), hostNode("a2", "a"), hostNode("b1", "b")}
	web := func(key string, c ...corev1.TopologySpreadConstraint) Pod {
		return spreadOver(app(key, "app", "web"), c...)
	}
	zoneSpread := spreadConstraint("zone", 1, corev1.DoNotSchedule, sel("app", "web"))
	runPlacement(t, []placementCase{
		{
			name:  "DoNotSchedule keeps zones within maxSkew",
			nodes: zones,
			pods: []Pod{
				bound(app("default/x", "app", "web"), "a1"),
				web("default/p", zoneSpread),
			},
			bindings: map[string]string{"default/p": "b1"},
		},
		{
			name:  "and refuses when every domain would exceed it",
			nodes: []Node{hostNode("a1", "a"), maxPods(hostNode("b1", "b"), 1)},
			pods: []Pod{
				bound(app("default/x", "app", "web"), "a1"),
				bound(app("default/y", "app", "other"), "b1"),
				web("default/p", zoneSpread),
			},
			unschedulable: map[string]string{
				"default/p": "0/2 nodes are available: 1 Too many pods, 1 node(s) didn't match pod topology spread constraints",
			},
		},
		{
			name:  "a node without the topology label cannot take the pod",
			nodes: []Node{node("bare", 1000, gi)},
			pods:  []Pod{web("default/p", zoneSpread)},
			unschedulable: map[string]string{
				"default/p": "0/1 nodes are available: 1 node(s) didn't match pod topology spread constraints (missing required label)",
			},
		},
		{
			name:  "replicas of one plan alternate zones",
			nodes: zones,
			pods: []Pod{
				web("default/w1", zoneSpread), web("default/w2", zoneSpread),
				web("default/w3", zoneSpread), web("default/w4", zoneSpread),
			},
			bindings: map[string]string{
				"default/w1": "a1", "default/w2": "b1", "default/w3": "a2", "default/w4": "b1",
			},
		},
		{
			name:  "maxSkew 2 allows two more than the least loaded zone",
			nodes: zones,
			pods: []Pod{
				bound(app("default/x", "app", "web"), "a1"),
				web("default/p", func() corev1.TopologySpreadConstraint {
					c := zoneSpread
					c.MaxSkew = 2
					return c
				}()),
			},
			// a2 is as empty as b1 and sorts first.
			bindings: map[string]string{"default/p": "a2"},
		},
		{
			name:  "minDomains: fewer domains than asked for counts the minimum as 0",
			nodes: []Node{hostNode("a1", "a"), hostNode("a2", "a")},
			pods: []Pod{
				bound(app("default/x", "app", "web"), "a1"),
				web("default/p", func() corev1.TopologySpreadConstraint {
					c := zoneSpread
					c.MinDomains = new(int32(2))
					return c
				}()),
			},
			unschedulable: map[string]string{
				"default/p": "0/2 nodes are available: 2 node(s) didn't match pod topology spread constraints",
			},
		},
		{
			name:  "nodeAffinityPolicy Honor (the default): nodes the pod cannot go to are no domain",
			nodes: zones,
			pods: []Pod{
				bound(app("default/x", "app", "web"), "a1"),
				func() Pod {
					p := web("default/p", zoneSpread)
					p.NodeSelector = map[string]string{"zone": "a"}
					return p
				}(),
			},
			bindings: map[string]string{"default/p": "a2"},
		},
		{
			name:  "nodeAffinityPolicy Ignore: they count",
			nodes: zones,
			pods: []Pod{
				bound(app("default/x", "app", "web"), "a1"),
				func() Pod {
					c := zoneSpread
					c.NodeAffinityPolicy = new(corev1.NodeInclusionPolicyIgnore)
					p := web("default/p", c)
					p.NodeSelector = map[string]string{"zone": "a"}
					return p
				}(),
			},
			unschedulable: map[string]string{
				"default/p": "0/3 nodes are available: 1 node(s) didn't match node selector, 2 node(s) didn't match pod topology spread constraints",
			},
		},
		{
			name: "nodeTaintsPolicy Honor: tainted nodes are no domain",
			nodes: []Node{hostNode("a1", "a"), hostNode("a2", "a"),
				tainted(hostNode("b1", "b"), taint("dedicated", "db", corev1.TaintEffectNoSchedule))},
			pods: []Pod{
				bound(app("default/x", "app", "web"), "a1"),
				func() Pod {
					c := zoneSpread
					c.NodeTaintsPolicy = new(corev1.NodeInclusionPolicyHonor)
					return web("default/p", c)
				}(),
			},
			bindings: map[string]string{"default/p": "a2"},
		},
		{
			name: "nodeTaintsPolicy Ignore (the default): they count",
			nodes: []Node{hostNode("a1", "a"), hostNode("a2", "a"),
				tainted(hostNode("b1", "b"), taint("dedicated", "db", corev1.TaintEffectNoSchedule))},
			pods: []Pod{
				bound(app("default/x", "app", "web"), "a1"),
				web("default/p", zoneSpread),
			},
			unschedulable: map[string]string{
				"default/p": "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 2 node(s) didn't match pod topology spread constraints",
			},
		},
		{
			name:  "matchLabelKeys: only pods of the same template count",
			nodes: zones,
			pods: []Pod{
				bound(app("default/old", "app", "web", "pod-template-hash", "old"), "a1"),
				spreadOver(app("default/p", "app", "web", "pod-template-hash", "new"), func() corev1.TopologySpreadConstraint {
					c := zoneSpread
					c.MatchLabelKeys = []string{"pod-template-hash"}
					return c
				}()),
			},
			// Without matchLabelKeys zone a would be full; with it, a and b
			// are both empty and a2 is among the emptiest nodes.
			bindings: map[string]string{"default/p": "a2"},
		},
		{
			name:  "ScheduleAnyway is a score: the emptier zone wins over emptier nodes",
			nodes: []Node{node("a1", 8000, 8*gi, "zone", "a"), node("b1", 1000, gi, "zone", "b")},
			pods: []Pod{
				bound(app("default/x", "app", "web"), "a1"),
				web("default/p", spreadConstraint("zone", 1, corev1.ScheduleAnyway, sel("app", "web"))),
			},
			bindings: map[string]string{"default/p": "b1"},
		},
		{
			name:  "ScheduleAnyway never refuses",
			nodes: []Node{node("a1", 8000, 8*gi, "zone", "a"), node("b1", 1000, gi, "zone", "b")},
			pods: []Pod{
				bound(app("default/x", "app", "web"), "a1"),
				bound(pod("default/full", 1000, 0), "b1"),
				web("default/p", spreadConstraint("zone", 1, corev1.ScheduleAnyway, sel("app", "web"))),
			},
			bindings: map[string]string{"default/p": "a1"},
		},
		{
			name:  "pods of other namespaces do not count",
			nodes: zones,
			pods: []Pod{
				func() Pod { p := bound(app("other/x", "app", "web"), "b1"); p.Namespace = "other"; return p }(),
				bound(app("default/y", "app", "web"), "a1"),
				web("default/p", zoneSpread),
			},
			bindings: map[string]string{"default/p": "b1"},
		},
	})
}

// TestSchedule_placementRulesHold checks, over many seeded random clusters
// with taints, pod limits, node affinity, anti-affinity and spread
// constraints, that no placement breaks a rule: taints are tolerated,
// required node affinity matches, no node takes more pods than it allows,
// two pods of an anti-affine group never share a node (or zone), a
// DoNotSchedule spread over zones never exceeds its maxSkew, and the order
// the nodes come in changes nothing.
func TestSchedule_placementRulesHold(t *testing.T) {
	zones := []string{"a", "b", "c"}
	effects := []corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectNoExecute, corev1.TaintEffectPreferNoSchedule}
	placed, refused := map[string]int{}, 0
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 2))
		nodes := make([]Node, 1+rng.IntN(10))
		for i := range nodes {
			nodes[i] = hostNode(fmt.Sprintf("n%02d", i), zones[rng.IntN(len(zones))])
			nodes[i].MaxPods = rng.IntN(6)
			nodes[i].Unschedulable = rng.IntN(10) == 0
			if rng.IntN(3) == 0 {
				nodes[i].Taints = []corev1.Taint{taint("dedicated", []string{"db", "gpu"}[rng.IntN(2)], effects[rng.IntN(3)])}
			}
			if rng.IntN(3) == 0 {
				nodes[i].Labels["disk"] = "ssd"
			}
		}
		var pods []Pod
		// Pods already bound belong to none of the groups with rules, and
		// fit their nodes.
		onNode := map[string]int{}
		for i := range rng.IntN(8) {
			n := nodes[rng.IntN(len(nodes))]
			if n.MaxPods == 0 || onNode[n.Name] < n.MaxPods {
				onNode[n.Name]++
				pods = append(pods, bound(app(fmt.Sprintf("default/bound-%d", i), "app", "legacy"), n.Name))
			}
		}
		for i := range rng.IntN(40) {
			g := rng.IntN(4)
			p := app(fmt.Sprintf("default/p%03d", i), "app", fmt.Sprintf("g%d", g))
			if rng.IntN(2) == 0 {
				p.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "db"}}
			}
			switch g {
			case 0: // one per node
				p.Affinity = new(antiAffinity(podTerm(hostname, sel("app", "g0"))))
			case 1: // one per zone, on ssd
				a := antiAffinity(podTerm("zone", sel("app", "g1")))
				a.NodeAffinity = requiredNodes(exprTerm(expr("disk", corev1.NodeSelectorOpIn, "ssd"))).NodeAffinity
				p.Affinity = &a
			case 2: // zones within 1 of each other
				p.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{spreadConstraint("zone", 1, corev1.DoNotSchedule, sel("app", "g2"))}
			}
			pods = append(pods, p)
		}
		res := Schedule(nodes, pods)
		// The same input in another node order gives the same result.
		reversed := slices.Clone(nodes)
		slices.Reverse(reversed)
		if again := Schedule(reversed, pods); !maps.Equal(again.Bindings, res.Bindings) || !maps.Equal(again.Unschedulable, res.Unschedulable) {
			t.Fatalf("seed %d: reversing the nodes changed the result", seed)
		}

		byName := map[string]Node{}
		for _, n := range nodes {
			byName[n.Name] = n
		}
		perNode := map[string]int{}
		groupOn := map[string]map[string]int{} // group -> node -> pods
		groupZone := map[string]map[string]int{}
		for _, p := range pods {
			where := p.NodeName
			if where == "" {
				var ok bool
				if where, ok = res.Bindings[p.Key]; !ok {
					if res.Unschedulable[p.Key] == "" {
						t.Fatalf("seed %d: pod %s neither bound nor explained", seed, p.Key)
					}
					refused++
					continue
				}
				n := byName[where]
				if n.Unschedulable {
					t.Fatalf("seed %d: %s placed on cordoned %s", seed, p.Key, where)
				}
				for _, tn := range n.Taints {
					if tn.Effect != corev1.TaintEffectPreferNoSchedule && !Tolerates(p.Tolerations, &tn) {
						t.Fatalf("seed %d: %s placed on %s despite taint %v", seed, p.Key, where, tn)
					}
				}
				if p.Affinity != nil && p.Affinity.NodeAffinity != nil && n.Labels["disk"] != "ssd" {
					t.Fatalf("seed %d: %s placed on %s against its node affinity", seed, p.Key, where)
				}
				placed[p.Labels["app"]]++
			}
			perNode[where]++
			g := p.Labels["app"]
			if groupOn[g] == nil {
				groupOn[g], groupZone[g] = map[string]int{}, map[string]int{}
			}
			groupOn[g][where]++
			groupZone[g][byName[where].Labels["zone"]]++
		}
		for name, count := range perNode {
			if m := byName[name].MaxPods; m > 0 && count > m {
				t.Fatalf("seed %d: node %s runs %d pods, allows %d", seed, name, count, m)
			}
		}
		for name, count := range groupOn["g0"] {
			if count > 1 {
				t.Fatalf("seed %d: %d anti-affine pods of g0 on node %s", seed, count, name)
			}
		}
		for zone, count := range groupZone["g1"] {
			if count > 1 {
				t.Fatalf("seed %d: %d anti-affine pods of g1 in zone %s", seed, count, zone)
			}
		}
		if counts := groupZone["g2"]; len(counts) > 0 {
			lo, hi := 1<<30, 0
			for _, z := range zones {
				present := false
				for _, n := range nodes {
					present = present || n.Labels["zone"] == z
				}
				if present {
					lo, hi = min(lo, counts[z]), max(hi, counts[z])
				}
			}
			if hi-lo > 1 {
				t.Fatalf("seed %d: spread of g2 over zones %v exceeds maxSkew 1", seed, counts)
			}
		}
	}
	// The rules must have been put to work, both ways.
	for _, g := range []string{"g0", "g1", "g2", "g3"} {
		if placed[g] < 100 {
			t.Errorf("only %d pods of %s placed over all seeds", placed[g], g)
		}
	}
	if refused < 100 {
		t.Errorf("only %d pods refused over all seeds", refused)
	}
	t.Logf("placed %v, refused %d", placed, refused)
}
