package reconciler

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"bosun/kube"
	"bosun/manifest"
	"bosun/scheduler"
)

// The actions on DaemonSets.
const (
	PutDaemonSet    ActionType = "PutDaemonSet"
	DeleteDaemonSet ActionType = "DeleteDaemonSet"
)

// Labels Kubernetes puts on a DaemonSet's pods, and bosun with it.
const (
	// LabelControllerRevisionHash carries the hash of the DaemonSet
	// template a pod was made from (manifest.TemplateHash): a pod is
	// updated when it equals the current template's.
	LabelControllerRevisionHash = appsv1.DefaultDaemonSetUniqueLabelKey
	// LabelPodTemplateGeneration carries the DaemonSet's generation when
	// the pod was made, as Kubernetes still writes it.
	LabelPodTemplateGeneration = "pod-template-generation"
)

// daemonTolerations are the tolerations Kubernetes adds to every daemon
// pod (AddOrUpdateDaemonPodTolerations), and bosun with it: a daemon pod
// keeps running on a node that is not ready or unreachable, and it is
// placed on nodes under disk, memory or PID pressure and on cordoned
// (unschedulable) nodes: node agents, log shippers and exporters are
// wanted there most. network-unavailable is tolerated by pods of the
// host's network only.
var daemonTolerations = []corev1.Toleration{
	{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
}

var hostNetworkToleration = corev1.Toleration{Key: corev1.TaintNodeNetworkUnavailable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}

// daemonPodSpec is the spec of a DaemonSet's pods before they are pinned
// to a node: the template's, with the default tolerations added as
// Kubernetes' AddOrUpdateTolerationInPodSpec does: a template toleration
// of the same key, operator, value and effect is replaced by the default
// one (a tolerationSeconds on it is dropped: daemon pods stay), any other
// is kept, and none is added twice.
func daemonPodSpec(t *corev1.PodTemplateSpec) corev1.PodSpec {
	spec := *t.Spec.DeepCopy()
	add := daemonTolerations
	if spec.HostNetwork {
		add = append(slices.Clip(add), hostNetworkToleration)
	}
	for _, tl := range add {
		replaced := false
		kept := spec.Tolerations[:0:0]
		for _, x := range spec.Tolerations {
			switch {
			case !x.MatchToleration(&tl):
				kept = append(kept, x)
			case !replaced:
				kept, replaced = append(kept, tl), true
			}
		}
		if !replaced {
			kept = append(kept, tl)
		}
		spec.Tolerations = kept
	}
	return spec
}

// isDaemonPod says whether pod is a DaemonSet's: a draining node still
// takes it (scheduler.Pod.Daemon).
func isDaemonPod(pod *corev1.Pod) bool {
	owner := metav1.GetControllerOfNoCopy(pod)
	return owner != nil && owner.Kind == manifest.KindDaemonSet
}

// daemonPodsFirst orders the pods schedule places: DaemonSets' pods first,
// the rest as they were.
func daemonPodsFirst(a, b *change) int {
	da, db := isDaemonPod(a.pod), isDaemonPod(b.pod)
	switch {
	case da && !db:
		return -1
	case db && !da:
		return 1
	}
	return 0
}

// daemonFit is Kubernetes' NodeShouldRunDaemonPod: run says the node
// should run a daemon pod of spec (spec.nodeName, nodeSelector, required
// node affinity and NoSchedule and NoExecute taints admit it); keep says a
// daemon pod already there may stay (it fits but for NoSchedule taints:
// those keep new pods off, they do not evict). A node that is gone but in
// its grace (NodeAbsent) gets no new pod and keeps the one it has, its
// labels and affinity unchecked: they may be unknown (a new leader's
// placeholder) and its agent, when it comes back, registers them again.
func daemonFit(spec *corev1.PodSpec, required nodeaffinity.RequiredNodeAffinity, node *corev1.Node) (run, keep bool) {
	if spec.NodeName != "" && spec.NodeName != node.Name {
		return false, false
	}
	if NodeAbsent(node) {
		return false, true
	}
	if ok, _ := required.Match(node); !ok {
		return false, false
	}
	run, keep = true, true
	for i := range node.Spec.Taints {
		t := &node.Spec.Taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if scheduler.Tolerates(spec.Tolerations, t) {
			continue
		}
		run = false
		if t.Effect == corev1.TaintEffectNoExecute {
			keep = false
		}
	}
	return run, keep
}

// pinToNode is Kubernetes' ReplaceDaemonSetPodNodeNameNodeAffinity: the
// pod's required node affinity becomes "metadata.name In [node]" (the
// controller has already checked the template's own), so the scheduler
// places it on that node or nowhere, checking its resources, ports and
// taints like any pod's and saying why not.
func pinToNode(spec *corev1.PodSpec, node string) {
	sel := &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{
		{Key: metav1.ObjectNameField, Operator: corev1.NodeSelectorOpIn, Values: []string{node}},
	}}}}
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = sel
}

