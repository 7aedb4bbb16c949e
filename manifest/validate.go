package manifest

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Annotations of the canary design (see DESIGN.md). bosun does not carry
// canaries out yet, so manifests that set them are refused.
const (
	AnnotationCanaryBranch = "bosun.dev/canary-branch"
	AnnotationCanaryWeight = "bosun.dev/canary-weight"
)

// annotationPrefix marks the annotations that are bosun's to read. Any of
// them a manifest sets must be one bosun carries out (honouredAnnotations);
// the others are refused like unsupported fields, so that a manifest never
// seems to ask for something bosun does not do.
const annotationPrefix = "bosun.dev/"

// honouredAnnotations are the bosun.dev/ annotations manifests may set,
// with what they do. None yet: the canary annotations come with canary
// releases.
var honouredAnnotations = map[string]string{}

// pendingAnnotations are bosun.dev/ annotations of the design that bosun
// does not carry out yet, with what they are waiting for.
var pendingAnnotations = map[string]string{
	AnnotationCanaryBranch:           "canary releases are not carried out yet",
	AnnotationCanaryWeight:           "canary releases are not carried out yet",
	"bosun.dev/canary-steps":         "canary releases are not carried out yet",
	"bosun.dev/canary-step-interval": "canary releases are not carried out yet",
	"bosun.dev/canary-query":         "canary releases are not carried out yet",
	"bosun.dev/canary-max":           "canary releases are not carried out yet",
	"bosun.dev/canary-min":           "canary releases are not carried out yet",
}

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
	validateObjectMeta(&pod.ObjectMeta, validation.IsDNS1123Subdomain, subdomainRule, &ps)
	validatePodSpec(&pod.Spec, field.NewPath("spec"), ownerNone, &ps)
	return ps
}

func validateDeployment(dep *appsv1.Deployment) problems {
	var ps problems
	validateObjectMeta(&dep.ObjectMeta, validation.IsDNS1123Subdomain, subdomainRule, &ps)
	spec := field.NewPath("spec")
	if dep.Spec.Replicas != nil && *dep.Spec.Replicas < 0 {
		ps.add(spec.Child("replicas"), "must be >= 0")
	}
	if dep.Spec.MinReadySeconds < 0 {
		ps.add(spec.Child("minReadySeconds"), "must be >= 0")
	}
	validateTemplateMeta(&dep.Spec.Template.ObjectMeta, spec.Child("template", "metadata"), &ps)
	validateSelector(dep.Spec.Selector, dep.Spec.Template.Labels, spec.Child("selector"), &ps)
	validateStrategy(&dep.Spec.Strategy, spec.Child("strategy"), &ps)
	validatePodSpec(&dep.Spec.Template.Spec, spec.Child("template", "spec"), ownerDeployment, &ps)
	return ps
}

func validateService(svc *corev1.Service) problems {
	var ps problems
	validateObjectMeta(&svc.ObjectMeta, validation.IsDNS1123Label, labelRule, &ps)
	spec := field.NewPath("spec")
	if svc.Spec.Type != corev1.ServiceTypeClusterIP {
		ps.add(spec.Child("type"), "unsupported value %q: bosun serves ClusterIP and headless Services", svc.Spec.Type)
	}
	if ip := svc.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
		ps.add(spec.Child("clusterIP"), "unsupported value %q: Services have no virtual IPs yet; leave clusterIP out, or None", ip)
	}
	if a := svc.Spec.SessionAffinity; a != corev1.ServiceAffinityNone {
		ps.add(spec.Child("sessionAffinity"), "unsupported value %q: must be None", a)
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
		validateTargetPort(port.TargetPort, p.Child("targetPort"), &ps)
		if port.NodePort != 0 {
			ps.add(p.Child("nodePort"), "not supported: bosun serves ClusterIP Services only")
		}
	}
	return ps
}

func validateObjectMeta(meta *metav1.ObjectMeta, nameRule func(string) []string, ruleText string, ps *problems) {
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
	validateAnnotations(meta.Annotations, md.Child("annotations"), ps)
}

// validateTemplateMeta checks the metadata of a pod or job template: labels
// and annotations only, since the owner names what it creates.
func validateTemplateMeta(meta *metav1.ObjectMeta, path *field.Path, ps *problems) {
	if meta.Name != "" {
		ps.add(path.Child("name"), "not supported by bosun: the owner names the pods and jobs it makes (Kubernetes ignores this name); remove it")
	}
	if meta.Namespace != "" {
		ps.add(path.Child("namespace"), "not supported by bosun: a template's objects live in its owner's namespace")
	}
	validateLabels(meta.Labels, path.Child("labels"), ps)
	validateAnnotations(meta.Annotations, path.Child("annotations"), ps)
}

// validateAnnotations applies Kubernetes' rules, then bosun's own: a
// bosun.dev/ annotation must be one bosun acts on.
func validateAnnotations(ann map[string]string, path *field.Path, ps *problems) {
	ps.addList(apivalidation.ValidateAnnotations(ann, path))
	for _, k := range slices.Sorted(maps.Keys(ann)) {
		if !strings.HasPrefix(k, annotationPrefix) {
			continue
		}
		if _, ok := honouredAnnotations[k]; ok {
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
	switch spec.DNSPolicy {
	case corev1.DNSClusterFirst, corev1.DNSDefault:
	case corev1.DNSNone:
		if spec.DNSConfig == nil || len(spec.DNSConfig.Nameservers) == 0 {
			ps.add(path.Child("dnsConfig", "nameservers"), "required when dnsPolicy is None")
		}
	default:
		ps.add(path.Child("dnsPolicy"), "unsupported value %q: must be ClusterFirst, Default or None", spec.DNSPolicy)
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
	switch len(handlers) {
	case 0:
		ps.add(path, "must have a handler: exec, httpGet, tcpSocket or grpc")
	case 1:
	default:
		ps.add(path, "must have one handler, not %s", strings.Join(handlers, " and "))
	}
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
	switch {
	case len(handlers) == 0 && h.TCPSocket == nil:
		ps.add(path, "must have a handler: exec, httpGet or sleep")
	case len(handlers) > 1:
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
