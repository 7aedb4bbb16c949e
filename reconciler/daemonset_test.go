package reconciler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"bosun/kube"
	"bosun/manifest"
)

// ---- builders ----

// daemonSet is a DaemonSet as manifest leaves it: RollingUpdate with
// maxUnavailable 1 and maxSurge 0.
func daemonSet(name, image, cpu string) appsv1.DaemonSet {
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	spec := podSpec(image, cpu)
	spec.RestartPolicy = corev1.RestartPolicyAlways
	return appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       spec,
			},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &one, MaxSurge: &zero}},
		},
	}
}

func withStrategy(ds appsv1.DaemonSet, unavailable, surge intstr.IntOrString) appsv1.DaemonSet {
	ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &unavailable, MaxSurge: &surge}
	return ds
}

func dsSet(dss ...appsv1.DaemonSet) *manifest.Set {
	return &manifest.Set{DaemonSets: dss}
}

func dsTaint(n corev1.Node, key string, effect corev1.TaintEffect) corev1.Node {
	n = *n.DeepCopy()
	n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Value: "true", Effect: effect})
	return n
}

// applyDS is apply, with the DaemonSet actions too. A daemon pod deleted
// from its node is still stopping there (Observed.Terminating, as the
// store keeps it until its node reports it gone) until dsStopped.
func applyDS(t testing.TB, o Observed, actions []Action) Observed {
	t.Helper()
	var rest []Action
	dss := map[string]appsv1.DaemonSet{}
	for _, d := range o.DaemonSets {
		dss[key(d.Namespace, d.Name)] = *d.DeepCopy()
	}
	terminating := slices.Clone(o.Terminating)
	for _, a := range actions {
		if a.Type != DeletePod {
			continue
		}
		for _, p := range o.Pods {
			if p.Namespace == a.Namespace && p.Name == a.Name && p.Spec.NodeName != "" && isDaemonPod(p) {
				terminating = append(terminating, TerminatingPod{Namespace: p.Namespace, Name: p.Name, Node: p.Spec.NodeName, Owner: kube.OwnerOf(p)})
			}
		}
	}
	for _, a := range actions {
		switch a.Type {
		case PutDaemonSet:
			dss[key(a.DaemonSet.Namespace, a.DaemonSet.Name)] = roundTrip(t, a.DaemonSet)
		case DeleteDaemonSet:
			delete(dss, key(a.Namespace, a.Name))
		default:
			rest = append(rest, a)
		}
	}
	next := apply(t, o, rest)
	next.Terminating = terminating
	for _, k := range sortedKeys(dss) {
		next.DaemonSets = append(next.DaemonSets, dss[k])
	}
	return next
}

// dsPlanApplied plans at now, applies and checks the plan converges in one
// step.
func dsPlanApplied(t testing.TB, desired *manifest.Set, o Observed, now time.Time) ([]Action, Observed) {
	t.Helper()
	actions := Plan(desired, o, now).Actions
	next := applyDS(t, o, actions)
	if again := Plan(desired, next, now).Actions; len(again) > 0 {
		t.Fatalf("plan did not converge in one step; second plan:\n%s", strings.Join(dsSummarize(again), "\n"))
	}
	return actions, next
}

func dsSettled(t testing.TB, desired *manifest.Set, nodes ...corev1.Node) Observed {
	t.Helper()
	_, o := dsPlanApplied(t, desired, Observed{Nodes: nodes}, t0)
	_, o = dsPlanApplied(t, desired, runPods(o), t0)
	return o
}

func dsSummarize(actions []Action) []string {
	out := summarize(actions)
	for i, a := range actions {
		if a.Type == PutDaemonSet {
			st := a.DaemonSet.Status
			out[i] = fmt.Sprintf("PutDaemonSet %s/%s gen=%d desired=%d current=%d ready=%d available=%d updated=%d misscheduled=%d (%s)",
				a.DaemonSet.Namespace, a.DaemonSet.Name, a.DaemonSet.Generation, st.DesiredNumberScheduled, st.CurrentNumberScheduled,
				st.NumberReady, st.NumberAvailable, st.UpdatedNumberScheduled, st.NumberMisscheduled, a.Reason)
		}
	}
	return out
}

// daemonPodsByNode lists a DaemonSet's pods: node -> "<hash>" of each.
func daemonPodsByNode(o Observed, name string) map[string][]string {
	out := map[string][]string{}
	for _, p := range o.Pods {
		if owner := metav1.GetControllerOf(p); owner != nil && owner.Kind == "DaemonSet" && owner.Name == name {
			n := DaemonPodNode(p)
			out[n] = append(out[n], p.Labels[LabelControllerRevisionHash])
		}
	}
	return out
}