// DaemonPodNode is the node a daemon pod is for: its spec.nodeName once
// bound, else the node its required node affinity pins it to (pinToNode),
// as Kubernetes' GetTargetNodeName reads it. "" when neither says.
func DaemonPodNode(pod *corev1.Pod) string {
	if pod.Spec.NodeName != "" {
		return pod.Spec.NodeName
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, f := range term.MatchFields {
			if f.Key == metav1.ObjectNameField && f.Operator == corev1.NodeSelectorOpIn && len(f.Values) == 1 {
				return f.Values[0]
			}
		}
	}
	return ""
}

// daemonFenceposts resolves a DaemonSet's RollingUpdate maxSurge and
// maxUnavailable against the number of nodes that should run it, as
// Kubernetes does: percentages rounded up, both; maxUnavailable 1 if both
// come to 0 (validation refuses both 0, and both non-zero). OnDelete has
// neither.
func daemonFenceposts(st appsv1.DaemonSetUpdateStrategy, desired int) (surge, unavailable int) {
	if st.Type == appsv1.OnDeleteDaemonSetStrategyType {
		return 0, 0
	}
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	u, s := &one, &zero
	if ru := st.RollingUpdate; ru != nil {
		if ru.MaxUnavailable != nil {
			u = ru.MaxUnavailable
		}
		if ru.MaxSurge != nil {
			s = ru.MaxSurge
		}
	}
	surge = scaledOr(s, desired, 0)
	unavailable = scaledOr(u, desired, 1)
	if surge > 0 {
		unavailable = 0 // Kubernetes' surge mode ignores maxUnavailable (validation asks for 0)
	}
	if desired > 0 && surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable
}

// scaledOr is v against total, rounded up; def when validation would have
// refused v.
func scaledOr(v *intstr.IntOrString, total, def int) int {
	n, err := intstr.GetScaledValueFromIntOrPercent(v, total, true)
	if err != nil || n < 0 {
		return def
	}
	return n
}

// daemonPod is a pod of a DaemonSet with what the step needs of it.
type daemonPod struct {
	ref       podRef
	current   bool // of the current template
	ready     bool
	available bool
	bound     bool // placed on its node: it may be running there
}

// daemonNode is one node as a DaemonSet's step sees it: whether it should
// run a daemon pod and may keep one, and the pods there that stay after
// deduplication: at most one of the current template and one older.
type daemonNode struct {
	name      string
	run, keep bool
	// absent: the node is gone, in its grace (NodeAbsent): it keeps what
	// it has and takes no part until it comes back.
	absent bool
	// stopping: a deleted pod of this DaemonSet is still being stopped
	// there (Observed.Terminating): no new pod starts beside it.
	stopping bool
	cur, old *daemonPod
}

