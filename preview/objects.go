package preview

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"bosun/kube"
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
	Spec       any      `json:"spec,omitempty"`
	// The top-level fields of ConfigMaps and Secrets, which have no spec.
	// A Secret's data values are never here: see secretView.
	Type       string `json:"type,omitempty"`
	Immutable  *bool  `json:"immutable,omitempty"`
	Data       any    `json:"data,omitempty"`
	BinaryData any    `json:"binaryData,omitempty"`
}

// What a Secret's values show as in a plan: never the value, only whether
// it changed.
const (
	secretValue        = "(secret value)"
	secretValueChanged = "(secret value changed)"
)

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
	// json is the view shown to users; cmp is what decides whether two
	// revisions' objects differ. They are the same bytes but for Secrets,
	// whose view hides the values that cmp (never shown) compares.
	json, cmp []byte
	secret    *corev1.Secret
	address   string // ObjectChange.Address
}

// serviceAddress is a Service's ObjectChange.Address.
func serviceAddress(svc *corev1.Service) string {
	ip := svc.Spec.ClusterIP
	if ip == "" {
		ip = "<none>"
	}
	return ip + " " + kube.ServicePorts(svc)
}

func encode(apiVersion, kind string, meta *metav1.ObjectMeta, spec any) []byte {
	return encodeView(gitView{APIVersion: apiVersion, Kind: kind, Spec: spec}, meta)
}

// encodeView encodes v with meta's Git-owned metadata.
func encodeView(v gitView, meta *metav1.ObjectMeta) []byte {
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
	v.Metadata = viewMeta{Name: meta.Name, Namespace: meta.Namespace, Labels: meta.Labels, Annotations: ann}
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
	put := func(k manifest.ObjectKey, o object) {
		o.key = k
		if src, ok := s.Sources[k]; ok {
			o.source = src.String()
		}
		out[k] = o
	}
	add := func(kind, apiVersion string, meta *metav1.ObjectMeta, spec any) {
		js := encode(apiVersion, kind, meta, spec)
		put(manifest.ObjectKey{Kind: kind, Namespace: meta.Namespace, Name: meta.Name}, object{json: js, cmp: js})
	}
	addView := func(kind string, meta *metav1.ObjectMeta, v gitView) {
		v.APIVersion, v.Kind = "v1", kind
		js := encodeView(v, meta)
		put(manifest.ObjectKey{Kind: kind, Namespace: meta.Namespace, Name: meta.Name}, object{json: js, cmp: js})
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
		js := encode("v1", manifest.KindService, &svc.ObjectMeta, &svc.Spec)
		put(manifest.ObjectKey{Kind: manifest.KindService, Namespace: svc.Namespace, Name: svc.Name},
			object{json: js, cmp: js, address: serviceAddress(svc)})
	}
	for i := range s.Jobs {
		j := &s.Jobs[i]
		add(manifest.KindJob, "batch/v1", &j.ObjectMeta, &j.Spec)
	}
	for i := range s.CronJobs {
		cj := &s.CronJobs[i]
		add(manifest.KindCronJob, "batch/v1", &cj.ObjectMeta, &cj.Spec)
	}
	for i := range s.DaemonSets {
		ds := &s.DaemonSets[i]
		add(manifest.KindDaemonSet, "apps/v1", &ds.ObjectMeta, &ds.Spec)
	}
	for i := range s.StatefulSets {
		sts := &s.StatefulSets[i]
		add(manifest.KindStatefulSet, "apps/v1", &sts.ObjectMeta, &sts.Spec)
	}
	for i := range s.PersistentVolumeClaims {
		c := &s.PersistentVolumeClaims[i]
		add(manifest.KindPersistentVolumeClaim, "v1", &c.ObjectMeta, &c.Spec)
	}
	for i := range s.Ingresses {
		ing := &s.Ingresses[i]
		add(manifest.KindIngress, "networking.k8s.io/v1", &ing.ObjectMeta, &ing.Spec)
	}
	for i := range s.IngressClasses {
		c := &s.IngressClasses[i]
		add(manifest.KindIngressClass, "networking.k8s.io/v1", &c.ObjectMeta, &c.Spec)
	}
	for i := range s.Namespaces {
		ns := &s.Namespaces[i]
		addView(manifest.KindNamespace, &ns.ObjectMeta, gitView{})
	}
	for i := range s.ConfigMaps {
		cm := &s.ConfigMaps[i]
		addView(manifest.KindConfigMap, &cm.ObjectMeta, gitView{Immutable: cm.Immutable, Data: nilIfEmpty(cm.Data), BinaryData: nilIfEmpty(cm.BinaryData)})
	}
	for i := range s.Secrets {
		sec := &s.Secrets[i]
		k := manifest.ObjectKey{Kind: manifest.KindSecret, Namespace: sec.Namespace, Name: sec.Name}
		full := gitView{APIVersion: "v1", Kind: manifest.KindSecret, Type: string(sec.Type), Immutable: sec.Immutable, Data: nilIfEmpty(sec.Data)}
		put(k, object{json: secretView(sec, nil), cmp: encodeView(full, &sec.ObjectMeta), secret: sec})
	}
	return out
}

// secretView encodes a Secret for users: its keys, each value replaced by
// secretValue, or secretValueChanged for the keys in changed.
func secretView(sec *corev1.Secret, changed map[string]bool) []byte {
	var data map[string]string
	if len(sec.Data) > 0 {
		data = make(map[string]string, len(sec.Data))
		for k := range sec.Data {
			data[k] = secretValue
			if changed[k] {
				data[k] = secretValueChanged
			}
		}
	}
	v := gitView{APIVersion: "v1", Kind: manifest.KindSecret, Type: string(sec.Type), Immutable: sec.Immutable}
	if data != nil {
		v.Data = data
	}
	return encodeView(v, &sec.ObjectMeta)
}

// changedValues lists the keys whose values differ between two Secrets
// (present in both).
func changedValues(a, b *corev1.Secret) map[string]bool {
	out := map[string]bool{}
	for k, v := range b.Data {
		if old, ok := a.Data[k]; ok && !bytes.Equal(old, v) {
			out[k] = true
		}
	}
	return out
}

// nilIfEmpty keeps empty maps out of the views, as omitempty would.
func nilIfEmpty[V any](m map[string]V) any {
	if len(m) == 0 {
		return nil
	}
	return m
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
			out = append(out, ObjectChange{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, Op: OpCreate, Source: n.source,
				Address: n.address, Diff: prefixLines("+", y)})
		case !bytes.Equal(c.cmp, n.cmp):
			if n.secret != nil && c.secret != nil {
				n.json = secretView(n.secret, changedValues(c.secret, n.secret))
			}
			from, to := toYAML(c.json), toYAML(n.json)
			name := k.Kind + "/" + k.Namespace + "/" + k.Name
			out = append(out, ObjectChange{
				Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, Op: OpChange, Source: n.source, Address: n.address,
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