// dsPodName is the name the planner gives the pod of ds on node (no clash).
func dsPodName(ds appsv1.DaemonSet, node string) string {
	return "default/" + ds.Name + "-" + nameSuffix(nameSeed(ds.Namespace, ds.Name, node, manifest.TemplateHash(&ds.Spec.Template)), 0)
}

func readyAt(p *corev1.Pod, at time.Time) {
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at)}}}
}

// ---- tables ----

func TestDaemonSet_plan(t *testing.T) {
	logs := daemonSet("logs", "logs:1", "100m")
	logs2 := daemonSet("logs", "logs:2", "100m")
	n1, n2, n3 := node("n1", "2"), node("n2", "2"), node("n3", "2")
	gpu := node("gpu", "2", "gpu", "true")

	tolerant := daemonSet("tolerant", "t:1", "100m")
	tolerant.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	selective := daemonSet("gpu-exporter", "exp:1", "10m")
	selective.Spec.Template.Spec.NodeSelector = map[string]string{"gpu": "true"}
	huge := daemonSet("huge", "huge:1", "3")
	onDelete := logs2
	onDelete.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}

	type tc struct {
		desired  *manifest.Set
		observed Observed
		want     []string
	}
	tests := []struct {
		name  string
		setup func(t *testing.T) tc
	}{
		{"one pod per node, none on a node tainted NoSchedule", func(t *testing.T) tc {
			return tc{desired: dsSet(logs), observed: Observed{Nodes: []corev1.Node{n1, n2, dsTaint(n3, "dedicated", corev1.TaintEffectNoSchedule)}}, want: []string{
				"CreatePod " + dsPodName(logs, "n1") + " node=n1 (node n1 runs daemonset default/logs)",
				"CreatePod " + dsPodName(logs, "n2") + " node=n2 (node n2 runs daemonset default/logs)",
				"PutDaemonSet default/logs gen=1 desired=2 current=2 ready=0 available=0 updated=2 misscheduled=0 (create)",
			}}
		}},
		{"a toleration admits the tainted node", func(t *testing.T) tc {
			return tc{desired: dsSet(tolerant), observed: Observed{Nodes: []corev1.Node{n1, dsTaint(n3, "dedicated", corev1.TaintEffectNoSchedule)}}, want: []string{
				"CreatePod " + dsPodName(tolerant, "n1") + " node=n1 (node n1 runs daemonset default/tolerant)",
				"CreatePod " + dsPodName(tolerant, "n3") + " node=n3 (node n3 runs daemonset default/tolerant)",
				"PutDaemonSet default/tolerant gen=1 desired=2 current=2 ready=0 available=0 updated=2 misscheduled=0 (create)",
			}}
		}},
		{"nodeSelector picks the nodes", func(t *testing.T) tc {
			return tc{desired: dsSet(selective), observed: Observed{Nodes: []corev1.Node{n1, gpu}}, want: []string{
				"CreatePod " + dsPodName(selective, "gpu") + " node=gpu (node gpu runs daemonset default/gpu-exporter)",
				"PutDaemonSet default/gpu-exporter gen=1 desired=1 current=1 ready=0 available=0 updated=1 misscheduled=0 (create)",
			}}
		}},
		{"a cordoned node still runs a daemon pod", func(t *testing.T) tc {
			return tc{desired: dsSet(logs), observed: Observed{Nodes: cordon([]corev1.Node{n1}, "n1")}, want: []string{
				"CreatePod " + dsPodName(logs, "n1") + " node=n1 (node n1 runs daemonset default/logs)",
				"PutDaemonSet default/logs gen=1 desired=1 current=1 ready=0 available=0 updated=1 misscheduled=0 (create)",
			}}
		}},
		{"a pod that does not fit is pending with the scheduler's reason", func(t *testing.T) tc {
			return tc{desired: dsSet(huge), observed: Observed{Nodes: []corev1.Node{n1}}, want: []string{
				"CreatePod " + dsPodName(huge, "n1") + " unschedulable=0/1 nodes are available: 1 insufficient cpu (node n1 runs daemonset default/huge)",
				"PutDaemonSet default/huge gen=1 desired=1 current=1 ready=0 available=0 updated=1 misscheduled=0 (create)",
			}}
		}},
		{"a node that joins gets its pod", func(t *testing.T) tc {
			o := dsSettled(t, dsSet(logs), n1, n2)
			o.Nodes = append(o.Nodes, n3)
			return tc{desired: dsSet(logs), observed: o, want: []string{
				"CreatePod " + dsPodName(logs, "n3") + " node=n3 (node n3 runs daemonset default/logs)",
				"PutDaemonSet default/logs gen=1 desired=3 current=3 ready=2 available=2 updated=3 misscheduled=0 (status: 3 desired, 3 current, 2 ready, 3 updated)",
			}}
		}},
		{"a node that leaves loses its pod", func(t *testing.T) tc {
			o := dsSettled(t, dsSet(logs), n1, n2)
			o.Nodes = []corev1.Node{n1}
			return tc{desired: dsSet(logs), observed: o, want: []string{
				"DeletePod " + dsPodName(logs, "n2") + " (node n2 lost)",
				"PutDaemonSet default/logs gen=1 desired=1 current=1 ready=1 available=1 updated=1 misscheduled=0 (status: 1 desired, 1 current, 1 ready, 1 updated)",
			}}
		}},
		{"a label removed takes the pod off the node", func(t *testing.T) tc {
			o := dsSettled(t, dsSet(selective), n1, gpu)
			o.Nodes = []corev1.Node{n1, node("gpu", "2")}
			return tc{desired: dsSet(selective), observed: o, want: []string{
				"DeletePod " + dsPodName(selective, "gpu") + " (node gpu no longer runs daemonset default/gpu-exporter: node selector or affinity no longer matches)",
				"PutDaemonSet default/gpu-exporter gen=1 desired=0 current=0 ready=0 available=0 updated=0 misscheduled=0 (status: 0 desired, 0 current, 0 ready, 0 updated)",
			}}
		}},
		{"a NoSchedule taint added keeps the pod running, misscheduled", func(t *testing.T) tc {
			o := dsSettled(t, dsSet(logs), n1, n2)
			o.Nodes = []corev1.Node{n1, dsTaint(n2, "dedicated", corev1.TaintEffectNoSchedule)}
			return tc{desired: dsSet(logs), observed: o, want: []string{
				"PutDaemonSet default/logs gen=1 desired=1 current=1 ready=1 available=1 updated=1 misscheduled=1 (status: 1 desired, 1 current, 1 ready, 1 updated)",
			}}
		}},
		{"a NoExecute taint added evicts the pod", func(t *testing.T) tc {
			o := dsSettled(t, dsSet(logs), n1, n2)
			o.Nodes = []corev1.Node{n1, dsTaint(n2, "dedicated", corev1.TaintEffectNoExecute)}
			return tc{desired: dsSet(logs), observed: o, want: []string{
				"DeletePod " + dsPodName(logs, "n2") + " (node n2 no longer runs daemonset default/logs: taint {dedicated: true}:NoExecute not tolerated)",
				"PutDaemonSet default/logs gen=1 desired=1 current=1 ready=1 available=1 updated=1 misscheduled=0 (status: 1 desired, 1 current, 1 ready, 1 updated)",
			}}
		}},
		{"a failed pod is replaced on its node", func(t *testing.T) tc {
			o := dsSettled(t, dsSet(logs), n1)
			o = setPod(t, o, dsPodName(logs, "n1"), func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed })
			return tc{desired: dsSet(logs), observed: o, want: []string{
				"DeletePod " + dsPodName(logs, "n1") + " (replace failed pod)",
				"CreatePod default/logs-" + nameSuffix(nameSeed("default", "logs", "n1", manifest.TemplateHash(&logs.Spec.Template)), 1) +
					" node=n1 (replacement for failed pod " + strings.TrimPrefix(dsPodName(logs, "n1"), "default/") + ")",
				"PutDaemonSet default/logs gen=1 desired=1 current=1 ready=0 available=0 updated=1 misscheduled=0 (status: 1 desired, 1 current, 0 ready, 1 updated)",
			}}
		}},
		{"rolling update replaces one node at a time", func(t *testing.T) tc {
			o := dsSettled(t, dsSet(logs), n1, n2, n3)
			h1, h2 := manifest.TemplateHash(&logs.Spec.Template), manifest.TemplateHash(&logs2.Spec.Template)
			return tc{desired: dsSet(logs2), observed: o, want: []string{
				// The updated pod waits for the old one to stop (next case).
				"DeletePod " + dsPodName(logs, "n1") + " (rolling update " + h1 + " -> " + h2 + " on node n1)",
				"PutDaemonSet default/logs gen=2 desired=3 current=2 ready=2 available=2 updated=0 misscheduled=0 (spec changed in Git)",
			}}
		}},
		{"maxSurge 0: nothing starts beside an old pod still stopping, then the updated pod does", func(t *testing.T) tc {
			o := dsSettled(t, dsSet(logs), n1, n2, n3)
			_, o = dsPlanApplied(t, dsSet(logs2), o, t0) // n1's old pod deleted, still stopping
			if len(o.Terminating) != 1 || o.Terminating[0].Owner != "DaemonSet/default/logs" {
				t.Fatalf("terminating = %+v", o.Terminating)
			}
			if actions := Plan(dsSet(logs2), runPods(o), t0.Add(time.Minute)).Actions; len(actions) > 0 {
				t.Fatalf("acted while n1's old pod stops:\n%s", strings.Join(dsSummarize(actions), "\n"))
			}
			return tc{desired: dsSet(logs2), observed: dsStopped(o), want: []string{
				"CreatePod " + dsPodName(logs2, "n1") + " node=n1 (node n1 runs daemonset default/logs)",
				"PutDaemonSet default/logs gen=2 desired=3 current=3 ready=2 available=2 updated=1 misscheduled=0 (status: 3 desired, 3 current, 2 ready, 1 updated)",
			}}
		}},
		{"leader takeover with a node not yet registered", func(t *testing.T) tc {
			// A new leader knows gpu only by name, from the pod bound to
			// it (a placeholder, no labels): the pod stays, none is added.
			o := dsSettled(t, dsSet(selective, logs), n1, gpu)
			g := StartNodeGrace(5*time.Minute, o.Pods, t0.Add(time.Minute))
			_, o.Nodes, o.NodeGraceExpires = g.Observe([]corev1.Node{n1}, t0.Add(time.Minute))
			return tc{desired: dsSet(selective, logs), observed: o, want: []string{
				"PutDaemonSet default/gpu-exporter gen=1 desired=0 current=0 ready=0 available=0 updated=0 misscheduled=1 (status: 0 desired, 0 current, 0 ready, 0 updated)",
				"PutDaemonSet default/logs gen=1 desired=1 current=1 ready=1 available=1 updated=1 misscheduled=1 (status: 1 desired, 1 current, 1 ready, 1 updated)",
			}}
		}},
		{"a new DaemonSet puts no pod on a node in its grace", func(t *testing.T) tc {
			g, _, _ := NodeGrace{Period: 5 * time.Minute}.Observe([]corev1.Node{n1, n2}, t0)
			o := Observed{}
			_, o.Nodes, o.NodeGraceExpires = g.Observe([]corev1.Node{n1}, t0.Add(time.Minute))
			return tc{desired: dsSet(logs), observed: o, want: []string{
				"CreatePod " + dsPodName(logs, "n1") + " node=n1 (node n1 runs daemonset default/logs)",
				"PutDaemonSet default/logs gen=1 desired=1 current=1 ready=0 available=0 updated=1 misscheduled=0 (create)",
			}}
		}},
		{"rollout while a node is in grace", func(t *testing.T) tc {
			// n3 is gone, in its grace: its old pod stays (no new one is
			// bound to a dead node) and it is no rollout target until it
			// comes back; the others roll.
			o := dsSettled(t, dsSet(logs), n1, n2, n3)
			g, _, _ := NodeGrace{Period: 5 * time.Minute}.Observe(o.Nodes, t0)
			_, o.Nodes, o.NodeGraceExpires = g.Observe([]corev1.Node{n1, n2}, t0.Add(time.Minute))
			h1, h2 := manifest.TemplateHash(&logs.Spec.Template), manifest.TemplateHash(&logs2.Spec.Template)
			return tc{desired: dsSet(logs2), observed: o, want: []string{
				"DeletePod " + dsPodName(logs, "n1") + " (rolling update " + h1 + " -> " + h2 + " on node n1)",
				"PutDaemonSet default/logs gen=2 desired=2 current=1 ready=1 available=1 updated=0 misscheduled=1 (spec changed in Git)",
			}}
		}},
		{"maxSurge starts the updated pod beside the old one", func(t *testing.T) tc {
			o := dsSettled(t, dsSet(logs), n1, n2, n3)
			surge := withStrategy(logs2, intstr.FromInt32(0), intstr.FromString("50%"))
			h1, h2 := manifest.TemplateHash(&logs.Spec.Template), manifest.TemplateHash(&logs2.Spec.Template)
			return tc{desired: dsSet(surge), observed: o, want: []string{
				// 50% of 3 rounds up to 2 nodes.
				// (actions sorted by pod name)
				"CreatePod " + dsPodName(logs2, "n2") + " node=n2 (rolling update " + h1 + " -> " + h2 + " on node n2: surge)",
				"CreatePod " + dsPodName(logs2, "n1") + " node=n1 (rolling update " + h1 + " -> " + h2 + " on node n1: surge)",
				"PutDaemonSet default/logs gen=2 desired=3 current=3 ready=1 available=1 updated=2 misscheduled=0 (spec changed in Git)",
			}}
		}},
		{"OnDelete leaves old pods", func(t *testing.T) tc {
			o := dsSettled(t, dsSet(logs), n1, n2)
			return tc{desired: dsSet(onDelete), observed: o, want: []string{
				"PutDaemonSet default/logs gen=2 desired=2 current=2 ready=2 available=2 updated=0 misscheduled=0 (spec changed in Git)",
			}}
		}},
		{"OnDelete replaces a pod deleted by hand with the new template", func(t *testing.T) tc {
			o := dsSettled(t, dsSet(logs), n1, n2)
			_, o = dsPlanApplied(t, dsSet(onDelete), o, t0)
			o.Pods = slices.DeleteFunc(o.Pods, func(p *corev1.Pod) bool { return p.Spec.NodeName == "n2" })
			return tc{desired: dsSet(onDelete), observed: o, want: []string{
				"CreatePod " + dsPodName(onDelete, "n2") + " node=n2 (node n2 runs daemonset default/logs)",
				"PutDaemonSet default/logs gen=2 desired=2 current=2 ready=1 available=1 updated=1 misscheduled=0 (status: 2 desired, 2 current, 1 ready, 1 updated)",
			}}
		}},
		{"a DaemonSet removed from Git goes with its pods", func(t *testing.T) tc {
			o := dsSettled(t, dsSet(logs), n1, n2)
			return tc{desired: dsSet(), observed: o, want: []string{
				"DeletePod " + dsPodName(logs, "n1") + " (pruned: daemonset default/logs removed from Git)",
				"DeletePod " + dsPodName(logs, "n2") + " (pruned: daemonset default/logs removed from Git)",
				"DeleteDaemonSet default/logs (pruned: removed from Git)",
			}}
		}},
		{"a drain leaves daemon pods where they are", func(t *testing.T) tc {
			o := dsSettled(t, dsSet(logs), n1, n2)
			o.Nodes = cordon(o.Nodes, "n1")
			o.Drains = map[string]Drain{"n1": {}}
			return tc{desired: dsSet(logs), observed: o, want: nil}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.setup(t)
			actions, _ := dsPlanApplied(t, c.desired, c.observed, t0.Add(time.Minute))
			got := dsSummarize(actions)
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("actions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

// TestDaemonSet_podIsPinnedAndToleratesLikeKubernetes pins what a daemon
// pod carries: owner, labels, the node affinity that pins it and the
// default tolerations, none added twice.
func TestDaemonSet_podIsPinnedAndToleratesLikeKubernetes(t *testing.T) {
	ds := daemonSet("logs", "logs:1", "100m")
	ds.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	ds.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "role", Operator: corev1.NodeSelectorOpIn, Values: []string{"edge"}}}}}}}}
	actions, _ := dsPlanApplied(t, dsSet(ds), Observed{Nodes: []corev1.Node{node("n1", "2", "role", "edge"), node("n2", "2")}}, t0)
	var pods []*corev1.Pod
	for _, a := range actions {
		if a.Type == CreatePod {
			pods = append(pods, a.Pod)
		}
	}
	if len(pods) != 1 {
		t.Fatalf("created %d pods, want 1 (on n1 only):\n%s", len(pods), strings.Join(dsSummarize(actions), "\n"))
	}
	p := pods[0]
	if got := kube.OwnerOf(p); got != "DaemonSet/default/logs" || p.Annotations[AnnotationOwner] != got {
		t.Errorf("owner = %q, annotation %q", got, p.Annotations[AnnotationOwner])
	}
	if p.Labels[LabelControllerRevisionHash] != manifest.TemplateHash(&ds.Spec.Template) || p.Labels[LabelPodTemplateGeneration] != "1" || p.Labels["app"] != "logs" {
		t.Errorf("labels = %v", p.Labels)
	}
	if got := DaemonPodNode(p); got != "n1" {
		t.Errorf("pinned to %q, want n1", got)
	}
	terms := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) != 1 || len(terms[0].MatchExpressions) != 0 || len(terms[0].MatchFields) != 1 || terms[0].MatchFields[0].Key != "metadata.name" {
		t.Errorf("required affinity = %+v, want only metadata.name In [n1]", terms)
	}
	keys := map[string]int{}
	for _, tl := range p.Spec.Tolerations {
		keys[tl.Key]++
	}
	for _, k := range []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable, corev1.TaintNodeDiskPressure,
		corev1.TaintNodeMemoryPressure, corev1.TaintNodePIDPressure, corev1.TaintNodeUnschedulable} {
		if keys[k] != 1 {
			t.Errorf("toleration %s appears %d times, want 1: %+v", k, keys[k], p.Spec.Tolerations)
		}
	}
	if keys[corev1.TaintNodeNetworkUnavailable] != 0 {
		t.Errorf("network-unavailable tolerated by a pod not on the host network")
	}
}

