package preview

import (
	"cmp"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/canary"
	"bosun/kube"
	"bosun/manifest"
	"bosun/reconciler"
)

// MaxSteps bounds the simulation: a rollout that still acts after this many
// plans is reported as it stands then.
const MaxSteps = 500

// simulation drives reconciler.Plan over a copy of the observed cluster, as
// the leader and the node agents would: each step plans, applies the actions
// to the copy, and every pod bound and not yet ready starts and becomes
// Ready; then the clock moves on by tick, past every Deployment's
// minReadySeconds, so those pods are available to the next plan. Pods a plan
// deletes are gone at once (their nodes stop them instantly).
type simulation struct {
	desired *manifest.Set
	now     time.Time
	tick    time.Duration
	o       reconciler.Observed
	nodes   map[string]bool // registered nodes, for counting where pods start

	steps int
	first reconciler.Result // the first plan
	last  reconciler.Result // the last plan (no actions unless MaxSteps ran out)

	rollouts map[string]*rolloutTrack // by Deployment "<ns>/<name>"
	started  map[incarnation]string   // pods that went from unbound to bound -> node
	stuck    []stuckPod               // the unschedulable pods of the first step that left any
	stuckWhy string                   // the verdict's words on them (explainStuck)
}

// incarnation identifies one pod: a pod recreated under its name is
// another one.
type incarnation struct{ key, uid string }

// rolloutTrack follows one Deployment through the simulation.
type rolloutTrack struct {
	hash     string // the template hash of next
	replaced int    // pods of other templates deleted
	peak     int    // the most unfinished pods at once
	steps    int    // plans that created or deleted one of its pods
}

// stuckPod is a pod the planner left unschedulable, with the scheduler's
// message.
type stuckPod struct {
	pod        *corev1.Pod
	deployment string // the Deployment that owns it, "" if none
	why        string
}

func simulate(next *manifest.Set, observed reconciler.Observed, now time.Time) *simulation {
	s := &simulation{desired: next, now: now, tick: time.Second, o: observed,
		nodes: make(map[string]bool, len(observed.Nodes)), rollouts: map[string]*rolloutTrack{}, started: map[incarnation]string{}}
	for i := range observed.Nodes {
		s.nodes[observed.Nodes[i].Name] = true
	}
	for i := range next.Deployments {
		d := &next.Deployments[i]
		s.tick = max(s.tick, time.Duration(d.Spec.MinReadySeconds)*time.Second+time.Second)
		s.rollouts[d.Namespace+"/"+d.Name] = &rolloutTrack{hash: manifest.TemplateHash(&d.Spec.Template)}
	}
	// s.o starts as observed: its slices are replaced, never written
	// through, and its pods (shared with the caller, such as the store
	// cache's) are replaced by copies, never modified: observed stays as
	// it was.
	s.countPods()
	for {
		res := reconciler.Plan(next, s.o, s.now)
		if s.steps == 0 {
			s.first = res
		}
		s.last = res
		if len(res.Actions) == 0 || s.steps == MaxSteps {
			break
		}
		s.steps++
		s.apply(res.Actions)
		s.countPods()
		if s.stuck == nil {
			s.findStuck()
		}
		s.o.Terminating = nil // their nodes finished stopping them
		s.now = s.now.Add(s.tick)
	}
	if s.steps == 0 {
		s.findStuck() // nothing changes: the pods that wait go on waiting
	}
	return s
}