// daemonDecision is what one step does on one DaemonSet.
type daemonDecision struct {
	deleteOld []*daemonNode // nodes whose old pod goes
	create    []*daemonNode // nodes that get a pod of the current template
	// wait are nodes that get their pod once the one deleted or stopping
	// there is gone; their room is held meanwhile.
	wait []*daemonNode
}

// daemonStep decides the pods of one DaemonSet, node by node (nodes sorted
// by name), as Kubernetes' daemon controller's manage and rollingUpdate do:
//
//   - a node that should run a daemon pod and has none gets one, once no
//     pod of the DaemonSet is stopping there (counted unavailable until
//     then: a hostPort or host-network daemon could not bind beside it);
//   - a node with a pod of the current template and an old one keeps only
//     the current one once it is available, or at once if the old one is
//     not ready (the state a surge leaves);
//   - OnDelete: nothing else; old pods stay until deleted by hand;
//   - RollingUpdate, maxSurge 0: a node counts unavailable when it has no
//     available pod; old pods that are not available are replaced at once,
//     available ones while fewer than maxUnavailable nodes are unavailable;
//     the replacement is created once the old pod has stopped (in the same
//     step only for an old pod never placed), as Kubernetes waits for a
//     terminating pod;
//   - RollingUpdate, maxSurge > 0: an updated pod is started beside the old
//     one, on as many nodes as maxSurge allows (nodes whose updated pod is
//     not available yet count against it), at once beside an old pod that
//     is not available; the old one goes when the new one is available.
//
// Nodes that may keep a pod but should not get one (a NoSchedule taint
// added after it started: misscheduled, as Kubernetes counts it) keep what
// they have and take no part in the update; so do absent nodes.
func daemonStep(nodes []*daemonNode, onDelete bool, surge, unavailable int) daemonDecision {
	var dec daemonDecision
	var candidates, replace []*daemonNode
	numUnavailable, numSurge := 0, 0
	for _, n := range nodes {
		switch {
		case n.absent:
			// gone, in its grace: left as it is until it comes back
		case n.cur != nil && n.old != nil:
			switch {
			case !n.old.ready || n.cur.available:
				dec.deleteOld = append(dec.deleteOld, n)
				if !n.cur.available {
					numUnavailable++
				}
			default:
				numUnavailable++
				numSurge++
			}
		case !n.run:
			// misscheduled or nothing: left as it is
		case n.cur == nil && n.old == nil:
			if n.stopping {
				dec.wait = append(dec.wait, n)
			} else {
				dec.create = append(dec.create, n)
			}
			numUnavailable++
		case n.cur != nil:
			if !n.cur.available {
				numUnavailable++
			}
		case onDelete:
			if !n.old.available {
				numUnavailable++
			}
		case !n.old.available:
			replace = append(replace, n)
			numUnavailable++
		default:
			candidates = append(candidates, n)
		}
	}
	if onDelete {
		return dec
	}
	if surge > 0 {
		take := min(max(surge-numSurge, 0), len(candidates))
		// An old pod that is not available is replaced beside it at once;
		// if it is not even ready, it goes now.
		for _, n := range replace {
			dec.create = append(dec.create, n)
			if !n.old.ready {
				dec.deleteOld = append(dec.deleteOld, n)
			}
		}
		dec.create = append(dec.create, candidates[:take]...)
		return dec
	}
	take := min(max(unavailable-numUnavailable, 0), len(candidates))
	for _, n := range append(replace, candidates[:take]...) {
		dec.deleteOld = append(dec.deleteOld, n)
		if n.old.bound || n.stopping {
			dec.wait = append(dec.wait, n)
		} else {
			dec.create = append(dec.create, n)
		}
	}
	return dec
}

// ---- the planner's part ----