func TestDaemonSet_fenceposts(t *testing.T) {
	tests := []struct {
		unavailable, surge intstr.IntOrString
		desired            int
		wantSurge, wantU   int
	}{
		{intstr.FromInt32(1), intstr.FromInt32(0), 5, 0, 1},
		{intstr.FromString("25%"), intstr.FromInt32(0), 5, 0, 2}, // 1.25 rounds up
		{intstr.FromString("10%"), intstr.FromInt32(0), 3, 0, 1},
		{intstr.FromInt32(0), intstr.FromString("50%"), 3, 2, 0},
		{intstr.FromInt32(0), intstr.FromString("1%"), 10, 1, 0},
		{intstr.FromString("0%"), intstr.FromString("0%"), 4, 0, 1}, // refused by validation; moves anyway
		{intstr.FromString("50%"), intstr.FromInt32(0), 0, 0, 0},
	}
	for _, tt := range tests {
		st := appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &tt.unavailable, MaxSurge: &tt.surge}}
		s, u := daemonFenceposts(st, tt.desired)
		if s != tt.wantSurge || u != tt.wantU {
			t.Errorf("maxUnavailable %s maxSurge %s of %d: surge %d unavailable %d, want %d %d",
				tt.unavailable.String(), tt.surge.String(), tt.desired, s, u, tt.wantSurge, tt.wantU)
		}
	}
}

