package manifest

import (
	"fmt"
	"maps"
	"math"
	"net/netip"
	pathpkg "path"
	"reflect"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"bosun/canary"
	"bosun/kube"
)

// annotationPrefix marks the annotations that are bosun's to read. Any of
// them a manifest sets must be one bosun carries out (honouredAnnotations);
// the others are refused like unsupported fields, so that a manifest never
// seems to ask for something bosun does not do.
const annotationPrefix = "bosun.dev/"

// honouredAnnotations are the bosun.dev/ annotations any object may set,
// with what they do. None yet.
var honouredAnnotations = map[string]string{}

// AnnotationWeight on a pod (or a pod template) is the relative share of
// new connections its endpoint group gets in the Services that select it:
// a non-negative integer (proxy.Group.Weight).
const AnnotationWeight = kube.AnnotationWeight

// podAnnotations are the bosun.dev/ annotations of pods and pod templates,
// each with the check of its value (it returns why a value is refused, or "").
var podAnnotations = map[string]func(v string) string{
	AnnotationWeight: func(v string) string {
		if n, err := strconv.ParseInt(v, 10, 32); err != nil || n < 0 {
			return fmt.Sprintf("invalid value %q: must be a non-negative integer (the pod's endpoint group's relative share of its Services' new connections)", v)
		}
		return ""
	},
}

// pendingAnnotations are bosun.dev/ annotations of the design that bosun
// does not carry out yet, with what they are waiting for. None now.
var pendingAnnotations = map[string]string{}

// metaKind says whose metadata is validated: which bosun.dev/ annotations
// it may carry.
type metaKind int

const (
	metaOther      metaKind = iota
	metaPod                 // pods and pod templates: AnnotationWeight
	metaDeployment          // Deployments: the canary annotations
)

const (
	subdomainRule = "must be a DNS-1123 subdomain (at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"
	labelRule     = "must be a DNS-1123 label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)"
	portNameRule  = "must be at most 15 lowercase letters, digits and '-', with at least one letter and no leading, trailing or double '-'"
	portRange     = "is out of range (1-65535)"
)

// problem is one validation failure before it is placed in a file.
type problem struct {
	path string
	msg  string
}

type problems []problem

func (ps *problems) add(path *field.Path, format string, args ...any) {
	*ps = append(*ps, problem{path: path.String(), msg: fmt.Sprintf(format, args...)})
}

// addList takes apimachinery's own validators' findings as they word them.
func (ps *problems) addList(list field.ErrorList) {
	for _, e := range list {
		*ps = append(*ps, problem{path: e.Field, msg: e.ErrorBody()})
	}
}

func validatePod(pod *corev1.Pod) problems {
	var ps problems
	validateMeta(&pod.ObjectMeta, validation.IsDNS1123Subdomain, subdomainRule, metaPod, &ps)
	validatePodSpec(&pod.Spec, field.NewPath("spec"), ownerNone, &ps)
	return ps
}

func validateDeployment(dep *appsv1.Deployment) problems {
	var ps problems
	validateMeta(&dep.ObjectMeta, validation.IsDNS1123Subdomain, subdomainRule, metaDeployment, &ps)
	if _, problems := canary.Parse(dep.Annotations); len(problems) > 0 {
		ann := field.NewPath("metadata", "annotations")
		for _, p := range problems {
			ps.add(ann.Key(p.Annotation), "%s", p.Message)
		}
	}
	spec := field.NewPath("spec")
	if dep.Spec.Replicas != nil && *dep.Spec.Replicas < 0 {
		ps.add(spec.Child("replicas"), "must be >= 0")
	}
	if dep.Spec.MinReadySeconds < 0 {
		ps.add(spec.Child("minReadySeconds"), "must be >= 0")
	}
	validateTemplateMeta(&dep.Spec.Template.ObjectMeta, spec.Child("template", "metadata"), true, &ps)
	validateSelector(dep.Spec.Selector, dep.Spec.Template.Labels, spec.Child("selector"), &ps)
	validateStrategy(&dep.Spec.Strategy, spec.Child("strategy"), &ps)
	validatePodSpec(&dep.Spec.Template.Spec, spec.Child("template", "spec"), ownerDeployment, &ps)
	return ps
}

// Limits of sessionAffinityConfig.clientIP.timeoutSeconds, as in
// Kubernetes.
const (
	DefaultClientIPTimeoutSeconds = 10800
	maxClientIPTimeoutSeconds     = 86400
)

