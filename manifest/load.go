package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// maxFileSize bounds one manifest file. Kubernetes stores objects of at most
// 1.5 MiB; a larger file is almost certainly not a manifest.
const maxFileSize = 4 << 20

// Policy is what the operator allows manifests beyond bosun's defaults.
// The zero Policy is the strictest: no host paths, no privileged
// containers. The server takes it from its flags; `bosun validate` from its
// own, so that a repository is checked as the cluster will check it.
type Policy struct {
	// AllowHostPaths are the directories under which hostPath volumes may
	// point (--allow-host-path); a path equal to or below one is allowed.
	AllowHostPaths []string
	// AllowPrivileged allows securityContext.privileged (--allow-privileged).
	AllowPrivileged bool
	// AllowHostNetwork allows spec.hostNetwork and containers' hostPort
	// (--allow-host-network).
	AllowHostNetwork bool
	// Decrypter decrypts the files whose documents carry SOPS metadata
	// (--sops-age-key-file). Without one, such a document is an error, or
	// with SkipEncrypted a note in Set.Encrypted.
	Decrypter Decrypter
	// SkipEncrypted, without a Decrypter, loads the rest of a revision and
	// lists its encrypted documents in Set.Encrypted, unchecked, instead
	// of refusing them: `bosun validate` without a key. The server never
	// sets it: a revision it cannot decrypt is rejected.
	SkipEncrypted bool
}

// LoadDir loads the manifests under root/sub with the zero Policy.
func LoadDir(root, sub string) (*Set, error) { return Policy{}.LoadDir(root, sub) }

// LoadFiles loads manifest files given by name with the zero Policy.
func LoadFiles(files map[string][]byte) (*Set, error) { return Policy{}.LoadFiles(files) }

// Decode loads the manifests of one file's contents with the zero Policy.
func Decode(file string, data []byte) (*Set, error) { return Policy{}.Decode(file, data) }

// LoadDir loads every manifest under root/sub (sub "" means root itself):
// files named *.yaml or *.yml at any depth, skipping files and directories
// whose names start with "." (.git, .github, .gitlab-ci.yml). Symbolic links
// are never followed: a link named like a manifest is an error, so a
// repository cannot make bosun read files outside it.
//
// On any problem LoadDir returns (nil, Errors) listing every problem found in
// every file, with File names relative to root.
func (pol Policy) LoadDir(root, sub string) (*Set, error) {
	files, errs := readFiles(root, sub)
	l := newLoader(pol)
	l.errs = errs
	l.decodeFiles(files)
	return l.finish()
}

// ReadFiles reads the manifest files LoadDir would load, by their names
// relative to root, without decoding them: `bosun plan --dir` sends them
// to a server, which loads them with LoadFiles. Problems are Errors.
func ReadFiles(root, sub string) (map[string][]byte, error) {
	files, errs := readFiles(root, sub)
	if len(errs) > 0 {
		return nil, errs
	}
	return files, nil
}

// LoadFiles loads manifest files given by name, with the rules of LoadDir.
func (pol Policy) LoadFiles(files map[string][]byte) (*Set, error) {
	l := newLoader(pol)
	l.decodeFiles(files)
	return l.finish()
}

// decodeFiles decodes files in the order of their names.
func (l *loader) decodeFiles(files map[string][]byte) {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		l.decodeFile(name, files[name])
	}
}

func readFiles(root, sub string) (map[string][]byte, Errors) {
	dir, rel := root, "."
	if sub != "" {
		if !filepath.IsLocal(sub) {
			return nil, Errors{{File: sub, Message: "manifest path must be a relative path inside the repository"}}
		}
		dir = filepath.Join(root, sub)
		rel = filepath.ToSlash(filepath.Clean(sub))
	}
	info, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, Errors{{File: rel, Message: "manifest directory does not exist"}}
	case err != nil:
		return nil, Errors{{File: rel, Message: "cannot read: " + describeFSError(err)}}
	case !info.IsDir():
		return nil, Errors{{File: rel, Message: "manifest path is not a directory"}}
	}

	files := map[string][]byte{}
	var errs Errors
	walkErr := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		file := relativeName(root, path)
		if err != nil {
			errs = append(errs, Error{File: file, Message: "cannot read: " + describeFSError(err)})
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if path != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isManifestName(d.Name()) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			errs = append(errs, Error{File: file, Message: "symbolic links are not followed; make the manifest a regular file"})
			return nil
		}
		if !d.Type().IsRegular() {
			errs = append(errs, Error{File: file, Message: "not a regular file"})
			return nil
		}
		data, err := readLimited(path)
		if err != nil {
			errs = append(errs, Error{File: file, Message: err.Error()})
			return nil
		}
		files[file] = data
		return nil
	})
	if walkErr != nil { // the callback never fails; this is defensive
		errs = append(errs, Error{File: rel, Message: "cannot walk: " + describeFSError(walkErr)})
	}
	return files, errs
}

