package manifest

import (
	"strings"
	"testing"
)

// ingressBase is a Service and a TLS Secret an Ingress may use (lines 1-22).
const ingressBase = service + `---
apiVersion: v1
kind: Secret
metadata:
  name: web-tls
type: kubernetes.io/tls
data:
  tls.crt: Y2VydA==
  tls.key: a2V5
---
apiVersion: v1
kind: Secret
metadata:
  name: plain
data:
  a: Yg==
---
`

const ingressDoc = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: site
spec:
  tls:
  - hosts: [web.example.com]
    secretName: web-tls
  rules:
  - host: web.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port:
              number: 80
      - path: /api
        pathType: ImplementationSpecific
        backend:
          service:
            name: web
            port:
              name: http
`

func TestValidateIngress(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{name: "valid", yaml: ingressBase + ingressDoc},
		{name: "wildcard host, default backend, own class", yaml: ingressBase + strings.Replace(ingressDoc, "host: web.example.com", "host: \"*.example.com\"", 1) +
			"  ingressClassName: internal\n  defaultBackend:\n    service:\n      name: web\n      port:\n        number: 80\n---\n" +
			"apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: internal\n  annotations:\n    ingressclass.kubernetes.io/is-default-class: \"true\"\nspec:\n  controller: bosun.dev/ingress\n"},
		{name: "missing service, missing port, plain secret, missing secret", yaml: ingressBase +
			strings.NewReplacer("name: web\n            port:\n              number: 80", "name: nope\n            port:\n              number: 80",
				"name: http", "name: grpc", "    secretName: web-tls\n", "    secretName: plain\n  - secretName: gone\n").Replace(ingressDoc),
			want: []string{
				"m.yaml:36: spec.tls[0].secretName: Secret default/plain (m.yaml:22) is of type \"Opaque\": it must be kubernetes.io/tls (keys tls.crt and tls.key)",
				"m.yaml:37: spec.tls[1].secretName: Secret default/gone does not exist in the revision (Ingress default/site uses it)",
				"m.yaml:46: spec.rules[0].http.paths[0].backend.service.name: Service default/nope does not exist in the revision (Ingress default/site routes to it)",
				"m.yaml:54: spec.rules[0].http.paths[1].backend.service.port: Service default/web (m.yaml:1) has no TCP port \"grpc\"",
			}},
		{name: "another class, resource backend, bad path and type", yaml: ingressBase + strings.NewReplacer(
			"pathType: Prefix", "pathType: Regex", "path: /api", "path: api",
			"  tls:", "  ingressClassName: nginx\n  tls:").Replace(ingressDoc) +
			"  defaultBackend:\n    resource:\n      kind: Bucket\n      name: b\n",
			want: []string{
				"m.yaml:34: spec.ingressClassName: \"nginx\" is not an IngressClass of bosun: use \"bosun\", or declare an IngressClass of that name with spec.controller bosun.dev/ingress (an Ingress for another controller belongs in a repository that controller reads)",
				"m.yaml:43: spec.rules[0].http.paths[0].pathType: unsupported value \"Regex\": Exact, Prefix or ImplementationSpecific",
				"m.yaml:49: spec.rules[0].http.paths[1].path: must start with \"/\"",
				"m.yaml:57: spec.defaultBackend.resource: not supported by bosun: bosun routes only to Services",
			}},
		{name: "IngressClass of another controller, legacy annotation, no pathType, no http", yaml: ingressBase +
			"apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: nginx\nspec:\n  controller: k8s.io/ingress-nginx\n  parameters:\n    kind: X\n    name: params\n---\n" +
			strings.NewReplacer("        pathType: Prefix\n", "", "  name: site\n", "  name: site\n  annotations:\n    kubernetes.io/ingress.class: nginx\n").Replace(ingressDoc) +
			"  - host: other.example.com\n  - host: bad_host\n    http:\n      paths: []\n",
			want: []string{
				"m.yaml:34: spec.controller: \"k8s.io/ingress-nginx\" is not bosun's: bosun runs only its own ingress controller, bosun.dev/ingress (an IngressClass of another controller belongs in a repository that controller reads)",
				"m.yaml:35: spec.parameters: not supported by bosun: bosun's ingress proxy takes no parameters",
				"m.yaml:44: metadata.annotations[kubernetes.io/ingress.class]: \"nginx\" is not bosun's class: bosun serves only its own Ingresses (use spec.ingressClassName; an Ingress for another controller belongs in a repository that controller reads)",
				"m.yaml:53: spec.rules[0].http.paths[0].pathType: required: Exact, Prefix or ImplementationSpecific",
				"m.yaml:66: spec.rules[1].http: required: bosun serves HTTP rules",
				"m.yaml:67: spec.rules[2].host: \"bad_host\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
				"m.yaml:69: spec.rules[2].http.paths: at least one path is required",
			}},
		{name: "paths that never match, a regular expression", yaml: ingressBase + strings.NewReplacer(
			"path: /\n", "path: /a//b/./c/..\n", "path: /api", "path: /api/(.*)").Replace(ingressDoc) +
			"  - http:\n      paths:\n" +
			"      - {path: \"/x/.\", pathType: Exact, backend: {service: {name: web, port: {number: 80}}}}\n" +
			"      - {path: \"/y%2Fz\", pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}\n" +
			"      - {path: \"/files/report.v1\", pathType: ImplementationSpecific, backend: {service: {name: web, port: {number: 80}}}}\n",
			want: []string{
				"m.yaml:41: spec.rules[0].http.paths[0].path: \"/a//b/./c/..\" must not contain \"/./\": it would never match a request, whose path is matched cleaned and decoded",
				"m.yaml:41: spec.rules[0].http.paths[0].path: \"/a//b/./c/..\" must not contain \"//\": it would never match a request, whose path is matched cleaned and decoded",
				"m.yaml:41: spec.rules[0].http.paths[0].path: \"/a//b/./c/..\" must not end with \"/..\": it would never match a request, whose path is matched cleaned",
				"m.yaml:48: spec.rules[0].http.paths[1].path: \"/api/(.*)\" holds \"(\", a regular expression character: bosun matches ImplementationSpecific paths as Prefix, literally, never as a regular expression; write the prefix the expression stands for",
				"m.yaml:57: spec.rules[1].http.paths[0].path: \"/x/.\" must not end with \"/.\": it would never match a request, whose path is matched cleaned",
				"m.yaml:58: spec.rules[1].http.paths[1].path: \"/y%2Fz\" must not contain \"%2F\": it would never match a request, whose path is matched cleaned and decoded",
			}},
		{name: "neither rules nor default backend", yaml: "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: x\nspec: {}\n",
			want: []string{
				"m.yaml:5: spec: either defaultBackend or rules must be given",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode("m.yaml", []byte(tt.yaml))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Decode succeeded, want:\n%s", strings.Join(tt.want, "\n"))
			}
			if got := err.Error(); got != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n got: %s\nwant: %s", strings.ReplaceAll(got, "\n", "\n      "), strings.Join(tt.want, "\n      "))
			}
		})
	}
}
