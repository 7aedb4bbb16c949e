package reconciler

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"math/big"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"bosun/canary"
	"bosun/kube"
	"bosun/manifest"
	"bosun/scheduler"
)

// Labels and annotations bosun puts on the pods it creates.
const (
	// LabelPodTemplateHash carries the hash of the Deployment template a pod was
	// built from, as in Kubernetes.
	LabelPodTemplateHash = "pod-template-hash"
	// AnnotationOwner names a Deployment pod's owner: "Deployment/<ns>/<name>".
	AnnotationOwner = "bosun.dev/owner"
	// AnnotationSpecHash carries the hash of a standalone pod's spec as written in
	// Git; a pod spec is immutable, so a different hash means delete and create.
	AnnotationSpecHash = "bosun.dev/spec-hash"
)

// Observed is the cluster as last read from the store.
type Observed struct {
	// Nodes are the registered, live nodes (Status.Allocatable holds cpu and
	// memory; Spec.Unschedulable cordons).
	Nodes []corev1.Node
	// Pods are the pods in the store: Spec.NodeName is set once bound; Status is
	// as last reported by the node agent, or as the planner wrote it (Pending,
	// PodScheduled) if no agent has reported yet. They are shared (the
	// store cache's pods): Plan never modifies them, and copies a pod
	// before changing it.
	Pods []*corev1.Pod
	// Deployments are as last written, with their status.
	Deployments []appsv1.Deployment
	Services    []corev1.Service
	ConfigMaps  []corev1.ConfigMap
	Secrets     []corev1.Secret
	Namespaces  []corev1.Namespace
	// Jobs and CronJobs are as last written, with their status (batch.go).
	Jobs     []batchv1.Job
	CronJobs []batchv1.CronJob
	// DaemonSets, StatefulSets, Claims (PersistentVolumeClaims, from Git
	// and from StatefulSets' volumeClaimTemplates), Ingresses and
	// IngressClasses are as last written, with their status.
	DaemonSets     []appsv1.DaemonSet
	StatefulSets   []appsv1.StatefulSet
	Claims         []corev1.PersistentVolumeClaim
	Ingresses      []networkingv1.Ingress
	IngressClasses []networkingv1.IngressClass
	// Volumes are the nodes' records of their local volumes (claim.go).
	Volumes []Volume
	// Terminating are pods already deleted that their node is still
	// stopping; a Recreate rollout waits for its old ones to be gone.
	Terminating []TerminatingPod
	// NodeGraceExpires is when the grace of the first absent node kept in
	// Nodes ends (NodeGrace.Observe), zero if none is: Plan wakes then, when
	// that node's pods count as lost.
	NodeGraceExpires time.Time
	// Drains are the nodes being drained (drain.go), by name; each is
	// also unschedulable in Nodes.
	Drains map[string]Drain
	// Canaries are the Deployments' canaries as stored. CanaryBranches is
	// what each canary branch holds for its Deployment ("<ns>/<name>"), as
	// the leader last fetched it (absent: not fetched yet), Measurements
	// the latest evaluation of each canary's query.
	Canaries       []canary.State
	CanaryBranches map[string]canary.Candidate
	Measurements   map[string]canary.Measurement
}

// TerminatingPod is a deleted pod its node is still tearing down.
type TerminatingPod struct {
	Namespace, Name string
	// Node runs it; Owner is its controller, "<Kind>/<ns>/<name>"
	// (kube.OwnerOf, as its node reported it), "" for none.
	Node, Owner string
}

// ActionType says what an Action does.
type ActionType string

// The actions Plan emits.
const (
	CreatePod        ActionType = "CreatePod"
	DeletePod        ActionType = "DeletePod"
	UpdatePod        ActionType = "UpdatePod"
	PutDeployment    ActionType = "PutDeployment"
	DeleteDeployment ActionType = "DeleteDeployment"
	PutService       ActionType = "PutService"
	DeleteService    ActionType = "DeleteService"
	PutConfigMap     ActionType = "PutConfigMap"
	DeleteConfigMap  ActionType = "DeleteConfigMap"
	PutSecret        ActionType = "PutSecret"
	DeleteSecret     ActionType = "DeleteSecret"
	PutNamespace     ActionType = "PutNamespace"
	DeleteNamespace  ActionType = "DeleteNamespace"
)

// Action is one write Plan wants made. Apply actions in the order given: a pod
// that must be recreated under the same name comes as DeletePod, then CreatePod.
type Action struct {
	Type ActionType
	// Pod is the whole object to store, for CreatePod and UpdatePod.
	Pod *corev1.Pod
	// Deployment is the whole object to store (spec from Git, computed status),
	// for PutDeployment.
	Deployment *appsv1.Deployment
	// Service is the whole object to store, for PutService.
	Service *corev1.Service
	// ConfigMap, Secret and NamespaceObject are the whole object to store,
	// for PutConfigMap, PutSecret and PutNamespace. A Secret's data must
	// never be logged.
	ConfigMap       *corev1.ConfigMap
	Secret          *corev1.Secret
	NamespaceObject *corev1.Namespace
	// Job is the whole object to store, for PutJob; with PutCronJob, the
	// run it starts, stored in the same transaction as the CronJob's status.
	Job *batchv1.Job
	// CronJob is the whole object to store, for PutCronJob.
	CronJob *batchv1.CronJob
	// DaemonSet, StatefulSet, Claim, Ingress and IngressClass are the whole
	// object to store, for PutDaemonSet, PutStatefulSet, PutClaim,
	// PutIngress and PutIngressClass.
	DaemonSet    *appsv1.DaemonSet
	StatefulSet  *appsv1.StatefulSet
	Claim        *corev1.PersistentVolumeClaim
	Ingress      *networkingv1.Ingress
	IngressClass *networkingv1.IngressClass
	// Canary is the state to store, for PutCanary.
	Canary *canary.State
	// Namespace and Name identify the object of a Delete action (for
	// DeleteNamespace, both are the namespace's name).
	Namespace, Name string
	// Reason says why, for logs: "scale up 3 -> 5", "pruned: removed from Git".
	Reason string
}

