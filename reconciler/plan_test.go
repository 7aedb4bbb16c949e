package reconciler

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"bosun/canary"
	"bosun/kube"
	"bosun/manifest"
	"bosun/scheduler"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// ---- builders ----

func node(name string, cpu string, labels ...string) corev1.Node {
	n := corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse(cpu),
			corev1.ResourceMemory: resource.MustParse("8Gi"),
		}},
	}
	for i := 0; i+1 < len(labels); i += 2 {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[labels[i]] = labels[i+1]
	}
	return n
}

func podSpec(image, cpu string) corev1.PodSpec {
	ct := corev1.Container{Name: "app", Image: image}
	if cpu != "" {
		ct.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}
	}
	return corev1.PodSpec{Containers: []corev1.Container{ct}}
}

func withMemory(spec *corev1.PodSpec, memory string) {
	ct := &spec.Containers[0]
	if ct.Resources.Requests == nil {
		ct.Resources.Requests = corev1.ResourceList{}
	}
	ct.Resources.Requests[corev1.ResourceMemory] = resource.MustParse(memory)
}

func deployment(name string, replicas int32, image, cpu string) appsv1.Deployment {
	return appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       podSpec(image, cpu),
			},
		},
	}
}

func standalone(name, image, cpu string, restart corev1.RestartPolicy) corev1.Pod {
	spec := podSpec(image, cpu)
	spec.RestartPolicy = restart
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": name}},
		Spec:       spec,
	}
}

func service(name string) corev1.Service {
	return corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
}

// set builds a desired Set the way manifest does: each slice sorted by namespace and name.
func set(ds []appsv1.Deployment, ps []corev1.Pod, ss []corev1.Service) *manifest.Set {
	s := &manifest.Set{Deployments: ds, Pods: ps, Services: ss}
	slices.SortFunc(s.Deployments, func(a, b appsv1.Deployment) int {
		return cmp.Compare(key(a.Namespace, a.Name), key(b.Namespace, b.Name))
	})
	slices.SortFunc(s.Pods, func(a, b corev1.Pod) int { return cmp.Compare(key(a.Namespace, a.Name), key(b.Namespace, b.Name)) })
	slices.SortFunc(s.Services, func(a, b corev1.Service) int { return cmp.Compare(key(a.Namespace, a.Name), key(b.Namespace, b.Name)) })
	return s
}

// podOf names the pod with this ordinal of d's current template.
func podOf(d appsv1.Deployment, ordinal int) string {
	return "default/" + podName(&d, manifest.TemplateHash(&d.Spec.Template), ordinal)
}

// ---- simulated cluster ----

// apply does to Observed what the driver does to the store: every action, in
// order. It fails the test on an action that could not be applied as given.
func apply(t testing.TB, o Observed, actions []Action) Observed {
	t.Helper()
	pods := map[string]*corev1.Pod{}
	for _, p := range o.Pods {
		pods[key(p.Namespace, p.Name)] = p.DeepCopy()
	}
	deps := map[string]appsv1.Deployment{}
	for _, d := range o.Deployments {
		deps[key(d.Namespace, d.Name)] = *d.DeepCopy()
	}
	svcs := map[string]corev1.Service{}
	for _, s := range o.Services {
		svcs[key(s.Namespace, s.Name)] = *s.DeepCopy()
	}
	canaries := map[string]canary.State{}
	for _, c := range o.Canaries {
		canaries[key(c.Namespace, c.Name)] = c
	}
	for _, a := range actions {
		switch a.Type {
		case CreatePod, UpdatePod:
			k := key(a.Pod.Namespace, a.Pod.Name)
			if _, exists := pods[k]; exists != (a.Type == UpdatePod) {
				t.Fatalf("%s %s: pod exists = %v", a.Type, k, exists)
			}
			pod := roundTrip(t, a.Pod)
			pods[k] = &pod
		case DeletePod:
			k := key(a.Namespace, a.Name)
			if _, exists := pods[k]; !exists {
				t.Fatalf("DeletePod %s: no such pod", k)
			}
			delete(pods, k)
		case PutDeployment:
			deps[key(a.Deployment.Namespace, a.Deployment.Name)] = roundTrip(t, a.Deployment)
		case DeleteDeployment:
			delete(deps, key(a.Namespace, a.Name))
		case PutService:
			svcs[key(a.Service.Namespace, a.Service.Name)] = roundTrip(t, a.Service)
		case DeleteService:
			delete(svcs, key(a.Namespace, a.Name))
		case PutCanary:
			canaries[key(a.Canary.Namespace, a.Canary.Name)] = roundTrip(t, a.Canary)
		case DeleteCanary:
			delete(canaries, key(a.Namespace, a.Name))
		default:
			t.Fatalf("unknown action %q", a.Type)
		}
	}
	out := Observed{Nodes: slices.Clone(o.Nodes), Drains: o.Drains, CanaryBranches: o.CanaryBranches, Measurements: o.Measurements}
	for _, k := range sortedKeys(canaries) {
		out.Canaries = append(out.Canaries, canaries[k])
	}
	for _, k := range sortedKeys(pods) {
		out.Pods = append(out.Pods, pods[k])
	}
	for _, k := range sortedKeys(deps) {
		out.Deployments = append(out.Deployments, deps[k])
	}
	for _, k := range sortedKeys(svcs) {
		out.Services = append(out.Services, svcs[k])
	}
	return out
}

// roundTrip stores v the way the store does, as JSON, and reads it back:
// quantities, times and empty collections come back as a real read gives them.
func roundTrip[T any](t testing.TB, v *T) T {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	var out T
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// runPods plays the node agent: every bound pod that has not finished is
// reported Running and Ready (since an hour before t0), with a status that
// replaces the planner's. Like the store, it replaces the pods it changes
// (o.Pods' pods are shared, as the store cache's are) in o.Pods.
func runPods(o Observed) Observed {
	for i, p := range o.Pods {
		if p.Spec.NodeName == "" || kube.PodFinished(p) {
			continue
		}
		p = replacePod(o.Pods, i)
		p.Status = corev1.PodStatus{
			Phase: corev1.PodRunning,
			PodIP: fmt.Sprintf("10.0.0.%d", i+1),
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue,
				LastTransitionTime: metav1.NewTime(t0.Add(-time.Hour))}},
		}
	}
	return o
}

