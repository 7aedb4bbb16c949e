package reconciler

import (
	"cmp"
	"encoding/json"
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

	"bosun/kube"
	"bosun/manifest"
)

// StatefulSets, as Kubernetes' statefulset controller runs them:
//
//   - Pods are named <name>-<ordinal> for ordinals start..start+replicas-1
//     (spec.ordinals.start), with hostname = the pod's name and subdomain =
//     serviceName, so a headless Service of that name gives each ready pod
//     the DNS name <pod>.<service>.<ns>.svc.<domain>. They carry the labels
//     statefulset.kubernetes.io/pod-name, apps.kubernetes.io/pod-index and
//     controller-revision-hash (<name>-<template hash>).
//   - A pod that fails, finishes, is lost with its node or evicted is
//     deleted and created again under the same name once its node has torn
//     it down (Observed.Terminating): the new pod mounts the same claims,
//     so the scheduler puts it on the node that holds their data.
//   - OrderedReady: ordinal i is created only when every lower ordinal is
//     Running, Ready and available (minReadySeconds); scale down removes
//     the highest ordinal first, one at a time, only when all the others
//     are ready. Parallel: every pod is created and removed at once.
//   - A drain moves a pod (deleted, created again under its name) unless
//     its spec names the node or one of its claims is bound to the node; a
//     NoExecute taint evicts it unless its spec names the node.
//   - RollingUpdate: from the highest ordinal down to start+partition, one
//     pod at a time, each only once the pod above it runs the update
//     revision and is ready; ordinals below the partition keep the current
//     revision, and are created again with it if deleted. With
//     OrderedReady, pods that are not up and not on the update revision
//     (from the partition up) would block it for ever once Git reverts a
//     broken update: when nothing else blocks, the highest is replaced.
//     OnDelete: a pod gets the update revision only when it is deleted.
//   - A name held by a pod the StatefulSet does not own (a Pod from Git,
//     another controller's) is never created a second time: the ordinal
//     waits (OrderedReady: and those above it), and the status condition
//     PodNameTaken and a FailedCreate event say so.
//   - Claims: before a pod is created, each of its claims
//     <template>-<name>-<ordinal> missing from the store is put (owned by
//     the StatefulSet, bosun.dev/owner). With whenScaled: Delete the claims
//     of ordinals scaled away are deleted once their pods are gone; with
//     whenDeleted: Delete those of a StatefulSet removed from Git. A
//     claim's bosun.dev/reclaim-policy is Delete when either policy is, so
//     that deleting it deletes its data.
//   - A StatefulSet removed from Git deletes its pods, and its record goes
//     once they are gone (its retention policy is read from it).
//
// The template of the current revision, needed while a partitioned update
// is in progress, is kept on the stored StatefulSet in the annotation
// AnnotationCurrentTemplate, since bosun keeps no ControllerRevisions.

// The actions on StatefulSets.
const (
	PutStatefulSet    ActionType = "PutStatefulSet"
	DeleteStatefulSet ActionType = "DeleteStatefulSet"
)

// AnnotationCurrentTemplate on a stored StatefulSet holds, as JSON, the pod
// template of its current revision while it differs from the update
// revision's (the spec's).
const AnnotationCurrentTemplate = "bosun.dev/current-template"

// ConditionPodNameTaken on a StatefulSet's status says that pods of other
// owners hold names of its pods, which it therefore does not create.
const ConditionPodNameTaken appsv1.StatefulSetConditionType = "PodNameTaken"

// annotationReclaimPolicy on a claim says whether deleting it deletes its
// data: "Delete" or "Retain" (the default).
const annotationReclaimPolicy = "bosun.dev/reclaim-policy"