// Plan compares the desired state from Git with the observed cluster and
// returns what it decides (Result): the actions that make the cluster match,
// in a deterministic order: namespace, configmap and secret puts (pods that
// use them must find them), claim puts (a pod's claim is stored before it),
// job and cronjob puts (pods need their Job), pod deletions, pod creations
// and updates, deployment, daemonset and statefulset puts and deletions,
// service puts and deletions, ingress puts, then namespace, configmap,
// secret, job, cronjob, claim and ingress deletions; each group sorted by
// namespace and name. Applying the actions and planning again over the result yields no
// actions. With them come a summary of each Deployment's rollout, the next
// time planning again decides something by itself (Wake), and the events of
// Jobs and CronJobs. now stamps the conditions the planner sets; Plan reads
// no clock.
func Plan(desired *manifest.Set, observed Observed, now time.Time) Result {
	p := newPlanner(observed, now)
	p.configObjects(desired.Namespaces, desired.ConfigMaps, desired.Secrets)
	p.claims(desired.PersistentVolumeClaims)
	for i := range desired.Deployments {
		p.deployment(&desired.Deployments[i])
	}
	p.daemonSets(desired.DaemonSets)
	p.statefulSets(desired.StatefulSets)
	p.holdClaimDeletes() // every DeleteClaim is in p.last by now (claim.go)
	p.standalonePods(desired.Pods)
	p.evictUnmanaged()
	p.batch(desired.Jobs, desired.CronJobs)
	p.pruneDeploymentPods(desired.Deployments)
	p.schedule()
	rollouts := make([]RolloutSummary, 0, len(p.deploys))
	for _, ds := range p.deploys {
		rollouts = append(rollouts, p.deploymentStatus(ds))
	}
	p.pruneDeployments(desired.Deployments)
	p.pruneCanaries()
	p.services(desired.Services)
	p.ingresses(desired.Ingresses, desired.IngressClasses)
	if t, ok := NextEviction(observed, now); ok {
		p.wakeAt(t)
	}
	p.wakeAt(observed.NodeGraceExpires)
	return Result{Actions: p.result(), Rollouts: rollouts, Wake: p.wake, Events: p.events, Canaries: p.canarySums, CanaryEvents: p.canaryEvents}
}

// podRef is an observed pod with what the planner derives from it once.
type podRef struct {
	pod *corev1.Pod // points into Observed.Pods: never modified
	key string
}

// change is a pod to be written: created, or updated from an observed copy.
type change struct {
	pod    *corev1.Pod
	create bool
	reason string
	// owner is the scheduler's spreading group, "Deployment/<ns>/<name>" or "".
	owner string
	// dirty is set when an update must be written even if scheduling changes
	// nothing (metadata changed).
	dirty bool
}

// deploymentState carries a desired Deployment from the pod decisions to the
// status computation.
type deploymentState struct {
	d        *appsv1.Deployment
	hash     string
	kept     []*corev1.Pod // observed pods that stay
	created  []*change
	observed *appsv1.Deployment
	rollout  *rolloutState
}

type planner struct {
	now      time.Time
	nodes    map[string]bool
	nodeObjs map[string]*corev1.Node
	observed Observed

	// Observed pods by owner: Deployment pods by "<ns>/<deployment>",
	// standalone pods by "<ns>/<name>".
	byDeployment map[string][]podRef
	byJob        map[string][]podRef // Job pods by "<ns>/<job>"
	standalone   map[string]podRef
	all          []podRef // every observed pod, sorted by key

	observedNodes       []corev1.Node
	observedDeployments map[string]*appsv1.Deployment
	observedServices    []corev1.Service

	// terminating counts, by owner, deleted pods live nodes still stop;
	// terminatingNames lists their names.
	terminating      map[string]int
	terminatingNames map[string][]string
	// reserved is room held on nodes for daemon pods whose predecessor
	// the node still stops (daemonset.go), counted as bound by schedule.
	reserved []scheduler.Pod

	deletes map[string]Action  // pod key -> DeletePod
	changes map[string]*change // pod key -> CreatePod/UpdatePod
	order   []*change          // changes in the order they were decided: the scheduling order of new pods
	deploys []*deploymentState
	first   []Action // configuration, job and cronjob puts, before everything else
	other   []Action // deployment and service actions, in result order
	last    []Action // configuration, job and cronjob deletes, after everything else

	wake   time.Time // the earliest time a plan decides something new by itself
	events []Event
	// claimIndex is every claim as this plan leaves it (claim.go).
	claimIndex map[string]*corev1.PersistentVolumeClaim

	canaries     map[string]*canary.State // stored, by "<ns>/<deployment>"
	canaryDone   map[string]bool          // decided by this plan
	canaryEvents []canary.Event
	canarySums   []CanarySummary
}

func key(namespace, name string) string { return namespace + "/" + name }

