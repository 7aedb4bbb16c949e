package manifest

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Set is one revision's desired state, decoded, defaulted and validated.
// Every object has its namespace set ("default" when the manifest left it
// empty). Each slice is sorted by namespace, then name.
type Set struct {
	Pods        []corev1.Pod
	Deployments []appsv1.Deployment
	Services    []corev1.Service
	ConfigMaps  []corev1.ConfigMap
	// Secrets hold values that must never be shown: not in logs, status,
	// history, plan diffs or errors. stringData is merged into data.
	Secrets []corev1.Secret
	// Namespaces are those declared in Git; objects may also live in
	// namespaces no manifest declares.
	Namespaces []corev1.Namespace
	Jobs       []batchv1.Job
	CronJobs   []batchv1.CronJob
	// DaemonSets and StatefulSets are the other workload controllers.
	DaemonSets   []appsv1.DaemonSet
	StatefulSets []appsv1.StatefulSet
	// PersistentVolumeClaims are the claims written in Git; those a
	// StatefulSet's volumeClaimTemplates make are the reconciler's.
	PersistentVolumeClaims []corev1.PersistentVolumeClaim
	// Ingresses are served by the built-in ingress proxy; IngressClasses
	// (cluster-scoped) name it.
	Ingresses      []networkingv1.Ingress
	IngressClasses []networkingv1.IngressClass
	// Sources records where each object was defined.
	Sources map[ObjectKey]Source
	// Encrypted lists the SOPS-encrypted documents loaded without a key
	// (Policy.SkipEncrypted): not checked, and not in the Set.
	Encrypted []Source

	// lines records, for the fields that are checked once the whole
	// revision is loaded against the cluster (a Service's clusterIP and
	// node ports), the line each is written on: see Where.
	lines map[ObjectKey]map[string]int
}

// Where returns where the field at path (a JSON path such as
// "spec.ports[1].nodePort") of the object key is written: the object's
// file, and the line of the field, of its nearest enclosing field that is
// written, or of the object. Lines of fields are known for the fields
// checked after loading (a Service's spec.clusterIP and
// spec.ports[i].nodePort); other paths, and sets not loaded from files,
// give the object's line.
func (s *Set) Where(key ObjectKey, path string) Source {
	src := s.Sources[key]
	if line, ok := s.lines[key][path]; ok {
		src.Line = line
	}
	return src
}

// ObjectKey names one object of a Set.
type ObjectKey struct{ Kind, Namespace, Name string }

// String renders the key as "Kind/namespace/name", e.g. "Deployment/default/web".
func (k ObjectKey) String() string { return k.Kind + "/" + k.Namespace + "/" + k.Name }

// Source is where an object was defined: File is relative to the root given
// to LoadDir (slash-separated), Line is the 1-based line of the first content
// line of the object's YAML document.
type Source struct {
	File string
	Line int
}

// String renders the source as "file:line".
func (s Source) String() string { return s.File + ":" + strconv.Itoa(s.Line) }

// Kinds of object a Set holds, as they appear in ObjectKey.Kind.
const (
	KindPod        = "Pod"
	KindDeployment = "Deployment"
	KindService    = "Service"
	KindConfigMap  = "ConfigMap"
	KindSecret     = "Secret"
	KindNamespace  = "Namespace"
	KindJob        = "Job"
	KindCronJob    = "CronJob"

	KindDaemonSet             = "DaemonSet"
	KindStatefulSet           = "StatefulSet"
	KindPersistentVolumeClaim = "PersistentVolumeClaim"
	KindIngress               = "Ingress"
	KindIngressClass          = "IngressClass"
)

// SupportedKinds lists the apiVersion/kind pairs manifests may use, in the
// form error messages show them.
var SupportedKinds = []string{"v1/Pod", "apps/v1/Deployment", "v1/Service", "v1/ConfigMap", "v1/Secret",
	"v1/Namespace", "batch/v1/Job", "batch/v1/CronJob", "apps/v1/DaemonSet", "apps/v1/StatefulSet",
	"v1/PersistentVolumeClaim", "networking.k8s.io/v1/Ingress", "networking.k8s.io/v1/IngressClass"}

// Error is one problem found in the manifests. Line is 1-based; it is 0 only
// for problems that concern a whole file or directory (it cannot be read, it
// is a symbolic link), and then Error() leaves it out. Field is a JSON path
// such as "spec.template.spec.containers[1].name", or empty.
type Error struct {
	File    string
	Line    int
	Field   string
	Message string
}

// Error renders "file:line: field: message", leaving out "field: " when Field
// is empty and ":line" when Line is 0.
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Errors is every problem found in one load, sorted by file then line. It is
// the only error type LoadDir and Decode return.
type Errors []Error

// Error renders one error per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// SortErrors orders errors as LoadDir returns them: by file, then line,
// then field and message. Checks made after loading (the server's
// allocation of Service addresses) use it to list their errors the same way.
func SortErrors(es Errors) { sortErrors(es) }

// sortErrors orders errors by file, then line, then field and message so
// that the same input always gives the same list.
func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b Error) int {
		return cmp.Or(strings.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line),
			strings.Compare(a.Field, b.Field), strings.Compare(a.Message, b.Message))
	})
}

func (s *Set) sort() {
	sortObjects(s.Pods)
	sortObjects(s.Deployments)
	sortObjects(s.Services)
	sortObjects(s.ConfigMaps)
	sortObjects(s.Secrets)
	sortObjects(s.Namespaces)
	sortObjects(s.Jobs)
	sortObjects(s.CronJobs)
	sortObjects(s.DaemonSets)
	sortObjects(s.StatefulSets)
	sortObjects(s.PersistentVolumeClaims)
	sortObjects(s.Ingresses)
	sortObjects(s.IngressClasses)
}

// sortObjects sorts API objects by namespace, then name.
func sortObjects[T any, PT interface {
	*T
	metav1.Object
}](list []T) {
	slices.SortFunc(list, func(a, b T) int {
		pa, pb := PT(&a), PT(&b)
		return cmp.Or(strings.Compare(pa.GetNamespace(), pb.GetNamespace()), strings.Compare(pa.GetName(), pb.GetName()))
	})
}

// supportedList is SupportedKinds joined for messages.
func supportedList() string { return strings.Join(SupportedKinds, ", ") }
