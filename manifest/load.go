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
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// maxFileSize bounds one manifest file. Kubernetes stores objects of at most
// 1.5 MiB; a larger file is almost certainly not a manifest.
const maxFileSize = 4 << 20

// LoadDir loads every manifest under root/sub (sub "" means root itself):
// files named *.yaml or *.yml at any depth, skipping files and directories
// whose names start with "." (.git, .github, .gitlab-ci.yml). Symbolic links
// are never followed: a link named like a manifest is an error, so a
// repository cannot make bosun read files outside it.
//
// On any problem LoadDir returns (nil, Errors) listing every problem found in
// every file, with File names relative to root.
func LoadDir(root, sub string) (*Set, error) {
	files, errs := readFiles(root, sub)
	l := newLoader()
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
func LoadFiles(files map[string][]byte) (*Set, error) {
	l := newLoader()
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
func Decode(file string, data []byte) (*Set, error) {
	l := newLoader()
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
	set  *Set
	errs Errors
}

func newLoader() *loader {
	return &loader{set: &Set{Sources: map[ObjectKey]Source{}}}
}

func (l *loader) finish() (*Set, error) {
	if len(l.errs) > 0 {
		sortErrors(l.errs)
		return nil, l.errs
	}
	l.set.sort()
	return l.set, nil
}

func (l *loader) decodeFile(file string, data []byte) {
	for _, d := range splitDocuments(file, data) {
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
	switch gvk := apiVersion + "/" + kind; gvk {
	case "v1/Pod":
		var pod corev1.Pod
		if !l.decodeTyped(d, js, &pod) {
			return
		}
		defaultPod(&pod)
		l.addProblems(d, validatePod(&pod))
		if l.register(d, KindPod, pod.ObjectMeta) {
			l.set.Pods = append(l.set.Pods, pod)
		}
	case "apps/v1/Deployment":
		var dep appsv1.Deployment
		if !l.decodeTyped(d, js, &dep) {
			return
		}
		defaultDeployment(&dep)
		l.addProblems(d, validateDeployment(&dep))
		if l.register(d, KindDeployment, dep.ObjectMeta) {
			l.set.Deployments = append(l.set.Deployments, dep)
		}
	case "v1/Service":
		var svc corev1.Service
		if !l.decodeTyped(d, js, &svc) {
			return
		}
		defaultService(&svc)
		l.addProblems(d, validateService(&svc))
		if l.register(d, KindService, svc.ObjectMeta) {
			l.set.Services = append(l.set.Services, svc)
		}
	default:
		l.errs = append(l.errs, d.errorAt("kind", fmt.Sprintf("unsupported kind %q (supported: %s)", gvk, supportedList())))
	}
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
func (l *loader) register(d *document, kind string, meta metav1.ObjectMeta) bool {
	if meta.Name == "" {
		return false // already reported by validation
	}
	key := ObjectKey{Kind: kind, Namespace: meta.Namespace, Name: meta.Name}
	if prev, ok := l.set.Sources[key]; ok {
		l.errs = append(l.errs, d.errorAt("metadata.name",
			fmt.Sprintf("duplicate %s %s/%s (first defined at %s)", kind, key.Namespace, key.Name, prev)))
		return false
	}
	l.set.Sources[key] = Source{File: d.file, Line: d.first}
	return true
}