func newPlanner(o Observed, now time.Time) *planner {
	p := &planner{
		now:                 now,
		observed:            o,
		nodes:               make(map[string]bool, len(o.Nodes)),
		nodeObjs:            make(map[string]*corev1.Node, len(o.Nodes)),
		byDeployment:        map[string][]podRef{},
		byJob:               map[string][]podRef{},
		standalone:          map[string]podRef{},
		all:                 make([]podRef, 0, len(o.Pods)),
		observedNodes:       o.Nodes,
		observedDeployments: make(map[string]*appsv1.Deployment, len(o.Deployments)),
		observedServices:    o.Services,
		deletes:             map[string]Action{},
		changes:             map[string]*change{},
		canaries:            make(map[string]*canary.State, len(o.Canaries)),
		canaryDone:          map[string]bool{},
	}
	for i := range o.Canaries {
		c := &o.Canaries[i]
		p.canaries[key(c.Namespace, c.Name)] = c
	}
	for i := range o.Nodes {
		p.nodes[o.Nodes[i].Name] = true
		p.nodeObjs[o.Nodes[i].Name] = &o.Nodes[i]
	}
	p.terminating = map[string]int{}
	p.terminatingNames = map[string][]string{}
	for _, t := range o.Terminating {
		// A lost node never reports its teardown: do not wait for it.
		if t.Owner != "" && p.nodes[t.Node] {
			p.terminating[t.Owner]++
			p.terminatingNames[t.Owner] = append(p.terminatingNames[t.Owner], t.Name)
		}
	}
	for i := range o.Deployments {
		d := &o.Deployments[i]
		p.observedDeployments[key(d.Namespace, d.Name)] = d
	}
	for _, pod := range o.Pods {
		p.all = append(p.all, podRef{pod: pod, key: key(pod.Namespace, pod.Name)})
	}
	slices.SortFunc(p.all, func(a, b podRef) int { return cmp.Compare(a.key, b.key) })
	for _, ref := range p.all {
		switch owner := metav1.GetControllerOfNoCopy(ref.pod); {
		case owner == nil:
			p.standalone[ref.key] = ref
		case owner.Kind == "Deployment":
			dk := key(ref.pod.Namespace, owner.Name)
			p.byDeployment[dk] = append(p.byDeployment[dk], ref)
		case owner.Kind == "Job":
			jk := key(ref.pod.Namespace, owner.Name)
			p.byJob[jk] = append(p.byJob[jk], ref)
		default:
			// Owned by a kind this planner does not manage: neither pruned nor
			// replaced, only scheduled, and its requests count on its node.
		}
	}
	return p
}

func (p *planner) deletePod(ref podRef, reason string) {
	p.deletes[ref.key] = Action{Type: DeletePod, Namespace: ref.pod.Namespace, Name: ref.pod.Name, Reason: reason}
}

func (p *planner) createPod(pod *corev1.Pod, owner, reason string) *change {
	pod.UID = p.uid(pod)
	c := &change{pod: pod, create: true, reason: reason, owner: owner}
	p.changes[key(pod.Namespace, pod.Name)] = c
	p.order = append(p.order, c)
	return c
}

// uid gives a new pod its identity. The store tells a pod's status from the
// status of an earlier pod of the same name by UID, so a recreated pod must
// not reuse one. Derived from the name and the plan's time, it is unique
// across plans without randomness.
func (p *planner) uid(pod *corev1.Pod) types.UID {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(p.now.UnixNano()))
	h := sha256.New()
	h.Write([]byte(pod.Namespace))
	h.Write([]byte{0})
	h.Write([]byte(pod.Name))
	h.Write([]byte{0})
	h.Write(buf[:])
	var sum [sha256.Size]byte
	b := h.Sum(sum[:0])
	b[6] = b[6]&0x0f | 0x80 // UUID version 8: custom
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}

// lost reports whether pod was bound by the scheduler to a node that is gone.
// A pod whose spec names its node (pinned) waits for that node instead.
func (p *planner) lost(pod *corev1.Pod, pinned bool) bool {
	return !pinned && pod.Spec.NodeName != "" && !p.nodes[pod.Spec.NodeName]
}

// ---- Deployments ----

