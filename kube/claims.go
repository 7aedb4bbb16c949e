package kube

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Local volumes: the names the planner, the scheduler, the node agent and
// the CLI share about PersistentVolumeClaims.
const (
	// ResourceLocalStorage is the node resource (status.capacity and
	// status.allocatable) that says how many bytes of local volumes a node
	// takes (the agent's --volume-capacity). A node that does not state it
	// takes any amount.
	ResourceLocalStorage corev1.ResourceName = "bosun.dev/local-storage"
	// AnnotationSelectedNode names the node that holds a bound claim's
	// volume, as Kubernetes' volume binder writes it.
	AnnotationSelectedNode = "volume.kubernetes.io/selected-node"
	// AnnotationReclaimPolicy on a claim says what becomes of its volume's
	// data when the claim is deleted: Retain (the default) keeps it on its
	// node, where a claim of the same namespace and name finds it again;
	// Delete removes it.
	AnnotationReclaimPolicy = "bosun.dev/reclaim-policy"
	// StorageClassLocalPath is the one storage class bosun provides (as
	// k3s's local-path provisioner names it); a claim may also name none.
	StorageClassLocalPath = "local-path"
	// VolumeNamePrefix starts the name of the volume bound to a claim:
	// "pvc-<claim uid>", as Kubernetes' provisioners name them.
	VolumeNamePrefix = "pvc-"
)

// ReclaimDelete reports whether deleting claim deletes its data.
func ReclaimDelete(claim *corev1.PersistentVolumeClaim) bool {
	return claim.Annotations[AnnotationReclaimPolicy] == string(corev1.PersistentVolumeReclaimDelete)
}

// ClaimNode is the node holding a claim's volume; "" while it is unbound.
func ClaimNode(claim *corev1.PersistentVolumeClaim) string {
	if claim.Spec.VolumeName == "" {
		return ""
	}
	return claim.Annotations[AnnotationSelectedNode]
}

// ClaimRequest is the storage a claim requests, in bytes.
func ClaimRequest(claim *corev1.PersistentVolumeClaim) int64 {
	q, ok := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok {
		return 0
	}
	return q.Value()
}

// ReadWriteOncePod reports whether only one pod at a time may use claim.
func ReadWriteOncePod(claim *corev1.PersistentVolumeClaim) bool {
	for _, m := range claim.Spec.AccessModes {
		if m == corev1.ReadWriteOncePod {
			return true
		}
	}
	return false
}

// ClaimNames lists the claims a pod spec's volumes name, in volume order,
// each once.
func ClaimNames(spec *corev1.PodSpec) []string {
	var out []string
	for i := range spec.Volumes {
		if c := spec.Volumes[i].PersistentVolumeClaim; c != nil && c.ClaimName != "" {
			dup := false
			for _, n := range out {
				dup = dup || n == c.ClaimName
			}
			if !dup {
				out = append(out, c.ClaimName)
			}
		}
	}
	return out
}

// VolumeDirName is the directory, under <data-dir>/volumes/<namespace>/, of
// the volume volumeName bound to the claim named claim: "<claim>-<uid>".
// It is "" for a volume name bosun did not make.
func VolumeDirName(claim, volumeName string) string {
	uid, ok := strings.CutPrefix(volumeName, VolumeNamePrefix)
	if !ok || uid == "" || strings.ContainsAny(uid, "/.") || strings.ContainsAny(claim, "/") || claim == "" {
		return ""
	}
	return claim + "-" + uid
}
