package manifest

import (
	"fmt"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

const (
	// IngressClassName is the built-in IngressClass of bosun's ingress
	// proxy: it exists without being declared.
	IngressClassName = "bosun"
	// IngressController is the spec.controller of an IngressClass served by
	// bosun's ingress proxy.
	IngressController = "bosun.dev/ingress"
	// legacyIngressClass is the annotation that named an Ingress's class
	// before spec.ingressClassName.
	legacyIngressClass = "kubernetes.io/ingress.class"
)

// ingressFieldTable is the rules of networking.k8s.io/v1 Ingress's and
// IngressClass's own types.
var ingressFieldTable = []typeFields{
	{Type: reflect.TypeFor[networkingv1.Ingress](), Where: "networking.k8s.io/v1 Ingress", Fields: []fieldRule{
		{"metadata", honoured, ""},
		{"spec", honoured, "served by the ingress proxy of servers and agents started with --ingress-listen / --ingress-tls-listen"},
		{"status", refused, observed},
	}},
	{Type: reflect.TypeFor[networkingv1.IngressSpec](), Where: "Ingress spec", Fields: []fieldRule{
		{"ingressClassName", honoured, `empty, "bosun", or an IngressClass of the revision whose controller is bosun.dev/ingress`},
		{"defaultBackend", honoured, "answers what no rule of any Ingress matches (the first Ingress by namespace/name that gives one)"},
		{"tls", honoured, "certificates by SNI from kubernetes.io/tls Secrets of the revision"},
		{"rules", honoured, ""},
	}},
	{Type: reflect.TypeFor[networkingv1.IngressBackend](), Where: "Ingress backend", Fields: []fieldRule{
		{"service", honoured, "a Service of the revision, in the Ingress's namespace, and one of its TCP ports; requests go straight to its ready pods"},
		{"resource", refused, "bosun routes only to Services"},
	}},
	{Type: reflect.TypeFor[networkingv1.IngressServiceBackend](), Where: "Ingress backend.service", Fields: []fieldRule{
		{"name", honoured, ""},
		{"port", honoured, ""},
	}},
	{Type: reflect.TypeFor[networkingv1.ServiceBackendPort](), Where: "Ingress backend.service.port", Fields: []fieldRule{
		{"name", honoured, "a port name of the Service"},
		{"number", honoured, "a port number of the Service"},
	}},
	{Type: reflect.TypeFor[networkingv1.IngressTLS](), Where: "Ingress spec.tls", Fields: []fieldRule{
		{"hosts", honoured, "exact names or one-label wildcards; none: the certificate for names no other entry has"},
		{"secretName", honoured, "required: a Secret of type kubernetes.io/tls in the revision"},
	}},
	{Type: reflect.TypeFor[networkingv1.IngressRule](), Where: "Ingress spec.rules", Fields: []fieldRule{
		{"host", honoured, `exact, or a wildcard "*.example.com" matching one label; empty: every host`},
	}},
	{Type: reflect.TypeFor[networkingv1.IngressRuleValue](), Where: "Ingress spec.rules", Fields: []fieldRule{
		{"http", honoured, "required"},
	}},
	{Type: reflect.TypeFor[networkingv1.HTTPIngressRuleValue](), Where: "Ingress spec.rules.http", Fields: []fieldRule{
		{"paths", honoured, ""},
	}},
	{Type: reflect.TypeFor[networkingv1.HTTPIngressPath](), Where: "Ingress spec.rules.http.paths", Fields: []fieldRule{
		{"path", honoured, `starts with "/"; without "//", "/./", "/../", "%2F" or a trailing "/." or "/..", which never match; ImplementationSpecific: no regular expression`},
		{"pathType", honoured, "required: Exact, Prefix (by path elements), or ImplementationSpecific, which bosun treats as Prefix"},
		{"backend", honoured, ""},
	}},
	{Type: reflect.TypeFor[networkingv1.IngressClass](), Where: "networking.k8s.io/v1 IngressClass", Fields: []fieldRule{
		{"metadata", honoured, "annotation ingressclass.kubernetes.io/is-default-class (\"true\" or \"false\"; at most one class)"},
		{"spec", honoured, ""},
	}},
	{Type: reflect.TypeFor[networkingv1.IngressClassSpec](), Where: "IngressClass spec", Fields: []fieldRule{
		{"controller", honoured, `must be bosun.dev/ingress (the built-in class "bosun" needs no declaration)`},
		{"parameters", refused, "bosun's ingress proxy takes no parameters"},
	}},
}

func defaultIngress(ing *networkingv1.Ingress) {
	if ing.Namespace == "" {
		ing.Namespace = DefaultNamespace
	}
}

func validateIngress(ing *networkingv1.Ingress) problems {
	var ps problems
	validateMeta(&ing.ObjectMeta, validation.IsDNS1123Subdomain, subdomainRule, metaOther, &ps)
	if v, ok := ing.Annotations[legacyIngressClass]; ok && v != IngressClassName {
		ps.add(field.NewPath("metadata", "annotations").Key(legacyIngressClass), "%q is not bosun's class: bosun serves only its own Ingresses (use spec.ingressClassName; an Ingress for another controller belongs in a repository that controller reads)", v)
	}
	spec := field.NewPath("spec")
	if c := ing.Spec.IngressClassName; c != nil && *c != "" {
		for _, msg := range validation.IsDNS1123Subdomain(*c) {
			ps.add(spec.Child("ingressClassName"), "%s", msg)
		}
	}
	if ing.Spec.DefaultBackend == nil && len(ing.Spec.Rules) == 0 {
		ps.add(spec, "either defaultBackend or rules must be given")
	}
	if ing.Spec.DefaultBackend != nil {
		validateIngressBackend(ing.Spec.DefaultBackend, spec.Child("defaultBackend"), &ps)
	}
	for i, r := range ing.Spec.Rules {
		rp := spec.Child("rules").Index(i)
		if r.Host != "" {
			validateIngressHost(r.Host, rp.Child("host"), &ps)
		}
		if r.HTTP == nil {
			ps.add(rp.Child("http"), "required: bosun serves HTTP rules")
			continue
		}
		if len(r.HTTP.Paths) == 0 {
			ps.add(rp.Child("http", "paths"), "at least one path is required")
		}
		for j, p := range r.HTTP.Paths {
			pp := rp.Child("http", "paths").Index(j)
			if !strings.HasPrefix(p.Path, "/") {
				ps.add(pp.Child("path"), "must start with \"/\"")
			} else {
				validateIngressPath(p.Path, p.PathType, pp.Child("path"), &ps)
			}
			switch {
			case p.PathType == nil:
				ps.add(pp.Child("pathType"), "required: Exact, Prefix or ImplementationSpecific")
			case *p.PathType != networkingv1.PathTypeExact && *p.PathType != networkingv1.PathTypePrefix && *p.PathType != networkingv1.PathTypeImplementationSpecific:
				ps.add(pp.Child("pathType"), "unsupported value %q: Exact, Prefix or ImplementationSpecific", *p.PathType)
			}
			validateIngressBackend(&p.Backend, pp.Child("backend"), &ps)
		}
	}
	for i, t := range ing.Spec.TLS {
		tp := spec.Child("tls").Index(i)
		if t.SecretName == "" {
			ps.add(tp.Child("secretName"), "required: a Secret of type kubernetes.io/tls")
		}
		for j, h := range t.Hosts {
			validateIngressHost(h, tp.Child("hosts").Index(j), &ps)
		}
	}
	return ps
}

// Sequences and endings of a path that never match a request: the proxy
// matches the request's path with "." and ".." resolved, slashes not
// repeated, and percent-encoding decoded. Kubernetes refuses the same for
// Exact and Prefix paths.
var (
	invalidPathSequences = []string{"//", "/./", "/../", "%2f", "%2F"}
	invalidPathSuffixes  = []string{"/..", "/."}
	// ingressRegexChars mark a regular expression (ingress-nginx's
	// use-regex paths), which bosun would match literally.
	ingressRegexChars = "^$*+?()[]{}|\\"
)

// validateIngressPath refuses a path that can never match a request. Bosun
// matches ImplementationSpecific paths as Prefix, so the same rules apply
// to them, and a regular expression (ingress-nginx's paths with
// nginx.ingress.kubernetes.io/use-regex) is refused rather than matched
// literally.
func validateIngressPath(path string, pt *networkingv1.PathType, p *field.Path, ps *problems) {
	impl := pt != nil && *pt == networkingv1.PathTypeImplementationSpecific
	asPrefix := ""
	if impl {
		asPrefix = " (bosun matches ImplementationSpecific paths as Prefix)"
	}
	for _, seq := range invalidPathSequences {
		if strings.Contains(path, seq) {
			ps.add(p, "%q must not contain %q: it would never match a request, whose path is matched cleaned and decoded%s", path, seq, asPrefix)
		}
	}
	for _, suf := range invalidPathSuffixes {
		if strings.HasSuffix(path, suf) {
			ps.add(p, "%q must not end with %q: it would never match a request, whose path is matched cleaned%s", path, suf, asPrefix)
			break
		}
	}
	if impl {
		if i := strings.IndexAny(path, ingressRegexChars); i >= 0 {
			ps.add(p, "%q holds %q, a regular expression character: bosun matches ImplementationSpecific paths as Prefix, literally, never as a regular expression; write the prefix the expression stands for", path, path[i:i+1])
		}
	}
}

func validateIngressHost(h string, p *field.Path, ps *problems) {
	var msgs []string
	if strings.HasPrefix(h, "*") {
		msgs = validation.IsWildcardDNS1123Subdomain(h)
	} else {
		msgs = validation.IsDNS1123Subdomain(h)
	}
	for _, m := range msgs {
		ps.add(p, "%q: %s", h, m)
	}
}

func validateIngressBackend(b *networkingv1.IngressBackend, p *field.Path, ps *problems) {
	if b.Service == nil {
		if b.Resource == nil { // a resource is refused by the field table
			ps.add(p.Child("service"), "required")
		}
		return
	}
	sp := p.Child("service")
	if b.Service.Name == "" {
		ps.add(sp.Child("name"), "required")
	}
	port := b.Service.Port
	switch {
	case port.Name != "" && port.Number != 0:
		ps.add(sp.Child("port"), "name and number are exclusive: give one")
	case port.Name == "" && port.Number == 0:
		ps.add(sp.Child("port"), "required: a name or a number")
	case port.Number < 0 || port.Number > 65535:
		ps.add(sp.Child("port", "number"), "must be between 1 and 65535")
	}
}

func defaultIngressClass(c *networkingv1.IngressClass) {}

func validateIngressClass(c *networkingv1.IngressClass) problems {
	var ps problems
	validateMeta(&c.ObjectMeta, validation.IsDNS1123Subdomain, subdomainRule, metaOther, &ps)
	if v, ok := c.Annotations[networkingv1.AnnotationIsDefaultIngressClass]; ok && v != "true" && v != "false" {
		ps.add(field.NewPath("metadata", "annotations").Key(networkingv1.AnnotationIsDefaultIngressClass), "must be \"true\" or \"false\"")
	}
	if c.Spec.Controller != IngressController {
		ps.add(field.NewPath("spec", "controller"), "%q is not bosun's: bosun runs only its own ingress controller, %s (an IngressClass of another controller belongs in a repository that controller reads)", c.Spec.Controller, IngressController)
	}
	return ps
}

// checkIngresses reports what an Ingress of the revision refers to and the
// revision does not hold: its class, the Services and ports of its
// backends, its TLS Secrets (which must be of type kubernetes.io/tls), and
// a second default IngressClass.
func (l *loader) checkIngresses() {
	classes := map[string]bool{IngressClassName: true}
	var defaults []string
	for _, c := range l.set.IngressClasses {
		classes[c.Name] = true
		if c.Annotations[networkingv1.AnnotationIsDefaultIngressClass] == "true" {
			defaults = append(defaults, c.Name)
			if len(defaults) > 1 {
				if d := l.docs[ObjectKey{Kind: KindIngressClass, Name: c.Name}]; d != nil {
					l.errs = append(l.errs, d.errorAt("metadata.annotations", fmt.Sprintf(
						"IngressClass %s is marked default too: at most one class may be (%s is)", c.Name, defaults[0])))
				}
			}
		}
	}
	services := map[string]*corev1.Service{}
	for i := range l.set.Services {
		s := &l.set.Services[i]
		services[s.Namespace+"/"+s.Name] = s
	}
	secrets := map[string]*corev1.Secret{}
	for i := range l.set.Secrets {
		s := &l.set.Secrets[i]
		secrets[s.Namespace+"/"+s.Name] = s
	}
	for i := range l.set.Ingresses {
		ing := &l.set.Ingresses[i]
		d := l.docs[ObjectKey{Kind: KindIngress, Namespace: ing.Namespace, Name: ing.Name}]
		if d == nil {
			continue
		}
		fail := func(path *field.Path, format string, args ...any) {
			l.errs = append(l.errs, d.errorAt(path.String(), fmt.Sprintf(format, args...)))
		}
		spec := field.NewPath("spec")
		if c := ing.Spec.IngressClassName; c != nil && *c != "" && !classes[*c] {
			fail(spec.Child("ingressClassName"), "%q is not an IngressClass of bosun: use %q, or declare an IngressClass of that name with spec.controller %s (an Ingress for another controller belongs in a repository that controller reads)", *c, IngressClassName, IngressController)
		}
		backend := func(b *networkingv1.IngressBackend, p *field.Path) {
			if b.Service == nil || b.Service.Name == "" {
				return
			}
			svc := services[ing.Namespace+"/"+b.Service.Name]
			if svc == nil {
				fail(p.Child("service", "name"), "Service %s/%s does not exist in the revision (Ingress %s/%s routes to it)", ing.Namespace, b.Service.Name, ing.Namespace, ing.Name)
				return
			}
			for _, sp := range svc.Spec.Ports {
				if sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP {
					continue
				}
				if b.Service.Port.Name != "" && sp.Name == b.Service.Port.Name || b.Service.Port.Name == "" && sp.Port == b.Service.Port.Number {
					return
				}
			}
			port := fmt.Sprint(b.Service.Port.Number)
			if b.Service.Port.Name != "" {
				port = fmt.Sprintf("%q", b.Service.Port.Name)
			}
			fail(p.Child("service", "port"), "Service %s/%s (%s) has no TCP port %s", ing.Namespace, b.Service.Name, l.set.Sources[ObjectKey{Kind: KindService, Namespace: ing.Namespace, Name: svc.Name}], port)
		}
		if ing.Spec.DefaultBackend != nil {
			backend(ing.Spec.DefaultBackend, spec.Child("defaultBackend"))
		}
		for i, r := range ing.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for j := range r.HTTP.Paths {
				backend(&r.HTTP.Paths[j].Backend, spec.Child("rules").Index(i).Child("http", "paths").Index(j).Child("backend"))
			}
		}
		for i, t := range ing.Spec.TLS {
			if t.SecretName == "" {
				continue
			}
			p := spec.Child("tls").Index(i).Child("secretName")
			s := secrets[ing.Namespace+"/"+t.SecretName]
			switch {
			case s == nil && l.definedEncrypted(ObjectKey{Kind: KindSecret, Namespace: ing.Namespace, Name: t.SecretName}):
				// perhaps in an encrypted document not checked
			case s == nil:
				fail(p, "Secret %s/%s does not exist in the revision (Ingress %s/%s uses it)", ing.Namespace, t.SecretName, ing.Namespace, ing.Name)
			case s.Type != corev1.SecretTypeTLS:
				fail(p, "Secret %s/%s (%s) is of type %q: it must be kubernetes.io/tls (keys tls.crt and tls.key)", ing.Namespace, t.SecretName, l.set.Sources[ObjectKey{Kind: KindSecret, Namespace: ing.Namespace, Name: t.SecretName}], cmpOr(string(s.Type), "Opaque"))
			}
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