func validateService(svc *corev1.Service) problems {
	var ps problems
	validateObjectMeta(&svc.ObjectMeta, validation.IsDNS1123Label, labelRule, &ps)
	spec := field.NewPath("spec")
	nodePort := svc.Spec.Type == corev1.ServiceTypeNodePort
	switch t := svc.Spec.Type; t {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
	case corev1.ServiceTypeLoadBalancer:
		ps.add(spec.Child("type"), "unsupported value %q: bosun has no load balancer provider; use type NodePort and point your load balancer at the nodes' ports", t)
	case corev1.ServiceTypeExternalName:
		ps.add(spec.Child("type"), "unsupported value %q: bosun serves Services with endpoints (ClusterIP, headless, NodePort); use a DNS CNAME outside the cluster", t)
	default:
		ps.add(spec.Child("type"), "unsupported value %q: must be ClusterIP or NodePort", t)
	}
	switch ip := svc.Spec.ClusterIP; {
	case ip == "":
	case ip == corev1.ClusterIPNone:
		if nodePort {
			ps.add(spec.Child("clusterIP"), "must not be None when type is NodePort: a node port forwards to the Service's virtual IP")
		}
	default:
		if a, err := netip.ParseAddr(ip); err != nil || !a.Is4() {
			ps.add(spec.Child("clusterIP"), "invalid value %q: must be an IPv4 address from the service CIDR, None (headless), or left out (bosun gives one)", ip)
		}
	}
	switch ips := svc.Spec.ClusterIPs; {
	case len(ips) > 1:
		ps.add(spec.Child("clusterIPs"), "at most one address: bosun serves IPv4 single-stack Services")
	case len(ips) == 1 && ips[0] != svc.Spec.ClusterIP:
		ps.add(spec.Child("clusterIPs").Index(0), "must be the same as spec.clusterIP (%q)", svc.Spec.ClusterIP)
	}
	sac := spec.Child("sessionAffinityConfig")
	switch a := svc.Spec.SessionAffinity; a {
	case corev1.ServiceAffinityNone:
		if svc.Spec.SessionAffinityConfig != nil {
			ps.add(sac, "must not be set when sessionAffinity is None")
		}
	case corev1.ServiceAffinityClientIP:
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			if t := *c.ClientIP.TimeoutSeconds; t < 1 || t > maxClientIPTimeoutSeconds {
				ps.add(sac.Child("clientIP", "timeoutSeconds"), "%d is out of range: must be 1 to %d (a day)", t, maxClientIPTimeoutSeconds)
			}
		}
		if svc.Spec.ClusterIP == corev1.ClusterIPNone {
			ps.add(spec.Child("sessionAffinity"), "ClientIP needs a virtual IP: a headless Service has none")
		}
	default:
		ps.add(spec.Child("sessionAffinity"), "unsupported value %q: must be None or ClientIP", a)
	}
	switch p := svc.Spec.ExternalTrafficPolicy; {
	case p == "":
	case !nodePort:
		ps.add(spec.Child("externalTrafficPolicy"), "may only be set when type is NodePort")
	case p == corev1.ServiceExternalTrafficPolicyLocal:
		ps.add(spec.Child("externalTrafficPolicy"), "unsupported value %q: bosun's node ports forward to the endpoints on every node (Cluster); it does not keep the client's address by serving only a node's own endpoints", p)
	case p != corev1.ServiceExternalTrafficPolicyCluster:
		ps.add(spec.Child("externalTrafficPolicy"), "unsupported value %q: must be Cluster", p)
	}
	switch p := svc.Spec.InternalTrafficPolicy; {
	case p == nil || *p == corev1.ServiceInternalTrafficPolicyCluster:
	case *p == corev1.ServiceInternalTrafficPolicyLocal:
		ps.add(spec.Child("internalTrafficPolicy"), "unsupported value %q: bosun sends a Service's traffic to its endpoints on every node (Cluster)", *p)
	default:
		ps.add(spec.Child("internalTrafficPolicy"), "unsupported value %q: must be Cluster", *p)
	}
	for i, f := range svc.Spec.IPFamilies {
		if f != corev1.IPv4Protocol {
			ps.add(spec.Child("ipFamilies").Index(i), "unsupported value %q: bosun serves IPv4", f)
		}
	}
	if p := svc.Spec.IPFamilyPolicy; p != nil && *p != corev1.IPFamilyPolicySingleStack {
		ps.add(spec.Child("ipFamilyPolicy"), "unsupported value %q: bosun serves IPv4 only (SingleStack)", *p)
	}
	validateLabels(svc.Spec.Selector, spec.Child("selector"), &ps)
	if len(svc.Spec.Ports) == 0 && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		ps.add(spec.Child("ports"), "at least one port is required")
	}
	names := map[string]bool{}
	numbers := map[string]bool{}
	for i := range svc.Spec.Ports {
		port := &svc.Spec.Ports[i]
		p := spec.Child("ports").Index(i)
		switch {
		case port.Name == "" && len(svc.Spec.Ports) > 1:
			ps.add(p.Child("name"), "required when a Service has more than one port")
		case port.Name == "":
		case len(validation.IsDNS1123Label(port.Name)) > 0:
			ps.add(p.Child("name"), "invalid port name %q: %s", port.Name, labelRule)
		case names[port.Name]:
			ps.add(p.Child("name"), "duplicate port name %q", port.Name)
		}
		names[port.Name] = true
		if len(validation.IsValidPortNum(int(port.Port))) > 0 {
			ps.add(p.Child("port"), "%d %s", port.Port, portRange)
		} else if key := strconv.Itoa(int(port.Port)) + "/" + string(port.Protocol); numbers[key] {
			ps.add(p.Child("port"), "duplicate port %s", key)
		} else {
			numbers[key] = true
		}
		validateProtocol(port.Protocol, p.Child("protocol"), &ps)
		if port.Protocol == corev1.ProtocolSCTP && svc.Spec.ClusterIP != corev1.ClusterIPNone {
			ps.add(p.Child("protocol"), "unsupported value \"SCTP\": bosun's Service proxy programs TCP and UDP; an SCTP port needs a headless Service (clusterIP: None), whose DNS names the pods")
		}
		validateTargetPort(port.TargetPort, p.Child("targetPort"), &ps)
		switch {
		case port.NodePort == 0:
		case !nodePort:
			ps.add(p.Child("nodePort"), "may only be set when type is NodePort")
		case len(validation.IsValidPortNum(int(port.NodePort))) > 0:
			ps.add(p.Child("nodePort"), "%d %s", port.NodePort, portRange)
		}
	}
	return ps
}

func validateObjectMeta(meta *metav1.ObjectMeta, nameRule func(string) []string, ruleText string, ps *problems) {
	validateMeta(meta, nameRule, ruleText, metaOther, ps)
}

// validateMeta checks an object's metadata; kind says which bosun.dev/
// annotations it may carry.
func validateMeta(meta *metav1.ObjectMeta, nameRule func(string) []string, ruleText string, kind metaKind, ps *problems) {
	md := field.NewPath("metadata")
	switch {
	case meta.Name == "":
		ps.add(md.Child("name"), "required")
	case len(nameRule(meta.Name)) > 0:
		ps.add(md.Child("name"), "invalid name %q: %s", meta.Name, ruleText)
	}
	if meta.Namespace != "" && len(validation.IsDNS1123Label(meta.Namespace)) > 0 {
		ps.add(md.Child("namespace"), "invalid namespace %q: %s", meta.Namespace, labelRule)
	}
	validateLabels(meta.Labels, md.Child("labels"), ps)
	validateAnnotations(meta.Annotations, md.Child("annotations"), kind, ps)
}

// validateTemplateMeta checks the metadata of a pod or job template: labels
// and annotations only, since the owner names what it creates. pod says it
// is a pod template.
func validateTemplateMeta(meta *metav1.ObjectMeta, path *field.Path, pod bool, ps *problems) {
	if meta.Name != "" {
		ps.add(path.Child("name"), "not supported by bosun: the owner names the pods and jobs it makes (Kubernetes ignores this name); remove it")
	}
	if meta.Namespace != "" {
		ps.add(path.Child("namespace"), "not supported by bosun: a template's objects live in its owner's namespace")
	}
	validateLabels(meta.Labels, path.Child("labels"), ps)
	kind := metaOther
	if pod {
		kind = metaPod
	}
	validateAnnotations(meta.Annotations, path.Child("annotations"), kind, ps)
}

// validateAnnotations applies Kubernetes' rules, then bosun's own: a
// bosun.dev/ annotation must be one bosun acts on, where it acts on it.
// The canary annotations are read (and checked) by canary.Parse.
func validateAnnotations(ann map[string]string, path *field.Path, kind metaKind, ps *problems) {
	ps.addList(apivalidation.ValidateAnnotations(ann, path))
	for _, k := range slices.Sorted(maps.Keys(ann)) {
		if !strings.HasPrefix(k, annotationPrefix) {
			continue
		}
		if _, ok := honouredAnnotations[k]; ok {
			continue
		}
		if slices.Contains(canary.Annotations, k) {
			if kind != metaDeployment {
				ps.add(path.Key(k), "only a Deployment may set it (in its own metadata): it asks for a canary of the Deployment's pods")
			}
			continue
		}
		if check, ok := podAnnotations[k]; ok {
			if kind != metaPod {
				ps.add(path.Key(k), "only pods and pod templates may set it: it weighs a pod's endpoints in its Services")
			} else if why := check(ann[k]); why != "" {
				ps.add(path.Key(k), "%s", why)
			}
			continue
		}
		if why, ok := pendingAnnotations[k]; ok {
			ps.add(path.Key(k), "not supported by bosun yet: %s", why)
			continue
		}
		ps.add(path.Key(k), "not supported by bosun: bosun.dev/ annotations are bosun's own")
	}
}