// daemonSets runs each DaemonSet from Git: one pod per eligible node
// (daemonFit), created through the scheduler pinned to its node
// (pinToNode), updated by its updateStrategy (daemonStep), with its
// status. Pods of DaemonSets removed from Git, and those DaemonSets, are
// deleted.
func (p *planner) daemonSets(desired []appsv1.DaemonSet) {
	byDS := map[string][]podRef{}
	for _, ref := range p.all {
		if owner := metav1.GetControllerOfNoCopy(ref.pod); owner != nil && owner.Kind == manifest.KindDaemonSet {
			k := key(ref.pod.Namespace, owner.Name)
			byDS[k] = append(byDS[k], ref)
		}
	}
	stored := byName(p.observed.DaemonSets)
	want := make(map[string]bool, len(desired))
	for i := range desired {
		ds := &desired[i]
		k := key(ds.Namespace, ds.Name)
		want[k] = true
		p.daemonSet(ds, stored[k], byDS[k])
	}
	for _, k := range slices.Sorted(maps.Keys(byDS)) {
		if want[k] {
			continue
		}
		for _, ref := range byDS[k] {
			p.deletePod(ref, "pruned: daemonset "+k+" removed from Git")
		}
	}
	var pruned []Action
	for k, ds := range stored {
		if !want[k] {
			pruned = append(pruned, Action{Type: DeleteDaemonSet, Namespace: ds.Namespace, Name: ds.Name, Reason: "pruned: removed from Git"})
		}
	}
	slices.SortFunc(pruned, byDeleteKey)
	p.other = append(p.other, pruned...)
}