// deployment decides the pod actions of one Deployment: finished pods and
// pods of lost nodes are replaced, and one step of the rollout (rolloutStep)
// is taken from the pods as observed.
func (p *planner) deployment(d *appsv1.Deployment) {
	dk := key(d.Namespace, d.Name)
	hash := manifest.TemplateHash(&d.Spec.Template)
	owner := "Deployment/" + dk
	pinned := d.Spec.Template.Spec.NodeName != ""
	replicas := 1
	if d.Spec.Replicas != nil {
		replicas = max(int(*d.Spec.Replicas), 0)
	}
	od := p.observedDeployments[dk]
	var prev []Revision
	if od != nil {
		// An unreadable history (written by something else) starts over.
		prev, _ = RevisionHistory(od)
	}
	surge, unavailable := fenceposts(d.Spec.Strategy, replicas)
	rs := &rolloutState{
		history:        nextHistory(prev, hash, templateImages(&d.Spec.Template), revisionHistoryLimit(d)),
		prev:           prev,
		maxSurge:       surge,
		maxUnavailable: unavailable,
		minReady:       time.Duration(d.Spec.MinReadySeconds) * time.Second,
	}
	ds := &deploymentState{d: d, hash: hash, observed: od, rollout: rs}
	cr := p.canaryFor(d, hash, replicas, p.byDeployment[dk])
	var canaryPods []podRef
	p.deploys = append(p.deploys, ds)
	revisionOf := func(hash string) int64 {
		for _, r := range rs.history {
			if r.Hash == hash {
				return r.Revision
			}
		}
		return 0 // older than the history remembers
	}

	in := rolloutInput{
		current:        make([]rolloutPod, 0, len(p.byDeployment[dk])),
		recreate:       d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType,
		replicas:       replicas,
		maxSurge:       surge,
		maxUnavailable: unavailable,
		failed:         failedFor(od, prev, hash),
		terminating:    p.terminating["Deployment/"+dk],
	}
	// Ordinals of the current template taken by any observed pod, including
	// those deleted below: a replacement gets a new name, so the agent never
	// confuses it with the pod it replaces. Names of deleted pods their node
	// is still stopping are taken too: a new pod under such a name would
	// wait for that teardown (preStop, grace period) before it could start.
	used := map[int]bool{}
	for _, name := range p.terminatingNames["Deployment/"+dk] {
		if n, ok := ordinalOf(name, d, hash); ok {
			used[n] = true
		}
	}
	var replaced []string // why pods were deleted, to explain their replacements
	drained := map[string]bool{}
	for _, ref := range p.byDeployment[dk] {
		pod := ref.pod
		if isCanaryPod(pod, hash) {
			canaryPods = append(canaryPods, ref)
			continue
		}
		podHash := pod.Labels[LabelPodTemplateHash]
		if podHash == hash {
			if n, ok := ordinalOf(pod.Name, d, hash); ok {
				used[n] = true
			}
		}
		evictWhy, evict := p.evicted(pod, pinned)
		switch {
		case kube.PodFinished(pod):
			phase := strings.ToLower(string(pod.Status.Phase))
			p.deletePod(ref, "replace "+phase+" pod")
			replaced = append(replaced, "replacement for "+phase+" pod "+pod.Name)
			if podHash == hash {
				in.replacedCurrent++
			}
		case p.lost(pod, pinned):
			p.deletePod(ref, "node "+pod.Spec.NodeName+" lost")
			replaced = append(replaced, "replacement for pod "+pod.Name+" of lost node "+pod.Spec.NodeName)
			if podHash == hash {
				in.replacedCurrent++
			}
		case evict:
			p.deletePod(ref, evictWhy)
			replaced = append(replaced, "replacement for pod "+pod.Name+" evicted from node "+pod.Spec.NodeName)
			if podHash == hash {
				in.replacedCurrent++
			}
		case p.draining(pod, pinned):
			// Replaced as an old pod is, whatever its template.
			in.old = append(in.old, rolloutPod{ref: ref, revision: revisionOf(podHash), available: available(pod, rs.minReady, p.now), drained: true})
		case podHash != hash:
			in.old = append(in.old, rolloutPod{ref: ref, revision: revisionOf(podHash), available: available(pod, rs.minReady, p.now)})
		default:
			in.current = append(in.current, rolloutPod{ref: ref, revision: rs.history[0].Revision, available: available(pod, rs.minReady, p.now)})
		}
	}
	byDeletion := func(a, b rolloutPod) int {
		return deletionOrder(a.ref, b.ref, d, rs.minReady, p.now)
	}
	if len(in.old) > 0 || len(in.current) > replicas { // only then does the step delete by this order
		slices.SortFunc(in.current, byDeletion)
		slices.SortFunc(in.old, byDeletion)
	}

	dec := rolloutStep(in)
	deleted := make(map[string]bool, len(dec.deleteOld)+len(dec.deleteCurrent))
	for _, rp := range dec.deleteOld {
		oldHash := rp.ref.pod.Labels[LabelPodTemplateHash]
		var why string
		switch {
		case rp.drained:
			why = "drain node " + rp.ref.pod.Spec.NodeName
			if !rp.available {
				why += ": pod not available"
			}
			drained[rp.ref.key] = true
			replaced = append(replaced, "replacement for pod "+rp.ref.pod.Name+" drained from node "+rp.ref.pod.Spec.NodeName)
		case in.recreate:
			why = fmt.Sprintf("recreate: template %s -> %s", oldHash, hash)
		case !rp.available:
			why = fmt.Sprintf("rolling update %s -> %s: old pod not available", oldHash, hash)
		default:
			why = fmt.Sprintf("rolling update %s -> %s", oldHash, hash)
		}
		p.deletePod(rp.ref, why)
		deleted[rp.ref.key] = true
	}
	for _, rp := range dec.deleteCurrent {
		p.deletePod(rp.ref, fmt.Sprintf("scale down %d -> %d", len(in.current), replicas))
		deleted[rp.ref.key] = true
	}
	for _, rp := range in.old {
		if !deleted[rp.ref.key] {
			ds.kept = append(ds.kept, rp.ref.pod)
		}
	}
	kept := 0
	for _, rp := range in.current {
		if !deleted[rp.ref.key] {
			ds.kept = append(ds.kept, rp.ref.pod)
			kept++
		}
	}

	scaleUp := fmt.Sprintf("scale up %d -> %d", kept+min(len(replaced), dec.create), kept+dec.create)
	if len(in.old)-len(dec.deleteOld) > 0 {
		scaleUp = fmt.Sprintf("rolling update to %s: %d -> %d of %d", hash, kept, kept+dec.create, replicas)
		for _, rp := range in.old {
			if rp.drained && !drained[rp.ref.key] {
				// Surge ahead of a pod the drain removes later.
				scaleUp = "replacement ahead of pod " + rp.ref.pod.Name + " on draining node " + rp.ref.pod.Spec.NodeName
				drained[rp.ref.key] = true
				break
			}
		}
	}
	ordinal := 0
	for range dec.create {
		for used[ordinal] {
			ordinal++
		}
		used[ordinal] = true
		reason := scaleUp
		if len(replaced) > 0 {
			reason, replaced = replaced[0], replaced[1:]
		}
		pod := newDeploymentPod(d, hash, ordinal)
		ds.created = append(ds.created, p.createPod(pod, owner, reason))
	}
	p.canaryPods(d, cr, canaryPods, pinned)
	p.stableTrack(ds, cr)
	p.canarySummary(d, cr)
}

// deletionOrder sorts a Deployment's pods least useful first, the order they
// are removed in: unbound, then not ready, then not yet available, then
// newest (highest ordinal; a name bosun did not make first).
func deletionOrder(a, b podRef, d *appsv1.Deployment, minReady time.Duration, now time.Time) int {
	return cmp.Or(
		cmp.Compare(rank(a.pod, minReady, now), rank(b.pod, minReady, now)),
		-cmp.Compare(ordinalOrMax(a.pod, d), ordinalOrMax(b.pod, d)),
		-cmp.Compare(a.key, b.key),
	)
}

