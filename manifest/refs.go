package manifest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// AnnotationConfigHash is put by bosun (StampConfigHashes), never by a
// manifest, on the pod template of a Deployment and on a standalone Pod that
// use ConfigMaps or Secrets: a keyed hash of what they use. A change to any
// of those objects in Git changes it, which rolls the Deployment out and
// restarts the Pod, as users otherwise add Reloader-like tools for.
const AnnotationConfigHash = "bosun.dev/config-hash"

// podSpecAt is one pod spec inside an object, and its field path.
type podSpecAt struct {
	spec *corev1.PodSpec
	path *field.Path
}

// podSpecsOf returns the pod specs an object carries.
func podSpecsOf(obj any) []podSpecAt {
	switch o := obj.(type) {
	case *corev1.Pod:
		return []podSpecAt{{&o.Spec, field.NewPath("spec")}}
	case *appsv1.Deployment:
		return []podSpecAt{{&o.Spec.Template.Spec, field.NewPath("spec", "template", "spec")}}
	case *batchv1.Job:
		return []podSpecAt{{&o.Spec.Template.Spec, field.NewPath("spec", "template", "spec")}}
	case *batchv1.CronJob:
		return []podSpecAt{{&o.Spec.JobTemplate.Spec.Template.Spec, field.NewPath("spec", "jobTemplate", "spec", "template", "spec")}}
	case *appsv1.DaemonSet:
		return []podSpecAt{{&o.Spec.Template.Spec, field.NewPath("spec", "template", "spec")}}
	case *appsv1.StatefulSet:
		return []podSpecAt{{&o.Spec.Template.Spec, field.NewPath("spec", "template", "spec")}}
	}
	return nil
}

// check applies the operator's policy to an object's pod specs.
func (pol Policy) check(obj any) problems {
	var ps problems
	for _, at := range podSpecsOf(obj) {
		for i, v := range at.spec.Volumes {
			if v.HostPath == nil {
				continue
			}
			p := at.path.Child("volumes").Index(i).Child("hostPath", "path")
			hp := v.HostPath.Path
			switch {
			case !strings.HasPrefix(hp, "/"):
				ps.add(p, "must be an absolute path")
			case path.Clean(hp) != hp:
				ps.add(p, "must be a clean path (no \"..\", \".\" or double slashes)")
			case !pol.hostPathAllowed(hp):
				allowed := "none"
				if len(pol.AllowHostPaths) > 0 {
					allowed = strings.Join(pol.AllowHostPaths, ",")
				}
				ps.add(p, "%q is not under a directory the operator allows (--allow-host-path: %s)", hp, allowed)
			}
		}
		eachContainer(at, func(c *corev1.Container, p *field.Path) {
			if sc := c.SecurityContext; sc != nil && sc.Privileged != nil && *sc.Privileged && !pol.AllowPrivileged {
				ps.add(p.Child("securityContext", "privileged"), "not allowed: the operator has not given --allow-privileged")
			}
		})
		pol.checkHostNetwork(at, &ps)
	}
	return ps
}

func (pol Policy) hostPathAllowed(p string) bool {
	for _, prefix := range pol.AllowHostPaths {
		prefix = path.Clean(prefix)
		if p == prefix || prefix == "/" || strings.HasPrefix(p, prefix+"/") {
			return true
		}
	}
	return false
}

// eachContainer calls f for every init and app container of a pod spec.
func eachContainer(at podSpecAt, f func(c *corev1.Container, p *field.Path)) {
	for i := range at.spec.InitContainers {
		f(&at.spec.InitContainers[i], at.path.Child("initContainers").Index(i))
	}
	for i := range at.spec.Containers {
		f(&at.spec.Containers[i], at.path.Child("containers").Index(i))
	}
}

// configRef is one use of a ConfigMap or Secret by a pod spec.
type configRef struct {
	kind     string // KindConfigMap or KindSecret
	name     string
	nameKey  string   // the JSON name of the field that names it: "name", or a secret volume's "secretName"
	keys     []string // keys that must exist; none for a whole-object use
	optional bool
	path     *field.Path
}