// TestDaemonSet_minReadySecondsWakes: a ready pod not yet available
// wakes the plan when it becomes available.
func TestDaemonSet_minReadySecondsWakes(t *testing.T) {
	ds := daemonSet("logs", "logs:1", "100m")
	ds.Spec.MinReadySeconds = 30
	_, o := dsPlanApplied(t, dsSet(ds), Observed{Nodes: []corev1.Node{node("n1", "2")}}, t0)
	o = setPod(t, o, dsPodName(ds, "n1"), func(p *corev1.Pod) { readyAt(p, t0) })
	res := Plan(dsSet(ds), o, t0.Add(10*time.Second))
	if want := t0.Add(30 * time.Second); !res.Wake.Equal(want) {
		t.Errorf("Wake = %v, want %v", res.Wake, want)
	}
	o = applyDS(t, o, res.Actions)
	if st := o.DaemonSets[0].Status; st.NumberReady != 1 || st.NumberAvailable != 0 {
		t.Errorf("status = %+v, want ready 1, available 0", st)
	}
	res = Plan(dsSet(ds), o, t0.Add(30*time.Second))
	o = applyDS(t, o, res.Actions)
	if st := o.DaemonSets[0].Status; st.NumberAvailable != 1 || st.NumberUnavailable != 0 {
		t.Errorf("status at 30s = %+v, want available 1", st)
	}
}