// rank orders pods for scale down: unbound (0) before not ready (1) before
// ready but not yet available (2) before available (3).
func rank(pod *corev1.Pod, minReady time.Duration, now time.Time) int {
	switch {
	case pod.Spec.NodeName == "":
		return 0
	case !kube.PodReady(pod):
		return 1
	case !available(pod, minReady, now):
		return 2
	}
	return 3
}

func ordinalOrMax(pod *corev1.Pod, d *appsv1.Deployment) int {
	if n, ok := ordinalOf(pod.Name, d, pod.Labels[LabelPodTemplateHash]); ok {
		return n
	}
	return int(suffixSpace) // a name bosun did not make: goes first
}

func newDeploymentPod(d *appsv1.Deployment, hash string, ordinal int) *corev1.Pod {
	t := d.Spec.Template.DeepCopy()
	labels := make(map[string]string, len(t.Labels)+1)
	for k, v := range t.Labels {
		labels[k] = v
	}
	labels[LabelPodTemplateHash] = hash
	annotations := make(map[string]string, len(t.Annotations)+1)
	for k, v := range t.Annotations {
		annotations[k] = v
	}
	annotations[AnnotationOwner] = "Deployment/" + key(d.Namespace, d.Name)
	controller := true
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        podName(d, hash, ordinal),
			Namespace:   d.Namespace,
			Labels:      labels,
			Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1",
				Kind:       "Deployment",
				Name:       d.Name,
				Controller: &controller,
			}},
		},
		Spec: t.Spec,
	}
}

// Pod names are "<deployment>-<hash>-<suffix>". The suffix encodes the
// ordinal, bijectively for a given (namespace, deployment, hash), as
// (seed + ordinal*suffixStep) mod 27^5 in Kubernetes' name alphabet (no
// vowels, no look-alikes): names look random but are deterministic, never
// collide, and the ordinal can be read back from the name.
const (
	suffixAlphabet = "bcdfghjklmnpqrstvwxz2456789"
	suffixLen      = 5
	suffixSpace    = 27 * 27 * 27 * 27 * 27
	// suffixStep is coprime with 27^5 (not a multiple of 3), which makes the
	// encoding a bijection on [0, 27^5).
	suffixStep = 4194301
)

var suffixStepInverse = new(big.Int).ModInverse(big.NewInt(suffixStep), big.NewInt(suffixSpace)).Int64()

func suffixSeed(d *appsv1.Deployment, hash string) int64 {
	return nameSeed(d.Namespace, d.Name, hash)
}

// nameSeed is the starting point of an owner's name suffixes, from what
// identifies the owner.
func nameSeed(parts ...string) int64 {
	h := fnv.New64a()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(p))
	}
	return int64(h.Sum64() % suffixSpace)
}

// nameSuffix encodes ordinal as a suffix of suffixLen letters of
// suffixAlphabet, bijectively for a given seed.
func nameSuffix(seed int64, ordinal int) string {
	x := (seed + int64(ordinal)%suffixSpace*suffixStep) % suffixSpace
	var b [suffixLen]byte
	for i := suffixLen - 1; i >= 0; i-- {
		b[i] = suffixAlphabet[x%27]
		x /= 27
	}
	return string(b[:])
}

// suffixOrdinal reads the ordinal back from name, made of prefix and a
// nameSuffix of seed.
func suffixOrdinal(name, prefix string, seed int64) (int, bool) {
	if len(name) != len(prefix)+suffixLen || !strings.HasPrefix(name, prefix) {
		return 0, false
	}
	var x int64
	for _, c := range []byte(name[len(prefix):]) {
		i := int64(strings.IndexByte(suffixAlphabet, c))
		if i < 0 {
			return 0, false
		}
		x = x*27 + i
	}
	diff := (x - seed + suffixSpace) % suffixSpace
	return int(diff * suffixStepInverse % suffixSpace), true
}

func podName(d *appsv1.Deployment, hash string, ordinal int) string {
	return podNamePrefix(d, hash) + nameSuffix(suffixSeed(d, hash), ordinal)
}

// podNamePrefix is "<deployment>-<hash>-", with the deployment's name cut so
// that pod names stay within the 253 characters of a DNS subdomain.
func podNamePrefix(d *appsv1.Deployment, hash string) string {
	const maxName = 253
	base := d.Name
	if room := maxName - len(hash) - suffixLen - 2; len(base) > room {
		base = strings.TrimRight(base[:room], "-.")
	}
	return base + "-" + hash + "-"
}

// ordinalOf reads the ordinal back from a name podName made.
func ordinalOf(name string, d *appsv1.Deployment, hash string) (int, bool) {
	return suffixOrdinal(name, podNamePrefix(d, hash), suffixSeed(d, hash))
}

func (p *planner) pruneDeploymentPods(desired []appsv1.Deployment) {
	want := make(map[string]bool, len(desired))
	for i := range desired {
		want[key(desired[i].Namespace, desired[i].Name)] = true
	}
	for dk, refs := range p.byDeployment {
		if want[dk] {
			continue
		}
		for _, ref := range refs {
			p.deletePod(ref, "pruned: deployment "+dk+" removed from Git")
		}
	}
}