// configRefs lists every ConfigMap and Secret a pod spec uses: env
// valueFrom, envFrom, and configMap, secret and projected volumes.
func configRefs(at podSpecAt) []configRef {
	var refs []configRef
	opt := func(b *bool) bool { return b != nil && *b }
	itemKeys := func(items []corev1.KeyToPath) []string {
		keys := make([]string, len(items))
		for i, it := range items {
			keys[i] = it.Key
		}
		return keys
	}
	eachContainer(at, func(c *corev1.Container, p *field.Path) {
		for i, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			vp := p.Child("env").Index(i).Child("valueFrom")
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				refs = append(refs, configRef{KindConfigMap, r.Name, "name", []string{r.Key}, opt(r.Optional), vp.Child("configMapKeyRef")})
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				refs = append(refs, configRef{KindSecret, r.Name, "name", []string{r.Key}, opt(r.Optional), vp.Child("secretKeyRef")})
			}
		}
		for i, e := range c.EnvFrom {
			ep := p.Child("envFrom").Index(i)
			if r := e.ConfigMapRef; r != nil {
				refs = append(refs, configRef{KindConfigMap, r.Name, "name", nil, opt(r.Optional), ep.Child("configMapRef")})
			}
			if r := e.SecretRef; r != nil {
				refs = append(refs, configRef{KindSecret, r.Name, "name", nil, opt(r.Optional), ep.Child("secretRef")})
			}
		}
	})
	for i, v := range at.spec.Volumes {
		vp := at.path.Child("volumes").Index(i)
		if r := v.ConfigMap; r != nil {
			refs = append(refs, configRef{KindConfigMap, r.Name, "name", itemKeys(r.Items), opt(r.Optional), vp.Child("configMap")})
		}
		if r := v.Secret; r != nil {
			refs = append(refs, configRef{KindSecret, r.SecretName, "secretName", itemKeys(r.Items), opt(r.Optional), vp.Child("secret")})
		}
		if v.Projected != nil {
			for j, src := range v.Projected.Sources {
				sp := vp.Child("projected", "sources").Index(j)
				if r := src.ConfigMap; r != nil {
					refs = append(refs, configRef{KindConfigMap, r.Name, "name", itemKeys(r.Items), opt(r.Optional), sp.Child("configMap")})
				}
				if r := src.Secret; r != nil {
					refs = append(refs, configRef{KindSecret, r.Name, "name", itemKeys(r.Items), opt(r.Optional), sp.Child("secret")})
				}
			}
		}
	}
	return refs
}

// configIndex finds a Set's ConfigMaps and Secrets by namespace and name.
type configIndex struct {
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
}