func TestDaemonSet_revisionOutcome(t *testing.T) {
	logs := daemonSet("logs", "logs:1", "100m")
	logs2 := daemonSet("logs", "logs:2", "100m")
	o := dsSettled(t, dsSet(logs), node("n1", "2"), node("n2", "2"))
	if done, failed, msg := RevisionOutcome(dsSet(logs), o); !done || failed {
		t.Errorf("settled DaemonSet: done %v failed %v %s", done, failed, msg)
	}
	if done, _, _ := RevisionOutcome(dsSet(logs2), o); done {
		t.Error("new template not yet stored counts as done")
	}
	_, o = dsPlanApplied(t, dsSet(logs2), o, t0)
	if done, _, _ := RevisionOutcome(dsSet(logs2), o); done {
		t.Error("rollout halfway counts as done")
	}
	o = dsSettle(t, dsSet(logs2), o)
	if done, _, _ := RevisionOutcome(dsSet(logs2), o); !done {
		t.Errorf("finished rollout not done: %+v", o.DaemonSets[0].Status)
	}
}

// dsStopped plays the nodes reporting every deleted pod stopped.
func dsStopped(o Observed) Observed {
	o.Terminating = nil
	return o
}

// dsSettle plays the agent reporting every bound pod ready long ago and
// every deleted one stopped, and plans until nothing is left to do.
func dsSettle(t testing.TB, desired *manifest.Set, o Observed) Observed {
	t.Helper()
	for round := 0; ; round++ {
		o = dsStopped(runPods(o))
		actions := Plan(desired, o, t0).Actions
		if len(actions) == 0 {
			return o
		}
		if round > 50 {
			t.Fatalf("still acting after 50 rounds:\n%s", strings.Join(dsSummarize(actions), "\n"))
		}
		o = applyDS(t, o, actions)
	}
}