// validateLabels checks each label on its own so that an error names the
// label's own path (metadata.labels[app]) and line.
func validateLabels(m map[string]string, path *field.Path, ps *problems) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		ps.addList(metavalidation.ValidateLabels(map[string]string{k: m[k]}, path.Key(k)))
	}
}

func validateSelector(sel *metav1.LabelSelector, tmplLabels map[string]string, path *field.Path, ps *problems) {
	if sel == nil {
		ps.add(path, "required")
		return
	}
	if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
		ps.add(path, "must select at least one label")
		return
	}
	errs := metavalidation.ValidateLabelSelector(sel, metavalidation.LabelSelectorValidationOptions{}, path)
	if len(errs) > 0 {
		ps.addList(errs)
		return
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		ps.add(path, "invalid: %v", err)
		return
	}
	if !s.Matches(labels.Set(tmplLabels)) {
		ps.add(path, "does not match template labels")
	}
}

func validateStrategy(st *appsv1.DeploymentStrategy, path *field.Path, ps *problems) {
	switch st.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if st.RollingUpdate != nil {
			ps.add(path.Child("rollingUpdate"), "must not be set when type is Recreate")
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		if st.RollingUpdate == nil {
			return
		}
		ru := path.Child("rollingUpdate")
		surge, okS := validateIntOrPercent(st.RollingUpdate.MaxSurge, ru.Child("maxSurge"), ps)
		unavail, okU := validateIntOrPercent(st.RollingUpdate.MaxUnavailable, ru.Child("maxUnavailable"), ps)
		if okS && okU && surge == 0 && unavail == 0 {
			ps.add(ru.Child("maxUnavailable"), "must not be 0 when maxSurge is 0")
		}
	default:
		ps.add(path.Child("type"), "unsupported value %q: must be RollingUpdate or Recreate", st.Type)
	}
}

// validateIntOrPercent checks a maxSurge/maxUnavailable value, returning it
// (an integer or a percentage) so the caller can compare with zero.
func validateIntOrPercent(v *intstr.IntOrString, path *field.Path, ps *problems) (int, bool) {
	if v == nil {
		return 0, false
	}
	if v.Type == intstr.Int {
		if v.IntVal < 0 {
			ps.add(path, "must be >= 0")
			return 0, false
		}
		return int(v.IntVal), true
	}
	num, ok := strings.CutSuffix(v.StrVal, "%")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 0 || n > 100 {
		ps.add(path, "invalid value %q: must be an integer or a percentage from 0%% to 100%%", v.StrVal)
		return 0, false
	}
	return n, true
}

// podOwner says which kind of object a pod spec belongs to: the rules on
// restartPolicy differ.
type podOwner int

const (
	ownerNone podOwner = iota // a standalone Pod
	ownerDeployment
	ownerJob
)

func validatePodSpec(spec *corev1.PodSpec, path *field.Path, owner podOwner, ps *problems) {
	switch rp := spec.RestartPolicy; {
	case owner == ownerDeployment && rp != corev1.RestartPolicyAlways:
		ps.add(path.Child("restartPolicy"), "unsupported value %q: a Deployment's pods must use Always", rp)
	case owner == ownerJob && rp == "":
		ps.add(path.Child("restartPolicy"), "required: a Job's pods must use OnFailure or Never")
	case owner == ownerJob && rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever:
		ps.add(path.Child("restartPolicy"), "unsupported value %q: a Job's pods must use OnFailure or Never", rp)
	case rp != corev1.RestartPolicyAlways && rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever:
		ps.add(path.Child("restartPolicy"), "unsupported value %q: must be Always, OnFailure or Never", rp)
	}
	if len(spec.Containers) == 0 {
		ps.add(path.Child("containers"), "at least one container is required")
	}
	validateHostPorts(spec, path, ps)
	switch spec.DNSPolicy {
	case corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSClusterFirstWithHostNet:
	case corev1.DNSNone:
		if spec.DNSConfig == nil || len(spec.DNSConfig.Nameservers) == 0 {
			ps.add(path.Child("dnsConfig", "nameservers"), "required when dnsPolicy is None")
		}
	default:
		ps.add(path.Child("dnsPolicy"), "unsupported value %q: must be ClusterFirst, ClusterFirstWithHostNet, Default or None", spec.DNSPolicy)
	}
	if v := spec.AutomountServiceAccountToken; v != nil && *v {
		ps.add(path.Child("automountServiceAccountToken"), "unsupported value true: bosun has no service account tokens to mount")
	}
	if v := spec.EnableServiceLinks; v != nil && *v {
		ps.add(path.Child("enableServiceLinks"), "unsupported value true: bosun injects no service environment variables; use DNS names")
	}
	if spec.OS != nil && spec.OS.Name != corev1.Linux {
		ps.add(path.Child("os", "name"), "unsupported value %q: bosun runs Linux nodes", spec.OS.Name)
	}
	names := map[string]bool{}
	portNames := map[string]bool{}
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		p := path.Child("initContainers").Index(i)
		validateContainer(c, p, names, portNames, ps)
		if rp := c.RestartPolicy; rp != nil && *rp != corev1.ContainerRestartPolicyAlways {
			ps.add(p.Child("restartPolicy"), "unsupported value %q: an init container's restartPolicy may only be Always (a sidecar)", *rp)
		}
		sidecar := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		validateLifecycle(c, p, !sidecar, spec.TerminationGracePeriodSeconds, ps)
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		p := path.Child("containers").Index(i)
		validateContainer(c, p, names, portNames, ps)
		if c.RestartPolicy != nil {
			ps.add(p.Child("restartPolicy"), "not supported: only init containers may set restartPolicy; the pod's restartPolicy applies")
		}
		validateLifecycle(c, p, false, spec.TerminationGracePeriodSeconds, ps)
	}
	validatePlacement(spec, path, ps)
	validatePodContents(spec, path, ps)
}