// stsSet is one desired StatefulSet with what the plan derives from it.
type stsSet struct {
	s        *appsv1.StatefulSet
	od       *appsv1.StatefulSet // as stored; nil when new
	owner    string              // "StatefulSet/<ns>/<name>"
	start    int
	replicas int
	// Revisions are "<name>-<template hash>"; the templates are theirs.
	updateRev, currentRev   string
	updateTmpl, currentTmpl *corev1.PodTemplateSpec
}

// statefulSets decides the pods, claims and records of every StatefulSet.
func (p *planner) statefulSets(desired []appsv1.StatefulSet) {
	owned := map[string][]podRef{}
	for _, ref := range p.all {
		if kind, name := kube.Controller(ref.pod); kind == "StatefulSet" {
			k := key(ref.pod.Namespace, name)
			owned[k] = append(owned[k], ref)
		}
	}
	// Names of deleted pods their (live) node still stops, by owner.
	stopping := map[string]map[string]bool{}
	for _, t := range p.observed.Terminating {
		if strings.HasPrefix(t.Owner, "StatefulSet/") && p.nodes[t.Node] {
			if stopping[t.Owner] == nil {
				stopping[t.Owner] = map[string]bool{}
			}
			stopping[t.Owner][t.Name] = true
		}
	}
	claims := byName(p.observed.Claims)
	stored := byName(p.observed.StatefulSets)
	want := make(map[string]bool, len(desired))
	for i := range desired {
		s := &desired[i]
		k := key(s.Namespace, s.Name)
		want[k] = true
		p.statefulSet(s, stored[k], owned[k], stopping["StatefulSet/"+k], claims)
	}
	for _, k := range slices.Sorted(maps.Keys(owned)) {
		if want[k] {
			continue
		}
		for _, ref := range owned[k] {
			p.deletePod(ref, "pruned: statefulset "+k+" removed from Git")
		}
	}
	var pruned []Action
	for _, k := range slices.Sorted(maps.Keys(stored)) {
		od := stored[k]
		if want[k] || len(owned[k]) > 0 || len(stopping["StatefulSet/"+k]) > 0 {
			continue // the record stays until its pods are gone
		}
		if rp := od.Spec.PersistentVolumeClaimRetentionPolicy; rp != nil && rp.WhenDeleted == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
			for _, c := range ownedClaims(od, claims) {
				p.last = append(p.last, Action{Type: DeleteClaim, Namespace: c.Namespace, Name: c.Name,
					Reason: "statefulset " + k + " removed from Git (whenDeleted: Delete)"})
			}
		}
		pruned = append(pruned, Action{Type: DeleteStatefulSet, Namespace: od.Namespace, Name: od.Name, Reason: "pruned: removed from Git"})
	}
	p.other = append(p.other, pruned...)
}

// ownedClaims are the stored claims of s's claim templates, sorted by name.
func ownedClaims(s *appsv1.StatefulSet, claims map[string]*corev1.PersistentVolumeClaim) []*corev1.PersistentVolumeClaim {
	owner := "StatefulSet/" + key(s.Namespace, s.Name)
	var out []*corev1.PersistentVolumeClaim
	for _, k := range slices.Sorted(maps.Keys(claims)) {
		c := claims[k]
		if c.Namespace == s.Namespace && c.Annotations[AnnotationOwner] == owner {
			out = append(out, c)
		}
	}
	return out
}

// StatefulSetRevision names the revision of a StatefulSet's template, as
// its pods' controller-revision-hash label and its status say it.
func StatefulSetRevision(s *appsv1.StatefulSet, tmpl *corev1.PodTemplateSpec) string {
	return s.Name + "-" + manifest.TemplateHash(tmpl)
}

func statefulSetReplicas(s *appsv1.StatefulSet) int {
	if s.Spec.Replicas == nil {
		return 1
	}
	return max(int(*s.Spec.Replicas), 0)
}

func statefulSetStart(s *appsv1.StatefulSet) int {
	if s.Spec.Ordinals == nil {
		return 0
	}
	return max(int(s.Spec.Ordinals.Start), 0)
}