// setPod changes the observed pod named key ("ns/name"): a copy replaces
// it in o.Pods.
func setPod(t testing.TB, o Observed, k string, change func(*corev1.Pod)) Observed {
	t.Helper()
	for i, p := range o.Pods {
		if key(p.Namespace, p.Name) == k {
			change(replacePod(o.Pods, i))
			return o
		}
	}
	t.Fatalf("no pod %s in %v", k, podKeys(o))
	return o
}

// replacePod replaces pods[i] with a copy and returns it for changing:
// observed pods are shared and never modified.
func replacePod(pods []*corev1.Pod, i int) *corev1.Pod {
	pods[i] = pods[i].DeepCopy()
	return pods[i]
}

func podKeys(o Observed) []string {
	var ks []string
	for _, p := range o.Pods {
		ks = append(ks, key(p.Namespace, p.Name))
	}
	return ks
}

// planApplied plans, applies and checks the plan converges in one step.
func planApplied(t testing.TB, desired *manifest.Set, o Observed) ([]Action, Observed) {
	t.Helper()
	actions := Plan(desired, o, t0).Actions
	next := apply(t, o, actions)
	if again := Plan(desired, next, t0.Add(time.Minute)).Actions; len(again) > 0 {
		t.Fatalf("plan did not converge in one step; second plan:\n%s", strings.Join(summarize(again), "\n"))
	}
	return actions, next
}

// settled is the cluster after desired was applied to nodes and every pod
// came up Ready, with deployment statuses written.
func settled(t testing.TB, desired *manifest.Set, nodes ...corev1.Node) Observed {
	t.Helper()
	_, o := planApplied(t, desired, Observed{Nodes: nodes})
	_, o = planApplied(t, desired, runPods(o))
	return o
}

// summarize renders actions one a line, with what matters of each.
func summarize(actions []Action) []string {
	out := make([]string, 0, len(actions))
	for _, a := range actions {
		var s string
		switch a.Type {
		case CreatePod, UpdatePod:
			s = fmt.Sprintf("%s %s/%s", a.Type, a.Pod.Namespace, a.Pod.Name)
			if a.Pod.Spec.NodeName != "" {
				s += " node=" + a.Pod.Spec.NodeName
			} else if c := scheduledCondition(a.Pod); c != nil {
				s += " unschedulable=" + c.Message
			}
		case PutDeployment:
			st := a.Deployment.Status
			s = fmt.Sprintf("%s %s/%s gen=%d replicas=%d updated=%d ready=%d", a.Type, a.Deployment.Namespace, a.Deployment.Name,
				a.Deployment.Generation, st.Replicas, st.UpdatedReplicas, st.ReadyReplicas)
		case PutService:
			s = fmt.Sprintf("%s %s/%s", a.Type, a.Service.Namespace, a.Service.Name)
		default:
			s = fmt.Sprintf("%s %s/%s", a.Type, a.Namespace, a.Name)
		}
		out = append(out, s+" ("+a.Reason+")")
	}
	return out
}

// ---- tables ----

