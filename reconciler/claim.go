package reconciler

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"bosun/kube"
	"bosun/scheduler"
)

// The actions on PersistentVolumeClaims.
const (
	PutClaim    ActionType = "PutClaim"
	DeleteClaim ActionType = "DeleteClaim"
)

// Volume is a node's record of a local volume it holds (the agent writes
// it: store.VolumeRecord), as the planner reads it.
type Volume struct {
	Node, Namespace, Claim string
	// VolumeName is the name of the volume, "pvc-<uid of the claim it was
	// made for>"; it names its directory on the node.
	VolumeName string
	// Size is the storage its claim requested, in bytes.
	Size int64
	// Released: its claim is gone and said Retain; a claim of the same
	// namespace and name is bound to it again.
	Released bool
	// ReclaimDelete: its claim said Delete, so it is never bound again.
	ReclaimDelete bool
}

// claims stores the claims written in Git (those without
// AnnotationOwner) and prunes those removed from it; claims a StatefulSet
// makes are its own and left alone here. A new claim whose namespace and
// name match a volume a node retained is bound to that volume at once:
// its data is there. Every claim's phase follows its node: Lost while the
// node holding its volume is not registered, Bound again when it is.
//
// Binding a Pending claim happens with its first pod (bindClaims, from
// bind): the scheduler places the pod where the claim fits
// (claimsOf/volumesUsed) and the same plan writes the claim bound there.
func (p *planner) claims(desired []corev1.PersistentVolumeClaim) {
	p.claimIndex = make(map[string]*corev1.PersistentVolumeClaim, len(p.observed.Claims)+len(desired))
	for i := range p.observed.Claims {
		c := &p.observed.Claims[i]
		p.claimIndex[key(c.Namespace, c.Name)] = c
	}
	// A new claim binds to a volume kept for a claim of its name: one no
	// claim holds (released, or not marked so by its node yet) and whose
	// claim did not say Delete. The first, in node order, if several.
	held := map[string]bool{}
	for _, c := range p.claimIndex {
		if c.Spec.VolumeName != "" {
			held[c.Spec.VolumeName] = true
		}
	}
	retained := map[string]*Volume{}
	for i := range p.observed.Volumes {
		v := &p.observed.Volumes[i]
		if k := key(v.Namespace, v.Claim); !v.ReclaimDelete && !held[v.VolumeName] && retained[k] == nil {
			retained[k] = v
		}
	}
	want := make(map[string]bool, len(desired))
	for i := range desired {
		d := &desired[i]
		k := key(d.Namespace, d.Name)
		want[k] = true
		o := p.claimIndex[k]
		out := d.DeepCopy()
		out.APIVersion, out.Kind = "v1", "PersistentVolumeClaim"
		reason := "create"
		if o != nil {
			if equality.Semantic.DeepEqual(d.Spec, specFromGit(o)) && equality.Semantic.DeepEqual(d.Labels, o.Labels) &&
				equality.Semantic.DeepEqual(d.Annotations, annotationsFromGit(o)) {
				continue
			}
			reason = "changed in Git"
			keepStoreFields(&out.ObjectMeta, &o.ObjectMeta)
			// The binding is the cluster's, not Git's.
			out.Spec.VolumeName = o.Spec.VolumeName
			if node, ok := o.Annotations[kube.AnnotationSelectedNode]; ok {
				out.Annotations = withAnnotation(out.Annotations, kube.AnnotationSelectedNode, node)
			}
			out.Status = *o.Status.DeepCopy()
		} else {
			out.UID = p.claimUID(out)
			out.CreationTimestamp = metav1.NewTime(p.now)
			out.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}
			if v := retained[k]; v != nil {
				bindClaim(out, v.Node, v.VolumeName)
				reason = "create: bound to the volume node " + v.Node + " retained"
			}
		}
		p.putClaim(out, reason)
	}
	var pruned []Action
	for k, o := range p.claimIndex {
		if want[k] || o.Annotations[AnnotationOwner] != "" {
			continue
		}
		what := "its data stays on node " + kube.ClaimNode(o)
		switch {
		case kube.ClaimNode(o) == "":
			what = "it held no data"
		case kube.ReclaimDelete(o):
			what = "reclaim policy Delete: node " + kube.ClaimNode(o) + " deletes its data"
		}
		pruned = append(pruned, Action{Type: DeleteClaim, Namespace: o.Namespace, Name: o.Name, Reason: "pruned: removed from Git (" + what + ")"})
	}
	slices.SortFunc(pruned, byDeleteKey)
	for _, a := range pruned {
		delete(p.claimIndex, key(a.Namespace, a.Name))
	}
	p.last = append(p.last, pruned...)
	p.claimPhases()
}