// revisions finds the current and update revisions and their templates.
// The current one is the stored status's; its template is the stored
// spec's while Git has not changed it, then the one kept in
// AnnotationCurrentTemplate. One that cannot be found any more makes the
// update revision current.
func (ss *stsSet) revisions() {
	ss.updateTmpl = &ss.s.Spec.Template
	ss.updateRev = StatefulSetRevision(ss.s, ss.updateTmpl)
	ss.currentRev, ss.currentTmpl = ss.updateRev, ss.updateTmpl
	od := ss.od
	if od == nil || od.Status.CurrentRevision == "" || od.Status.CurrentRevision == ss.updateRev {
		return
	}
	if StatefulSetRevision(od, &od.Spec.Template) == od.Status.CurrentRevision {
		ss.currentRev, ss.currentTmpl = od.Status.CurrentRevision, &od.Spec.Template
		return
	}
	if raw, ok := od.Annotations[AnnotationCurrentTemplate]; ok {
		var t corev1.PodTemplateSpec
		if json.Unmarshal([]byte(raw), &t) == nil && StatefulSetRevision(od, &t) == od.Status.CurrentRevision {
			ss.currentRev, ss.currentTmpl = od.Status.CurrentRevision, &t
		}
	}
}

func podRevision(pod *corev1.Pod) string { return pod.Labels[appsv1.ControllerRevisionHashLabelKey] }

