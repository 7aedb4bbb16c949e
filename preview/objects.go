package preview

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"bosun/manifest"
)

// addedAnnotations are annotations bosun (not Git) writes on stored objects.
// They are left out of the comparison so that a caller may pass objects read
// back from the store as the current revision without seeing bosun's own
// bookkeeping as changes.
var addedAnnotations = map[string]bool{
	"deployment.kubernetes.io/revision": true,
	"bosun.dev/spec-hash":               true,
	"bosun.dev/owner":                   true,
}

// gitView is the part of an object that comes from Git, in the shape
// kubectl prints it. Field order is fixed by the struct, map keys are sorted
// by encoding/json, and resource quantities marshal canonically, so two views
// with equal meaning encode to equal bytes.
type gitView struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   viewMeta `json:"metadata"`
	Spec       any      `json:"spec"`
}

type viewMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// object is one object of a Set, encoded once.
type object struct {
	key    manifest.ObjectKey
	source string
	json   []byte
}

func encode(apiVersion, kind string, meta *metav1.ObjectMeta, spec any) []byte {
	ann := meta.Annotations
	for k := range ann {
		if addedAnnotations[k] {
			ann = make(map[string]string, len(meta.Annotations))
			for k, v := range meta.Annotations {
				if !addedAnnotations[k] {
					ann[k] = v
				}
			}
			break
		}
	}
	v := gitView{
		APIVersion: apiVersion,
		Kind:       kind,
		Metadata:   viewMeta{Name: meta.Name, Namespace: meta.Namespace, Labels: meta.Labels, Annotations: ann},
		Spec:       spec,
	}
	// API types always marshal: no channels, funcs or cycles, and their
	// custom marshallers return no errors.
	data, _ := json.Marshal(v)
	return data
}

// objectsOf encodes every object of s, keyed by kind, namespace and name. A
// nil Set has no objects.
func objectsOf(s *manifest.Set) map[manifest.ObjectKey]object {
	if s == nil {
		return nil
	}
	out := make(map[manifest.ObjectKey]object, len(s.Pods)+len(s.Deployments)+len(s.Services))
	add := func(kind, apiVersion string, meta *metav1.ObjectMeta, spec any) {
		k := manifest.ObjectKey{Kind: kind, Namespace: meta.Namespace, Name: meta.Name}
		o := object{key: k, json: encode(apiVersion, kind, meta, spec)}
		if src, ok := s.Sources[k]; ok {
			o.source = src.String()
		}
		out[k] = o
	}
	for i := range s.Pods {
		p := &s.Pods[i]
		add(manifest.KindPod, "v1", &p.ObjectMeta, &p.Spec)
	}
	for i := range s.Deployments {
		d := &s.Deployments[i]
		add(manifest.KindDeployment, "apps/v1", &d.ObjectMeta, &d.Spec)
	}
	for i := range s.Services {
		svc := &s.Services[i]
		add(manifest.KindService, "v1", &svc.ObjectMeta, &svc.Spec)
	}
	return out
}

// Objects compares two revisions object by object (current may be nil),
// sorted by kind, namespace and name.
func Objects(current, next *manifest.Set) []ObjectChange {
	cur, nxt := objectsOf(current), objectsOf(next)
	var out []ObjectChange
	for k, n := range nxt {
		c, ok := cur[k]
		switch {
		case !ok:
			y := toYAML(n.json)
			out = append(out, ObjectChange{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, Op: OpCreate, Source: n.source, Diff: prefixLines("+", y)})
		case !bytes.Equal(c.json, n.json):
			from, to := toYAML(c.json), toYAML(n.json)
			name := k.Kind + "/" + k.Namespace + "/" + k.Name
			out = append(out, ObjectChange{
				Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, Op: OpChange, Source: n.source,
				Diff:   unifiedDiff("current/"+name, "next/"+name, from, to),
				Fields: changedFields(c.json, n.json),
			})
		}
	}
	for k, c := range cur {
		if _, ok := nxt[k]; !ok {
			out = append(out, ObjectChange{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, Op: OpDelete, Source: c.source})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return out
}

func toYAML(js []byte) string {
	// The input is JSON this package just produced.
	y, _ := yaml.JSONToYAML(js)
	return string(y)
}

func prefixLines(prefix, text string) string {
	var b strings.Builder
	for _, l := range splitLines(text) {
		b.WriteString(prefix)
		b.WriteString(l)
	}
	return b.String()
}

// changedFields lists the paths at which two encoded views differ, sorted:
// a leaf that changed, a key added or removed, or a list element added or
// removed ("spec.template.spec.containers[1]"). Lists are compared element
// by element in order.
func changedFields(a, b []byte) []string {
	var va, vb any
	// Both inputs are JSON this package just produced.
	_ = json.Unmarshal(a, &va)
	_ = json.Unmarshal(b, &vb)
	var out []string
	walkDiff("", va, vb, &out)
	sort.Strings(out)
	return out
}

func walkDiff(path string, a, b any, out *[]string) {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			break
		}
		for k, x := range av {
			p := joinKey(path, k)
			if y, ok := bv[k]; ok {
				walkDiff(p, x, y, out)
			} else {
				*out = append(*out, p)
			}
		}
		for k := range bv {
			if _, ok := av[k]; !ok {
				*out = append(*out, joinKey(path, k))
			}
		}
		return
	case []any:
		bv, ok := b.([]any)
		if !ok {
			break
		}
		for i := 0; i < max(len(av), len(bv)); i++ {
			p := path + "[" + strconv.Itoa(i) + "]"
			if i < len(av) && i < len(bv) {
				walkDiff(p, av[i], bv[i], out)
			} else {
				*out = append(*out, p)
			}
		}
		return
	default:
		if a == b { // scalars: string, float64, bool, nil
			return
		}
	}
	*out = append(*out, path)
}

// joinKey appends a map key to a field path, quoting keys that are not plain
// identifiers (label keys such as "app.kubernetes.io/name") the way JSONPath
// does: metadata.labels['app.kubernetes.io/name'].
func joinKey(path, k string) string {
	plain := k != ""
	for _, r := range k {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			plain = false
			break
		}
	}
	if !plain {
		return path + "['" + strings.ReplaceAll(k, "'", `\'`) + "']"
	}
	if path == "" {
		return k
	}
	return path + "." + k
}