// daemonSet decides the pods and the status of one DaemonSet; od is the
// stored one (nil if none), refs its observed pods.
func (p *planner) daemonSet(ds, od *appsv1.DaemonSet, refs []podRef) {
	dk := key(ds.Namespace, ds.Name)
	hash := manifest.TemplateHash(&ds.Spec.Template)
	generation := int64(1)
	if od != nil {
		generation = max(od.Generation, 1)
		if !equality.Semantic.DeepEqual(ds.Spec, od.Spec) {
			generation = od.Generation + 1
		}
	}
	minReady := time.Duration(ds.Spec.MinReadySeconds) * time.Second
	spec := daemonPodSpec(&ds.Spec.Template)
	required := nodeaffinity.GetRequiredNodeAffinity(&corev1.Pod{Spec: spec})

	nodes := make(map[string]*daemonNode, len(p.observedNodes))
	var order []*daemonNode
	desiredCount := 0
	for i := range p.observedNodes {
		n := &p.observedNodes[i]
		run, keep := daemonFit(&spec, required, n)
		dn := &daemonNode{name: n.Name, run: run, keep: keep, absent: NodeAbsent(n)}
		nodes[n.Name] = dn
		order = append(order, dn)
		if run {
			desiredCount++
		}
	}
	slices.SortFunc(order, func(a, b *daemonNode) int { return cmp.Compare(a.name, b.name) })
	for _, t := range p.observed.Terminating {
		if n := nodes[t.Node]; n != nil && t.Owner == manifest.KindDaemonSet+"/"+dk {
			n.stopping = true
		}
	}

	// Sort out the observed pods: finished ones, those of nodes gone or no
	// longer eligible and those a NoExecute taint evicts go; of the rest,
	// each node keeps its best pod of the current template and its best
	// older one.
	replaced := map[string]string{} // node -> why its pod was replaced, for the new pod's reason
	perNode := map[string][]daemonPod{}
	for _, ref := range refs {
		pod := ref.pod
		target := DaemonPodNode(pod)
		n := nodes[target]
		switch {
		case kube.PodFinished(pod):
			phase := strings.ToLower(string(pod.Status.Phase))
			p.deletePod(ref, "replace "+phase+" pod")
			replaced[target] = "replacement for " + phase + " pod " + pod.Name
			continue
		case n == nil && target == "":
			p.deletePod(ref, "daemon pod pinned to no node")
			continue
		case n == nil:
			p.deletePod(ref, "node "+target+" lost")
			continue
		case !n.keep:
			p.deletePod(ref, "node "+target+" no longer runs daemonset "+dk+": "+whyNotEligible(&spec, required, p.nodeObjs[target]))
			continue
		}
		if why, ok := p.evicted(pod, false); ok {
			p.deletePod(ref, why)
			replaced[target] = "replacement for pod " + pod.Name + " evicted from node " + target
			continue
		}
		perNode[target] = append(perNode[target], daemonPod{
			ref:       ref,
			current:   pod.Labels[LabelControllerRevisionHash] == hash,
			ready:     kube.PodReady(pod),
			available: available(pod, minReady, p.now),
			bound:     pod.Spec.NodeName != "",
		})
	}
	for _, name := range slices.Sorted(maps.Keys(perNode)) {
		pods := perNode[name]
		slices.SortFunc(pods, func(a, b daemonPod) int { return bestDaemonPod(a, b) })
		n := nodes[name]
		for i := range pods {
			dp := &pods[i]
			switch {
			case dp.current && n.cur == nil:
				n.cur = dp
			case !dp.current && n.old == nil:
				n.old = dp
			default:
				p.deletePod(dp.ref, "more than one daemon pod on node "+name)
			}
		}
	}

	surge, unavail := daemonFenceposts(ds.Spec.UpdateStrategy, desiredCount)
	onDelete := ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType
	dec := daemonStep(order, onDelete, surge, unavail)

	oldHash := func(n *daemonNode) string { return n.old.ref.pod.Labels[LabelControllerRevisionHash] }
	for _, n := range dec.deleteOld {
		why := fmt.Sprintf("rolling update %s -> %s on node %s", oldHash(n), hash, n.name)
		switch {
		case n.cur != nil && n.cur.available:
			why += ": updated pod available"
		case !n.old.available:
			why += ": old pod not available"
		}
		p.deletePod(n.old.ref, why)
		replaced[n.name] = fmt.Sprintf("rolling update %s -> %s on node %s", oldHash(n), hash, n.name)
		n.old = nil
	}
	created := map[string]bool{}
	for _, n := range dec.create {
		reason := "node " + n.name + " runs daemonset " + dk
		switch {
		case replaced[n.name] != "":
			reason = replaced[n.name]
		case n.old != nil:
			reason = fmt.Sprintf("rolling update %s -> %s on node %s: surge", oldHash(n), hash, n.name)
		}
		pod := newDaemonPod(ds, &spec, hash, generation, n.name, p.daemonPodName(ds, hash, n.name))
		p.createPod(pod, "", reason)
		created[n.name] = true
	}
	for _, n := range dec.wait {
		// The node's pod starts once the old one has stopped; its room is
		// held until then, as the old pod still takes it.
		sp := scheduler.PodOf(key(ds.Namespace, ds.Name)+" (room held on "+n.name+")", "", ds.Namespace, ds.Spec.Template.Labels, &spec)
		sp.NodeName = n.name
		p.reserved = append(p.reserved, sp)
	}
	p.daemonSetStatus(ds, od, generation, order, created, minReady)
}

// bestDaemonPod orders a node's daemon pods best first: available, ready,
// bound, then oldest (Kubernetes keeps the oldest), then by name.
func bestDaemonPod(a, b daemonPod) int {
	rank := func(d daemonPod) int {
		switch {
		case d.available:
			return 0
		case d.ready:
			return 1
		case d.ref.pod.Spec.NodeName != "":
			return 2
		}
		return 3
	}
	return cmp.Or(cmp.Compare(rank(a), rank(b)),
		a.ref.pod.CreationTimestamp.Compare(b.ref.pod.CreationTimestamp.Time),
		cmp.Compare(a.ref.key, b.ref.key))
}