// stsOrdinal reads the ordinal from a pod name "<name>-<ordinal>".
func stsOrdinal(s *appsv1.StatefulSet, podName string) (int, bool) {
	rest, ok := strings.CutPrefix(podName, s.Name+"-")
	if !ok || rest == "" || (len(rest) > 1 && rest[0] == '0') {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n >= 0
}

// claimOrdinal reads the ordinal from a claim "<template>-<name>-<ordinal>"
// of s, whatever its template: a claim template removed from the
// StatefulSet (it can only be, by removing the StatefulSet and adding it
// back) leaves claims that the retention policy still covers.
func claimOrdinal(s *appsv1.StatefulSet, claim string) (int, bool) {
	i := strings.LastIndex(claim, "-"+s.Name+"-")
	if i <= 0 {
		return 0, false
	}
	return stsOrdinal(s, claim[i+1:])
}

// ClaimName names the claim of a StatefulSet's pod from one of its claim
// templates, as Kubernetes does: <template>-<statefulset>-<ordinal>.
func ClaimName(template, statefulSet string, ordinal int) string {
	return template + "-" + statefulSet + "-" + strconv.Itoa(ordinal)
}

// healthy says a pod counts as up for ordering and updates: bound,
// Running, Ready and available for minReadySeconds.
func stsHealthy(pod *corev1.Pod, minReady time.Duration, now time.Time) bool {
	return pod.Status.Phase == corev1.PodRunning && available(pod, minReady, now)
}

// statefulSet decides the actions of one StatefulSet from its observed
// pods (refs) and the names of its pods still stopping.
func (p *planner) statefulSet(s *appsv1.StatefulSet, od *appsv1.StatefulSet, refs []podRef, stopping map[string]bool, claims map[string]*corev1.PersistentVolumeClaim) {
	ss := &stsSet{s: s, od: od, owner: "StatefulSet/" + key(s.Namespace, s.Name),
		start: statefulSetStart(s), replicas: statefulSetReplicas(s)}
	ss.revisions()
	monotonic := s.Spec.PodManagementPolicy != appsv1.ParallelPodManagement
	minReady := time.Duration(s.Spec.MinReadySeconds) * time.Second
	pinned := s.Spec.Template.Spec.NodeName != ""
	end := ss.start + ss.replicas

	slots := make(map[int]podRef, len(refs))
	var condemned []podRef // out of range or not a name of ours: highest ordinal first
	for _, ref := range refs {
		if n, ok := stsOrdinal(s, ref.pod.Name); ok && n >= ss.start && n < end {
			slots[n] = ref
		} else {
			condemned = append(condemned, ref)
		}
	}
	slices.SortFunc(condemned, func(a, b podRef) int {
		na, oka := stsOrdinal(s, a.pod.Name)
		nb, okb := stsOrdinal(s, b.pod.Name)
		if !oka {
			na = -1
		}
		if !okb {
			nb = -1
		}
		return -cmp.Compare(na, nb)
	})

	rolling := s.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType
	var kept []*corev1.Pod
	var created []*corev1.Pod
	var taken []string // ordinals whose name another pod holds
	blocked := false   // OrderedReady: a lower ordinal is not up yet
	// broken are the ordinals, from the partition up, of pods that block
	// only because they are unhealthy on a revision that is not the update
	// revision (a broken update, reverted in Git): the repair below may
	// replace them. waiting: something else blocks too.
	var broken []int
	waiting := false
	for n := ss.start; n < end; n++ {
		name := s.Name + "-" + strconv.Itoa(n)
		if ref, ok := slots[n]; ok {
			why := ""
			switch pod := ref.pod; {
			case kube.PodFinished(pod):
				why = "replace " + strings.ToLower(string(pod.Status.Phase)) + " pod"
			case p.lost(pod, pinned):
				why = "node " + pod.Spec.NodeName + " lost"
			default:
				why = p.stsEvicted(pod, pinned, claims)
			}
			if why == "" {
				kept = append(kept, ref.pod)
				p.ensureClaims(s, n, claims, "for pod "+name)
				if monotonic && !stsHealthy(ref.pod, minReady, p.now) {
					blocked = true
					if rolling && n-ss.start >= partition(s) && podRevision(ref.pod) != ss.updateRev {
						broken = append(broken, n)
					} else {
						waiting = true
					}
				}
				continue
			}
			p.deletePod(ref, why+" (created again under its name once stopped)")
			stopping = withName(stopping, name)
		}
		if holder := p.nameHolder(s, name); holder != "" {
			// Another pod has the name: creating ours would make two pods
			// of one name. Said in the status; the ordinal waits.
			taken = append(taken, name+" ("+holder+")")
			blocked, waiting = blocked || monotonic, true
			continue
		}
		switch {
		case blocked:
			// OrderedReady: created once the ordinals below are up.
		case stopping[name]:
			// Created again once its node has stopped it: the new pod takes
			// its name, and its claims.
			blocked, waiting = monotonic, true
		default:
			tmpl, rev := ss.updateTmpl, ss.updateRev
			if rolling && n-ss.start < partition(s) {
				tmpl, rev = ss.currentTmpl, ss.currentRev
			}
			pod := newStatefulSetPod(s, tmpl, rev, n)
			p.ensureClaims(s, n, claims, "for pod "+name)
			p.createPod(pod, "", "create ordinal "+strconv.Itoa(n))
			created = append(created, pod)
			blocked, waiting = monotonic, true
		}
	}

	// Scale down: highest ordinal first; OrderedReady one at a time, and
	// only while every pod that stays is up.
	condemnedStopping := false
	for name := range stopping {
		if n, ok := stsOrdinal(s, name); !ok || n < ss.start || n >= end {
			condemnedStopping = true
		}
	}
	scaledDown := false
	for _, ref := range condemned {
		if monotonic && (blocked || condemnedStopping || scaledDown) {
			kept = append(kept, ref.pod)
			continue
		}
		p.deletePod(ref, fmt.Sprintf("scale down to %d replicas", ss.replicas))
		scaledDown = true
	}

	// Rolling update: from the highest ordinal down to the partition, one
	// pod at a time.
	replace := func(ref podRef, why string) {
		p.deletePod(ref, fmt.Sprintf("%s %s -> %s (created again under its name once stopped)", why, podRevision(ref.pod), ss.updateRev))
		kept = slices.DeleteFunc(kept, func(q *corev1.Pod) bool { return q == ref.pod })
	}
	switch {
	case !rolling || monotonic && (scaledDown || condemnedStopping):
	case !monotonic || !blocked:
		for n := end - 1; n >= ss.start+partition(s); n-- {
			ref, ok := slots[n]
			if !ok || p.deletes[ref.key].Type != "" {
				break // created, or being created again: wait for it
			}
			if podRevision(ref.pod) != ss.updateRev {
				replace(ref, "rolling update")
				break
			}
			if !stsHealthy(ref.pod, minReady, p.now) {
				break
			}
		}
	case !waiting && len(broken) > 0:
		// OrderedReady, held only by pods that are not up on a revision
		// Git no longer wants (a broken update, reverted): waiting for them
		// would wait for ever, so the highest is replaced, as kubectl
		// delete pod would.
		replace(slots[broken[len(broken)-1]], "rolling update: replace unhealthy pod")
	}

	p.claimRetention(s, slots, stopping, claims)
	p.statefulSetStatus(ss, kept, created, minReady, taken)
}

// nameHolder describes the pod other than s's own that holds the name of
// one of s's pods, in the store or created by this plan; "" when none.
func (p *planner) nameHolder(s *appsv1.StatefulSet, name string) string {
	k := key(s.Namespace, name)
	ours := func(pod *corev1.Pod) bool {
		kind, owner := kube.Controller(pod)
		return kind == "StatefulSet" && owner == s.Name
	}
	if c := p.changes[k]; c != nil && !ours(c.pod) {
		return holderOf(c.pod)
	}
	if i, ok := slices.BinarySearchFunc(p.all, k, func(r podRef, k string) int { return cmp.Compare(r.key, k) }); ok && !ours(p.all[i].pod) {
		return holderOf(p.all[i].pod)
	}
	return ""
}

func holderOf(pod *corev1.Pod) string {
	if owner := kube.OwnerOf(pod); owner != "" {
		return "taken by a pod of " + owner
	}
	return "taken by pod " + key(pod.Namespace, pod.Name) + " from Git"
}

// stsEvicted says why a pod of a StatefulSet leaves its node now, or "":
// a NoExecute taint it does not tolerate, or a drain of its node. A drain
// leaves pods whose spec names the node, and pods whose claims are bound to
// the node (their data is there: elsewhere they could not start).
func (p *planner) stsEvicted(pod *corev1.Pod, pinned bool, claims map[string]*corev1.PersistentVolumeClaim) string {
	if why, ok := p.evicted(pod, pinned); ok {
		return why
	}
	if claimPinned(pod, claims) {
		return ""
	}
	why, _ := p.drainedNow(pod, pinned, false)
	return why
}

// stsDrainWait says why a drain leaves a StatefulSet's pod whose claim is
// bound to its node (DrainStatus).
func stsDrainWait(pod *corev1.Pod) string {
	return fmt.Sprintf("pod %s/%s of %s stays: its claim's data is on this node",
		pod.Namespace, pod.Name, strings.ToLower(kube.OwnerOf(pod)))
}

// claimPinned says whether one of pod's claims is bound to its node.
func claimPinned(pod *corev1.Pod, claims map[string]*corev1.PersistentVolumeClaim) bool {
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim == nil {
			continue
		}
		if c := claims[key(pod.Namespace, v.PersistentVolumeClaim.ClaimName)]; c != nil && pod.Spec.NodeName != "" && kube.ClaimNode(c) == pod.Spec.NodeName {
			return true
		}
	}
	return false
}

