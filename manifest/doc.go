// Package manifest turns a directory of Kubernetes YAML into one revision's
// desired state: typed k8s.io/api objects, defaulted and validated, each
// with the file and line it came from.
//
//	root/sub/**/*.yaml|*.yml ──split "---"──> documents ──YAML→JSON (strict)──>
//	typed decode (case-sensitive, unknown fields reported) ──> defaults ──>
//	validation ──> duplicate check across files ──> *Set (sorted) or Errors
//
// # Contract
//
// LoadDir and Decode are all or nothing: they return a complete *Set, or nil
// and an Errors value listing every problem in every file, sorted by file
// and line. A revision with one bad manifest is rejected whole; callers keep
// running the previous Set. Each Error names the file (relative to the
// loaded root), the 1-based line of the offending field when it can be found
// (else of the document's first content line) and the field path, for
// example:
//
//	deploy/x.yaml:12: kind: unsupported kind "apps/v1/StatefulSet" (supported: v1/Pod, apps/v1/Deployment, v1/Service)
//	b.yaml:16: metadata.name: duplicate Deployment default/web (first defined at a.yaml:3)
//
// Decoding follows Kubernetes' own YAML path (sigs.k8s.io/yaml then
// sigs.k8s.io/json), so what kubectl accepts is accepted here and with the
// same meaning, with these bosun rules on top: only the kinds in
// SupportedKinds; Services only of type ClusterIP (without nodePort);
// container and port names unique across a whole pod (a named targetPort
// must resolve to one port); the canary annotations, when present, well
// formed.
//
// Defaults applied, as Kubernetes does: namespace "default"; Deployment
// replicas 1 and strategy RollingUpdate with 25% surge and unavailability;
// pod restartPolicy Always, terminationGracePeriodSeconds 30, dnsPolicy
// ClusterFirst; container imagePullPolicy Always for ":latest" or untagged
// images and IfNotPresent otherwise; port protocol TCP; Service type
// ClusterIP and targetPort equal to port. Any status written in a manifest
// is dropped.
//
// TemplateHash gives the pod-template-hash label of a Deployment's template.
//
// The package is pure apart from LoadDir's reading of files: no clocks, no
// network, no logging. It never follows symbolic links, skips files and
// directories whose names start with ".", and refuses files over 4 MiB.
package manifest