// whyNotEligible says what keeps a daemon pod of spec off node, for the
// reason of a deletion.
func whyNotEligible(spec *corev1.PodSpec, required nodeaffinity.RequiredNodeAffinity, node *corev1.Node) string {
	if spec.NodeName != "" && spec.NodeName != node.Name {
		return "spec.nodeName is " + spec.NodeName
	}
	if ok, _ := required.Match(node); !ok {
		return "node selector or affinity no longer matches"
	}
	for i := range node.Spec.Taints {
		t := &node.Spec.Taints[i]
		if t.Effect == corev1.TaintEffectNoExecute && !scheduler.Tolerates(spec.Tolerations, t) {
			return "taint " + taintString(t) + " not tolerated"
		}
	}
	return "not eligible"
}

// daemonPodName names a new pod of ds for node: "<ds>-<suffix>", the
// suffix derived from the namespace, the DaemonSet, the node and the
// template hash (so an updated pod surging beside the old one has another
// name); on a clash with a pod that exists, is being created or is still
// stopping, the next suffix of the same sequence.
func (p *planner) daemonPodName(ds *appsv1.DaemonSet, hash, node string) string {
	const maxName = 253
	base := ds.Name
	if room := maxName - suffixLen - 1; len(base) > room {
		base = strings.TrimRight(base[:room], "-.")
	}
	prefix := base + "-"
	seed := nameSeed(ds.Namespace, ds.Name, node, hash)
	for i := 0; ; i++ {
		name := prefix + nameSuffix(seed, i)
		if !p.nameTaken(ds.Namespace, name) {
			return name
		}
	}
}

// nameTaken says whether a pod named namespace/name exists, is being
// created by this plan, or is still being stopped by its node.
func (p *planner) nameTaken(namespace, name string) bool {
	k := key(namespace, name)
	if _, ok := p.changes[k]; ok {
		return true
	}
	if _, ok := slices.BinarySearchFunc(p.all, k, func(r podRef, k string) int { return cmp.Compare(r.key, k) }); ok {
		return true
	}
	for _, t := range p.observed.Terminating {
		if t.Namespace == namespace && t.Name == name {
			return true
		}
	}
	return false
}

func newDaemonPod(ds *appsv1.DaemonSet, spec *corev1.PodSpec, hash string, generation int64, node, name string) *corev1.Pod {
	t := &ds.Spec.Template
	labels := make(map[string]string, len(t.Labels)+2)
	maps.Copy(labels, t.Labels)
	labels[LabelControllerRevisionHash] = hash
	labels[LabelPodTemplateGeneration] = strconv.FormatInt(generation, 10)
	annotations := make(map[string]string, len(t.Annotations)+1)
	maps.Copy(annotations, t.Annotations)
	annotations[AnnotationOwner] = manifest.KindDaemonSet + "/" + key(ds.Namespace, ds.Name)
	controller, block := true, true
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   ds.Namespace,
			Labels:      labels,
			Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         "apps/v1",
				Kind:               manifest.KindDaemonSet,
				Name:               ds.Name,
				Controller:         &controller,
				BlockOwnerDeletion: &block,
			}},
		},
		Spec: *spec.DeepCopy(),
	}
	pinToNode(&pod.Spec, node)
	return pod
}