// validateContainer checks one container. Container names and port names
// must be unique across the whole pod: Services and SRV records resolve a
// named port against the pod, so a name used twice would be ambiguous.
func validateContainer(c *corev1.Container, path *field.Path, names, portNames map[string]bool, ps *problems) {
	switch {
	case c.Name == "":
		ps.add(path.Child("name"), "required")
	case len(validation.IsDNS1123Label(c.Name)) > 0:
		ps.add(path.Child("name"), "invalid container name %q: %s", c.Name, labelRule)
	case names[c.Name]:
		ps.add(path.Child("name"), "duplicate container name %q", c.Name)
	}
	names[c.Name] = true
	switch {
	case c.Image == "":
		ps.add(path.Child("image"), "required")
	case strings.TrimSpace(c.Image) != c.Image:
		ps.add(path.Child("image"), "must not have leading or trailing whitespace")
	}
	switch c.ImagePullPolicy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		ps.add(path.Child("imagePullPolicy"), "unsupported value %q: must be Always, IfNotPresent or Never", c.ImagePullPolicy)
	}
	for i := range c.Ports {
		port := &c.Ports[i]
		p := path.Child("ports").Index(i)
		if len(validation.IsValidPortNum(int(port.ContainerPort))) > 0 {
			ps.add(p.Child("containerPort"), "%d %s", port.ContainerPort, portRange)
		}
		if port.HostPort != 0 && len(validation.IsValidPortNum(int(port.HostPort))) > 0 {
			ps.add(p.Child("hostPort"), "%d %s", port.HostPort, portRange)
		}
		switch {
		case port.Name == "":
		case len(validation.IsValidPortName(port.Name)) > 0:
			ps.add(p.Child("name"), "invalid port name %q: %s", port.Name, portNameRule)
		case portNames[port.Name]:
			ps.add(p.Child("name"), "duplicate port name %q", port.Name)
		}
		if port.Name != "" {
			portNames[port.Name] = true
		}
		validateProtocol(port.Protocol, p.Child("protocol"), ps)
	}
	for i, env := range c.Env {
		p := path.Child("env").Index(i).Child("name")
		switch {
		case env.Name == "":
			ps.add(p, "required")
		case strings.Contains(env.Name, "="):
			ps.add(p, "invalid environment variable name %q: must not contain '='", env.Name)
		}
	}
	res := path.Child("resources")
	for _, name := range slices.Sorted(maps.Keys(c.Resources.Limits)) {
		if q := c.Resources.Limits[name]; q.Sign() < 0 {
			ps.add(res.Child("limits").Key(string(name)), "must not be negative")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Resources.Requests)) {
		q := c.Resources.Requests[name]
		p := res.Child("requests").Key(string(name))
		if q.Sign() < 0 {
			ps.add(p, "must not be negative")
		}
		if limit, ok := c.Resources.Limits[name]; ok && q.Cmp(limit) > 0 {
			ps.add(p, "must be less than or equal to the limit (%s)", limit.String())
		}
	}
}

func validateProtocol(p corev1.Protocol, path *field.Path, ps *problems) {
	switch p {
	case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
	default:
		ps.add(path, "unsupported value %q: must be TCP, UDP or SCTP", p)
	}
}

func validateTargetPort(tp intstr.IntOrString, path *field.Path, ps *problems) {
	if tp.Type == intstr.String {
		if len(validation.IsValidPortName(tp.StrVal)) > 0 {
			ps.add(path, "invalid port name %q: %s", tp.StrVal, portNameRule)
		}
		return
	}
	if len(validation.IsValidPortNum(int(tp.IntVal))) > 0 {
		ps.add(path, "%d %s", tp.IntVal, portRange)
	}
}

// validatePodContents checks what a pod is given: its volumes, every
// container's volumeMounts, env sources and securityContext, the pod's
// securityContext, DNS settings, host aliases, hostname and subdomain.
func validatePodContents(spec *corev1.PodSpec, path *field.Path, ps *problems) {
	vols := map[string]*corev1.Volume{}
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		p := path.Child("volumes").Index(i)
		switch {
		case v.Name == "":
			ps.add(p.Child("name"), "required")
		case len(validation.IsDNS1123Label(v.Name)) > 0:
			ps.add(p.Child("name"), "invalid volume name %q: %s", v.Name, labelRule)
		case vols[v.Name] != nil:
			ps.add(p.Child("name"), "duplicate volume name %q", v.Name)
		}
		vols[v.Name] = v
		validateVolumeSource(&v.VolumeSource, spec, p, ps)
	}
	containers := slices.Concat(spec.InitContainers, spec.Containers)
	for i := range spec.InitContainers {
		validateContainerContents(&spec.InitContainers[i], vols, containers, path.Child("initContainers").Index(i), ps)
	}
	for i := range spec.Containers {
		validateContainerContents(&spec.Containers[i], vols, containers, path.Child("containers").Index(i), ps)
	}
	validatePodSecurityContext(spec.SecurityContext, spec.HostNetwork, path.Child("securityContext"), ps)
	validateDNS(spec, path, ps)
	for i, a := range spec.HostAliases {
		p := path.Child("hostAliases").Index(i)
		if _, err := netip.ParseAddr(a.IP); err != nil {
			ps.add(p.Child("ip"), "invalid IP address %q", a.IP)
		}
		if len(a.Hostnames) == 0 {
			ps.add(p.Child("hostnames"), "at least one hostname is required")
		}
		for j, h := range a.Hostnames {
			if len(validation.IsDNS1123Subdomain(h)) > 0 {
				ps.add(p.Child("hostnames").Index(j), "invalid hostname %q: %s", h, subdomainRule)
			}
		}
	}
	if spec.Hostname != "" && len(validation.IsDNS1123Label(spec.Hostname)) > 0 {
		ps.add(path.Child("hostname"), "invalid hostname %q: %s", spec.Hostname, labelRule)
	}
	if spec.Subdomain != "" && len(validation.IsDNS1123Label(spec.Subdomain)) > 0 {
		ps.add(path.Child("subdomain"), "invalid subdomain %q: %s", spec.Subdomain, labelRule)
	}
}

// volumeSources counts the sources a volume sets, whichever they are.
func volumeSources(vs *corev1.VolumeSource) int {
	n := 0
	v := reflect.ValueOf(vs).Elem()
	for i := 0; i < v.NumField(); i++ {
		if f := v.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			n++
		}
	}
	return n
}