func TestPlan(t *testing.T) {
	web := deployment("web", 3, "web:1", "100m")
	web5 := deployment("web", 5, "web:1", "100m")
	web2 := deployment("web", 2, "web:1", "100m")
	webV2 := deployment("web", 3, "web:2", "100m")
	api := deployment("api", 1, "api:1", "100m")
	job := standalone("job", "job:1", "100m", corev1.RestartPolicyNever)
	tool := standalone("tool", "tool:1", "100m", "")
	svc := service("web")
	n1, n2, n3 := node("n1", "2"), node("n2", "2"), node("n3", "2")
	base := set([]appsv1.Deployment{web}, []corev1.Pod{tool}, []corev1.Service{svc})

	type tc struct {
		desired  *manifest.Set
		observed Observed
		want     []string
	}
	tests := []struct {
		name  string
		setup func(t *testing.T) tc
	}{
		{"create from empty spreads replicas", func(t *testing.T) tc {
			return tc{desired: base, observed: Observed{Nodes: []corev1.Node{n1, n2, n3}}, want: []string{
				// Deployments are decided, and so scheduled, before standalone pods.
				"CreatePod " + podOf(web, 0) + " node=n1 (scale up 0 -> 3)",
				"CreatePod " + podOf(web, 1) + " node=n2 (scale up 0 -> 3)",
				"CreatePod " + podOf(web, 2) + " node=n3 (scale up 0 -> 3)",
				"CreatePod default/tool node=n1 (create)",
				"PutDeployment default/web gen=1 replicas=3 updated=3 ready=0 (create)",
				"PutService default/web (create)",
			}}
		}},
		{"nothing to do once everything matches", func(t *testing.T) tc {
			return tc{desired: base, observed: settled(t, base, n1, n2, n3)}
		}},
		{"pods becoming ready only update deployment status", func(t *testing.T) tc {
			_, o := planApplied(t, base, Observed{Nodes: []corev1.Node{n1, n2, n3}})
			return tc{desired: base, observed: runPods(o), want: []string{
				"PutDeployment default/web gen=1 replicas=3 updated=3 ready=3 (status: 3 replicas, 3 updated, 3 ready)",
			}}
		}},
		{"scale up takes the lowest free ordinals", func(t *testing.T) tc {
			d := set([]appsv1.Deployment{web5}, nil, nil)
			o := settled(t, set([]appsv1.Deployment{web}, nil, nil), n1, n2, n3)
			return tc{desired: d, observed: o, want: []string{
				"CreatePod " + podOf(web, 3) + " node=n1 (scale up 3 -> 5)",
				"CreatePod " + podOf(web, 4) + " node=n2 (scale up 3 -> 5)",
				"PutDeployment default/web gen=2 replicas=5 updated=5 ready=3 (spec changed in Git)",
			}}
		}},
		{"scale down removes unbound, then not ready, then newest", func(t *testing.T) tc {
			o := settled(t, set([]appsv1.Deployment{web5}, nil, nil), n1, n2, n3)
			o = setPod(t, o, podOf(web, 1), func(p *corev1.Pod) { p.Status.Conditions = nil })
			o = setPod(t, o, podOf(web, 3), func(p *corev1.Pod) { p.Spec.NodeName = ""; p.Status = corev1.PodStatus{} })
			return tc{desired: set([]appsv1.Deployment{web2}, nil, nil), observed: o, want: []string{
				"DeletePod " + podOf(web, 1) + " (scale down 5 -> 2)",
				"DeletePod " + podOf(web, 3) + " (scale down 5 -> 2)",
				"DeletePod " + podOf(web, 4) + " (scale down 5 -> 2)",
				"PutDeployment default/web gen=2 replicas=2 updated=2 ready=2 (spec changed in Git)",
			}}
		}},
		{"scale to zero deletes every pod", func(t *testing.T) tc {
			zero := deployment("web", 0, "web:1", "100m")
			return tc{desired: set([]appsv1.Deployment{zero}, nil, nil), observed: settled(t, set([]appsv1.Deployment{web2}, nil, nil), n1), want: []string{
				"DeletePod " + podOf(web, 0) + " (scale down 2 -> 0)",
				"DeletePod " + podOf(web, 1) + " (scale down 2 -> 0)",
				"PutDeployment default/web gen=2 replicas=0 updated=0 ready=0 (spec changed in Git)",
			}}
		}},
		{"template change starts a rolling update with one surge pod", func(t *testing.T) tc {
			// 3 replicas at the default 25%/25%: maxSurge 1 (rounded up),
			// maxUnavailable 0 (rounded down). Every old pod serves until the
			// surge pod is available; the next plan waits for it.
			o := settled(t, set([]appsv1.Deployment{web}, nil, nil), n1, n2, n3)
			return tc{desired: set([]appsv1.Deployment{webV2}, nil, nil), observed: o, want: []string{
				"CreatePod " + podOf(webV2, 0) + " node=n1 (rolling update to " + manifest.TemplateHash(&webV2.Spec.Template) + ": 0 -> 1 of 3)",
				"PutDeployment default/web gen=2 replicas=4 updated=1 ready=3 (spec changed in Git)",
			}}
		}},
		{"removed deployment is pruned with its pods", func(t *testing.T) tc {
			o := settled(t, set([]appsv1.Deployment{api, web2}, nil, nil), n1)
			return tc{desired: set([]appsv1.Deployment{api}, nil, nil), observed: o, want: []string{
				"DeletePod " + podOf(web, 0) + " (pruned: deployment default/web removed from Git)",
				"DeletePod " + podOf(web, 1) + " (pruned: deployment default/web removed from Git)",
				"DeleteDeployment default/web (pruned: removed from Git)",
			}}
		}},
		{"removed pod and service are pruned", func(t *testing.T) tc {
			o := settled(t, base, n1)
			return tc{desired: set([]appsv1.Deployment{web}, nil, nil), observed: o, want: []string{
				"DeletePod default/tool (pruned: removed from Git)",
				"DeleteService default/web (pruned: removed from Git)",
			}}
		}},
		{"failed and succeeded deployment pods are replaced under new names", func(t *testing.T) tc {
			o := settled(t, set([]appsv1.Deployment{web}, nil, nil), n1, n2, n3)
			o = setPod(t, o, podOf(web, 0), func(p *corev1.Pod) { p.Status = corev1.PodStatus{Phase: corev1.PodFailed} })
			o = setPod(t, o, podOf(web, 2), func(p *corev1.Pod) { p.Status = corev1.PodStatus{Phase: corev1.PodSucceeded} })
			// Replacements are paired with the replaced pods in name order.
			replacements := []string{"replacement for failed pod " + podOf(web, 0)[8:], "replacement for succeeded pod " + podOf(web, 2)[8:]}
			if podOf(web, 2) < podOf(web, 0) {
				slices.Reverse(replacements)
			}
			return tc{desired: set([]appsv1.Deployment{web}, nil, nil), observed: o, want: []string{
				"DeletePod " + podOf(web, 0) + " (replace failed pod)",
				"DeletePod " + podOf(web, 2) + " (replace succeeded pod)",
				"CreatePod " + podOf(web, 3) + " node=n1 (" + replacements[0] + ")",
				"CreatePod " + podOf(web, 4) + " node=n3 (" + replacements[1] + ")",
				"PutDeployment default/web gen=1 replicas=3 updated=3 ready=1 (status: 3 replicas, 3 updated, 1 ready)",
			}}
		}},
		{"finished standalone pod with restartPolicy Never stays", func(t *testing.T) tc {
			d := set(nil, []corev1.Pod{job}, nil)
			o := setPod(t, settled(t, d, n1), "default/job", func(p *corev1.Pod) { p.Status = corev1.PodStatus{Phase: corev1.PodFailed} })
			return tc{desired: d, observed: o}
		}},
		{"failed standalone pod with restartPolicy Always is recreated under its name", func(t *testing.T) tc {
			d := set(nil, []corev1.Pod{tool}, nil)
			o := setPod(t, settled(t, d, n1), "default/tool", func(p *corev1.Pod) { p.Status = corev1.PodStatus{Phase: corev1.PodFailed} })
			return tc{desired: d, observed: o, want: []string{
				"DeletePod default/tool (replace failed pod)",
				"CreatePod default/tool node=n1 (replace failed pod)",
			}}
		}},
		{"pods of a lost node are rescheduled", func(t *testing.T) tc {
			o := settled(t, base, n1, n2, n3)
			o.Nodes = []corev1.Node{n2, n3}
			// n1 held web-0 and tool (see "create from empty").
			return tc{desired: base, observed: o, want: []string{
				"DeletePod " + podOf(web, 0) + " (node n1 lost)",
				"DeletePod default/tool (node n1 lost)",
				"CreatePod " + podOf(web, 3) + " node=n2 (replacement for pod " + podOf(web, 0)[8:] + " of lost node n1)",
				"CreatePod default/tool node=n3 (node n1 lost)",
				"PutDeployment default/web gen=1 replicas=3 updated=3 ready=2 (status: 3 replicas, 3 updated, 2 ready)",
			}}
		}},
		{"pod that fits nowhere is stored with the scheduler's reason", func(t *testing.T) tc {
			big := standalone("big", "big:1", "3", "")
			picky := standalone("picky", "picky:1", "", "")
			picky.Spec.NodeSelector = map[string]string{"gpu": "true"}
			d := set(nil, []corev1.Pod{big, picky}, nil)
			return tc{desired: d, observed: Observed{Nodes: []corev1.Node{n1, n2}}, want: []string{
				"CreatePod default/big unschedulable=0/2 nodes are available: 2 insufficient cpu (create)",
				"CreatePod default/picky unschedulable=0/2 nodes are available: 2 node(s) didn't match node selector (create)",
			}}
		}},
		{"unschedulable reason reflects placements made in the same plan", func(t *testing.T) tc {
			// big (stored, so tried first) lacks cpu on n1; hog then takes most
			// of n1's memory. big's reason counts n1 as it will be, short of
			// memory too, so the next plan agrees with it.
			big := standalone("a-big", "big:1", "3", "")
			withMemory(&big.Spec, "1Gi")
			hog := standalone("b-hog", "hog:1", "", "")
			withMemory(&hog.Spec, "7680Mi")
			d := set(nil, []corev1.Pod{big, hog}, nil)
			o := apply(t, Observed{Nodes: []corev1.Node{n1}}, []Action{{Type: CreatePod, Pod: newStandalonePod(&big)}})
			return tc{desired: d, observed: o, want: []string{
				"UpdatePod default/a-big unschedulable=0/1 nodes are available: 1 insufficient cpu, 1 insufficient memory (unschedulable: 0/1 nodes are available: 1 insufficient cpu, 1 insufficient memory)",
				"CreatePod default/b-hog node=n1 (create)",
			}}
		}},
		{"unschedulable pod is bound once a node joins", func(t *testing.T) tc {
			big := standalone("big", "big:1", "3", "")
			d := set(nil, []corev1.Pod{big}, nil)
			_, o := planApplied(t, d, Observed{Nodes: []corev1.Node{n1}})
			o.Nodes = append(o.Nodes, node("n4", "4"))
			return tc{desired: d, observed: o, want: []string{
				"UpdatePod default/big node=n4 (scheduled to n4)",
			}}
		}},
		{"unschedulable reason is rewritten when it changes", func(t *testing.T) tc {
			big := standalone("big", "big:1", "3", "")
			d := set(nil, []corev1.Pod{big}, nil)
			_, o := planApplied(t, d, Observed{Nodes: []corev1.Node{n1}})
			cordoned := n1
			cordoned.Spec.Unschedulable = true
			o.Nodes = []corev1.Node{cordoned}
			return tc{desired: d, observed: o, want: []string{
				"UpdatePod default/big unschedulable=0/1 nodes are available: 1 node(s) were unschedulable (unschedulable: 0/1 nodes are available: 1 node(s) were unschedulable)",
			}}
		}},
		{"no nodes registered", func(t *testing.T) tc {
			return tc{desired: set([]appsv1.Deployment{api}, nil, nil), want: []string{
				"CreatePod " + podOf(api, 0) + " unschedulable=0/0 nodes are available: no nodes registered (scale up 0 -> 1)",
				"PutDeployment default/api gen=1 replicas=1 updated=1 ready=0 (create)",
			}}
		}},
		{"standalone spec change recreates the pod under its name", func(t *testing.T) tc {
			o := settled(t, set(nil, []corev1.Pod{tool}, nil), n1, n2)
			tool2 := standalone("tool", "tool:2", "100m", "")
			return tc{desired: set(nil, []corev1.Pod{tool2}, nil), observed: o, want: []string{
				"DeletePod default/tool (spec changed in Git)",
				"CreatePod default/tool node=n1 (spec changed in Git)",
			}}
		}},
		{"standalone label change is updated in place", func(t *testing.T) tc {
			o := settled(t, set(nil, []corev1.Pod{tool}, nil), n1, n2)
			relabelled := tool
			relabelled.Labels = map[string]string{"app": "tool", "tier": "ops"}
			return tc{desired: set(nil, []corev1.Pod{relabelled}, nil), observed: o, want: []string{
				"UpdatePod default/tool node=n1 (metadata changed in Git)",
			}}
		}},
		{"pod pinned to a missing node waits for it", func(t *testing.T) tc {
			pinned := standalone("pinned", "p:1", "100m", "")
			pinned.Spec.NodeName = "n9"
			d := set(nil, []corev1.Pod{pinned}, nil)
			return tc{desired: d, observed: Observed{Nodes: []corev1.Node{n1}}, want: []string{
				"CreatePod default/pinned node=n9 (create)",
			}}
		}},
		{"service spec change is put", func(t *testing.T) tc {
			o := settled(t, set(nil, nil, []corev1.Service{svc}), n1)
			changed := service("web")
			changed.Spec.Ports[0].Port = 8080
			return tc{desired: set(nil, nil, []corev1.Service{changed}), observed: o, want: []string{
				"PutService default/web (changed in Git)",
			}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.setup(t)
			before := deepCopyObserved(c.observed)
			actions, _ := planApplied(t, c.desired, c.observed)
			// Names are hashes, so the planner's name order is not the order
			// a reader expects: compare as sets here; TestPlan_convergesInOneStep
			// checks the order.
			got := summarize(actions)
			slices.Sort(got)
			slices.Sort(c.want)
			if !slices.Equal(got, c.want) {
				t.Errorf("actions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			if !reflect.DeepEqual(before, c.observed) {
				t.Error("Plan modified its input")
			}
		})
	}
}

func deepCopyObserved(o Observed) Observed {
	var c Observed
	for _, n := range o.Nodes {
		c.Nodes = append(c.Nodes, *n.DeepCopy())
	}
	for _, p := range o.Pods {
		c.Pods = append(c.Pods, p.DeepCopy())
	}
	for _, d := range o.Deployments {
		c.Deployments = append(c.Deployments, *d.DeepCopy())
	}
	for _, s := range o.Services {
		c.Services = append(c.Services, *s.DeepCopy())
	}
	return c
}

func TestPlan_createdPodsCarryOwnershipAndScheduling(t *testing.T) {
	web := deployment("web", 1, "web:1", "100m")
	actions := Plan(set([]appsv1.Deployment{web}, []corev1.Pod{standalone("big", "b:1", "64", "")}, nil),
		Observed{Nodes: []corev1.Node{node("n1", "2")}}, t0).Actions
	hash := manifest.TemplateHash(&web.Spec.Template)

	big := actions[0].Pod
	cond := scheduledCondition(big)
	if big.Status.Phase != corev1.PodPending || cond == nil || cond.Status != corev1.ConditionFalse ||
		cond.Reason != corev1.PodReasonUnschedulable || !cond.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("unschedulable pod status = %+v", big.Status)
	}
	if big.Annotations[AnnotationSpecHash] == "" {
		t.Errorf("standalone pod has no %s annotation", AnnotationSpecHash)
	}

	pod := actions[1].Pod
	if got, want := pod.Labels, map[string]string{"app": "web", LabelPodTemplateHash: hash}; !reflect.DeepEqual(got, want) {
		t.Errorf("labels = %v, want %v", got, want)
	}
	if got := pod.Annotations[AnnotationOwner]; got != "Deployment/default/web" {
		t.Errorf("owner annotation = %q", got)
	}
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != "web" || len(pod.OwnerReferences) != 1 {
		t.Errorf("owner references = %+v", pod.OwnerReferences)
	}
	if !strings.HasPrefix(pod.Name, "web-"+hash+"-") || len(pod.Name) != len("web-"+hash+"-")+5 {
		t.Errorf("name = %q, want web-%s-<5 chars>", pod.Name, hash)
	}
	cond = scheduledCondition(pod)
	if pod.Spec.NodeName != "n1" || cond == nil || cond.Status != corev1.ConditionTrue {
		t.Errorf("bound pod: node %q, PodScheduled %+v", pod.Spec.NodeName, cond)
	}
	if d := actions[2].Deployment; d.Status.ObservedGeneration != 1 || d.Generation != 1 {
		t.Errorf("deployment generation %d, observed generation %d; want 1, 1", d.Generation, d.Status.ObservedGeneration)
	}
}

func TestPlan_recreatedPodGetsNewUID(t *testing.T) {
	tool := standalone("tool", "tool:1", "100m", "")
	o := settled(t, set(nil, []corev1.Pod{tool}, nil), node("n1", "2"))
	tool2 := standalone("tool", "tool:2", "100m", "")
	actions := Plan(set(nil, []corev1.Pod{tool2}, nil), o, t0.Add(time.Hour)).Actions
	if len(actions) != 2 || actions[1].Type != CreatePod {
		t.Fatalf("actions = %v", summarize(actions))
	}
	if old, fresh := o.Pods[0].UID, actions[1].Pod.UID; old == "" || fresh == "" || old == fresh {
		t.Errorf("UID of the replaced pod %q, of its replacement %q: want two different UIDs", old, fresh)
	}
}

func TestPlan_sameInputSameActions(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	desired, nodes := randomDesired(rng), randomNodes(rng)
	o := Observed{Nodes: nodes}
	first := Plan(desired, o, t0).Actions
	for range 3 {
		if again := Plan(desired, o, t0).Actions; !reflect.DeepEqual(first, again) {
			t.Fatalf("plans differ:\n%s\n---\n%s", strings.Join(summarize(first), "\n"), strings.Join(summarize(again), "\n"))
		}
	}
}

func TestPodName_ordinalRoundTripsAndNeverCollides(t *testing.T) {
	d := deployment("web", 1, "web:1", "")
	seen := map[string]int{}
	for ordinal := range 20000 {
		name := podName(&d, "abc123", ordinal)
		if prev, dup := seen[name]; dup {
			t.Fatalf("ordinals %d and %d both named %s", prev, ordinal, name)
		}
		seen[name] = ordinal
		if got, ok := ordinalOf(name, &d, "abc123"); !ok || got != ordinal {
			t.Fatalf("ordinalOf(%s) = %d, %v; want %d", name, got, ok, ordinal)
		}
	}
	// Cut where the name would end in a dot: "<235 a>.-<hash>" is not a subdomain.
	long := deployment(strings.Repeat("a", 235)+"."+strings.Repeat("b", 17), 1, "x", "")
	name := podName(&long, "0123456789", 7)
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		t.Errorf("podName of a long deployment = %q: %v", name, errs)
	}
	if got, ok := ordinalOf(name, &long, "0123456789"); !ok || got != 7 {
		t.Errorf("ordinalOf(long name) = %d, %v; want 7", got, ok)
	}
	for _, name := range []string{"web-abc123-aaaaa", "web-abc123-bcd", "api-abc123-bcdfg", "web-other-bcdfg"} {
		if _, ok := ordinalOf(name, &d, "abc123"); ok {
			t.Errorf("ordinalOf(%s) accepted a name podName does not make", name)
		}
	}
}