// TestDaemonSet_propertyRollingUpdateBudgetAndConvergence rolls random
// DaemonSets over random clusters, with pods becoming ready (and old ones
// failing readiness) at random: with maxSurge 0, a plan never leaves more
// nodes without an available pod than maxUnavailable, or than there were
// before it (pods failing on their own are not the plan's doing); with
// maxSurge, a plan never takes a node's availability away and no more than
// maxSurge nodes run two pods beside nodes whose old pod did not serve.
// Deleted pods stop after a random while; with maxSurge 0 no pod starts on
// a node where one is still stopping.
// Once every pod is ready, every eligible node runs exactly one pod, of the
// current template, and the status says so.
func TestDaemonSet_propertyRollingUpdateBudgetAndConvergence(t *testing.T) {
	for seed := uint64(1); seed <= 150; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		var nodes []corev1.Node
		eligible := map[string]bool{}
		for i := range 2 + rng.IntN(9) {
			name := fmt.Sprintf("n%02d", i)
			if rng.IntN(4) == 0 {
				nodes = append(nodes, node(name, "4"))
			} else {
				nodes = append(nodes, node(name, "4", "agent", "yes"))
				eligible[name] = true
			}
		}
		ds := daemonSet("agent", "agent:1", "100m")
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"agent": "yes"}
		next := daemonSet("agent", "agent:2", "100m")
		next.Spec.Template.Spec.NodeSelector = ds.Spec.Template.Spec.NodeSelector
		surgeMode := rng.IntN(2) == 0
		var budget int
		if surgeMode {
			v := intstr.FromInt32(int32(1 + rng.IntN(3)))
			if rng.IntN(2) == 0 {
				v = intstr.FromString(fmt.Sprintf("%d%%", 10+rng.IntN(90)))
			}
			next = withStrategy(next, intstr.FromInt32(0), v)
			budget, _ = daemonFenceposts(next.Spec.UpdateStrategy, len(eligible))
		} else {
			v := intstr.FromInt32(int32(1 + rng.IntN(3)))
			if rng.IntN(2) == 0 {
				v = intstr.FromString(fmt.Sprintf("%d%%", 10+rng.IntN(90)))
			}
			next = withStrategy(next, v, intstr.FromInt32(0))
			_, budget = daemonFenceposts(next.Spec.UpdateStrategy, len(eligible))
		}
		o := dsSettled(t, dsSet(ds), nodes...)
		desired := dsSet(next)
		hash := manifest.TemplateHash(&next.Spec.Template)
		now := t0
		for step := 0; step < 200; step++ {
			now = now.Add(time.Second)
			// Random readiness: unready pods come up, ready old ones fail.
			for i, p := range o.Pods {
				switch {
				case p.Spec.NodeName == "":
				case !kube.PodReady(p) && rng.IntN(3) == 0:
					readyAt(replacePod(o.Pods, i), now)
				case kube.PodReady(p) && p.Labels[LabelControllerRevisionHash] != hash && rng.IntN(40) == 0:
					replacePod(o.Pods, i).Status.Conditions[0].Status = corev1.ConditionFalse
				}
			}
			// Random teardown: nodes report deleted pods stopped.
			o.Terminating = slices.DeleteFunc(slices.Clone(o.Terminating), func(TerminatingPod) bool { return rng.IntN(2) == 0 })
			before := unavailableNodes(o, eligible, now)
			actions := Plan(desired, o, now).Actions
			if !surgeMode {
				stopping := map[string]bool{}
				for _, tp := range o.Terminating {
					stopping[tp.Node] = true
				}
				for _, a := range actions {
					if a.Type == CreatePod && stopping[DaemonPodNode(a.Pod)] {
						t.Fatalf("seed %d step %d: %s started on %s beside a pod still stopping", seed, step, a.Pod.Name, DaemonPodNode(a.Pod))
					}
				}
			}
			o = applyDS(t, o, actions)
			after := unavailableNodes(o, eligible, now)
			if surgeMode {
				for n := range after {
					if !before[n] {
						t.Fatalf("seed %d step %d: surge plan took node %s's availability away:\n%s", seed, step, n, strings.Join(dsSummarize(actions), "\n"))
					}
				}
				if doubled := doubledNodes(o, hash, now); doubled > budget {
					t.Fatalf("seed %d step %d: %d nodes run an old available pod beside an updated one, maxSurge %d", seed, step, doubled, budget)
				}
			} else if len(after) > max(budget, len(before)) {
				t.Fatalf("seed %d step %d: %d nodes unavailable after the plan (%d before), maxUnavailable %d:\n%s",
					seed, step, len(after), len(before), budget, strings.Join(dsSummarize(actions), "\n"))
			}
		}
		o = dsSettle(t, desired, o)
		pods := daemonPodsByNode(o, "agent")
		for n := range eligible {
			if got := pods[n]; len(got) != 1 || got[0] != hash {
				t.Fatalf("seed %d: node %s runs %v, want one pod of %s", seed, n, got, hash)
			}
		}
		if len(pods) != len(eligible) {
			t.Fatalf("seed %d: pods on %d nodes, %d eligible", seed, len(pods), len(eligible))
		}
		st := o.DaemonSets[0].Status
		want := int32(len(eligible))
		if st.DesiredNumberScheduled != want || st.UpdatedNumberScheduled != want || st.NumberAvailable != want || st.NumberUnavailable != 0 {
			t.Fatalf("seed %d: status %+v, want %d everywhere", seed, st, want)
		}
	}
}