// deploymentStatus puts the Deployment if its spec, its annotations or its
// status, computed from the pods as they will be once this plan is applied,
// differ from what the store holds, and summarises its rollout. It wakes
// the plan when a kept pod becomes available (minReadySeconds) and when the
// rollout would miss its progress deadline.
func (p *planner) deploymentStatus(ds *deploymentState) RolloutSummary {
	rs := ds.rollout
	var st appsv1.DeploymentStatus
	for _, pod := range ds.kept {
		st.Replicas++
		if pod.Labels[LabelPodTemplateHash] == ds.hash {
			st.UpdatedReplicas++
		}
		if kube.PodReady(pod) {
			st.ReadyReplicas++
		}
		if available(pod, rs.minReady, p.now) {
			st.AvailableReplicas++
		} else if at, ok := availableAt(pod, rs.minReady, p.now); ok {
			p.wakeAt(at)
		}
	}
	st.Replicas += int32(len(ds.created))
	st.UpdatedReplicas += int32(len(ds.created))
	st.UnavailableReplicas = max(st.Replicas-st.AvailableReplicas, 0)

	d, od := ds.d, ds.observed
	replicas := 1
	if d.Spec.Replicas != nil {
		replicas = max(int(*d.Spec.Replicas), 0)
	}
	st.Conditions = conditions(d, od, ds.hash, rs, &st, replicas, p.now)
	prog := &st.Conditions[1]
	if at, ok := deadlineAt(d, prog); ok {
		p.wakeAt(at)
	}
	sum := RolloutSummary{Namespace: d.Namespace, Name: d.Name, ToHash: ds.hash, Revision: rs.history[0].Revision,
		Replicas: int32(replicas), Updated: st.UpdatedReplicas, Ready: st.ReadyReplicas, Available: st.AvailableReplicas,
		OldPods: st.Replicas - st.UpdatedReplicas, MaxSurge: rs.maxSurge, MaxUnavailable: rs.maxUnavailable, Reason: prog.Reason}
	if len(rs.history) > 1 {
		sum.FromHash = rs.history[1].Hash
	}
	sum.State, sum.Message = judgeRollout(d, &st,
		prog.Status == corev1.ConditionFalse && prog.Reason == ReasonProgressDeadlineExceeded)

	var generation int64 = 1
	reason := "create"
	if od != nil {
		// Like the API server, bump the generation when the spec changes.
		generation = max(od.Generation, 1)
		sameSpec := equality.Semantic.DeepEqual(d.Spec, od.Spec)
		sameMeta := equality.Semantic.DeepEqual(d.Labels, od.Labels) && sameAnnotations(ds)
		if !sameSpec {
			generation = od.Generation + 1
		}
		st.ObservedGeneration = generation
		switch {
		case !sameSpec:
			reason = "spec changed in Git"
		case !sameMeta:
			reason = "metadata changed"
		case generation != od.Generation || !equality.Semantic.DeepEqual(st, od.Status):
			reason = fmt.Sprintf("status: %d replicas, %d updated, %d ready", st.Replicas, st.UpdatedReplicas, st.ReadyReplicas)
		default:
			return sum
		}
	}
	st.ObservedGeneration = generation
	out := d.DeepCopy()
	if out.APIVersion == "" {
		out.APIVersion, out.Kind = "apps/v1", "Deployment"
	}
	if od != nil {
		keepStoreFields(&out.ObjectMeta, &od.ObjectMeta)
	}
	out.Annotations = deploymentAnnotations(ds)
	out.Generation = generation
	out.Status = st
	p.other = append(p.other, Action{Type: PutDeployment, Deployment: out, Reason: reason})
	return sum
}

// deploymentAnnotations are the Deployment's annotations from Git plus the
// revision ones the planner keeps.
func deploymentAnnotations(ds *deploymentState) map[string]string {
	h := ds.rollout.history
	out := make(map[string]string, len(ds.d.Annotations)+2)
	maps.Copy(out, ds.d.Annotations)
	out[AnnotationRevision] = formatRevision(h[0].Revision)
	if historyUnchanged(ds) {
		out[AnnotationRevisionHistory] = ds.observed.Annotations[AnnotationRevisionHistory] // no need to encode it again
	} else {
		raw, _ := json.Marshal(h) // strings and numbers always encode
		out[AnnotationRevisionHistory] = string(raw)
	}
	return out
}

// sameAnnotations reports whether the stored Deployment carries exactly the
// annotations deploymentAnnotations would write, without building them: the
// steady state of every Deployment goes through here on every plan.
func sameAnnotations(ds *deploymentState) bool {
	stored, fromGit := ds.observed.Annotations, ds.d.Annotations
	if !historyUnchanged(ds) || stored[AnnotationRevision] != formatRevision(ds.rollout.history[0].Revision) {
		return false
	}
	n := 2
	for k, v := range fromGit {
		if k == AnnotationRevision || k == AnnotationRevisionHistory {
			continue // ours win
		}
		if sv, ok := stored[k]; !ok || sv != v {
			return false
		}
		n++
	}
	return len(stored) == n
}

func historyUnchanged(ds *deploymentState) bool {
	return ds.observed != nil && slices.EqualFunc(ds.rollout.history, ds.rollout.prev, equalRevision)
}

func equalRevision(a, b Revision) bool {
	return a.Revision == b.Revision && a.Hash == b.Hash && slices.Equal(a.Images, b.Images)
}

// keepStoreFields carries over the metadata the store, not Git, owns.
func keepStoreFields(dst, src *metav1.ObjectMeta) {
	dst.UID = src.UID
	dst.ResourceVersion = src.ResourceVersion
	dst.CreationTimestamp = src.CreationTimestamp
}

func (p *planner) pruneDeployments(desired []appsv1.Deployment) {
	want := make(map[string]bool, len(desired))
	for i := range desired {
		want[key(desired[i].Namespace, desired[i].Name)] = true
	}
	var pruned []Action
	for dk, d := range p.observedDeployments {
		if !want[dk] {
			pruned = append(pruned, Action{Type: DeleteDeployment, Namespace: d.Namespace, Name: d.Name, Reason: "pruned: removed from Git"})
		}
	}
	slices.SortFunc(pruned, byDeleteKey)
	p.other = append(p.other, pruned...)
}