// ---- property ----

func randomNodes(rng *rand.Rand) []corev1.Node {
	var nodes []corev1.Node
	for i := range rng.IntN(5) {
		n := node(fmt.Sprintf("n%d", i), fmt.Sprintf("%dm", 500+rng.IntN(4)*500))
		if rng.IntN(3) == 0 {
			n.Labels = map[string]string{"disk": "ssd"}
		}
		n.Spec.Unschedulable = rng.IntN(8) == 0
		nodes = append(nodes, n)
	}
	return nodes
}

func randomDesired(rng *rand.Rand) *manifest.Set {
	var ds []appsv1.Deployment
	for i := range rng.IntN(5) {
		d := deployment(fmt.Sprintf("d%d", i), int32(rng.IntN(6)), fmt.Sprintf("img:%d", rng.IntN(3)), fmt.Sprintf("%dm", rng.IntN(8)*100))
		switch rng.IntN(6) {
		case 0:
			d = recreate(d)
		case 1, 2:
			values := []string{"0", "1", "2", "0%", "30%", "50%", "100%"}
			surge, unavailable := values[rng.IntN(len(values))], values[rng.IntN(len(values))]
			if (surge == "0" || surge == "0%") && (unavailable == "0" || unavailable == "0%") {
				unavailable = "1" // validation rejects both 0
			}
			d = rollingUpdate(d, surge, unavailable)
		}
		if rng.IntN(4) == 0 {
			d.Spec.MinReadySeconds = 10
		}
		if rng.IntN(4) == 0 {
			d.Spec.Template.Spec.NodeSelector = map[string]string{"disk": "ssd"}
		}
		if rng.IntN(3) == 0 {
			withMemory(&d.Spec.Template.Spec, fmt.Sprintf("%dGi", 1+rng.IntN(4)))
		}
		ds = append(ds, d)
	}
	var ps []corev1.Pod
	policies := []corev1.RestartPolicy{"", corev1.RestartPolicyNever, corev1.RestartPolicyOnFailure}
	for i := range rng.IntN(4) {
		p := standalone(fmt.Sprintf("p%d", i), fmt.Sprintf("img:%d", rng.IntN(2)), fmt.Sprintf("%dm", rng.IntN(10)*100), policies[rng.IntN(3)])
		if rng.IntN(3) == 0 {
			p.Labels["v"] = fmt.Sprint(rng.IntN(2))
		}
		if rng.IntN(3) == 0 {
			withMemory(&p.Spec, fmt.Sprintf("%dGi", 1+rng.IntN(6)))
		}
		ps = append(ps, p)
	}
	var ss []corev1.Service
	for i := range rng.IntN(3) {
		s := service(fmt.Sprintf("s%d", i))
		s.Spec.Ports[0].Port = int32(80 + rng.IntN(2))
		ss = append(ss, s)
	}
	return set(ds, ps, ss)
}