// daemonSetStatus puts the DaemonSet if its spec, metadata or status,
// computed from its pods as they will be after this plan, differ from the
// stored one. On each node the pod that counts is the one of the current
// template if there is one, else the older one: a node is ready, available
// and updated by it. It wakes the plan when a pod becomes available
// (minReadySeconds).
func (p *planner) daemonSetStatus(ds, od *appsv1.DaemonSet, generation int64, nodes []*daemonNode, created map[string]bool, minReady time.Duration) {
	var st appsv1.DaemonSetStatus
	for _, n := range nodes {
		var pod *corev1.Pod
		updated := created[n.name]
		switch {
		case updated:
		case n.cur != nil:
			pod, updated = n.cur.ref.pod, true
		case n.old != nil:
			pod = n.old.ref.pod
		}
		scheduled := pod != nil || updated
		if !n.run {
			if scheduled {
				st.NumberMisscheduled++
			}
			continue
		}
		st.DesiredNumberScheduled++
		if !scheduled {
			continue
		}
		st.CurrentNumberScheduled++
		if updated {
			st.UpdatedNumberScheduled++
		}
		if pod == nil {
			continue
		}
		if kube.PodReady(pod) {
			st.NumberReady++
		}
		if available(pod, minReady, p.now) {
			st.NumberAvailable++
		} else if at, ok := availableAt(pod, minReady, p.now); ok {
			p.wakeAt(at)
		}
	}
	// A pod kept beside the updated one is on its way out: it wakes the
	// plan too when it matters (the updated pod's availability above).
	st.NumberUnavailable = st.DesiredNumberScheduled - st.NumberAvailable
	st.ObservedGeneration = generation

	reason := "create"
	if od != nil {
		sameSpec := equality.Semantic.DeepEqual(ds.Spec, od.Spec)
		sameMeta := equality.Semantic.DeepEqual(ds.Labels, od.Labels) && equality.Semantic.DeepEqual(ds.Annotations, od.Annotations)
		switch {
		case !sameSpec:
			reason = "spec changed in Git"
		case !sameMeta:
			reason = "metadata changed"
		case generation != od.Generation || !equality.Semantic.DeepEqual(st, od.Status):
			reason = fmt.Sprintf("status: %d desired, %d current, %d ready, %d updated", st.DesiredNumberScheduled,
				st.CurrentNumberScheduled, st.NumberReady, st.UpdatedNumberScheduled)
		default:
			return
		}
	}
	out := ds.DeepCopy()
	if out.APIVersion == "" {
		out.APIVersion, out.Kind = "apps/v1", manifest.KindDaemonSet
	}
	if od != nil {
		keepStoreFields(&out.ObjectMeta, &od.ObjectMeta)
	}
	out.Generation = generation
	out.Status = st
	p.other = append(p.other, Action{Type: PutDaemonSet, DaemonSet: out, Reason: reason})
}

// DaemonSetRolloutStatus says where the rollout of a stored DaemonSet
// stands, as `kubectl rollout status daemonset` does: complete when the
// planner has seen the current spec and every node that should run it
// runs an updated, available pod. An OnDelete DaemonSet is complete when
// every such node runs an available pod, of any template: replacing old
// ones is left to whoever deletes them.
func DaemonSetRolloutStatus(ds *appsv1.DaemonSet) (complete bool, msg string) {
	st := &ds.Status
	switch {
	case ds.Generation > st.ObservedGeneration:
		return false, "Waiting for daemon set spec update to be observed..."
	case ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType && st.UpdatedNumberScheduled < st.DesiredNumberScheduled:
		return false, fmt.Sprintf("Waiting for daemon set %q rollout to finish: %d out of %d new pods have been updated...",
			ds.Name, st.UpdatedNumberScheduled, st.DesiredNumberScheduled)
	case st.NumberAvailable < st.DesiredNumberScheduled:
		return false, fmt.Sprintf("Waiting for daemon set %q rollout to finish: %d of %d updated pods are available...",
			ds.Name, st.NumberAvailable, st.DesiredNumberScheduled)
	}
	return true, fmt.Sprintf("daemon set %q successfully rolled out", ds.Name)
}

// daemonSetsDone is RevisionOutcome's verdict on the DaemonSets of a
// revision: each stored with the template and strategy Git asks for, and
// its rollout complete (DaemonSetRolloutStatus).
func daemonSetsDone(want, stored []appsv1.DaemonSet) bool {
	got := byName(stored)
	for i := range want {
		w := &want[i]
		g, ok := got[key(w.Namespace, w.Name)]
		if !ok || !equality.Semantic.DeepEqual(g.Spec, w.Spec) {
			return false
		}
		if complete, _ := DaemonSetRolloutStatus(g); !complete {
			return false
		}
	}
	return true
}
