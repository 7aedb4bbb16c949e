package nodes

// A container's environment and the values the downward API and a pod's
// ConfigMaps and Secrets give it, as kubelet builds them. Pure: the
// ConfigMaps and Secrets are read from the store by the caller.

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// podFacts are the values the downward API can inject.
type podFacts struct {
	PodName, Namespace, UID, PodIP, NodeName, HostIP string
	ServiceAccount                                   string
	Labels, Annotations                              map[string]string
	// Containers and InitContainers of the pod, for resourceFieldRef.
	Containers []corev1.Container
	// Allocatable is the node's: what a container without a limit may use,
	// so what limits.cpu and limits.memory report for it (as kubelet does).
	Allocatable corev1.ResourceList
}

// configSources are the ConfigMaps and Secrets of the pod's namespace that
// its spec refers to, as read when a container starts or its volumes are
// set up. A name mapped to nil does not exist. Secret values must never
// reach a log, a status or an error.
type configSources struct {
	Namespace  string
	ConfigMaps map[string]*corev1.ConfigMap
	Secrets    map[string]*corev1.Secret
}

// sourceRefs lists, sorted, the ConfigMaps and Secrets a pod spec refers to
// through env, envFrom (of every container) and volumes.
func sourceRefs(spec *corev1.PodSpec) (configMaps, secrets []string) {
	cms, secs := map[string]bool{}, map[string]bool{}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				cms[e.ConfigMapRef.Name] = true
			}
			if e.SecretRef != nil {
				secs[e.SecretRef.Name] = true
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				cms[r.Name] = true
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				secs[r.Name] = true
			}
		}
	}
	for _, v := range spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			cms[v.ConfigMap.Name] = true
		case v.Secret != nil:
			secs[v.Secret.SecretName] = true
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					cms[s.ConfigMap.Name] = true
				}
				if s.Secret != nil {
					secs[s.Secret.Name] = true
				}
			}
		}
	}
	return sortedKeys(cms), sortedKeys(secs)
}

// configMapData is a ConfigMap's keys and values (data and binaryData).
func configMapData(cm *corev1.ConfigMap) map[string][]byte {
	out := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		out[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		out[k] = v
	}
	return out
}

// secretData is a Secret's keys and values: data, overridden by stringData
// as the API server merges them on write.
func secretData(s *corev1.Secret) map[string][]byte {
	out := make(map[string][]byte, len(s.Data)+len(s.StringData))
	for k, v := range s.Data {
		out[k] = v
	}
	for k, v := range s.StringData {
		out[k] = []byte(v)
	}
	return out
}

// Errors about a missing source name the object and the key, never a value,
// in kubelet's words.
func configMapNotFound(ns, name string) error {
	return fmt.Errorf("configmap %q not found in namespace %s", name, ns)
}

func secretNotFound(ns, name string) error {
	return fmt.Errorf("secret %q not found in namespace %s", name, ns)
}

// lookupConfigMapKey returns the value of key in the named ConfigMap. ok is
// false when an optional reference finds nothing; err is set when a
// required one does not.
func (s configSources) configMapKey(name, key string, optional *bool) (v string, ok bool, err error) {
	cm := s.ConfigMaps[name]
	if cm == nil {
		if isTrue(optional) {
			return "", false, nil
		}
		return "", false, configMapNotFound(s.Namespace, name)
	}
	b, found := configMapData(cm)[key]
	if !found {
		if isTrue(optional) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", key, s.Namespace, name)
	}
	return string(b), true, nil
}

func (s configSources) secretKey(name, key string, optional *bool) (v string, ok bool, err error) {
	sec := s.Secrets[name]
	if sec == nil {
		if isTrue(optional) {
			return "", false, nil
		}
		return "", false, secretNotFound(s.Namespace, name)
	}
	b, found := secretData(sec)[key]
	if !found {
		if isTrue(optional) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("couldn't find key %s in Secret %s/%s", key, s.Namespace, name)
	}
	return string(b), true, nil
}