// apply writes one plan's actions into the simulated cluster.
func (s *simulation) apply(actions []reconciler.Action) {
	gone := map[string]bool{}
	put := map[string]*corev1.Pod{}
	var created []string
	touched := map[string]bool{} // Deployments whose pods the step starts or stops
	o := &s.o
	var deps edits[appsv1.Deployment, *appsv1.Deployment]
	var svcs edits[corev1.Service, *corev1.Service]
	var cms edits[corev1.ConfigMap, *corev1.ConfigMap]
	var secrets edits[corev1.Secret, *corev1.Secret]
	var nss edits[corev1.Namespace, *corev1.Namespace]
	var jobs edits[batchv1.Job, *batchv1.Job]
	var crons edits[batchv1.CronJob, *batchv1.CronJob]
	var dss edits[appsv1.DaemonSet, *appsv1.DaemonSet]
	var stss edits[appsv1.StatefulSet, *appsv1.StatefulSet]
	var claims edits[corev1.PersistentVolumeClaim, *corev1.PersistentVolumeClaim]
	var ings edits[networkingv1.Ingress, *networkingv1.Ingress]
	var classes edits[networkingv1.IngressClass, *networkingv1.IngressClass]
	index := make(map[string]int, len(o.Pods))
	for i := range o.Pods {
		index[o.Pods[i].Namespace+"/"+o.Pods[i].Name] = i
	}
	for _, a := range actions {
		switch a.Type {
		case reconciler.DeletePod:
			k := a.Namespace + "/" + a.Name
			gone[k] = true
			delete(put, k)
			if i, ok := index[k]; ok {
				p := o.Pods[i]
				if kind, name := kube.Controller(p); kind == "Deployment" {
					dk := p.Namespace + "/" + name
					touched[dk] = true
					if r := s.rollouts[dk]; r != nil && p.Labels[reconciler.LabelPodTemplateHash] != r.hash {
						r.replaced++
					}
				}
			}
		case reconciler.CreatePod, reconciler.UpdatePod:
			k := a.Pod.Namespace + "/" + a.Pod.Name
			p := a.Pod.DeepCopy() // run changes it: never the plan's or an observed pod
			if a.Type == reconciler.CreatePod {
				p.CreationTimestamp = metav1.NewTime(s.now)
				created = append(created, k)
				if kind, name := kube.Controller(p); kind == "Deployment" {
					touched[p.Namespace+"/"+name] = true
				}
			}
			if p.Spec.NodeName != "" && !kube.PodReady(p) && !kube.PodFinished(p) {
				id := incarnation{k, string(p.UID)}
				if _, ok := s.started[id]; !ok && s.nodes[p.Spec.NodeName] {
					s.started[id] = p.Spec.NodeName
				}
				s.run(p)
			}
			put[k] = p
		case reconciler.PutDeployment:
			deps.put(a.Deployment)
		case reconciler.DeleteDeployment:
			deps.del(a.Namespace, a.Name)
		case reconciler.PutService:
			svcs.put(a.Service)
		case reconciler.DeleteService:
			svcs.del(a.Namespace, a.Name)
		case reconciler.PutConfigMap:
			cms.put(a.ConfigMap)
		case reconciler.DeleteConfigMap:
			cms.del(a.Namespace, a.Name)
		case reconciler.PutSecret:
			secrets.put(a.Secret)
		case reconciler.DeleteSecret:
			secrets.del(a.Namespace, a.Name)
		case reconciler.PutNamespace:
			nss.put(a.NamespaceObject)
		case reconciler.DeleteNamespace:
			nss.del("", a.Name)
		case reconciler.PutJob:
			jobs.put(a.Job)
		case reconciler.DeleteJob:
			jobs.del(a.Namespace, a.Name)
		case reconciler.PutCronJob:
			crons.put(a.CronJob)
			if a.Job != nil {
				jobs.put(a.Job)
			}
		case reconciler.DeleteCronJob:
			crons.del(a.Namespace, a.Name)
		case reconciler.PutCanary:
			o.Canaries = putCanary(o.Canaries, *a.Canary, false)
		case reconciler.DeleteCanary:
			o.Canaries = putCanary(o.Canaries, canary.State{Namespace: a.Namespace, Name: a.Name}, true)
		case reconciler.PutDaemonSet:
			dss.put(a.DaemonSet)
		case reconciler.DeleteDaemonSet:
			dss.del(a.Namespace, a.Name)
		case reconciler.PutStatefulSet:
			stss.put(a.StatefulSet)
		case reconciler.DeleteStatefulSet:
			stss.del(a.Namespace, a.Name)
		case reconciler.PutClaim:
			claims.put(a.Claim)
		case reconciler.DeleteClaim:
			claims.del(a.Namespace, a.Name)
		case reconciler.PutIngress:
			ings.put(a.Ingress)
		case reconciler.DeleteIngress:
			ings.del(a.Namespace, a.Name)
		case reconciler.PutIngressClass:
			classes.put(a.IngressClass)
		case reconciler.DeleteIngressClass:
			classes.del("", a.Name)
		}
	}
	o.DaemonSets, o.StatefulSets, o.Claims = dss.apply(o.DaemonSets), stss.apply(o.StatefulSets), claims.apply(o.Claims)
	o.Ingresses, o.IngressClasses = ings.apply(o.Ingresses), classes.apply(o.IngressClasses)
	o.Deployments, o.Services, o.ConfigMaps, o.Secrets = deps.apply(o.Deployments), svcs.apply(o.Services), cms.apply(o.ConfigMaps), secrets.apply(o.Secrets)
	o.Namespaces, o.Jobs, o.CronJobs = nss.apply(o.Namespaces), jobs.apply(o.Jobs), crons.apply(o.CronJobs)
	for dk := range touched {
		if r := s.rollouts[dk]; r != nil {
			r.steps++
		}
	}
	pods := make([]*corev1.Pod, 0, len(o.Pods)+len(created))
	for _, old := range o.Pods {
		k := old.Namespace + "/" + old.Name
		switch p := put[k]; {
		case p != nil:
			pods = append(pods, p)
			delete(put, k)
		case !gone[k]:
			pods = append(pods, old)
		}
	}
	for _, k := range created {
		if p := put[k]; p != nil {
			pods = append(pods, p)
		}
	}
	o.Pods = pods
}