// disturb plays the world between two plans: the agent reports some pods
// running, failed or finished, some nodes are lost, cordoned or uncordoned,
// and a node may join.
func disturb(rng *rand.Rand, o Observed) Observed {
	for i, p := range o.Pods {
		if p.Spec.NodeName == "" {
			continue
		}
		switch rng.IntN(6) {
		case 0:
			replacePod(o.Pods, i).Status = corev1.PodStatus{Phase: corev1.PodFailed}
		case 1:
			replacePod(o.Pods, i).Status = corev1.PodStatus{Phase: corev1.PodSucceeded}
		case 2, 3:
			since := metav1.NewTime(t0.Add(-time.Duration(rng.IntN(20)) * time.Second))
			replacePod(o.Pods, i).Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: since}}}
		}
	}
	o.Nodes = slices.DeleteFunc(slices.Clone(o.Nodes), func(corev1.Node) bool { return rng.IntN(5) == 0 })
	for i := range o.Nodes {
		if rng.IntN(6) == 0 {
			o.Nodes[i].Spec.Unschedulable = !o.Nodes[i].Spec.Unschedulable
		}
	}
	if name := fmt.Sprintf("joined%d", rng.IntN(1000)); rng.IntN(3) == 0 &&
		!slices.ContainsFunc(o.Nodes, func(n corev1.Node) bool { return n.Name == name }) {
		o.Nodes = append(o.Nodes, node(name, fmt.Sprintf("%dm", 500+rng.IntN(4)*500)))
	}
	return o
}