// unavailableNodes are the eligible nodes without an available pod of the
// DaemonSet.
func unavailableNodes(o Observed, eligible map[string]bool, now time.Time) map[string]bool {
	out := map[string]bool{}
	for n := range eligible {
		out[n] = true
	}
	for _, p := range o.Pods {
		if available(p, 0, now) {
			delete(out, DaemonPodNode(p))
		}
	}
	return out
}

// doubledNodes counts nodes where an updated pod runs beside an old one
// that is available: a surge.
func doubledNodes(o Observed, hash string, now time.Time) int {
	cur, oldAvail := map[string]bool{}, map[string]bool{}
	for _, p := range o.Pods {
		n := DaemonPodNode(p)
		if p.Labels[LabelControllerRevisionHash] == hash {
			cur[n] = true
		} else if available(p, 0, now) {
			oldAvail[n] = true
		}
	}
	count := 0
	for n := range cur {
		if oldAvail[n] {
			count++
		}
	}
	return count
}

// TestDaemonSet_replacedPodKeepsItsRoom: on a full node, a daemon pod that
// is replaced does not lose the room it frees to a Deployment pod waiting
// for room: not while the old pod stops (its room is held), nor when the
// replacement is created beside the waiting pod (daemon pods are placed
// first).
func TestDaemonSet_replacedPodKeepsItsRoom(t *testing.T) {
	logs, logs2 := daemonSet("logs", "logs:1", "600m"), daemonSet("logs", "logs:2", "600m")
	web := deployment("web", 1, "web:1", "600m")
	desired := func(ds appsv1.DaemonSet) *manifest.Set {
		return &manifest.Set{DaemonSets: []appsv1.DaemonSet{ds}, Deployments: []appsv1.Deployment{web}}
	}
	o := dsSettled(t, dsSet(logs), node("n1", "1"))
	_, o = dsPlanApplied(t, desired(logs), o, t0) // web waits: no room
	webPending := func(o Observed) bool {
		for _, p := range o.Pods {
			if strings.HasPrefix(p.Name, "web-") {
				return p.Spec.NodeName == ""
			}
		}
		t.Fatal("no web pod")
		return false
	}
	daemonOn := func(o Observed) string {
		for _, p := range o.Pods {
			if isDaemonPod(p) {
				return p.Spec.NodeName
			}
		}
		return "none"
	}
	if !webPending(o) {
		t.Fatal("web placed on a full node")
	}

	t.Run("a failed daemon pod is replaced before the waiting pod is placed", func(t *testing.T) {
		o := setPod(t, o, dsPodName(logs, "n1"), func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed })
		_, o = dsPlanApplied(t, desired(logs), o, t0.Add(time.Second))
		if got := daemonOn(o); got != "n1" || !webPending(o) {
			t.Errorf("daemon pod on %q, web pending %v: want the daemon pod on n1, web still waiting", got, webPending(o))
		}
	})
	t.Run("a rolling update holds the room while the old pod stops", func(t *testing.T) {
		_, o := dsPlanApplied(t, desired(logs2), o, t0.Add(time.Second))
		if !webPending(o) {
			t.Fatal("web took the room of the daemon pod being replaced")
		}
		_, o = dsPlanApplied(t, desired(logs2), dsStopped(o), t0.Add(2*time.Second))
		if got := daemonOn(o); got != "n1" || !webPending(o) {
			t.Errorf("daemon pod on %q, web pending %v: want the updated daemon pod on n1, web still waiting", got, webPending(o))
		}
	})
}