// withName adds name to set, copying a shared set first.
func withName(set map[string]bool, name string) map[string]bool {
	out := make(map[string]bool, len(set)+1)
	maps.Copy(out, set)
	out[name] = true
	return out
}

func partition(s *appsv1.StatefulSet) int {
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		return max(int(*ru.Partition), 0)
	}
	return 0
}

// reclaimPolicy is what the claims of s say about their data.
func reclaimPolicy(s *appsv1.StatefulSet) string {
	if rp := s.Spec.PersistentVolumeClaimRetentionPolicy; rp != nil &&
		(rp.WhenDeleted == appsv1.DeletePersistentVolumeClaimRetentionPolicyType || rp.WhenScaled == appsv1.DeletePersistentVolumeClaimRetentionPolicyType) {
		return "Delete"
	}
	return "Retain"
}

// ensureClaims puts the claims of ordinal n that the store lacks, before
// the pod that mounts them, and keeps the reclaim policy of those it has.
func (p *planner) ensureClaims(s *appsv1.StatefulSet, n int, claims map[string]*corev1.PersistentVolumeClaim, why string) {
	policy := reclaimPolicy(s)
	owner := "StatefulSet/" + key(s.Namespace, s.Name)
	for i := range s.Spec.VolumeClaimTemplates {
		ct := &s.Spec.VolumeClaimTemplates[i]
		name := ClaimName(ct.Name, s.Name, n)
		got := claims[key(s.Namespace, name)]
		switch {
		case got == nil:
			p.first = append(p.first, Action{Type: PutClaim, Claim: newStatefulSetClaim(s, ct, name, policy), Reason: "create " + why})
		case got.Annotations[AnnotationOwner] == owner && got.Annotations[annotationReclaimPolicy] != policy:
			c := got.DeepCopy()
			c.Annotations = maps.Clone(c.Annotations)
			c.Annotations[annotationReclaimPolicy] = policy
			p.first = append(p.first, Action{Type: PutClaim, Claim: c, Reason: "reclaim policy " + policy + " (persistentVolumeClaimRetentionPolicy)"})
		}
	}
}