func indexConfig(s *Set) configIndex {
	ix := configIndex{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	for i := range s.ConfigMaps {
		cm := &s.ConfigMaps[i]
		ix.configMaps[cm.Namespace+"/"+cm.Name] = cm
	}
	for i := range s.Secrets {
		sec := &s.Secrets[i]
		ix.secrets[sec.Namespace+"/"+sec.Name] = sec
	}
	return ix
}

// keys returns the keys of the object a reference names, and whether it
// exists.
func (ix configIndex) keys(namespace string, r configRef) (map[string]bool, bool) {
	keys := map[string]bool{}
	if r.kind == KindConfigMap {
		cm, ok := ix.configMaps[namespace+"/"+r.name]
		if !ok {
			return nil, false
		}
		for k := range cm.Data {
			keys[k] = true
		}
		for k := range cm.BinaryData {
			keys[k] = true
		}
		return keys, true
	}
	sec, ok := ix.secrets[namespace+"/"+r.name]
	if !ok {
		return nil, false
	}
	for k := range sec.Data {
		keys[k] = true
	}
	for k := range sec.StringData {
		keys[k] = true
	}
	return keys, true
}

// checkReferences reports every non-optional use of a ConfigMap or Secret
// that the revision does not define, or of a key it does not hold, naming
// both objects. Kubernetes would leave such a pod waiting with
// CreateContainerConfigError; in Git it is a mistake to catch before merge.
func (l *loader) checkReferences() {
	ix := indexConfig(l.set)
	check := func(kind string, namespace, name string, obj any) {
		d := l.docs[ObjectKey{Kind: kind, Namespace: namespace, Name: name}]
		if d == nil {
			return
		}
		for _, at := range podSpecsOf(obj) {
			for _, r := range configRefs(at) {
				if r.optional {
					continue
				}
				if r.name == "" {
					l.errs = append(l.errs, d.errorAt(r.path.Child(r.nameKey).String(), "required"))
					continue
				}
				keys, ok := ix.keys(namespace, r)
				if !ok && l.definedEncrypted(ObjectKey{Kind: r.kind, Namespace: namespace, Name: r.name}) {
					continue // perhaps in an encrypted document not checked
				}
				if !ok {
					l.errs = append(l.errs, d.errorAt(r.path.String(), fmt.Sprintf(
						"%s %s/%s does not exist (%s %s/%s uses it; set optional: true if it may be missing)",
						r.kind, namespace, r.name, kind, namespace, name)))
					continue
				}
				src := l.set.Sources[ObjectKey{Kind: r.kind, Namespace: namespace, Name: r.name}]
				for _, k := range r.keys {
					if !keys[k] {
						l.errs = append(l.errs, d.errorAt(r.path.String(), fmt.Sprintf(
							"%s %s/%s (%s) has no key %q (%s %s/%s uses it)", r.kind, namespace, r.name, src, k, kind, namespace, name)))
					}
				}
			}
		}
	}
	l.set.eachPodSpecOwner(check)
}

// eachPodSpecOwner calls f with every object of s that carries pod specs
// (podSpecsOf): Pods, Deployments, Jobs, CronJobs, DaemonSets and
// StatefulSets, by kind, namespace and name.
func (s *Set) eachPodSpecOwner(f func(kind, namespace, name string, obj any)) {
	for i := range s.Pods {
		o := &s.Pods[i]
		f(KindPod, o.Namespace, o.Name, o)
	}
	for i := range s.Deployments {
		o := &s.Deployments[i]
		f(KindDeployment, o.Namespace, o.Name, o)
	}
	for i := range s.Jobs {
		o := &s.Jobs[i]
		f(KindJob, o.Namespace, o.Name, o)
	}
	for i := range s.CronJobs {
		o := &s.CronJobs[i]
		f(KindCronJob, o.Namespace, o.Name, o)
	}
	for i := range s.DaemonSets {
		o := &s.DaemonSets[i]
		f(KindDaemonSet, o.Namespace, o.Name, o)
	}
	for i := range s.StatefulSets {
		o := &s.StatefulSets[i]
		f(KindStatefulSet, o.Namespace, o.Name, o)
	}
}

// StampConfigHashes puts AnnotationConfigHash on every Deployment's,
// DaemonSet's and StatefulSet's pod template and every standalone Pod that uses a ConfigMap
// or Secret, and removes it from those that use none. The hash is an HMAC-SHA256, keyed
// with key, of the names and data of every object used (and of the absence
// of optional ones), so a Secret's hash tells nothing of its value to
// whoever reads the annotation without the key. Jobs and CronJobs are left
// alone: their pods read their configuration when they start, and a Job
// does not run again because a ConfigMap changed. With an empty key
// nothing is stamped.
func (s *Set) StampConfigHashes(key []byte) {
	if len(key) == 0 {
		return
	}
	ix := indexConfig(s)
	stamp := func(ann *map[string]string, namespace string, at podSpecAt) {
		h := configHash(key, ix, namespace, configRefs(at))
		if h == "" {
			delete(*ann, AnnotationConfigHash)
			if len(*ann) == 0 {
				*ann = nil
			}
			return
		}
		if *ann == nil {
			*ann = map[string]string{}
		}
		(*ann)[AnnotationConfigHash] = h
	}
	for i := range s.Deployments {
		d := &s.Deployments[i]
		stamp(&d.Spec.Template.Annotations, d.Namespace, podSpecsOf(d)[0])
	}
	for i := range s.Pods {
		p := &s.Pods[i]
		stamp(&p.Annotations, p.Namespace, podSpecsOf(p)[0])
	}
	for i := range s.DaemonSets {
		d := &s.DaemonSets[i]
		stamp(&d.Spec.Template.Annotations, d.Namespace, podSpecsOf(d)[0])
	}
	for i := range s.StatefulSets {
		sts := &s.StatefulSets[i]
		stamp(&sts.Spec.Template.Annotations, sts.Namespace, podSpecsOf(sts)[0])
	}
}

// configHash hashes the objects refs use, in a canonical order; "" when
// refs is empty.
func configHash(key []byte, ix configIndex, namespace string, refs []configRef) string {
	if len(refs) == 0 {
		return ""
	}
	names := make([]string, 0, len(refs))
	for _, r := range refs {
		names = append(names, r.kind+"/"+r.name)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	mac := hmac.New(sha256.New, key)
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		mac.Write(n[:])
		mac.Write(b)
	}
	for _, n := range names {
		kind, name, _ := strings.Cut(n, "/")
		field([]byte(n))
		var data map[string][]byte
		if kind == KindConfigMap {
			if cm, ok := ix.configMaps[namespace+"/"+name]; ok {
				data = make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
				for k, v := range cm.Data {
					data[k] = []byte(v)
				}
				for k, v := range cm.BinaryData {
					data[k] = v
				}
			}
		} else if sec, ok := ix.secrets[namespace+"/"+name]; ok {
			data = sec.Data
			field([]byte(sec.Type))
		}
		if data == nil {
			field([]byte("(absent)"))
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(data)) {
			field([]byte(k))
			field(data[k])
		}
	}
	return hex.EncodeToString(mac.Sum(nil))[:16]
}