// Decode loads the manifests of one file's contents; file is used only to
// name the file in Sources and errors. The rules are those of LoadDir.
func (pol Policy) Decode(file string, data []byte) (*Set, error) {
	l := newLoader(pol)
	l.decodeFile(file, data)
	return l.finish()
}

func isManifestName(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

func relativeName(root, path string) string {
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return filepath.ToSlash(path)
	}
	return filepath.ToSlash(rel)
}

// describeFSError drops the absolute path an *fs.PathError carries: messages
// name files relative to the repository.
func describeFSError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read: %s", describeFSError(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read: %s", describeFSError(err))
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("file is larger than %d MiB", maxFileSize>>20)
	}
	return data, nil
}

// loader accumulates one load's objects and errors.
type loader struct {
	pol  Policy
	set  *Set
	errs Errors
	// docs is where each registered object was written, for errors found
	// once every object is loaded (references between objects).
	docs map[ObjectKey]*document
	// secrets are, by file, the values encrypted in Git (SOPS) that
	// errors must not show.
	secrets map[string][]string
	// opaque are the ConfigMaps and Secrets defined by encrypted documents
	// skipped without a key (Policy.SkipEncrypted), their keys unknown;
	// unknownEncrypted is set when a skipped document's kind or name is
	// itself encrypted, so that any might be defined.
	opaque           map[ObjectKey]bool
	unknownEncrypted bool
}

func newLoader(pol Policy) *loader {
	return &loader{pol: pol, set: &Set{Sources: map[ObjectKey]Source{}}, docs: map[ObjectKey]*document{}}
}

func (l *loader) finish() (*Set, error) {
	l.checkReferences()
	l.checkClaimReferences() // claim.go
	l.checkIngresses()       // ingress.go
	l.checkStatefulSetPods() // statefulset.go
	if len(l.errs) > 0 {
		redactErrors(l.errs, l.secrets)
		sortErrors(l.errs)
		return nil, l.errs
	}
	l.set.sort()
	return l.set, nil
}

func (l *loader) decodeFile(file string, data []byte) {
	docs := splitDocuments(file, data)
	if slices.ContainsFunc(docs, (*document).encrypted) {
		l.decodeEncrypted(file, data, docs)
		return
	}
	for _, d := range docs {
		l.decodeDocument(d)
	}
}