// claimPhases marks bound claims Lost while their node is not registered
// (its data is there, out of reach) and Bound again once it is.
func (p *planner) claimPhases() {
	for _, k := range slices.Sorted(maps.Keys(p.claimIndex)) {
		c := p.claimIndex[k]
		node := kube.ClaimNode(c)
		if node == "" {
			continue
		}
		phase := corev1.ClaimBound
		if !p.nodes[node] {
			phase = corev1.ClaimLost
		}
		if c.Status.Phase == phase {
			continue
		}
		out := c.DeepCopy()
		out.Status.Phase = phase
		reason := "node " + node + " is back: bound"
		if phase == corev1.ClaimLost {
			reason = "node " + node + " holding its volume is gone: lost"
		}
		p.putClaim(out, reason)
	}
}

// specFromGit is a stored claim's spec without what binding added.
func specFromGit(c *corev1.PersistentVolumeClaim) corev1.PersistentVolumeClaimSpec {
	s := c.Spec
	s.VolumeName = ""
	return s
}

// annotationsFromGit are a stored claim's annotations without those
// binding added.
func annotationsFromGit(c *corev1.PersistentVolumeClaim) map[string]string {
	if _, ok := c.Annotations[kube.AnnotationSelectedNode]; !ok {
		return c.Annotations
	}
	out := maps.Clone(c.Annotations)
	delete(out, kube.AnnotationSelectedNode)
	if len(out) == 0 {
		return nil
	}
	return out
}

func withAnnotation(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	maps.Copy(out, m)
	out[k] = v
	return out
}

// bindClaim binds c to the volume volumeName on node, as Kubernetes'
// binder records it.
func bindClaim(c *corev1.PersistentVolumeClaim, node, volumeName string) {
	c.Spec.VolumeName = volumeName
	c.Annotations = withAnnotation(c.Annotations, kube.AnnotationSelectedNode, node)
	c.Status.Phase = corev1.ClaimBound
	c.Status.AccessModes = slices.Clone(c.Spec.AccessModes)
	if q, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
		c.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: q.DeepCopy()}
	} else {
		c.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.Quantity{}}
	}
}

// claimUID gives a new claim its identity (it names its volume), derived
// from its name and the plan's time like a pod's (uid).
func (p *planner) claimUID(c *corev1.PersistentVolumeClaim) types.UID {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(p.now.UnixNano()))
	h := sha256.New()
	h.Write([]byte("PersistentVolumeClaim\x00" + c.Namespace + "\x00" + c.Name + "\x00"))
	h.Write(buf[:])
	b := h.Sum(nil)
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}

// putClaim writes c in p.first, in place of every earlier put of the same
// claim in this plan (a StatefulSet's new claim bound with its pod is one
// put, with both reasons): c is the claim as the plan leaves it.
func (p *planner) putClaim(c *corev1.PersistentVolumeClaim, reason string) {
	k := key(c.Namespace, c.Name)
	if p.claimIndex != nil {
		p.claimIndex[k] = c
	}
	var reasons []string
	p.first = slices.DeleteFunc(p.first, func(a Action) bool {
		if a.Type == PutClaim && a.Claim != nil && key(a.Claim.Namespace, a.Claim.Name) == k {
			reasons = append(reasons, a.Reason)
			return true
		}
		return false
	})
	if !slices.Contains(reasons, reason) {
		reasons = append(reasons, reason)
	}
	p.first = append(p.first, Action{Type: PutClaim, Claim: c, Reason: strings.Join(reasons, "; ")})
}