func isTrue(b *bool) bool { return b != nil && *b }

// containerEnv builds a container's environment (KEY=value), as kubelet
// does: POD_NAME, POD_NAMESPACE and POD_IP first (the downward API a pod
// would otherwise declare), then envFrom in order (with its prefix), then
// env, whose values expand $(VAR) references to what is defined before them
// and whose valueFrom reads the downward API, resources, ConfigMaps and
// Secrets. A missing source that is not optional is an error naming the
// object and key. Keys of envFrom that are not valid variable names are
// left out and returned in skipped.
func containerEnv(c *corev1.Container, f podFacts, src configSources) (env, skipped []string, err error) {
	vals := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	set("POD_NAME", f.PodName)
	set("POD_NAMESPACE", f.Namespace)
	if f.PodIP != "" {
		set("POD_IP", f.PodIP)
	}
	for i, ef := range c.EnvFrom {
		var data map[string][]byte
		switch {
		case ef.ConfigMapRef != nil:
			cm := src.ConfigMaps[ef.ConfigMapRef.Name]
			if cm == nil {
				if isTrue(ef.ConfigMapRef.Optional) {
					continue
				}
				return nil, nil, fmt.Errorf("container %s: envFrom[%d]: %w", c.Name, i, configMapNotFound(src.Namespace, ef.ConfigMapRef.Name))
			}
			data = make(map[string][]byte, len(cm.Data))
			for k, v := range cm.Data { // binaryData is not text: kubelet leaves it out
				data[k] = []byte(v)
			}
		case ef.SecretRef != nil:
			sec := src.Secrets[ef.SecretRef.Name]
			if sec == nil {
				if isTrue(ef.SecretRef.Optional) {
					continue
				}
				return nil, nil, fmt.Errorf("container %s: envFrom[%d]: %w", c.Name, i, secretNotFound(src.Namespace, ef.SecretRef.Name))
			}
			data = secretData(sec)
		default:
			return nil, nil, fmt.Errorf("container %s: envFrom[%d]: neither configMapRef nor secretRef", c.Name, i)
		}
		for _, k := range sortedKeys(data) {
			name := ef.Prefix + k
			if len(validation.IsRelaxedEnvVarName(name)) > 0 {
				skipped = append(skipped, name)
				continue
			}
			set(name, string(data[k]))
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expandVars(e.Value, vals))
			continue
		}
		v, ok, err := envSourceValue(c, e.ValueFrom, f, src)
		if err != nil {
			return nil, nil, fmt.Errorf("container %s: env %s: %w", c.Name, e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	env = make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vals[k])
	}
	return env, skipped, nil
}

// envSourceValue resolves one valueFrom; ok is false when an optional
// source is missing (the variable is then not set, as in kubelet).
func envSourceValue(c *corev1.Container, vf *corev1.EnvVarSource, f podFacts, src configSources) (string, bool, error) {
	switch {
	case vf.FieldRef != nil:
		v, err := fieldRefValue(vf.FieldRef.FieldPath, f, false)
		return v, err == nil, err
	case vf.ResourceFieldRef != nil:
		target := c
		if n := vf.ResourceFieldRef.ContainerName; n != "" && n != c.Name {
			if target = containerNamed(f.Containers, n); target == nil {
				return "", false, fmt.Errorf("resourceFieldRef: no container %q in the pod", n)
			}
		}
		v, err := resourceFieldValue(vf.ResourceFieldRef, target, f.Allocatable)
		return v, err == nil, err
	case vf.ConfigMapKeyRef != nil:
		r := vf.ConfigMapKeyRef
		return src.configMapKey(r.Name, r.Key, r.Optional)
	case vf.SecretKeyRef != nil:
		r := vf.SecretKeyRef
		return src.secretKey(r.Name, r.Key, r.Optional)
	}
	return "", false, fmt.Errorf("valueFrom names no source")
}