func byDeleteKey(a, b Action) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// ---- Standalone pods ----

// standalonePods runs each Pod from Git as written. A pod's spec is immutable,
// so a changed spec means DeletePod then CreatePod under the same name; changed
// labels or annotations are updated in place. Like Kubernetes, a pod whose
// restartPolicy is Never or OnFailure and that has finished (Failed or
// Succeeded) stays as it is: it ran to completion and is not run again until
// its spec changes. A finished pod with restartPolicy Always is replaced.
func (p *planner) standalonePods(desired []corev1.Pod) {
	want := make(map[string]bool, len(desired))
	for i := range desired {
		dp := &desired[i]
		k := key(dp.Namespace, dp.Name)
		want[k] = true
		fresh := newStandalonePod(dp)
		pinned := dp.Spec.NodeName != ""
		ref, exists := p.standalone[k]
		if !exists {
			p.createPod(fresh, "", "create")
			continue
		}
		pod := ref.pod
		var why string
		switch {
		case pod.Annotations[AnnotationSpecHash] != fresh.Annotations[AnnotationSpecHash]:
			why = "spec changed in Git"
		case kube.PodFinished(pod):
			if dp.Spec.RestartPolicy == corev1.RestartPolicyNever || dp.Spec.RestartPolicy == corev1.RestartPolicyOnFailure {
				continue // ran to completion; see above
			}
			if pinned && p.refusedForReservedPort(pod) { // reserved.go
				continue
			}
			why = "replace " + strings.ToLower(string(pod.Status.Phase)) + " pod"
		case p.lost(pod, pinned):
			why = "node " + pod.Spec.NodeName + " lost"
		default:
			why, _ = p.evictedOrDrained(pod, pinned, true)
		}
		if why != "" {
			p.deletePod(ref, why)
			p.createPod(fresh, "", why)
			continue
		}
		if !equality.Semantic.DeepEqual(pod.Labels, fresh.Labels) || !equality.Semantic.DeepEqual(pod.Annotations, fresh.Annotations) {
			updated := pod.DeepCopy()
			updated.Labels, updated.Annotations = fresh.Labels, fresh.Annotations
			c := &change{pod: updated, reason: "metadata changed in Git", dirty: true}
			p.changes[k] = c
		}
	}
	for _, ref := range p.all {
		if _, ok := p.standalone[ref.key]; ok && !want[ref.key] {
			p.deletePod(ref, "pruned: removed from Git")
		}
	}
}

func newStandalonePod(dp *corev1.Pod) *corev1.Pod {
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: *dp.ObjectMeta.DeepCopy(),
		Spec:       *dp.Spec.DeepCopy(),
	}
	annotations := make(map[string]string, len(pod.Annotations)+1)
	for k, v := range pod.Annotations {
		annotations[k] = v
	}
	annotations[AnnotationSpecHash] = SpecHash(dp)
	pod.Annotations = annotations
	return pod
}

// SpecHash is what the AnnotationSpecHash of a standalone Pod from Git
// says: a hash of its spec and, when the pod uses ConfigMaps or Secrets,
// of their configuration hash, so a change to them restarts the pod.
func SpecHash(dp *corev1.Pod) string {
	hashed := corev1.PodTemplateSpec{Spec: dp.Spec}
	if h, ok := dp.Annotations[manifest.AnnotationConfigHash]; ok {
		hashed.Annotations = map[string]string{manifest.AnnotationConfigHash: h}
	}
	return manifest.TemplateHash(&hashed)
}

// ---- Scheduling ----

// schedule places every unbound pod that will exist after this plan:
// DaemonSets' pods first (each is pinned to its node, and a replaced one
// must not lose the room it freed to a waiting pod), then observed unbound
// pods that stay (in key order), then new pods in the order they were
// decided. Each node offers its allocatable minus the requests of the
// bound, unfinished pods that stay on it and the room held for daemon pods
// (reserved). A draining node takes only daemon pods, an absent one none.
func (p *planner) schedule() {
	var pending []*change
	for _, ref := range p.all {
		if _, gone := p.deletes[ref.key]; gone || ref.pod.Spec.NodeName != "" || kube.PodFinished(ref.pod) {
			continue
		}
		c := p.changes[ref.key]
		if c == nil {
			c = &change{pod: ref.pod} // copied only if it has to be written: see writable
		}
		c.owner = spreadGroup(ref.pod)
		pending = append(pending, c)
	}
	for _, c := range p.order {
		if c.pod.Spec.NodeName == "" {
			pending = append(pending, c)
		} else {
			p.bind(c, c.pod.Spec.NodeName) // pinned by its spec
		}
	}
	pending = p.withoutMissingClaims(pending)
	if len(pending) == 0 {
		return
	}
	slices.SortStableFunc(pending, daemonPodsFirst)

	nodes := make([]scheduler.Node, 0, len(p.observedNodes))
	for i := range p.observedNodes {
		n := scheduler.NodeOf(&p.observedNodes[i])
		_, n.Draining = p.observed.Drains[n.Name]  // only daemon pods land there
		n.Closed = NodeAbsent(&p.observedNodes[i]) // none lands there
		nodes = append(nodes, n)
	}
	var bound []scheduler.Pod
	var boundPods, pendingPods []*corev1.Pod // for their claims
	for _, ref := range p.all {
		if _, gone := p.deletes[ref.key]; gone || ref.pod.Spec.NodeName == "" || kube.PodFinished(ref.pod) {
			continue
		}
		bound = append(bound, schedPod(ref.pod, spreadGroup(ref.pod)))
		boundPods = append(boundPods, ref.pod)
	}
	for _, c := range p.order {
		if c.pod.Spec.NodeName != "" { // pinned by its spec
			bound = append(bound, schedPod(c.pod, c.owner))
			boundPods = append(boundPods, c.pod)
		}
	}
	toPlace := make([]scheduler.Pod, len(pending))
	for i, c := range pending {
		toPlace[i] = schedPod(c.pod, c.owner)
		pendingPods = append(pendingPods, c.pod)
	}
	p.withClaims(bound, boundPods)
	bound = append(bound, p.reserved...) // after withClaims: bound and boundPods are parallel
	p.withClaims(toPlace, pendingPods)
	p.withVolumesUsed(nodes)
	res := scheduler.Schedule(nodes, append(slices.Clip(bound), toPlace...))

	// A pod that fits nowhere is explained against the cluster as it will be
	// once every placement of this plan is made, which is also what the next
	// plan will see: so the reason is stable and the plan converges.
	if len(res.Unschedulable) > 0 {
		again := slices.Clip(bound)
		var failed []scheduler.Pod
		for _, sp := range toPlace {
			if node, ok := res.Bindings[sp.Key]; ok {
				sp.NodeName = node
				again = append(again, sp)
			} else {
				failed = append(failed, sp)
			}
		}
		final := scheduler.Schedule(nodes, append(again, failed...))
		for k, why := range final.Unschedulable {
			res.Unschedulable[k] = why
		}
	}

	for _, c := range pending {
		k := key(c.pod.Namespace, c.pod.Name)
		if node, ok := res.Bindings[k]; ok {
			p.bind(c, node)
		} else {
			p.unschedulable(c, res.Unschedulable[k])
		}
	}
}