// TestPlan_convergesInOneStep: from random clusters reached by earlier plans
// and random events, one plan brings the cluster to a state the next plan
// leaves alone (two for a Recreate Deployment, whose new pods wait for the
// old ones to be gone), keeping each rollout's budgets; and once the agent
// reports every bound pod ready, further plans finish every rollout whose
// pods can be placed.
func TestPlan_convergesInOneStep(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 11))
		o := Observed{Nodes: randomNodes(rng)}
		for range 1 + rng.IntN(3) {
			o = apply(t, o, Plan(randomDesired(rng), o, t0).Actions)
			o = disturb(rng, o)
		}
		desired := randomDesired(rng)
		actions := Plan(desired, o, t0).Actions
		checkOrder(t, seed, actions)
		next := apply(t, o, actions)
		checkInvariants(t, seed, desired, o, next, actions)
		if again := Plan(desired, next, t0).Actions; len(again) > 0 {
			if !onlyRecreateCreates(desired, again) {
				t.Fatalf("seed %d: second plan not empty:\n%s", seed, strings.Join(summarize(again), "\n"))
			}
			next = apply(t, next, again)
			if third := Plan(desired, next, t0).Actions; len(third) > 0 {
				t.Fatalf("seed %d: third plan not empty:\n%s", seed, strings.Join(summarize(third), "\n"))
			}
		}
		checkRolloutsFinish(t, seed, desired, next)
	}
}

// onlyRecreateCreates reports whether actions only start the pods of
// Recreate Deployments (and write what follows from that).
func onlyRecreateCreates(desired *manifest.Set, actions []Action) bool {
	recreates := map[string]bool{}
	for _, d := range desired.Deployments {
		recreates[d.Name] = d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType
	}
	created := false
	for _, a := range actions {
		switch a.Type {
		case CreatePod:
			owner := metav1.GetControllerOf(a.Pod)
			if owner == nil || !recreates[owner.Name] {
				return false
			}
			created = true
		case PutDeployment, UpdatePod: // status, and scheduling explained anew
		default:
			return false
		}
	}
	return created
}

// checkRolloutsFinish plays the agent reporting every bound pod ready long
// ago and plans until nothing is left to do: every Deployment whose pods are
// all placed then runs exactly its replicas on its current template, and its
// status says so.
func checkRolloutsFinish(t *testing.T, seed uint64, desired *manifest.Set, o Observed) {
	t.Helper()
	for round := 0; ; round++ {
		for i, p := range o.Pods {
			if p.Spec.NodeName != "" && !kube.PodFinished(p) && !kube.PodReady(p) {
				replacePod(o.Pods, i).Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
					{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0.Add(-time.Hour))}}}
			}
		}
		actions := Plan(desired, o, t0).Actions
		if len(actions) == 0 {
			break
		}
		if round > 40 {
			t.Fatalf("seed %d: rollouts still acting after 40 rounds:\n%s", seed, strings.Join(summarize(actions), "\n"))
		}
		o = apply(t, o, actions)
	}
	unbound := map[string]bool{}
	running, current := map[string]int32{}, map[string]int32{}
	want := map[string]appsv1.Deployment{}
	for _, d := range desired.Deployments {
		want[d.Name] = d
	}
	for _, p := range o.Pods {
		owner := metav1.GetControllerOf(p)
		if owner == nil {
			continue
		}
		running[owner.Name]++
		if p.Spec.NodeName == "" {
			unbound[owner.Name] = true
		}
		if d := want[owner.Name]; p.Labels[LabelPodTemplateHash] == manifest.TemplateHash(&d.Spec.Template) {
			current[owner.Name]++
		}
	}
	for _, d := range o.Deployments {
		if unbound[d.Name] {
			continue // a rollout waits for pods that cannot be placed
		}
		r := *want[d.Name].Spec.Replicas
		if running[d.Name] != r || current[d.Name] != r {
			t.Fatalf("seed %d: deployment %s wants %d, runs %d, %d of them current", seed, d.Name, r, running[d.Name], current[d.Name])
		}
		if complete, failed, msg := RolloutStatus(&d); !complete || failed {
			t.Fatalf("seed %d: deployment %s: RolloutStatus %v, %v, %s", seed, d.Name, complete, failed, msg)
		}
	}
}

