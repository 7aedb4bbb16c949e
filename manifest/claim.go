package manifest

import (
	"fmt"
	"maps"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"bosun/kube"
)

// AnnotationReclaimPolicy on a PersistentVolumeClaim says whether deleting
// the claim (pruning it from Git) deletes its data: Retain (the default)
// or Delete.
const AnnotationReclaimPolicy = kube.AnnotationReclaimPolicy

// claimFieldTable is the rules of v1 PersistentVolumeClaim's own types
// (also those of a StatefulSet's volumeClaimTemplates) and of the pod
// volume that uses a claim.
var claimFieldTable = []typeFields{
	{Type: reflect.TypeFor[corev1.PersistentVolumeClaim](), Where: "v1 PersistentVolumeClaim", Fields: []fieldRule{
		{"metadata", honoured, "bosun.dev/reclaim-policy: Delete|Retain (default Retain) says whether pruning the claim deletes its data"},
		{"spec", honoured, "a local volume: a directory on the node that holds it, like k3s's local-path"},
		{"status", refused, observed},
	}},
	{Type: reflect.TypeFor[corev1.PersistentVolumeClaimSpec](), Where: "PersistentVolumeClaim spec", Fields: []fieldRule{
		{"accessModes", honoured, "ReadWriteOnce (pods of one node) or ReadWriteOncePod (one pod)"},
		{"resources", honoured, "requests.storage is required; counted against the node's --volume-capacity"},
		{"storageClassName", honoured, `"" or local-path`},
		{"volumeMode", honoured, "Filesystem only"},
		{"selector", refused, "volumes are provisioned, never pre-made"},
		{"volumeName", refused, "bosun names the volume it binds"},
		{"dataSource", refused, ""},
		{"dataSourceRef", refused, ""},
		{"volumeAttributesClassName", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.VolumeResourceRequirements](), Where: "PersistentVolumeClaim spec.resources", Fields: []fieldRule{
		{"requests", honoured, "storage only"},
		{"limits", honoured, "storage only, equal to the request (a local volume is not capped)"},
	}},
	{Type: reflect.TypeFor[corev1.PersistentVolumeClaimVolumeSource](), Where: "persistentVolumeClaim volume", Fields: []fieldRule{
		{"claimName", honoured, "a claim of the revision (or of a StatefulSet's volumeClaimTemplates); the pod runs on the node holding it"},
		{"readOnly", honoured, ""},
	}},
}

func defaultClaim(c *corev1.PersistentVolumeClaim) {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.Spec.VolumeMode == nil {
		fs := corev1.PersistentVolumeFilesystem
		c.Spec.VolumeMode = &fs
	}
}

func validateClaim(c *corev1.PersistentVolumeClaim) problems {
	var ps problems
	// The reclaim policy is the one bosun.dev/ annotation of a claim:
	// checked here, the rest as any object's.
	meta := c.ObjectMeta
	if _, ok := meta.Annotations[AnnotationReclaimPolicy]; ok {
		meta.Annotations = maps.Clone(meta.Annotations)
		delete(meta.Annotations, AnnotationReclaimPolicy)
	}
	validateMeta(&meta, validation.IsDNS1123Subdomain, subdomainRule, metaOther, &ps)
	validateClaimDirName(c.Name, field.NewPath("metadata", "name"), &ps)
	validateReclaimPolicy(c.Annotations, field.NewPath("metadata", "annotations"), &ps)
	if _, ok := c.Annotations[kube.AnnotationSelectedNode]; ok {
		// kubectl get -o yaml exports it; from Git it would undo the
		// binding on every plan.
		ps.add(field.NewPath("metadata", "annotations").Key(kube.AnnotationSelectedNode),
			"set by the cluster when it binds the claim, not in Git: remove it (bosun chooses the node with the claim's first pod)")
	}
	validateClaimSpec(&c.Spec, field.NewPath("spec"), &ps)
	return ps
}

// maxClaimNameForDir is the longest claim name whose volume directory,
// "<claim>-<uid>" (a 36-byte UID), fits a file name's 255 bytes.
const maxClaimNameForDir = 255 - 1 - 36

// validateClaimDirName checks that the volume directory of the claim name
// fits a file name (a longer one would fail only on the node, at mount).
func validateClaimDirName(name string, path *field.Path, ps *problems) {
	if len(name) > maxClaimNameForDir {
		ps.add(path, "too long: %d bytes, at most %d (the claim's volume directory on its node is <name>-<uid>, at most 255 bytes)", len(name), maxClaimNameForDir)
	}
}

// validateReclaimPolicy checks the bosun.dev/reclaim-policy annotation.
func validateReclaimPolicy(ann map[string]string, path *field.Path, ps *problems) {
	v, ok := ann[AnnotationReclaimPolicy]
	if !ok {
		return
	}
	switch corev1.PersistentVolumeReclaimPolicy(v) {
	case corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRetain:
	default:
		ps.add(path.Key(AnnotationReclaimPolicy), "unsupported value %q: must be Delete or Retain (the default)", v)
	}
}

// validateClaimSpec checks a claim's spec at path, for a claim of its own
// or a StatefulSet's volumeClaimTemplates.
func validateClaimSpec(spec *corev1.PersistentVolumeClaimSpec, path *field.Path, ps *problems) {
	if len(spec.AccessModes) == 0 {
		ps.add(path.Child("accessModes"), "required: ReadWriteOnce or ReadWriteOncePod")
	}
	for i, m := range spec.AccessModes {
		switch m {
		case corev1.ReadWriteOnce, corev1.ReadWriteOncePod:
		default:
			ps.add(path.Child("accessModes").Index(i), "unsupported value %q: a local volume is ReadWriteOnce or ReadWriteOncePod", m)
		}
	}
	rp := path.Child("resources")
	req, ok := spec.Resources.Requests[corev1.ResourceStorage]
	switch {
	case !ok:
		ps.add(rp.Child("requests").Key(string(corev1.ResourceStorage)), "required")
	case req.Sign() <= 0:
		ps.add(rp.Child("requests").Key(string(corev1.ResourceStorage)), "must be greater than zero")
	}
	for name := range spec.Resources.Requests {
		if name != corev1.ResourceStorage {
			ps.add(rp.Child("requests").Key(string(name)), "not supported by bosun: only storage")
		}
	}
	for name, q := range spec.Resources.Limits {
		switch {
		case name != corev1.ResourceStorage:
			ps.add(rp.Child("limits").Key(string(name)), "not supported by bosun: only storage")
		case ok && q.Cmp(req) != 0:
			ps.add(rp.Child("limits").Key(string(name)), "must equal requests.storage (%s): bosun does not cap a local volume", req.String())
		}
	}
	if sc := spec.StorageClassName; sc != nil && *sc != "" && *sc != kube.StorageClassLocalPath {
		ps.add(path.Child("storageClassName"), "unsupported value %q: bosun provides local volumes only: leave it empty or say %q", *sc, kube.StorageClassLocalPath)
	}
	if vm := spec.VolumeMode; vm != nil && *vm != corev1.PersistentVolumeFilesystem {
		ps.add(path.Child("volumeMode"), "unsupported value %q: must be Filesystem", *vm)
	}
}

// checkClaimReferences reports every pod (or pod template) volume that
// names a claim the revision does not define. Claims a StatefulSet makes
// from its volumeClaimTemplates are named "<template>-<statefulset>-<n>"
// and added to its pods by the planner, so pods from Git do not name
// them.
func (l *loader) checkClaimReferences() {
	have := map[string]bool{}
	for i := range l.set.PersistentVolumeClaims {
		c := &l.set.PersistentVolumeClaims[i]
		have[c.Namespace+"/"+c.Name] = true
	}
	check := func(kind, namespace, name string, obj any) {
		d := l.docs[ObjectKey{Kind: kind, Namespace: namespace, Name: name}]
		if d == nil {
			return
		}
		for _, at := range podSpecsOf(obj) {
			for i, v := range at.spec.Volumes {
				pvc := v.PersistentVolumeClaim
				if pvc == nil {
					continue
				}
				p := at.path.Child("volumes").Index(i).Child("persistentVolumeClaim", "claimName")
				switch {
				case pvc.ClaimName == "":
					l.errs = append(l.errs, d.errorAt(p.String(), "required"))
				case len(validation.IsDNS1123Subdomain(pvc.ClaimName)) > 0:
					// The name's form is reported with the pod's spec.
				case !have[namespace+"/"+pvc.ClaimName]:
					l.errs = append(l.errs, d.errorAt(p.String(), fmt.Sprintf(
						"PersistentVolumeClaim %s/%s does not exist (%s %s/%s uses it)", namespace, pvc.ClaimName, kind, namespace, name)))
				}
			}
		}
	}
	l.set.eachPodSpecOwner(check)
}