// TestDaemonSet_defaultTolerationsReplaceMatchingOnes: a template
// toleration of the same key, operator, value and effect as a default one
// is replaced by it (Kubernetes' AddOrUpdateTolerationInPodSpec): a
// tolerationSeconds on unreachable:NoExecute does not evict daemon pods.
func TestDaemonSet_defaultTolerationsReplaceMatchingOnes(t *testing.T) {
	secs := int64(30)
	tmpl := corev1.PodTemplateSpec{Spec: corev1.PodSpec{Tolerations: []corev1.Toleration{
		{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &secs},
		{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "logs", Effect: corev1.TaintEffectNoSchedule},
	}}}
	spec := daemonPodSpec(&tmpl)
	var unreachable []corev1.Toleration
	for _, tl := range spec.Tolerations {
		if tl.Key == corev1.TaintNodeUnreachable {
			unreachable = append(unreachable, tl)
		}
	}
	if len(unreachable) != 1 || unreachable[0].TolerationSeconds != nil {
		t.Errorf("unreachable tolerations = %+v, want the default one only (no tolerationSeconds)", unreachable)
	}
	if spec.Tolerations[0].Key != corev1.TaintNodeUnreachable || spec.Tolerations[1].Key != "dedicated" || len(spec.Tolerations) != 2+len(daemonTolerations)-1 {
		t.Errorf("tolerations = %+v: want the template's in place, the other defaults appended", spec.Tolerations)
	}
	if tmpl.Spec.Tolerations[0].TolerationSeconds == nil {
		t.Error("the template was modified")
	}
}