func validateVolumeSource(vs *corev1.VolumeSource, spec *corev1.PodSpec, path *field.Path, ps *problems) {
	switch n := volumeSources(vs); {
	case n == 0:
		ps.add(path, "must give a volume source (emptyDir, configMap, secret, downwardAPI, projected, hostPath or persistentVolumeClaim)")
		return
	case n > 1:
		ps.add(path, "must give exactly one volume source, not %d", n)
		return
	}
	switch {
	case vs.EmptyDir != nil:
		p := path.Child("emptyDir")
		switch vs.EmptyDir.Medium {
		case corev1.StorageMediumDefault:
			if vs.EmptyDir.SizeLimit != nil {
				ps.add(p.Child("sizeLimit"), "not supported by bosun on a disk emptyDir (bosun does not evict a pod over it); use medium: Memory, where it is the tmpfs size")
			}
		case corev1.StorageMediumMemory:
		default:
			ps.add(p.Child("medium"), `unsupported value %q: must be "" (disk) or Memory`, vs.EmptyDir.Medium)
		}
		if q := vs.EmptyDir.SizeLimit; q != nil && q.Sign() < 0 {
			ps.add(p.Child("sizeLimit"), "must not be negative")
		}
	case vs.HostPath != nil:
		// The path is the operator's Policy's to check (Policy.check).
		p := path.Child("hostPath")
		if t := vs.HostPath.Type; t != nil {
			switch *t {
			case corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory, corev1.HostPathFileOrCreate,
				corev1.HostPathFile, corev1.HostPathSocket, corev1.HostPathCharDev, corev1.HostPathBlockDev:
			default:
				ps.add(p.Child("type"), "unsupported value %q: must be DirectoryOrCreate, Directory, FileOrCreate, File, Socket, CharDevice or BlockDevice", *t)
			}
		}
	case vs.PersistentVolumeClaim != nil:
		// That the claim exists is checked on the whole revision
		// (checkClaimReferences).
		if n := vs.PersistentVolumeClaim.ClaimName; n != "" {
			validateObjectName(n, path.Child("persistentVolumeClaim", "claimName"), ps)
		}
	case vs.ConfigMap != nil:
		p := path.Child("configMap")
		validateObjectName(vs.ConfigMap.Name, p.Child("name"), ps)
		validateKeyPaths(vs.ConfigMap.Items, p.Child("items"), ps)
		validateMode(vs.ConfigMap.DefaultMode, p.Child("defaultMode"), ps)
	case vs.Secret != nil:
		p := path.Child("secret")
		validateObjectName(vs.Secret.SecretName, p.Child("secretName"), ps)
		validateKeyPaths(vs.Secret.Items, p.Child("items"), ps)
		validateMode(vs.Secret.DefaultMode, p.Child("defaultMode"), ps)
	case vs.DownwardAPI != nil:
		p := path.Child("downwardAPI")
		validateDownwardFiles(vs.DownwardAPI.Items, spec, p.Child("items"), ps)
		validateMode(vs.DownwardAPI.DefaultMode, p.Child("defaultMode"), ps)
	case vs.Projected != nil:
		p := path.Child("projected")
		validateMode(vs.Projected.DefaultMode, p.Child("defaultMode"), ps)
		paths := map[string]bool{}
		seen := func(fp *field.Path, file string) {
			if paths[file] {
				ps.add(fp, "conflicting duplicate path %q", file)
			}
			paths[file] = true
		}
		for i, s := range vs.Projected.Sources {
			sp := p.Child("sources").Index(i)
			switch n := volumeProjections(&s); {
			case n == 0:
				ps.add(sp, "must give a source (configMap, secret or downwardAPI)")
				continue
			case n > 1:
				ps.add(sp, "must give exactly one source, not %d", n)
				continue
			}
			switch {
			case s.ConfigMap != nil:
				validateObjectName(s.ConfigMap.Name, sp.Child("configMap", "name"), ps)
				validateKeyPaths(s.ConfigMap.Items, sp.Child("configMap", "items"), ps)
				for j, it := range s.ConfigMap.Items {
					seen(sp.Child("configMap", "items").Index(j).Child("path"), it.Path)
				}
			case s.Secret != nil:
				validateObjectName(s.Secret.Name, sp.Child("secret", "name"), ps)
				validateKeyPaths(s.Secret.Items, sp.Child("secret", "items"), ps)
				for j, it := range s.Secret.Items {
					seen(sp.Child("secret", "items").Index(j).Child("path"), it.Path)
				}
			case s.DownwardAPI != nil:
				validateDownwardFiles(s.DownwardAPI.Items, spec, sp.Child("downwardAPI", "items"), ps)
				for j, it := range s.DownwardAPI.Items {
					seen(sp.Child("downwardAPI", "items").Index(j).Child("path"), it.Path)
				}
			}
		}
	}
}

// volumeProjections counts the sources one projection sets.
func volumeProjections(vp *corev1.VolumeProjection) int {
	n := 0
	v := reflect.ValueOf(vp).Elem()
	for i := 0; i < v.NumField(); i++ {
		if f := v.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			n++
		}
	}
	return n
}

// validateObjectName checks the form of a referenced object's name (that
// it is given and exists is checked with the references).
func validateObjectName(name string, path *field.Path, ps *problems) {
	if name != "" && len(validation.IsDNS1123Subdomain(name)) > 0 {
		ps.add(path, "invalid name %q: %s", name, subdomainRule)
	}
}

func validateMode(m *int32, path *field.Path, ps *problems) {
	if m != nil && (*m < 0 || *m > 0o777) {
		ps.add(path, "invalid mode %d: must be from 0 to 0777 (octal) or 511 (decimal)", *m)
	}
}

// validateFilePath checks a path inside a volume: relative, no '..'.
func validateFilePath(p string, path *field.Path, ps *problems) {
	switch {
	case p == "":
		ps.add(path, "required")
	case strings.HasPrefix(p, "/"):
		ps.add(path, "must be a relative path, got %q", p)
	case slices.Contains(strings.Split(p, "/"), ".."):
		ps.add(path, "must not contain '..'")
	}
}

func validateKeyPaths(items []corev1.KeyToPath, path *field.Path, ps *problems) {
	for i, it := range items {
		p := path.Index(i)
		if errs := validation.IsConfigMapKey(it.Key); len(errs) > 0 {
			ps.add(p.Child("key"), "invalid key %q: %s", it.Key, strings.Join(errs, "; "))
		}
		validateFilePath(it.Path, p.Child("path"), ps)
		validateMode(it.Mode, p.Child("mode"), ps)
	}
}

func validateDownwardFiles(items []corev1.DownwardAPIVolumeFile, spec *corev1.PodSpec, path *field.Path, ps *problems) {
	for i, it := range items {
		p := path.Index(i)
		validateFilePath(it.Path, p.Child("path"), ps)
		validateMode(it.Mode, p.Child("mode"), ps)
		switch {
		case (it.FieldRef == nil) == (it.ResourceFieldRef == nil):
			ps.add(p, "must give exactly one of fieldRef and resourceFieldRef")
		case it.FieldRef != nil:
			validateFieldRef(it.FieldRef, true, p.Child("fieldRef"), ps)
		default:
			rp := p.Child("resourceFieldRef")
			if it.ResourceFieldRef.ContainerName == "" {
				ps.add(rp.Child("containerName"), "required in a volume")
			}
			validateResourceField(it.ResourceFieldRef, spec, rp, ps)
		}
	}
}