// claimsSoFar is every claim as it will be once this plan is applied:
// those stored and put by p.claims, plus those other controllers (a
// StatefulSet's volumeClaimTemplates) put in p.first, less those deleted.
func (p *planner) claimsSoFar() map[string]*corev1.PersistentVolumeClaim {
	if p.claimIndex == nil {
		p.claimIndex = map[string]*corev1.PersistentVolumeClaim{}
	}
	for _, a := range p.first {
		if a.Type == PutClaim && a.Claim != nil {
			p.claimIndex[key(a.Claim.Namespace, a.Claim.Name)] = a.Claim
		}
	}
	for _, a := range p.last {
		if a.Type == DeleteClaim {
			delete(p.claimIndex, key(a.Namespace, a.Name))
		}
	}
	return p.claimIndex
}

// withoutMissingClaims returns the pending pods whose claims all exist;
// the others stay Pending, saying which claim is missing, as Kubernetes
// says it.
func (p *planner) withoutMissingClaims(pending []*change) []*change {
	claims := p.claimsSoFar()
	out := pending[:0:0]
	for _, c := range pending {
		var missing string
		for _, n := range kube.ClaimNames(&c.pod.Spec) {
			if claims[key(c.pod.Namespace, n)] == nil {
				missing = n
				break
			}
		}
		if missing != "" {
			p.unschedulable(c, fmt.Sprintf("persistentvolumeclaim %q not found", missing))
			continue
		}
		out = append(out, c)
	}
	return out
}

// withClaims adds to each scheduler pod the claims its pod uses, and how
// many pods deleted in this plan still use each (a ReadWriteOncePod
// claim's next pod waits for them: the node refuses it while another pod
// has the volume mounted, terminating ones included).
func (p *planner) withClaims(pods []scheduler.Pod, specs []*corev1.Pod) {
	claims := p.claimsSoFar()
	stopping := map[string]int{}
	for _, ref := range p.all {
		if _, gone := p.deletes[ref.key]; !gone || ref.pod.Spec.NodeName == "" || kube.PodFinished(ref.pod) {
			continue
		}
		for _, n := range kube.ClaimNames(&ref.pod.Spec) {
			stopping[key(ref.pod.Namespace, n)]++
		}
	}
	for i, pod := range specs {
		names := kube.ClaimNames(&pod.Spec)
		if len(names) == 0 {
			continue
		}
		cs := make([]scheduler.Claim, 0, len(names))
		for _, n := range names {
			k := key(pod.Namespace, n)
			c := claims[k]
			if c == nil {
				continue
			}
			cs = append(cs, scheduler.Claim{Key: k, Node: kube.ClaimNode(c), Request: kube.ClaimRequest(c), OncePod: kube.ReadWriteOncePod(c),
				Stopping: stopping[k]})
		}
		pods[i].Claims = cs
	}
}

// withVolumesUsed sets each node's volume use: the requests of the claims
// bound to it, and the sizes of the volumes it retained for claims that
// are gone.
func (p *planner) withVolumesUsed(nodes []scheduler.Node) {
	claims := p.claimsSoFar()
	if len(claims) == 0 && len(p.observed.Volumes) == 0 {
		return
	}
	used := map[string]int64{}
	boundVolumes := map[string]bool{}
	for _, c := range claims {
		if node := kube.ClaimNode(c); node != "" {
			used[node] += kube.ClaimRequest(c)
			boundVolumes[c.Spec.VolumeName] = true
		}
	}
	for _, v := range p.observed.Volumes {
		if !boundVolumes[v.VolumeName] {
			used[v.Node] += v.Size
		}
	}
	for i := range nodes {
		nodes[i].VolumesUsed = used[nodes[i].Name]
	}
}