func newStatefulSetClaim(s *appsv1.StatefulSet, ct *corev1.PersistentVolumeClaim, name, policy string) *corev1.PersistentVolumeClaim {
	labels := maps.Clone(ct.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	if s.Spec.Selector != nil {
		maps.Copy(labels, s.Spec.Selector.MatchLabels)
	}
	annotations := maps.Clone(ct.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[AnnotationOwner] = "StatefulSet/" + key(s.Namespace, s.Name)
	annotations[annotationReclaimPolicy] = policy
	spec := ct.Spec.DeepCopy()
	if spec.StorageClassName == nil || *spec.StorageClassName == "" {
		sc := manifest.StorageClassLocalPath
		spec.StorageClassName = &sc
	}
	return &corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.Namespace, Labels: labels, Annotations: annotations},
		Spec:       *spec,
	}
}

// claimRetention deletes, with whenScaled: Delete, the claims of ordinals
// scaled away whose pods are gone.
func (p *planner) claimRetention(s *appsv1.StatefulSet, slots map[int]podRef, stopping map[string]bool, claims map[string]*corev1.PersistentVolumeClaim) {
	rp := s.Spec.PersistentVolumeClaimRetentionPolicy
	if rp == nil || rp.WhenScaled != appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
		return
	}
	start, end := statefulSetStart(s), statefulSetStart(s)+statefulSetReplicas(s)
	present := map[int]bool{}
	for name := range stopping {
		if n, ok := stsOrdinal(s, name); ok {
			present[n] = true
		}
	}
	for _, ref := range p.all {
		if kind, name := kube.Controller(ref.pod); kind == "StatefulSet" && name == s.Name && ref.pod.Namespace == s.Namespace {
			if n, ok := stsOrdinal(s, ref.pod.Name); ok {
				present[n] = true
			}
		}
	}
	for _, c := range ownedClaims(s, claims) {
		n, ok := claimOrdinal(s, c.Name)
		if !ok || (n >= start && n < end) || present[n] {
			continue
		}
		p.last = append(p.last, Action{Type: DeleteClaim, Namespace: c.Namespace, Name: c.Name,
			Reason: fmt.Sprintf("scaled down to %d replicas (whenScaled: Delete)", statefulSetReplicas(s))})
	}
}