// validateFieldPath accepts the downward API's fields: in volumes the
// pod's metadata, in env also its node, service account and addresses.
// validateFieldRef checks a downward API reference: the v1 Pod fields bosun
// gives (validateFieldPath).
func validateFieldRef(ref *corev1.ObjectFieldSelector, inVolume bool, path *field.Path, ps *problems) {
	if v := ref.APIVersion; v != "" && v != "v1" {
		ps.add(path.Child("apiVersion"), "unsupported value %q: must be v1", v)
	}
	validateFieldPath(ref.FieldPath, inVolume, path.Child("fieldPath"), ps)
}

func validateFieldPath(fp string, inVolume bool, path *field.Path, ps *problems) {
	if m, key, ok := strings.Cut(fp, "['"); ok && strings.HasSuffix(key, "']") && (m == "metadata.labels" || m == "metadata.annotations") {
		if strings.TrimSuffix(key, "']") == "" {
			ps.add(path, "invalid field path %q: the key is empty", fp)
		}
		return
	}
	switch fp {
	case "metadata.name", "metadata.namespace", "metadata.uid":
		return
	case "metadata.labels", "metadata.annotations":
		if inVolume {
			return
		}
	case "spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs":
		if !inVolume {
			return
		}
	}
	if inVolume {
		ps.add(path, `unsupported value %q: must be metadata.name, metadata.namespace, metadata.uid, metadata.labels, metadata.annotations, or metadata.labels['KEY'] / metadata.annotations['KEY']`, fp)
		return
	}
	ps.add(path, `unsupported value %q: must be metadata.name, metadata.namespace, metadata.uid, metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, spec.serviceAccountName, status.hostIP, status.hostIPs, status.podIP or status.podIPs`, fp)
}

func validateResourceField(r *corev1.ResourceFieldSelector, spec *corev1.PodSpec, path *field.Path, ps *problems) {
	if r.ContainerName != "" && !slices.ContainsFunc(slices.Concat(spec.InitContainers, spec.Containers), func(c corev1.Container) bool { return c.Name == r.ContainerName }) {
		ps.add(path.Child("containerName"), "no container %q in the pod", r.ContainerName)
	}
	switch r.Resource {
	case "limits.cpu", "requests.cpu":
		if !r.Divisor.IsZero() && r.Divisor.Cmp(resource.MustParse("1m")) != 0 && r.Divisor.Cmp(resource.MustParse("1")) != 0 {
			ps.add(path.Child("divisor"), "unsupported value %q: a cpu divisor must be 1m or 1", r.Divisor.String())
		}
	case "limits.memory", "requests.memory", "limits.ephemeral-storage", "requests.ephemeral-storage":
		if r.Divisor.Sign() < 0 {
			ps.add(path.Child("divisor"), "must not be negative")
		}
	default:
		ps.add(path.Child("resource"), "unsupported value %q: must be limits.cpu, limits.memory, limits.ephemeral-storage, requests.cpu, requests.memory or requests.ephemeral-storage", r.Resource)
	}
}

func validateContainerContents(c *corev1.Container, vols map[string]*corev1.Volume, containers []corev1.Container, path *field.Path, ps *problems) {
	mountPaths := map[string]bool{}
	for i, m := range c.VolumeMounts {
		p := path.Child("volumeMounts").Index(i)
		if m.Name == "" {
			ps.add(p.Child("name"), "required")
		} else if vols[m.Name] == nil {
			ps.add(p.Child("name"), "no volume %q in the pod", m.Name)
		}
		switch clean := pathpkg.Clean(m.MountPath); {
		case m.MountPath == "":
			ps.add(p.Child("mountPath"), "required")
		case !strings.HasPrefix(m.MountPath, "/"):
			ps.add(p.Child("mountPath"), "must be an absolute path, got %q", m.MountPath)
		case mountPaths[clean]:
			ps.add(p.Child("mountPath"), "duplicate mount path %q", m.MountPath)
		default:
			mountPaths[clean] = true
		}
		if m.SubPath != "" {
			validateFilePath(m.SubPath, p.Child("subPath"), ps)
		}
	}
	spec := &corev1.PodSpec{Containers: containers}
	for i, e := range c.Env {
		if e.ValueFrom == nil {
			continue
		}
		p := path.Child("env").Index(i).Child("valueFrom")
		vf := e.ValueFrom
		n := 0
		for _, set := range []bool{vf.FieldRef != nil, vf.ResourceFieldRef != nil, vf.ConfigMapKeyRef != nil, vf.SecretKeyRef != nil, vf.FileKeyRef != nil} {
			if set {
				n++
			}
		}
		if e.Value != "" {
			ps.add(p, "must not be set together with value")
		}
		if n != 1 {
			ps.add(p, "must give exactly one source (fieldRef, resourceFieldRef, configMapKeyRef or secretKeyRef), not %d", n)
			continue
		}
		switch {
		case vf.FieldRef != nil:
			validateFieldRef(vf.FieldRef, false, p.Child("fieldRef"), ps)
		case vf.ResourceFieldRef != nil:
			validateResourceField(vf.ResourceFieldRef, spec, p.Child("resourceFieldRef"), ps)
		case vf.ConfigMapKeyRef != nil:
			validateObjectName(vf.ConfigMapKeyRef.Name, p.Child("configMapKeyRef", "name"), ps)
			if errs := validation.IsConfigMapKey(vf.ConfigMapKeyRef.Key); len(errs) > 0 {
				ps.add(p.Child("configMapKeyRef", "key"), "invalid key %q: %s", vf.ConfigMapKeyRef.Key, strings.Join(errs, "; "))
			}
		case vf.SecretKeyRef != nil:
			validateObjectName(vf.SecretKeyRef.Name, p.Child("secretKeyRef", "name"), ps)
			if errs := validation.IsConfigMapKey(vf.SecretKeyRef.Key); len(errs) > 0 {
				ps.add(p.Child("secretKeyRef", "key"), "invalid key %q: %s", vf.SecretKeyRef.Key, strings.Join(errs, "; "))
			}
		}
	}
	for i, ef := range c.EnvFrom {
		p := path.Child("envFrom").Index(i)
		switch {
		case (ef.ConfigMapRef == nil) == (ef.SecretRef == nil):
			ps.add(p, "must give exactly one of configMapRef and secretRef")
		case ef.ConfigMapRef != nil:
			validateObjectName(ef.ConfigMapRef.Name, p.Child("configMapRef", "name"), ps)
		default:
			validateObjectName(ef.SecretRef.Name, p.Child("secretRef", "name"), ps)
		}
		if errs := validation.IsRelaxedEnvVarName(ef.Prefix); ef.Prefix != "" && len(errs) > 0 {
			ps.add(p.Child("prefix"), "invalid prefix %q: %s", ef.Prefix, strings.Join(errs, "; "))
		}
	}
	switch c.TerminationMessagePolicy {
	case "", corev1.TerminationMessageReadFile, corev1.TerminationMessageFallbackToLogsOnError:
	default:
		ps.add(path.Child("terminationMessagePolicy"), "unsupported value %q: must be File or FallbackToLogsOnError", c.TerminationMessagePolicy)
	}
	if tp := c.TerminationMessagePath; tp != "" && !strings.HasPrefix(tp, "/") {
		ps.add(path.Child("terminationMessagePath"), "must be an absolute path, got %q", tp)
	}
	validateContainerSecurityContext(c.SecurityContext, path.Child("securityContext"), ps)
}

