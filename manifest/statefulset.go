package manifest

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// StorageClassLocalPath is the one storage class bosun provides: a
// directory under the node's data directory, as k3s's local-path
// provisioner does. A claim that names no class gets it.
const StorageClassLocalPath = "local-path"

// maxStatefulSetName keeps what a StatefulSet names after itself valid:
// its pods' hostnames "<name>-<ordinal>" are DNS labels (63 characters),
// and their controller-revision-hash label "<name>-<10-char hash>" is a
// label value (63 characters).
const maxStatefulSetName = 52

// defaultStatefulSet applies Kubernetes' defaults: one replica,
// OrderedReady, RollingUpdate with partition 0, a history limit of 10,
// claims retained when scaled down or deleted.
func defaultStatefulSet(s *appsv1.StatefulSet) {
	if s.Namespace == "" {
		s.Namespace = DefaultNamespace
	}
	s.Status = appsv1.StatefulSetStatus{}
	if s.Spec.Replicas == nil {
		one := int32(1)
		s.Spec.Replicas = &one
	}
	if s.Spec.PodManagementPolicy == "" {
		s.Spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	}
	st := &s.Spec.UpdateStrategy
	if st.Type == "" {
		st.Type = appsv1.RollingUpdateStatefulSetStrategyType
	}
	if st.Type == appsv1.RollingUpdateStatefulSetStrategyType {
		if st.RollingUpdate == nil {
			st.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
		if st.RollingUpdate.Partition == nil {
			zero := int32(0)
			st.RollingUpdate.Partition = &zero
		}
	}
	if s.Spec.RevisionHistoryLimit == nil {
		ten := int32(10)
		s.Spec.RevisionHistoryLimit = &ten
	}
	rp := s.Spec.PersistentVolumeClaimRetentionPolicy
	if rp == nil {
		rp = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{}
		s.Spec.PersistentVolumeClaimRetentionPolicy = rp
	}
	if rp.WhenDeleted == "" {
		rp.WhenDeleted = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if rp.WhenScaled == "" {
		rp.WhenScaled = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	for i := range s.Spec.VolumeClaimTemplates {
		ct := &s.Spec.VolumeClaimTemplates[i]
		ct.Status = corev1.PersistentVolumeClaimStatus{}
		if ct.Spec.VolumeMode == nil {
			fs := corev1.PersistentVolumeFilesystem
			ct.Spec.VolumeMode = &fs
		}
	}
	defaultPodSpec(&s.Spec.Template.Spec, corev1.RestartPolicyAlways)
}

// validateStatefulSet checks a StatefulSet as Kubernetes does, and what
// bosun adds: claim templates bosun can provide (ReadWriteOnce, a storage
// request, the local-path class), names short enough for the pods' DNS
// names. serviceName need not name a Service of the revision (Kubernetes
// does not require it), but per-pod DNS names exist only while a headless
// Service of that name selects the pods.
func validateStatefulSet(s *appsv1.StatefulSet) problems {
	var ps problems
	validateMeta(&s.ObjectMeta, validation.IsDNS1123Label, labelRule, metaOther, &ps)
	if len(s.Name) > maxStatefulSetName && len(validation.IsDNS1123Label(s.Name)) == 0 {
		ps.add(field.NewPath("metadata", "name"), "must be no more than %d characters: the pods' hostnames <name>-<ordinal> and their controller-revision-hash label must stay within 63", maxStatefulSetName)
	}
	spec := field.NewPath("spec")
	if s.Spec.Replicas != nil && *s.Spec.Replicas < 0 {
		ps.add(spec.Child("replicas"), "must be >= 0")
	}
	if s.Spec.MinReadySeconds < 0 {
		ps.add(spec.Child("minReadySeconds"), "must be >= 0")
	}
	if l := s.Spec.RevisionHistoryLimit; l != nil && *l < 0 {
		ps.add(spec.Child("revisionHistoryLimit"), "must be >= 0")
	}
	if o := s.Spec.Ordinals; o != nil && o.Start < 0 {
		ps.add(spec.Child("ordinals", "start"), "must be >= 0")
	}
	if s.Spec.ServiceName != "" && len(validation.IsDNS1123Label(s.Spec.ServiceName)) > 0 {
		ps.add(spec.Child("serviceName"), "invalid service name %q: %s", s.Spec.ServiceName, labelRule)
	}
	switch s.Spec.PodManagementPolicy {
	case appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement:
	default:
		ps.add(spec.Child("podManagementPolicy"), "unsupported value %q: must be OrderedReady or Parallel", s.Spec.PodManagementPolicy)
	}
	st := &s.Spec.UpdateStrategy
	switch st.Type {
	case appsv1.OnDeleteStatefulSetStrategyType:
		if st.RollingUpdate != nil {
			ps.add(spec.Child("updateStrategy", "rollingUpdate"), "must not be set when type is OnDelete")
		}
	case appsv1.RollingUpdateStatefulSetStrategyType:
		if ru := st.RollingUpdate; ru != nil && ru.Partition != nil && *ru.Partition < 0 {
			ps.add(spec.Child("updateStrategy", "rollingUpdate", "partition"), "must be >= 0")
		}
	default:
		ps.add(spec.Child("updateStrategy", "type"), "unsupported value %q: must be RollingUpdate or OnDelete", st.Type)
	}
	if rp := s.Spec.PersistentVolumeClaimRetentionPolicy; rp != nil {
		p := spec.Child("persistentVolumeClaimRetentionPolicy")
		for _, f := range []struct {
			name string
			v    appsv1.PersistentVolumeClaimRetentionPolicyType
		}{{"whenDeleted", rp.WhenDeleted}, {"whenScaled", rp.WhenScaled}} {
			switch f.v {
			case appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType:
			default:
				ps.add(p.Child(f.name), "unsupported value %q: must be Retain or Delete", f.v)
			}
		}
	}

	tmpl := spec.Child("template")
	validateTemplateMeta(&s.Spec.Template.ObjectMeta, tmpl.Child("metadata"), true, &ps)
	validateSelector(s.Spec.Selector, s.Spec.Template.Labels, spec.Child("selector"), &ps)
	podSpec := tmpl.Child("spec")
	if rp := s.Spec.Template.Spec.RestartPolicy; rp == corev1.RestartPolicyOnFailure || rp == corev1.RestartPolicyNever {
		ps.add(podSpec.Child("restartPolicy"), "unsupported value %q: a StatefulSet's pods must use Always", rp)
	}
	if s.Spec.Template.Spec.Hostname != "" {
		ps.add(podSpec.Child("hostname"), "not supported in a StatefulSet's template: each pod's hostname is its name, <statefulset>-<ordinal>")
	}
	if s.Spec.Template.Spec.Subdomain != "" {
		ps.add(podSpec.Child("subdomain"), "not supported in a StatefulSet's template: the pods' subdomain is spec.serviceName")
	}

	// The pods mount the claims under the templates' names: check the pod
	// spec as the pods will have it, with a stand-in volume for each claim
	// template so that mounts of them resolve.
	withClaims := s.Spec.Template.Spec
	withClaims.Volumes = append([]corev1.Volume(nil), withClaims.Volumes...)
	volumes := map[string]bool{}
	for _, v := range s.Spec.Template.Spec.Volumes {
		volumes[v.Name] = true
	}
	claims := spec.Child("volumeClaimTemplates")
	templates := map[string]int{}
	for i := range s.Spec.VolumeClaimTemplates {
		ct := &s.Spec.VolumeClaimTemplates[i]
		p := claims.Index(i)
		name := ct.Name
		first, dup := templates[name]
		switch {
		case name == "":
			ps.add(p.Child("metadata", "name"), "required")
			continue
		case len(validation.IsDNS1123Label(name)) > 0:
			ps.add(p.Child("metadata", "name"), "invalid name %q: %s (it is the volume's name in the pods)", name, labelRule)
			continue
		case dup:
			ps.add(p.Child("metadata", "name"), "duplicate claim template name %q (spec.volumeClaimTemplates[%d] has it)", name, first)
			continue
		case volumes[name]:
			ps.add(p.Child("metadata", "name"), "%q clashes with a volume of the same name in spec.template.spec.volumes", name)
			continue
		}
		volumes[name] = true
		templates[name] = i
		withClaims.Volumes = append(withClaims.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		// <template>-<statefulset>-<ordinal> names each pod's claim.
		if claim := name + "-" + s.Name + "-" + strconv.Itoa(1<<20); len(validation.IsDNS1123Subdomain(claim)) > 0 {
			ps.add(p.Child("metadata", "name"), "too long: the claims <name>-<statefulset>-<ordinal> must be DNS-1123 subdomains")
		}
		validateClaimDirName(name+"-"+s.Name+"-"+strconv.Itoa(1<<20), p.Child("metadata", "name"), &ps) // claim.go
		if ct.Namespace != "" && ct.Namespace != s.Namespace {
			ps.add(p.Child("metadata", "namespace"), "must be empty or the StatefulSet's namespace %q", s.Namespace)
		}
		validateLabels(ct.Labels, p.Child("metadata", "labels"), &ps)
		validateAnnotations(ct.Annotations, p.Child("metadata", "annotations"), metaOther, &ps)
		validateClaimTemplateSpec(&ct.Spec, p.Child("spec"), &ps)
	}
	validatePodSpec(&withClaims, podSpec, ownerNone, &ps)
	return ps
}

// checkStatefulSetPods refuses a Pod of the revision named as a pod of a
// StatefulSet of its namespace, <statefulset>-<n>: the StatefulSet would
// create a second pod of that name (ordinal n, now or once scaled).
func (l *loader) checkStatefulSetPods() {
	for i := range l.set.Pods {
		pod := &l.set.Pods[i]
		for j := range l.set.StatefulSets {
			s := &l.set.StatefulSets[j]
			rest, ok := strings.CutPrefix(pod.Name, s.Name+"-")
			if !ok || s.Namespace != pod.Namespace || !isOrdinal(rest) {
				continue
			}
			d := l.docs[ObjectKey{Kind: KindPod, Namespace: pod.Namespace, Name: pod.Name}]
			if d == nil {
				continue
			}
			src := l.set.Sources[ObjectKey{Kind: KindStatefulSet, Namespace: s.Namespace, Name: s.Name}]
			l.errs = append(l.errs, d.errorAt("metadata.name", fmt.Sprintf(
				"Pod %s/%s has the name of ordinal %s of StatefulSet %s/%s (%s): the StatefulSet names its pods <name>-<ordinal>; give the Pod another name",
				pod.Namespace, pod.Name, rest, s.Namespace, s.Name, src)))
		}
	}
}

// isOrdinal says whether s is an ordinal as a StatefulSet writes it in a
// pod name: decimal, no leading zero.
func isOrdinal(s string) bool {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validateClaimTemplateSpec checks what bosun's local volumes can give a
// StatefulSet's claim: ReadWriteOnce, a storage request, the local-path
// class.
func validateClaimTemplateSpec(cs *corev1.PersistentVolumeClaimSpec, p *field.Path, ps *problems) {
	if len(cs.AccessModes) == 0 {
		ps.add(p.Child("accessModes"), "at least one access mode is required: ReadWriteOnce")
	}
	for i, m := range cs.AccessModes {
		if m != corev1.ReadWriteOnce {
			ps.add(p.Child("accessModes").Index(i), "unsupported value %q: bosun's local volumes are ReadWriteOnce (one node)", m)
		}
	}
	q, ok := cs.Resources.Requests[corev1.ResourceStorage]
	switch {
	case !ok:
		ps.add(p.Child("resources", "requests", "storage"), "required: the size the claim reserves on its node (--volume-capacity)")
	case q.Sign() <= 0:
		ps.add(p.Child("resources", "requests", "storage"), "must be greater than zero")
	}
	if sc := cs.StorageClassName; sc != nil && *sc != "" && *sc != StorageClassLocalPath {
		ps.add(p.Child("storageClassName"), "unsupported value %q: must be empty or %q (a directory on the node)", *sc, StorageClassLocalPath)
	}
	if vm := cs.VolumeMode; vm != nil && *vm != corev1.PersistentVolumeFilesystem {
		ps.add(p.Child("volumeMode"), "unsupported value %q: bosun's local volumes are Filesystem", *vm)
	}
}

// statefulSetFieldTable is what bosun carries out of a StatefulSet. The
// claim templates are PersistentVolumeClaims: their fields are the
// claims' rules (claim.go).
var statefulSetFieldTable = []typeFields{
	{Type: reflect.TypeFor[appsv1.StatefulSet](), Where: "apps/v1 StatefulSet", Fields: []fieldRule{
		{"metadata", honoured, "name: a DNS-1123 label of at most 52 characters"},
		{"spec", honoured, ""},
		{"status", refused, observed},
	}},
	{Type: reflect.TypeFor[appsv1.StatefulSetSpec](), Where: "StatefulSet spec", Fields: []fieldRule{
		{"replicas", honoured, "pods <name>-<ordinal>, each with hostname <name>-<ordinal> and subdomain serviceName"},
		{"selector", honoured, "must match the template's labels; cannot change once applied"},
		{"template", honoured, "hostname and subdomain are the StatefulSet's to set"},
		{"volumeClaimTemplates", honoured, "one claim <template>-<name>-<ordinal> per pod on a node's local volume: ReadWriteOnce, a storage request, storageClassName empty or local-path; a pod that moves keeps its data only on the same node; cannot change once applied"},
		{"serviceName", honoured, "per-pod DNS names <pod>.<serviceName>.<namespace>.svc.<domain> while a headless Service of that name selects the pods (it need not exist); cannot change once applied"},
		{"podManagementPolicy", honoured, "OrderedReady (default) or Parallel; cannot change once applied"},
		{"updateStrategy", honoured, "RollingUpdate (partition) or OnDelete"},
		{"revisionHistoryLimit", honoured, "bosun keeps no ControllerRevisions: only the current and update revisions, which Kubernetes never prunes either"},
		{"minReadySeconds", honoured, ""},
		{"persistentVolumeClaimRetentionPolicy", honoured, "whenDeleted, whenScaled: Retain (default) or Delete; Delete also deletes the claim's data"},
		{"ordinals", honoured, "start"},
	}},
	{Type: reflect.TypeFor[appsv1.StatefulSetUpdateStrategy](), Where: "StatefulSet spec.updateStrategy", Fields: []fieldRule{
		{"type", honoured, "RollingUpdate or OnDelete"},
		{"rollingUpdate", honoured, ""},
	}},
	{Type: reflect.TypeFor[appsv1.RollingUpdateStatefulSetStrategy](), Where: "StatefulSet spec.updateStrategy.rollingUpdate", Fields: []fieldRule{
		{"partition", honoured, "ordinals below start+partition keep the current revision"},
		{"maxUnavailable", refused, "bosun updates one pod at a time, from the highest ordinal down"},
	}},
	{Type: reflect.TypeFor[appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy](), Where: "StatefulSet spec.persistentVolumeClaimRetentionPolicy", Fields: []fieldRule{
		{"whenDeleted", honoured, "Retain or Delete"},
		{"whenScaled", honoured, "Retain or Delete"},
	}},
	{Type: reflect.TypeFor[appsv1.StatefulSetOrdinals](), Where: "StatefulSet spec.ordinals", Fields: []fieldRule{
		{"start", honoured, ""},
	}},
}