// decodeDocument follows the path Kubernetes' own YAML serializer takes:
// YAML to JSON with duplicate keys rejected, then case-sensitive JSON
// decoding into the typed object with unknown fields reported.
func (l *loader) decodeDocument(d *document) {
	js, err := yaml.YAMLToJSONStrict(d.text)
	if err != nil {
		l.errs = append(l.errs, d.yamlErrors(err)...)
		return
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return // a document of comments only
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil {
		l.errs = append(l.errs, d.errorAt("", "a manifest must be a mapping with apiVersion, kind, metadata and spec"))
		return
	}
	apiVersion, ok1 := l.stringField(d, top, "apiVersion")
	kind, ok2 := l.stringField(d, top, "kind")
	if !ok1 || !ok2 {
		return
	}
	gvk := apiVersion + "/" + kind
	decode, ok := kinds[gvk]
	if !ok {
		l.errs = append(l.errs, d.errorAt("kind", fmt.Sprintf("unsupported kind %q (supported: %s)", gvk, supportedList())))
		return
	}
	decode(l, d, js)
}

// kinds maps each supported apiVersion/kind to its decoder.
var kinds = map[string]func(*loader, *document, []byte){
	"v1/Pod": kindOf(KindPod, defaultPod, validatePod,
		func(s *Set, o *corev1.Pod) { s.Pods = append(s.Pods, *o) }),
	"apps/v1/Deployment": kindOf(KindDeployment, defaultDeployment, validateDeployment,
		func(s *Set, o *appsv1.Deployment) { s.Deployments = append(s.Deployments, *o) }),
	"v1/Service": kindOf(KindService, defaultService, validateService,
		func(s *Set, o *corev1.Service) { s.Services = append(s.Services, *o) }),
	"v1/ConfigMap": kindOf(KindConfigMap, defaultConfigMap, validateConfigMap,
		func(s *Set, o *corev1.ConfigMap) { s.ConfigMaps = append(s.ConfigMaps, *o) }),
	"v1/Secret": kindOf(KindSecret, defaultSecret, validateSecret,
		func(s *Set, o *corev1.Secret) { mergeStringData(o); s.Secrets = append(s.Secrets, *o) }),
	"v1/Namespace": kindOf(KindNamespace, defaultNamespace, validateNamespace,
		func(s *Set, o *corev1.Namespace) { s.Namespaces = append(s.Namespaces, *o) }),
	"batch/v1/Job": kindOf(KindJob, defaultJob, validateJob,
		func(s *Set, o *batchv1.Job) { s.Jobs = append(s.Jobs, *o) }),
	"batch/v1/CronJob": kindOf(KindCronJob, defaultCronJob, validateCronJob,
		func(s *Set, o *batchv1.CronJob) { s.CronJobs = append(s.CronJobs, *o) }),
	"apps/v1/DaemonSet": kindOf(KindDaemonSet, defaultDaemonSet, validateDaemonSet,
		func(s *Set, o *appsv1.DaemonSet) { s.DaemonSets = append(s.DaemonSets, *o) }),
	"apps/v1/StatefulSet": kindOf(KindStatefulSet, defaultStatefulSet, validateStatefulSet,
		func(s *Set, o *appsv1.StatefulSet) { s.StatefulSets = append(s.StatefulSets, *o) }),
	"v1/PersistentVolumeClaim": kindOf(KindPersistentVolumeClaim, defaultClaim, validateClaim,
		func(s *Set, o *corev1.PersistentVolumeClaim) {
			s.PersistentVolumeClaims = append(s.PersistentVolumeClaims, *o)
		}),
	"networking.k8s.io/v1/Ingress": kindOf(KindIngress, defaultIngress, validateIngress,
		func(s *Set, o *networkingv1.Ingress) { s.Ingresses = append(s.Ingresses, *o) }),
	"networking.k8s.io/v1/IngressClass": kindOf(KindIngressClass, defaultIngressClass, validateIngressClass,
		func(s *Set, o *networkingv1.IngressClass) { s.IngressClasses = append(s.IngressClasses, *o) }),
}

// kindOf builds the decoder of one kind: typed decoding, the field table
// (on the object as written, before defaults fill anything in), defaults,
// validation, and registration in the Set.
func kindOf[T any, PT interface {
	*T
	metav1.Object
}](kind string, defaults func(PT), validate func(PT) problems, add func(*Set, PT)) func(*loader, *document, []byte) {
	return func(l *loader, d *document, js []byte) {
		obj := PT(new(T))
		if !l.decodeTyped(d, js, obj) {
			return
		}
		l.addProblems(d, checkFields(obj))
		defaults(obj)
		l.addProblems(d, validate(obj))
		l.addProblems(d, l.pol.check(obj))
		if l.register(d, kind, obj.GetNamespace(), obj.GetName()) {
			add(l.set, obj)
			l.recordLines(d, ObjectKey{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}, obj)
		}
	}
}

// recordLines keeps the lines of the fields of obj that are checked after
// loading (Set.Where).
func (l *loader) recordLines(d *document, key ObjectKey, obj any) {
	var paths []string
	switch o := obj.(type) {
	case *corev1.Service:
		paths = []string{"spec.clusterIP"}
		for i := range o.Spec.Ports {
			paths = append(paths, "spec.ports["+strconv.Itoa(i)+"].nodePort")
		}
	case *appsv1.StatefulSet:
		paths = statefulSetFixedFields // update.go
	default:
		return
	}
	lines := make(map[string]int, len(paths))
	for _, p := range paths {
		lines[p] = d.lineOf(parsePath(p))
	}
	if l.set.lines == nil {
		l.set.lines = map[ObjectKey]map[string]int{}
	}
	l.set.lines[key] = lines
}

// stringField reads a required top-level string field, reporting its absence.
func (l *loader) stringField(d *document, top map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := top[name]
	var s string
	if ok {
		if err := json.Unmarshal(raw, &s); err != nil {
			l.errs = append(l.errs, d.errorAt(name, "must be a string"))
			return "", false
		}
	}
	if s == "" {
		msg := "required"
		if name == "kind" {
			msg = "required (supported: " + supportedList() + ")"
		}
		l.errs = append(l.errs, d.errorAt(name, msg))
		return "", false
	}
	return s, true
}

// decodeTyped decodes js into obj. Unknown fields are reported but leave the
// object usable, so it is still validated; a type mismatch stops here.
func (l *loader) decodeTyped(d *document, js []byte, obj any) bool {
	strict, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowUnknownFields)
	if err != nil {
		l.errs = append(l.errs, d.decodeError(js, obj, err))
		return false
	}
	for _, se := range strict {
		path := ""
		if fp, ok := se.(interface{ FieldPath() string }); ok {
			path = fp.FieldPath()
		}
		l.errs = append(l.errs, d.errorAt(path, "unknown field"))
	}
	return true
}

func (l *loader) addProblems(d *document, ps problems) {
	for _, p := range ps {
		l.errs = append(l.errs, d.errorAt(p.path, p.msg))
	}
}

// register records where an object was defined, reporting a second
// definition of the same kind/namespace/name. It reports whether the object
// is new.
func (l *loader) register(d *document, kind, namespace, name string) bool {
	if name == "" {
		return false // already reported by validation
	}
	key := ObjectKey{Kind: kind, Namespace: namespace, Name: name}
	if prev, ok := l.set.Sources[key]; ok {
		l.errs = append(l.errs, d.errorAt("metadata.name",
			fmt.Sprintf("duplicate %s %s/%s (first defined at %s)", kind, key.Namespace, key.Name, prev)))
		return false
	}
	l.set.Sources[key] = Source{File: d.file, Line: d.first}
	l.docs[key] = d
	return true
}