// linuxCapabilities are the capability names of Linux (without CAP_).
var linuxCapabilities = strings.Fields(`CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
	LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO
	SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE
	AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
	CHECKPOINT_RESTORE`)

func validateContainerSecurityContext(sc *corev1.SecurityContext, path *field.Path, ps *problems) {
	if sc == nil {
		return
	}
	validateID(sc.RunAsUser, path.Child("runAsUser"), ps)
	validateID(sc.RunAsGroup, path.Child("runAsGroup"), ps)
	validateSeccomp(sc.SeccompProfile, path.Child("seccompProfile"), ps)
	addsSysAdmin := false
	if caps := sc.Capabilities; caps != nil {
		check := func(list []corev1.Capability, p *field.Path) {
			for i, c := range list {
				name := string(c)
				switch {
				case name == "ALL":
				case strings.HasPrefix(name, "CAP_"):
					ps.add(p.Index(i), "write capabilities without the CAP_ prefix: %q", strings.TrimPrefix(name, "CAP_"))
				case !slices.Contains(linuxCapabilities, name):
					ps.add(p.Index(i), "unknown capability %q", name)
				}
			}
		}
		check(caps.Add, path.Child("capabilities", "add"))
		check(caps.Drop, path.Child("capabilities", "drop"))
		addsSysAdmin = slices.ContainsFunc(caps.Add, func(c corev1.Capability) bool { return c == "SYS_ADMIN" || c == "ALL" })
	}
	if ape := sc.AllowPrivilegeEscalation; ape != nil && !*ape {
		if sc.Privileged != nil && *sc.Privileged {
			ps.add(path.Child("allowPrivilegeEscalation"), "cannot be false when privileged is true")
		}
		if addsSysAdmin {
			ps.add(path.Child("allowPrivilegeEscalation"), "cannot be false when capabilities.add has SYS_ADMIN")
		}
	}
}

// validatePodSecurityContext checks a pod's securityContext; hostNetwork
// is the pod's spec.hostNetwork (its containers share the node's network
// namespace, so a net.* sysctl would set the node's).
func validatePodSecurityContext(sc *corev1.PodSecurityContext, hostNetwork bool, path *field.Path, ps *problems) {
	if sc == nil {
		return
	}
	validateID(sc.RunAsUser, path.Child("runAsUser"), ps)
	validateID(sc.RunAsGroup, path.Child("runAsGroup"), ps)
	validateID(sc.FSGroup, path.Child("fsGroup"), ps)
	for i, g := range sc.SupplementalGroups {
		validateID(&g, path.Child("supplementalGroups").Index(i), ps)
	}
	validateSeccomp(sc.SeccompProfile, path.Child("seccompProfile"), ps)
	if p := sc.SupplementalGroupsPolicy; p != nil && *p != corev1.SupplementalGroupsPolicyMerge && *p != corev1.SupplementalGroupsPolicyStrict {
		ps.add(path.Child("supplementalGroupsPolicy"), "unsupported value %q: must be Merge or Strict", *p)
	}
	if p := sc.FSGroupChangePolicy; p != nil && *p != corev1.FSGroupChangeAlways && *p != corev1.FSGroupChangeOnRootMismatch {
		ps.add(path.Child("fsGroupChangePolicy"), "unsupported value %q: must be Always or OnRootMismatch", *p)
	}
	names := map[string]bool{}
	for i, s := range sc.Sysctls {
		p := path.Child("sysctls").Index(i).Child("name")
		name := s.Name
		if strings.Contains(name, "/") {
			name = strings.ReplaceAll(name, "/", ".")
		}
		switch {
		case s.Name == "":
			ps.add(p, "required")
		case names[name]:
			ps.add(p, "duplicate sysctl %q", s.Name)
		case !namespacedSysctl(name):
			ps.add(p, "sysctl %q is not namespaced: a pod may set only net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.*", s.Name)
		case hostNetwork && strings.HasPrefix(name, "net."):
			ps.add(p, "sysctl %q may not be set when hostNetwork is true: the pod shares the node's network namespace", s.Name)
		}
		names[name] = true
	}
}

// namespacedSysctl reports whether a (dotted) sysctl is set per network or
// IPC namespace, so that a pod setting it changes only itself.
func namespacedSysctl(name string) bool {
	return strings.HasPrefix(name, "net.") || name == "kernel.sem" || strings.HasPrefix(name, "kernel.shm") ||
		strings.HasPrefix(name, "kernel.msg") || strings.HasPrefix(name, "fs.mqueue.")
}

func validateID(id *int64, path *field.Path, ps *problems) {
	if id != nil && (*id < 0 || *id > math.MaxInt32) {
		ps.add(path, "%d is out of range (0-2147483647)", *id)
	}
}

func validateSeccomp(sp *corev1.SeccompProfile, path *field.Path, ps *problems) {
	if sp == nil {
		return
	}
	switch sp.Type {
	case corev1.SeccompProfileTypeRuntimeDefault, corev1.SeccompProfileTypeUnconfined:
	default:
		ps.add(path.Child("type"), "unsupported value %q: bosun runs RuntimeDefault or Unconfined", sp.Type)
	}
}

// validateDNS checks dnsConfig (validatePodSpec checks dnsPolicy).
func validateDNS(spec *corev1.PodSpec, path *field.Path, ps *problems) {
	dc := spec.DNSConfig
	if dc == nil {
		return
	}
	p := path.Child("dnsConfig")
	if len(dc.Nameservers) > 3 {
		ps.add(p.Child("nameservers"), "at most 3 nameservers, got %d", len(dc.Nameservers))
	}
	for i, ns := range dc.Nameservers {
		if _, err := netip.ParseAddr(ns); err != nil {
			ps.add(p.Child("nameservers").Index(i), "invalid IP address %q", ns)
		}
	}
	if len(dc.Searches) > 32 {
		ps.add(p.Child("searches"), "at most 32 search domains, got %d", len(dc.Searches))
	}
	for i, s := range dc.Searches {
		if len(validation.IsDNS1123Subdomain(strings.TrimSuffix(s, "."))) > 0 {
			ps.add(p.Child("searches").Index(i), "invalid search domain %q: %s", s, subdomainRule)
		}
	}
	for i, o := range dc.Options {
		if o.Name == "" {
			ps.add(p.Child("options").Index(i).Child("name"), "required")
		}
	}
}