// newStatefulSetPod is ordinal n of s, from the template of revision rev.
func newStatefulSetPod(s *appsv1.StatefulSet, tmpl *corev1.PodTemplateSpec, rev string, n int) *corev1.Pod {
	t := tmpl.DeepCopy()
	name := s.Name + "-" + strconv.Itoa(n)
	labels := make(map[string]string, len(t.Labels)+3)
	maps.Copy(labels, t.Labels)
	labels[appsv1.StatefulSetPodNameLabel] = name
	labels[appsv1.PodIndexLabel] = strconv.Itoa(n)
	labels[appsv1.ControllerRevisionHashLabelKey] = rev
	annotations := make(map[string]string, len(t.Annotations)+1)
	maps.Copy(annotations, t.Annotations)
	annotations[AnnotationOwner] = "StatefulSet/" + key(s.Namespace, s.Name)
	spec := t.Spec
	spec.Hostname = name
	spec.Subdomain = s.Spec.ServiceName
	for i := range s.Spec.VolumeClaimTemplates {
		ct := &s.Spec.VolumeClaimTemplates[i]
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: ct.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: ClaimName(ct.Name, s.Name, n)}}})
	}
	controller := true
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   s.Namespace,
			Labels:      labels,
			Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1",
				Kind:       "StatefulSet",
				Name:       s.Name,
				Controller: &controller,
			}},
		},
		Spec: spec,
	}
}

// statefulSetStatus puts the StatefulSet when its spec, metadata or
// status, counted over the pods as this plan leaves them, differ from the
// store's. The update revision becomes current once every pod runs it and
// is ready, as Kubernetes' completeRollingUpdate does.
func (p *planner) statefulSetStatus(ss *stsSet, kept, created []*corev1.Pod, minReady time.Duration, taken []string) {
	s, od := ss.s, ss.od
	st := appsv1.StatefulSetStatus{CurrentRevision: ss.currentRev, UpdateRevision: ss.updateRev}
	if len(taken) > 0 {
		c := appsv1.StatefulSetCondition{Type: ConditionPodNameTaken, Status: corev1.ConditionTrue, Reason: "FailedCreate",
			Message:            "pod names held by pods the StatefulSet does not own, not created: " + strings.Join(taken, ", "),
			LastTransitionTime: stamp(p.now)}
		var was *appsv1.StatefulSetCondition
		if od != nil {
			if i := slices.IndexFunc(od.Status.Conditions, func(c appsv1.StatefulSetCondition) bool { return c.Type == ConditionPodNameTaken }); i >= 0 {
				was = &od.Status.Conditions[i]
			}
		}
		if was != nil {
			c.LastTransitionTime = was.LastTransitionTime
		}
		if was == nil || was.Message != c.Message {
			p.events = append(p.events, Event{Kind: "StatefulSet", Namespace: s.Namespace, Name: s.Name, Reason: c.Reason, Message: c.Message, Count: 1})
		}
		st.Conditions = []appsv1.StatefulSetCondition{c}
	}
	for _, pod := range kept {
		st.Replicas++
		if kube.PodReady(pod) {
			st.ReadyReplicas++
		}
		if available(pod, minReady, p.now) {
			st.AvailableReplicas++
		} else if at, ok := availableAt(pod, minReady, p.now); ok {
			p.wakeAt(at)
		}
		switch podRevision(pod) {
		case ss.currentRev:
			st.CurrentReplicas++
			if ss.currentRev == ss.updateRev {
				st.UpdatedReplicas++
			}
		case ss.updateRev:
			st.UpdatedReplicas++
		}
	}
	for _, pod := range created {
		st.Replicas++
		if podRevision(pod) == ss.currentRev {
			st.CurrentReplicas++
		}
		if podRevision(pod) == ss.updateRev {
			st.UpdatedReplicas++
		}
	}
	if st.CurrentRevision != st.UpdateRevision && int(st.UpdatedReplicas) == ss.replicas &&
		st.Replicas == st.UpdatedReplicas && st.ReadyReplicas == st.Replicas {
		st.CurrentRevision, st.CurrentReplicas = st.UpdateRevision, st.UpdatedReplicas
	}

	var generation int64 = 1
	reason := "create"
	annotations := maps.Clone(s.Annotations)
	if st.CurrentRevision != st.UpdateRevision {
		if annotations == nil {
			annotations = map[string]string{}
		}
		raw, _ := json.Marshal(ss.currentTmpl) // API types always encode
		annotations[AnnotationCurrentTemplate] = string(raw)
	}
	if od != nil {
		generation = max(od.Generation, 1)
		sameSpec := equality.Semantic.DeepEqual(s.Spec, od.Spec)
		if !sameSpec {
			generation = od.Generation + 1
		}
		st.ObservedGeneration = generation
		switch {
		case !sameSpec:
			reason = "spec changed in Git"
		case !equality.Semantic.DeepEqual(s.Labels, od.Labels) || !equality.Semantic.DeepEqual(annotations, od.Annotations) || od.CreationTimestamp.IsZero():
			reason = "metadata changed"
		case generation != od.Generation || !equality.Semantic.DeepEqual(st, od.Status):
			reason = fmt.Sprintf("status: %d replicas, %d updated, %d ready", st.Replicas, st.UpdatedReplicas, st.ReadyReplicas)
		default:
			return
		}
	}
	st.ObservedGeneration = generation
	out := s.DeepCopy()
	if out.APIVersion == "" {
		out.APIVersion, out.Kind = "apps/v1", "StatefulSet"
	}
	if od != nil {
		keepStoreFields(&out.ObjectMeta, &od.ObjectMeta)
	}
	if out.CreationTimestamp.IsZero() {
		out.CreationTimestamp = stamp(p.now) // first stored (or stored before bosun kept it)
	}
	out.Annotations = annotations
	out.Generation = generation
	out.Status = st
	p.other = append(p.other, Action{Type: PutStatefulSet, StatefulSet: out, Reason: reason})
}