// checkOrder pins the order of actions: pod deletions, pod creations and
// updates, deployment puts, deployment deletions, service puts, service
// deletions, each group sorted by namespace/name.
// beforeOld counts the pods of d's other templates that ran before the plan
// (not finished, not on a lost node).
func beforeOld(before Observed, d appsv1.Deployment) int {
	n := 0
	hash := manifest.TemplateHash(&d.Spec.Template)
	live := map[string]bool{}
	for _, nd := range before.Nodes {
		live[nd.Name] = true
	}
	for _, p := range before.Pods {
		lost := p.Spec.NodeName != "" && !live[p.Spec.NodeName]
		if owner := metav1.GetControllerOf(p); owner != nil && owner.Name == d.Name && !kube.PodFinished(p) && !lost && p.Labels[LabelPodTemplateHash] != hash {
			n++
		}
	}
	return n
}

func checkOrder(t *testing.T, seed uint64, actions []Action) {
	t.Helper()
	group := map[ActionType]int{DeletePod: 0, CreatePod: 1, UpdatePod: 1, PutDeployment: 2, DeleteDeployment: 3, PutService: 4, DeleteService: 5}
	objectKey := func(a Action) string {
		switch {
		case a.Pod != nil:
			return key(a.Pod.Namespace, a.Pod.Name)
		case a.Deployment != nil:
			return key(a.Deployment.Namespace, a.Deployment.Name)
		case a.Service != nil:
			return key(a.Service.Namespace, a.Service.Name)
		}
		return key(a.Namespace, a.Name)
	}
	sorted := slices.IsSortedFunc(actions, func(a, b Action) int {
		return cmp.Or(cmp.Compare(group[a.Type], group[b.Type]), cmp.Compare(objectKey(a), objectKey(b)))
	})
	if !sorted {
		t.Fatalf("seed %d: actions out of order:\n%s", seed, strings.Join(summarize(actions), "\n"))
	}
}

func checkInvariants(t *testing.T, seed uint64, desired *manifest.Set, before, o Observed, actions []Action) {
	t.Helper()
	live := map[string]corev1.Node{}
	for _, n := range o.Nodes {
		live[n.Name] = n
	}
	// No live node is over-committed by pods the plan placed: every pod bound
	// by this plan, plus the pods already there, fits.
	wasBound := map[string]string{}
	for _, p := range before.Pods {
		wasBound[key(p.Namespace, p.Name)] = p.Spec.NodeName
	}
	used := map[string]scheduler.Resources{}
	placed := map[string]bool{}
	for _, p := range o.Pods {
		if p.Spec.NodeName == "" || kube.PodFinished(p) {
			continue
		}
		r := scheduler.RequestsOf(&p.Spec)
		u := used[p.Spec.NodeName]
		used[p.Spec.NodeName] = scheduler.Resources{MilliCPU: u.MilliCPU + r.MilliCPU, Memory: u.Memory + r.Memory}
		if wasBound[key(p.Namespace, p.Name)] != p.Spec.NodeName {
			placed[p.Spec.NodeName] = true
			if _, ok := live[p.Spec.NodeName]; !ok {
				t.Fatalf("seed %d: pod %s placed on dead node %s", seed, p.Name, p.Spec.NodeName)
			}
		}
	}
	for name := range placed {
		n := live[name]
		if used[name].MilliCPU > n.Status.Allocatable.Cpu().MilliValue() {
			t.Fatalf("seed %d: node %s over-committed: %dm of %s", seed, name, used[name].MilliCPU, n.Status.Allocatable.Cpu())
		}
	}
	// Every unbound pod says why.
	for _, p := range o.Pods {
		if c := scheduledCondition(p); p.Spec.NodeName == "" && (c == nil || c.Status != corev1.ConditionFalse || c.Message == "") {
			t.Fatalf("seed %d: unbound pod %s without an Unschedulable condition", seed, p.Name)
		}
	}
	// Every Deployment keeps its rollout's promises, and its stored status
	// counts its pods; nothing else is owned by a Deployment.
	want := map[string]appsv1.Deployment{}
	for _, d := range desired.Deployments {
		want[d.Name] = d
	}
	type counts struct{ total, current, old, oldUnavailable, avail int }
	pods := map[string]*counts{}
	for _, d := range desired.Deployments {
		pods[d.Name] = &counts{}
	}
	for _, p := range o.Pods {
		owner := metav1.GetControllerOf(p)
		if owner == nil {
			continue
		}
		d, ok := want[owner.Name]
		if !ok {
			t.Fatalf("seed %d: pod %s owned by pruned deployment %s", seed, p.Name, owner.Name)
		}
		if kube.PodFinished(p) || p.Spec.NodeName != "" && live[p.Spec.NodeName].Name == "" {
			t.Fatalf("seed %d: pod %s (phase %q, node %q) should have been replaced", seed, p.Name, p.Status.Phase, p.Spec.NodeName)
		}
		c := pods[owner.Name]
		c.total++
		avail := available(p, time.Duration(d.Spec.MinReadySeconds)*time.Second, t0)
		if avail {
			c.avail++
		}
		if p.Labels[LabelPodTemplateHash] == manifest.TemplateHash(&d.Spec.Template) {
			c.current++
		} else {
			c.old++
			if !avail {
				c.oldUnavailable++
			}
		}
	}
	created, deletedAvailable := map[string]bool{}, map[string]bool{}
	beforePods := map[string]*corev1.Pod{}
	for _, p := range before.Pods {
		beforePods[key(p.Namespace, p.Name)] = p
	}
	for _, a := range actions {
		switch a.Type {
		case CreatePod:
			if owner := metav1.GetControllerOf(a.Pod); owner != nil {
				created[owner.Name] = true
			}
		case DeletePod:
			p := beforePods[key(a.Namespace, a.Name)]
			if owner := metav1.GetControllerOf(p); owner != nil && want[owner.Name].Name != "" &&
				available(p, time.Duration(want[owner.Name].Spec.MinReadySeconds)*time.Second, t0) && live[p.Spec.NodeName].Name != "" {
				deletedAvailable[owner.Name] = true
			}
		}
	}
	if len(o.Deployments) != len(desired.Deployments) {
		t.Fatalf("seed %d: %d deployments stored, %d desired", seed, len(o.Deployments), len(desired.Deployments))
	}
	for _, d := range o.Deployments {
		dw := want[d.Name]
		r := int(*dw.Spec.Replicas)
		c := pods[d.Name]
		surge, unavailable := fenceposts(dw.Spec.Strategy, r)
		rolling := dw.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType
		switch {
		case c.current > r:
			t.Fatalf("seed %d: deployment %s runs %d pods of its template, wants %d", seed, d.Name, c.current, r)
		case int(d.Status.Replicas) != c.total || int(d.Status.UpdatedReplicas) != c.current || int(d.Status.AvailableReplicas) != c.avail:
			t.Fatalf("seed %d: deployment %s: status %+v, pods %+v", seed, d.Name, d.Status, *c)
		case c.old == 0 && c.current != r && (rolling || beforeOld(before, dw) == 0):
			t.Fatalf("seed %d: deployment %s: no old pods left but %d of %d replicas", seed, d.Name, c.current, r)
		case !rolling && c.old > 0:
			t.Fatalf("seed %d: Recreate deployment %s kept %d old pods", seed, d.Name, c.old)
		case !rolling && created[d.Name] && beforeOld(before, dw) > 0:
			t.Fatalf("seed %d: Recreate deployment %s created pods while old ones ran", seed, d.Name)
		case rolling && c.oldUnavailable > 0:
			t.Fatalf("seed %d: deployment %s kept %d old pods that do not serve", seed, d.Name, c.oldUnavailable)
		case rolling && created[d.Name] && c.total > r+surge:
			t.Fatalf("seed %d: deployment %s: created pods up to %d, more than %d + %d surge", seed, d.Name, c.total, r, surge)
		case rolling && deletedAvailable[d.Name] && c.avail < r-unavailable:
			t.Fatalf("seed %d: deployment %s: removed a serving pod down to %d available, fewer than %d - %d", seed, d.Name, c.avail, r, unavailable)
		}
	}
	// Standalone pods and services are exactly those in Git.
	var standalonePods, wantPods []string
	for _, p := range o.Pods {
		if metav1.GetControllerOf(p) == nil {
			standalonePods = append(standalonePods, p.Name)
		}
	}
	for _, p := range desired.Pods {
		wantPods = append(wantPods, p.Name)
	}
	if !slices.Equal(standalonePods, wantPods) {
		t.Fatalf("seed %d: standalone pods %v, want %v", seed, standalonePods, wantPods)
	}
	if len(o.Services) != len(desired.Services) {
		t.Fatalf("seed %d: %d services stored, %d desired", seed, len(o.Services), len(desired.Services))
	}
}