// putCanary stores (or, with del, deletes) a canary's state in list, a
// new slice: the observed one is shared.
func putCanary(list []canary.State, c canary.State, del bool) []canary.State {
	out := make([]canary.State, 0, len(list)+1)
	for _, x := range list {
		if x.Namespace != c.Namespace || x.Name != c.Name {
			out = append(out, x)
		}
	}
	if !del {
		out = append(out, c)
	}
	return out
}

// run starts a bound pod: Running, every container ready, Ready since now.
func (s *simulation) run(p *corev1.Pod) {
	p.Status.Phase = corev1.PodRunning
	at := metav1.NewTime(s.now)
	for _, t := range []corev1.PodConditionType{corev1.ContainersReady, corev1.PodReady} {
		found := false
		for i := range p.Status.Conditions {
			if c := &p.Status.Conditions[i]; c.Type == t {
				c.Status, c.LastTransitionTime, found = corev1.ConditionTrue, at, true
			}
		}
		if !found {
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: at})
		}
	}
}

// countPods records each Deployment's unfinished pods, for its peak.
func (s *simulation) countPods() {
	n := map[string]int{}
	for _, p := range s.o.Pods {
		if kind, name := kube.Controller(p); kind == "Deployment" && !kube.PodFinished(p) {
			n[p.Namespace+"/"+name]++
		}
	}
	for dk, r := range s.rollouts {
		r.peak = max(r.peak, n[dk])
	}
}

// findStuck collects the pods the planner left unschedulable.
func (s *simulation) findStuck() {
	for _, p := range s.o.Pods {
		if p.Spec.NodeName != "" || kube.PodFinished(p) {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				sp := stuckPod{pod: p, why: c.Message}
				if kind, name := kube.Controller(p); kind == "Deployment" {
					sp.deployment = name
				}
				s.stuck = append(s.stuck, sp)
			}
		}
	}
	slices.SortFunc(s.stuck, func(a, b stuckPod) int {
		return cmp.Or(cmp.Compare(a.pod.Namespace, b.pod.Namespace), cmp.Compare(a.pod.Name, b.pod.Name))
	})
	if len(s.stuck) > 0 {
		s.stuckWhy = s.explainStuck()
	}
}

// oldPodsOf counts the pods of a Deployment on another template than next's,
// in the simulated cluster as it is.
func (s *simulation) oldPodsOf(namespace, name string) int {
	r := s.rollouts[namespace+"/"+name]
	n := 0
	for _, p := range s.o.Pods {
		if kind, owner := kube.Controller(p); kind == "Deployment" && owner == name && p.Namespace == namespace &&
			!kube.PodFinished(p) && r != nil && p.Labels[reconciler.LabelPodTemplateHash] != r.hash {
			n++
		}
	}
	return n
}

// edits collects one plan's puts and deletes of one kind of object, to
// apply them in one pass over the list.
type edits[T any, PT interface {
	*T
	metav1.Object
	DeepCopy() *T
}] struct {
	puts  map[string]PT
	order []string
	gone  map[string]bool
}

func (e *edits[T, PT]) put(obj PT) {
	if e.puts == nil {
		e.puts, e.gone = map[string]PT{}, map[string]bool{}
	}
	k := obj.GetNamespace() + "/" + obj.GetName()
	if _, ok := e.puts[k]; !ok {
		e.order = append(e.order, k)
	}
	e.puts[k] = PT(obj.DeepCopy())
	delete(e.gone, k)
}

func (e *edits[T, PT]) del(namespace, name string) {
	if e.puts == nil {
		e.puts, e.gone = map[string]PT{}, map[string]bool{}
	}
	k := namespace + "/" + name
	delete(e.puts, k)
	e.gone[k] = true
}

// apply returns list with the edits made, in a new slice (the caller's
// observed state is never written through); list itself when there are
// none. Objects keep their place; new ones come last.
func (e *edits[T, PT]) apply(list []T) []T {
	if e.puts == nil {
		return list
	}
	out := make([]T, 0, len(list)+len(e.puts))
	for i := range list {
		o := PT(&list[i])
		k := o.GetNamespace() + "/" + o.GetName()
		switch p, ok := e.puts[k]; {
		case ok:
			out = append(out, *p)
			delete(e.puts, k)
		case !e.gone[k]:
			out = append(out, list[i])
		}
	}
	for _, k := range e.order {
		if p, ok := e.puts[k]; ok {
			out = append(out, *p)
		}
	}
	return out
}