// validateLifecycle checks a container's probes and lifecycle hooks. An init
// container that runs to completion (runsToCompletion: not a sidecar) may
// have neither, as in Kubernetes: nothing would act on them.
func validateLifecycle(c *corev1.Container, path *field.Path, runsToCompletion bool, grace *int64, ps *problems) {
	probes := []struct {
		name  string
		probe *corev1.Probe
	}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}, {"startupProbe", c.StartupProbe}}
	if runsToCompletion {
		for _, pr := range probes {
			if pr.probe != nil {
				ps.add(path.Child(pr.name), "must not be set on an init container that runs to completion (only a sidecar, restartPolicy: Always, is probed)")
			}
		}
		if c.Lifecycle != nil {
			ps.add(path.Child("lifecycle"), "must not be set on an init container that runs to completion (only a sidecar, restartPolicy: Always, has hooks)")
		}
		return
	}
	for _, pr := range probes {
		if pr.probe != nil {
			validateProbe(pr.probe, c, path.Child(pr.name), pr.name == "readinessProbe", ps)
		}
	}
	if c.Lifecycle != nil {
		if h := c.Lifecycle.PostStart; h != nil {
			validateHook(h, c, path.Child("lifecycle", "postStart"), grace, ps)
		}
		if h := c.Lifecycle.PreStop; h != nil {
			validateHook(h, c, path.Child("lifecycle", "preStop"), grace, ps)
		}
	}
}

func validateProbe(p *corev1.Probe, c *corev1.Container, path *field.Path, readiness bool, ps *problems) {
	var handlers []string
	h := &p.ProbeHandler
	if h.Exec != nil {
		handlers = append(handlers, "exec")
		validateExec(h.Exec, path.Child("exec"), ps)
	}
	if h.HTTPGet != nil {
		handlers = append(handlers, "httpGet")
		validateHTTPGet(h.HTTPGet, c, path.Child("httpGet"), ps)
	}
	if h.TCPSocket != nil {
		handlers = append(handlers, "tcpSocket")
		validateActionPort(h.TCPSocket.Port, c, path.Child("tcpSocket", "port"), ps)
	}
	if h.GRPC != nil {
		handlers = append(handlers, "grpc")
		if len(validation.IsValidPortNum(int(h.GRPC.Port))) > 0 {
			ps.add(path.Child("grpc", "port"), "%d %s", h.GRPC.Port, portRange)
		}
		if m := h.GRPC.Mode; m != nil && *m != corev1.GRPCProbeModePlaintext && *m != corev1.GRPCProbeModeTLS {
			ps.add(path.Child("grpc", "mode"), "unsupported value %q: must be Plaintext or TLS", *m)
		}
	}
	oneHandler(handlers, "exec, httpGet, tcpSocket or grpc", path, ps)
	for _, f := range []struct {
		name string
		v    int32
	}{{"initialDelaySeconds", p.InitialDelaySeconds}, {"timeoutSeconds", p.TimeoutSeconds}, {"periodSeconds", p.PeriodSeconds},
		{"successThreshold", p.SuccessThreshold}, {"failureThreshold", p.FailureThreshold}} {
		if f.v < 0 {
			ps.add(path.Child(f.name), "must be >= 0")
		}
	}
	if !readiness && p.SuccessThreshold > 1 {
		ps.add(path.Child("successThreshold"), "must be 1 for liveness and startup probes")
	}
	if g := p.TerminationGracePeriodSeconds; g != nil {
		switch {
		case readiness:
			ps.add(path.Child("terminationGracePeriodSeconds"), "must not be set on a readinessProbe: it never kills the container")
		case *g <= 0:
			ps.add(path.Child("terminationGracePeriodSeconds"), "must be greater than 0")
		}
	}
}

// validateHook checks a postStart or preStop handler: exec, httpGet or sleep
// (tcpSocket is refused by the field table).
func validateHook(h *corev1.LifecycleHandler, c *corev1.Container, path *field.Path, grace *int64, ps *problems) {
	var handlers []string
	if h.Exec != nil {
		handlers = append(handlers, "exec")
		validateExec(h.Exec, path.Child("exec"), ps)
	}
	if h.HTTPGet != nil {
		handlers = append(handlers, "httpGet")
		validateHTTPGet(h.HTTPGet, c, path.Child("httpGet"), ps)
	}
	if h.Sleep != nil {
		handlers = append(handlers, "sleep")
		sp := path.Child("sleep", "seconds")
		switch {
		case h.Sleep.Seconds < 0:
			ps.add(sp, "must be >= 0")
		case grace != nil && h.Sleep.Seconds > *grace:
			ps.add(sp, "%d must not exceed the pod's terminationGracePeriodSeconds (%d)", h.Sleep.Seconds, *grace)
		}
	}
	if h.TCPSocket != nil {
		handlers = append(handlers, "tcpSocket") // refused by the field table, named there
	}
	oneHandler(handlers, "exec, httpGet or sleep", path, ps)
}

// oneHandler reports a probe or hook that names no handler, or more than one.
func oneHandler(handlers []string, choices string, path *field.Path, ps *problems) {
	switch len(handlers) {
	case 0:
		ps.add(path, "must have a handler: %s", choices)
	case 1:
	default:
		ps.add(path, "must have one handler, not %s", strings.Join(handlers, " and "))
	}
}

func validateExec(e *corev1.ExecAction, path *field.Path, ps *problems) {
	if len(e.Command) == 0 {
		ps.add(path.Child("command"), "required")
	}
}

func validateHTTPGet(g *corev1.HTTPGetAction, c *corev1.Container, path *field.Path, ps *problems) {
	validateActionPort(g.Port, c, path.Child("port"), ps)
	if g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP && g.Scheme != corev1.URISchemeHTTPS {
		ps.add(path.Child("scheme"), "unsupported value %q: must be HTTP or HTTPS", g.Scheme)
	}
	for i, hd := range g.HTTPHeaders {
		if len(validation.IsHTTPHeaderName(hd.Name)) > 0 {
			ps.add(path.Child("httpHeaders").Index(i).Child("name"), "invalid HTTP header name %q", hd.Name)
		}
	}
}

// validateActionPort checks the port of an httpGet or tcpSocket action: a
// number, or the name of one of the container's ports (the agent resolves
// it against them).
func validateActionPort(port intstr.IntOrString, c *corev1.Container, path *field.Path, ps *problems) {
	if port.Type == intstr.Int {
		if len(validation.IsValidPortNum(int(port.IntVal))) > 0 {
			ps.add(path, "%d %s", port.IntVal, portRange)
		}
		return
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return
		}
	}
	ps.add(path, "port %q: the container has no port of that name", port.StrVal)
}