func containerNamed(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

// fieldRefValue is the downward API: the value of a pod field. Whole
// metadata.labels and metadata.annotations (formatted one key="value" per
// line, sorted) are for volumes only, as in Kubernetes.
func fieldRefValue(path string, f podFacts, inVolume bool) (string, error) {
	if m, key, ok := subscripted(path); ok {
		switch m {
		case "metadata.labels":
			return f.Labels[key], nil
		case "metadata.annotations":
			return f.Annotations[key], nil
		}
		return "", fmt.Errorf("fieldRef %q is not supported", path)
	}
	switch path {
	case "metadata.name":
		return f.PodName, nil
	case "metadata.namespace":
		return f.Namespace, nil
	case "metadata.uid":
		return f.UID, nil
	}
	if inVolume {
		switch path {
		case "metadata.labels":
			return formatMap(f.Labels), nil
		case "metadata.annotations":
			return formatMap(f.Annotations), nil
		}
		return "", fmt.Errorf("fieldRef %q is not supported in a downwardAPI volume", path)
	}
	switch path {
	case "status.podIP", "status.podIPs":
		return f.PodIP, nil
	case "status.hostIP", "status.hostIPs":
		return f.HostIP, nil
	case "spec.nodeName":
		return f.NodeName, nil
	case "spec.serviceAccountName":
		return f.ServiceAccount, nil
	}
	return "", fmt.Errorf("fieldRef %q is not supported", path)
}

// subscripted splits "metadata.labels['key']" into its map and key.
func subscripted(path string) (m, key string, ok bool) {
	open := strings.Index(path, "['")
	if open < 0 || !strings.HasSuffix(path, "']") || open+2 > len(path)-2 {
		return "", "", false
	}
	return path[:open], path[open+2 : len(path)-2], true
}

// formatMap is the downward API's rendering of labels and annotations:
// key="value" lines (Go-quoted values), sorted by key.
func formatMap(m map[string]string) string {
	lines := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		lines = append(lines, fmt.Sprintf("%s=%q", k, m[k]))
	}
	return strings.Join(lines, "\n")
}

// resourceFieldValue is a container's request or limit in units of the
// divisor, rounded up, as kubelet reports it. A limit the container does not
// set is the node's allocatable amount; a request it does not set is its
// limit when it has one (the API server's default), else 0.
func resourceFieldValue(sel *corev1.ResourceFieldSelector, c *corev1.Container, allocatable corev1.ResourceList) (string, error) {
	kind, name, ok := strings.Cut(sel.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("resourceFieldRef %q is not supported", sel.Resource)
	}
	rn := corev1.ResourceName(name)
	switch rn {
	case corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
	default:
		return "", fmt.Errorf("resourceFieldRef %q is not supported", sel.Resource)
	}
	limit, hasLimit := c.Resources.Limits[rn]
	if !hasLimit {
		limit, hasLimit = allocatable[rn]
	}
	var q resource.Quantity
	if kind == "limits" {
		q = limit
	} else if r, ok := c.Resources.Requests[rn]; ok {
		q = r
	} else if l, ok := c.Resources.Limits[rn]; ok {
		q = l
	}
	divisor := sel.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	var v float64
	if rn == corev1.ResourceCPU {
		v = math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue()))
	} else {
		v = math.Ceil(float64(q.Value()) / float64(divisor.Value()))
	}
	return strconv.FormatInt(int64(v), 10), nil
}

var varRef = regexp.MustCompile(`\$\$|\$\([A-Za-z_][A-Za-z0-9_.-]*\)`)

// expandVars expands $(VAR) from vars as Kubernetes does: unknown references
// stay as written, $$ escapes a dollar.
func expandVars(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := vars[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// expandAll expands $(VAR) in command and args with the container's env.
func expandAll(in []string, env []string) []string {
	if len(in) == 0 {
		return in
	}
	vars := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = expandVars(s, vars)
	}
	return out
}