// schedPod is pod as the scheduler sees it, keyed "<ns>/<name>".
func schedPod(pod *corev1.Pod, owner string) scheduler.Pod {
	sp := scheduler.PodOf(key(pod.Namespace, pod.Name), owner, pod.Namespace, pod.Labels, &pod.Spec)
	sp.Daemon = isDaemonPod(pod)
	return sp
}

// spreadGroup is the scheduler's spreading group of pod: its Deployment,
// "Deployment/<ns>/<name>", or "" for any other pod.
func spreadGroup(pod *corev1.Pod) string {
	if owner := kube.OwnerOf(pod); strings.HasPrefix(owner, "Deployment/") {
		return owner
	}
	return ""
}

// writable returns c's pod ready to be modified: an observed pod is copied
// once, and the change is recorded as an update.
func (p *planner) writable(c *change) *corev1.Pod {
	k := key(c.pod.Namespace, c.pod.Name)
	if p.changes[k] != c {
		c.pod = c.pod.DeepCopy()
		p.changes[k] = c
	}
	return c.pod
}

func (p *planner) bind(c *change, node string) {
	pod := p.writable(c)
	pod.Spec.NodeName = node
	if pod.Status.Phase == "" {
		pod.Status.Phase = corev1.PodPending
	}
	p.setScheduled(pod, corev1.ConditionTrue, "", "")
	if !c.create {
		c.reason = "scheduled to " + node
	}
	p.bindClaims(pod, node)
}

func (p *planner) unschedulable(c *change, why string) {
	if !c.create && !c.dirty {
		if cond := scheduledCondition(c.pod); cond != nil && c.pod.Status.Phase == corev1.PodPending &&
			cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable && cond.Message == why {
			return // already says so
		}
	}
	pod := p.writable(c)
	pod.Status.Phase = corev1.PodPending
	p.setScheduled(pod, corev1.ConditionFalse, corev1.PodReasonUnschedulable, why)
	if !c.create && !c.dirty {
		c.reason = "unschedulable: " + why
	}
}

func scheduledCondition(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodScheduled {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// setScheduled sets the PodScheduled condition; its transition time moves only
// when its status does, as in Kubernetes.
func (p *planner) setScheduled(pod *corev1.Pod, status corev1.ConditionStatus, reason, message string) {
	cond := scheduledCondition(pod)
	if cond == nil {
		pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: corev1.PodScheduled})
		cond = &pod.Status.Conditions[len(pod.Status.Conditions)-1]
	}
	if cond.Status != status {
		cond.LastTransitionTime = metav1.NewTime(p.now)
	}
	cond.Status, cond.Reason, cond.Message = status, reason, message
}

// ---- Services ----

func (p *planner) services(desired []corev1.Service) {
	puts, dels := syncObjects(desired, p.observedServices,
		func(a, b *corev1.Service) bool { return equality.Semantic.DeepEqual(a.Spec, b.Spec) },
		func(o *corev1.Service, why string) Action {
			if o.APIVersion == "" {
				o.APIVersion, o.Kind = "v1", "Service"
			}
			return Action{Type: PutService, Service: o, Reason: why}
		},
		func(ns, name string) Action {
			return Action{Type: DeleteService, Namespace: ns, Name: name, Reason: "pruned: removed from Git"}
		})
	p.other = append(append(p.other, puts...), dels...)
}

// ---- Result ----

func (p *planner) result() []Action {
	out := make([]Action, 0, len(p.first)+len(p.deletes)+len(p.changes)+len(p.other)+len(p.last))
	out = append(out, p.first...)
	n0 := len(out)
	for _, a := range p.deletes {
		out = append(out, a)
	}
	slices.SortFunc(out[n0:], byDeleteKey)
	n := len(out)
	for _, c := range p.changes {
		t := UpdatePod
		if c.create {
			t = CreatePod
		}
		out = append(out, Action{Type: t, Pod: c.pod, Reason: c.reason})
	}
	slices.SortFunc(out[n:], func(a, b Action) int {
		return cmp.Or(cmp.Compare(a.Pod.Namespace, b.Pod.Namespace), cmp.Compare(a.Pod.Name, b.Pod.Name))
	})
	// Deployment and service actions are already in order: desired (sorted by
	// namespace and name) puts, then sorted deletes.
	out = append(out, p.other...)
	return append(out, p.last...)
}