// ---- benchmark ----

// BenchmarkPlan10kObjects plans 1,000 deployments of 10 running, ready replicas
// each (10,000 pods) on 100 nodes, with 1,000 services: the steady state, where
// the plan is empty.
func BenchmarkPlan10kObjects(b *testing.B) {
	var ds []appsv1.Deployment
	var ss []corev1.Service
	for i := range 1000 {
		ds = append(ds, deployment(fmt.Sprintf("app-%04d", i), 10, fmt.Sprintf("registry.example/app-%04d:1", i), "10m"))
		ss = append(ss, service(fmt.Sprintf("app-%04d", i)))
	}
	desired := set(ds, nil, ss)
	var nodes []corev1.Node
	for i := range 100 {
		nodes = append(nodes, node(fmt.Sprintf("node-%03d", i), "64"))
	}
	o := settled(b, desired, nodes...)
	if len(o.Pods) != 10000 {
		b.Fatalf("%d pods, want 10000", len(o.Pods))
	}
	// apply stored every object as JSON, as the store does: the plan compares
	// what a read gives back (quantities, empty collections), not its own objects.
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if actions := Plan(desired, o, t0).Actions; len(actions) != 0 {
			b.Fatalf("%d actions, want none", len(actions))
		}
	}
}

// TestPlan_configChangeRestartsPodsAndRollsDeployments: the configuration
// hash manifest stamps on templates and pods decides like the spec does.
func TestPlan_configChangeRestartsPodsAndRollsDeployments(t *testing.T) {
	withHash := func(h string) (appsv1.Deployment, corev1.Pod) {
		d := deployment("web", 2, "web:1", "100m")
		d.Spec.Template.Annotations = map[string]string{manifest.AnnotationConfigHash: h}
		p := standalone("tool", "tool:1", "100m", corev1.RestartPolicyAlways)
		p.Annotations = map[string]string{manifest.AnnotationConfigHash: h}
		return d, p
	}
	d1, p1 := withHash("aaaa")
	o := settled(t, set([]appsv1.Deployment{d1}, []corev1.Pod{p1}, nil), node("n1", "4"))
	if again := Plan(set([]appsv1.Deployment{d1}, []corev1.Pod{p1}, nil), o, t0.Add(time.Minute)).Actions; len(again) != 0 {
		t.Fatalf("same configuration, actions %v", summarize(again))
	}
	d2, p2 := withHash("bbbb")
	actions := Plan(set([]appsv1.Deployment{d2}, []corev1.Pod{p2}, nil), o, t0.Add(time.Minute)).Actions
	var recreated, rolling bool
	for _, a := range actions {
		if a.Type == DeletePod && a.Name == "tool" {
			recreated = true
		}
		if a.Type == CreatePod && a.Pod.Labels[LabelPodTemplateHash] == manifest.TemplateHash(&d2.Spec.Template) {
			rolling = true
		}
	}
	if !recreated || !rolling {
		t.Errorf("a configuration change must restart the pod (%v) and roll the Deployment (%v): %v", recreated, rolling, summarize(actions))
	}
}