// bindClaims binds the unbound claims of pod, just bound to node, there.
func (p *planner) bindClaims(pod *corev1.Pod, node string) {
	names := kube.ClaimNames(&pod.Spec)
	if len(names) == 0 {
		return
	}
	claims := p.claimsSoFar()
	for _, n := range names {
		c := claims[key(pod.Namespace, n)]
		if c == nil || kube.ClaimNode(c) != "" {
			continue
		}
		out := c.DeepCopy()
		if out.APIVersion == "" {
			out.APIVersion, out.Kind = "v1", "PersistentVolumeClaim"
		}
		if out.UID == "" {
			out.UID = p.claimUID(out)
		}
		bindClaim(out, node, kube.VolumeNamePrefix+string(out.UID))
		p.putClaim(out, "bound to node "+node+" with pod "+pod.Name)
	}
}

// claimDeleteRecheck is how soon planning again looks at a claim delete
// held back by holdClaimDeletes: the node's agent brings its record up to
// date on its next pass over its volumes (every --resync), and the leader
// does not watch volume records.
const claimDeleteRecheck = 5 * time.Second

// ReasonClaimDeleteHeld is the event of a claim delete held back until its
// node's record of the volume says the claim's reclaim policy.
const ReasonClaimDeleteHeld = "ClaimDeleteHeld"

// holdClaimDeletes holds back every DeleteClaim of this plan (Git's
// prunes and a StatefulSet's) whose claim is bound to a volume that its
// node records with another reclaim policy than the claim's. The node
// decides from its record once the claim is gone, so deleting the claim
// before the record says the claim's last word would delete data the
// claim said to keep (Delete then Retain) or keep data it said to delete
// (Retain then Delete). A node that is down does not update its record:
// its claims stay until it is back, the safe side. A bound claim of which
// the node has no record yet holds no data (the agent writes the record
// before it makes the directory, from the claim as it reads it then).
func (p *planner) holdClaimDeletes() {
	if !slices.ContainsFunc(p.last, func(a Action) bool { return a.Type == DeleteClaim }) {
		return
	}
	claims := map[string]*corev1.PersistentVolumeClaim{}
	for i := range p.observed.Claims {
		c := &p.observed.Claims[i]
		claims[key(c.Namespace, c.Name)] = c
	}
	for _, a := range p.first {
		if a.Type == PutClaim && a.Claim != nil {
			claims[key(a.Claim.Namespace, a.Claim.Name)] = a.Claim
		}
	}
	type rec struct{ node, volume string }
	records := map[rec]*Volume{}
	for i := range p.observed.Volumes {
		v := &p.observed.Volumes[i]
		records[rec{v.Node, v.VolumeName}] = v
	}
	p.last = slices.DeleteFunc(p.last, func(a Action) bool {
		if a.Type != DeleteClaim {
			return false
		}
		c := claims[key(a.Namespace, a.Name)]
		if c == nil {
			return false
		}
		node := kube.ClaimNode(c)
		v := records[rec{node, c.Spec.VolumeName}]
		if node == "" || v == nil || v.ReclaimDelete == kube.ReclaimDelete(c) {
			return false
		}
		policy, recorded := "Retain", "Delete"
		if kube.ReclaimDelete(c) {
			policy, recorded = recorded, policy
		}
		msg := fmt.Sprintf("delete held back (%s): node %s records its volume %s with reclaim policy %s, the claim says %s; "+
			"deleting it waits until the node has its policy, so the node does what the claim says with its data",
			a.Reason, node, c.Spec.VolumeName, recorded, policy)
		if !p.nodes[node] {
			msg += " (node " + node + " is not registered: the claim stays until it is back)"
		}
		p.events = append(p.events, Event{Kind: "PersistentVolumeClaim", Namespace: a.Namespace, Name: a.Name,
			Reason: ReasonClaimDeleteHeld, Message: msg, Count: 1})
		p.wakeAt(p.now.Add(claimDeleteRecheck))
		return true
	})
}