// StatefulSetStatus says whether a stored StatefulSet runs its spec, as
// kubectl rollout status judges it: its spec observed, every replica
// created, ready and available, and, with RollingUpdate, every ordinal from
// the partition up on the update revision. msg says what it waits for.
func StatefulSetStatus(s *appsv1.StatefulSet) (done bool, msg string) {
	st := &s.Status
	want := int32(statefulSetReplicas(s))
	var updated int32
	if s.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType {
		updated = want - min(int32(partition(s)), want)
	}
	switch {
	case st.ObservedGeneration < s.Generation:
		return false, "waiting for the spec to be observed"
	case st.Replicas != want:
		return false, fmt.Sprintf("%d of %d pods", st.Replicas, want)
	case st.UpdatedReplicas < updated:
		return false, fmt.Sprintf("%d of %d pods updated", st.UpdatedReplicas, updated)
	case st.ReadyReplicas < want || st.AvailableReplicas < want:
		return false, fmt.Sprintf("%d of %d pods ready", st.ReadyReplicas, want)
	}
	return true, ""
}

// statefulSetsDone says whether every StatefulSet of set is stored as
// written and runs it (StatefulSetStatus): RevisionOutcome's part.
func statefulSetsDone(set *manifest.Set, observed Observed) bool {
	stored := byName(observed.StatefulSets)
	for i := range set.StatefulSets {
		want := &set.StatefulSets[i]
		got, ok := stored[key(want.Namespace, want.Name)]
		if !ok || !equality.Semantic.DeepEqual(got.Spec, want.Spec) {
			return false // the planner has not written this revision's spec yet
		}
		if done, _ := StatefulSetStatus(got); !done {
			return false
		}
	}
	return true
}
