package scheduler

import (
	"fmt"
	"slices"
	"strings"
)

// Claim is a PersistentVolumeClaim a pod uses, as the scheduler sees it.
type Claim struct {
	// Key identifies the claim, conventionally "namespace/name".
	Key string
	// Node is the node holding the claim's volume once it is bound; ""
	// while it is unbound. A bound claim's pods go to its node only.
	Node string
	// Request is the storage the claim requests, in bytes: what binding it
	// takes from its node's volume capacity.
	Request int64
	// OncePod: the claim is ReadWriteOncePod, so no two pods may use it.
	OncePod bool
	// Stopping counts the pods that use the claim and are being deleted
	// (in this plan, or terminating on their node): they still have it,
	// so a ReadWriteOncePod claim is not free until they are gone.
	Stopping int
}

// Reasons of the volume filters, in kube-scheduler's words.
const (
	reasonVolumeConflict = "node(s) had volume node affinity conflict"
	reasonVolumeCapacity = "node(s) did not have enough free storage"
	reasonVolumeOncePod  = "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"
)

// Volume filter failures, after NodeResourcesFit as kube-scheduler's
// VolumeRestrictions and VolumeBinding come after it.
const (
	failVolumeOncePod failure = iota + 100
	failVolumeConflict
	failVolumeCapacity
)

// volumeState is what the volume filters know: each node's free volume
// capacity and where each claim is bound, kept up to date as pods are
// placed. It exists only when some pod uses a claim.
type volumeState struct {
	capacity []int64 // indexed like cluster.names; 0: no limit
	used     []int64
	// bound maps a claim to its node's index, or -1 when that node is not
	// in the list (gone); absent: unbound.
	bound map[string]int
	// boundTo keeps the name of the node of a claim bound to a node that
	// is not in the list, for the reason.
	boundTo map[string]string
	users   map[string]int // pods placed (or bound) that use each claim
}

func needsVolumes(pods []Pod) bool {
	return slices.ContainsFunc(pods, func(p Pod) bool { return len(p.Claims) > 0 })
}

func newVolumeState(c *cluster, nodes []Node, pods []Pod) *volumeState {
	v := &volumeState{
		capacity: make([]int64, len(c.names)),
		used:     make([]int64, len(c.names)),
		bound:    map[string]int{},
		boundTo:  map[string]string{},
		users:    map[string]int{},
	}
	for i := range nodes {
		n, ok := c.index[nodes[i].Name]
		if !ok || c.names[n] != nodes[i].Name {
			continue
		}
		v.capacity[n] = max(nodes[i].VolumeCapacity, 0)
		v.used[n] = max(nodes[i].VolumesUsed, 0)
	}
	for i := range pods {
		for _, cl := range pods[i].Claims {
			if cl.Stopping > 0 {
				v.users[cl.Key] = max(v.users[cl.Key], cl.Stopping)
			}
			if cl.Node == "" {
				continue
			}
			if n, ok := c.index[cl.Node]; ok {
				v.bound[cl.Key] = n
			} else {
				v.bound[cl.Key] = -1
				v.boundTo[cl.Key] = cl.Node
			}
		}
	}
	return v
}

// check runs the volume filters for p on node n: no other pod uses a
// ReadWriteOncePod claim of p's, every bound claim lives on n, and the
// unbound ones fit in n's free volume capacity.
func (v *volumeState) check(p *Pod, n int) failure {
	var want int64
	for _, cl := range p.Claims {
		if cl.OncePod && v.users[cl.Key] > 0 {
			return failVolumeOncePod
		}
	}
	for _, cl := range p.Claims {
		if at, ok := v.bound[cl.Key]; ok {
			if at != n {
				return failVolumeConflict
			}
			continue
		}
		want += cl.Request
	}
	if want > 0 && v.capacity[n] > 0 && v.capacity[n]-v.used[n] < want {
		return failVolumeCapacity
	}
	return fits
}

// place accounts p's claims on node n: unbound ones are bound there.
func (v *volumeState) place(p *Pod, n int) {
	for _, cl := range p.Claims {
		v.users[cl.Key]++
		if _, ok := v.bound[cl.Key]; !ok {
			v.bound[cl.Key] = n
			v.used[n] += cl.Request
		}
	}
}

// reason is the text of a volume failure.
func volumeReason(f failure) string {
	switch f {
	case failVolumeOncePod:
		return reasonVolumeOncePod
	case failVolumeConflict:
		return reasonVolumeConflict
	case failVolumeCapacity:
		return reasonVolumeCapacity
	}
	return ""
}

// note adds to a pod's reason what no count says: that a claim it uses is
// bound to a node that is gone, where its data stays.
func (v *volumeState) note(p *Pod) string {
	var gone []string
	for _, cl := range p.Claims {
		if node, ok := v.boundTo[cl.Key]; ok {
			gone = append(gone, fmt.Sprintf("persistentvolumeclaim %s is bound to node %s (not available; its data is there)", cl.Key, node))
		}
	}
	if len(gone) == 0 {
		return ""
	}
	return "; " + strings.Join(gone, "; ")
}
