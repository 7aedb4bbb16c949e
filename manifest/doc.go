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
//	deploy/x.yaml:12: kind: unsupported kind "apps/v1/StatefulSet" (supported: v1/Pod, apps/v1/Deployment, ...)
//	b.yaml:16: metadata.name: duplicate Deployment default/web (first defined at a.yaml:3)
//
// Decoding follows Kubernetes' own YAML path (sigs.k8s.io/yaml then
// sigs.k8s.io/json), so what kubectl accepts is decoded here with the same
// meaning. Then, per object:
//
//   - The field table (fields.go) decides, for every field set to a
//     non-empty value, whether bosun carries it out: a field it refuses is
//     an error ("spec.template.spec.hostIPC: not supported by bosun"), so
//     a manifest never runs differently from what it says. The table is the
//     one list of supported fields; the README's is generated from it.
//   - Defaults, then validation of values: only the kinds in
//     SupportedKinds; Services of type ClusterIP (or headless) or
//     NodePort, with an IPv4 clusterIP if any, sessionAffinity None or
//     ClientIP (timeout 1 to 86400 s) and Cluster traffic policies
//     (LoadBalancer and ExternalName refused with why); the pod annotation
//     bosun.dev/weight (AnnotationWeight) a non-negative integer, on pods
//     and pod templates only;
//     container and port names unique across a whole pod (a named
//     targetPort must resolve to one port); bosun.dev/ annotations only
//     when bosun acts on them; the operator's Policy (hostPath prefixes,
//     privileged containers, hostNetwork and hostPort under
//     AllowHostNetwork); host ports as Kubernetes checks them (with
//     hostNetwork a hostPort equals its containerPort; hostPort, protocol
//     and hostIP unique within a pod; hostIP an address, only with a
//     hostPort).
//   - Once every object is loaded: every non-optional use of a ConfigMap or
//     Secret (env, envFrom, volumes) must name one the revision defines,
//     with the keys it uses.
//
// A Secret's values never appear in an error: messages name keys, and a
// value of the wrong type is described by its JSON kind only.
//
// # Encrypted files (SOPS)
//
// A file any of whose documents has a top-level "sops" key is encrypted
// with SOPS. Policy.Decrypter (package sopsfile, --sops-age-key-file)
// decrypts it whole, in memory, as sops encrypted it (one MAC over all its
// documents); every plaintext document is then decoded like any other.
// Keys are never encrypted, so each field has a line in the file in Git:
// errors and Sources name those lines, not the plaintext's. Errors of an
// encrypted file never show a value that was encrypted (other than an
// object's apiVersion, kind, name and namespace, which status and plans
// show anyway): it reads "(encrypted value)". A file that cannot be
// decrypted (no Decrypter, no matching key, a MAC that does not verify,
// malformed metadata, a plain document beside encrypted ones) is one error
// on the line of its first document, and the revision is refused; the
// objects it would define are not reported missing as well. With
// Policy.SkipEncrypted instead of a Decrypter (`bosun validate` without a
// key), encrypted documents are listed in Set.Encrypted, not checked, and
// references to the ConfigMaps and Secrets they define (when their kind and
// name are in plain text; any, when not) are taken as satisfied.
//
// Defaults applied, as Kubernetes does: namespace "default"; Deployment
// replicas 1 and strategy RollingUpdate with 25% surge and unavailability;
// pod restartPolicy Always (a Job's pods must name OnFailure or Never),
// terminationGracePeriodSeconds 30, dnsPolicy ClusterFirst; container
// imagePullPolicy Always for ":latest" or untagged images and IfNotPresent
// otherwise; port protocol TCP, and on a hostNetwork pod hostPort equal to
// containerPort; Service type ClusterIP, targetPort
// equal to port, clusterIP from a clusterIPs of one address, and for
// ClientIP affinity a timeout of 10800 s; Secret type Opaque, stringData merged into data; Job
// parallelism and completions 1, backoffLimit 6; CronJob
// concurrencyPolicy Allow and history limits 3 and 1; DaemonSet
// updateStrategy RollingUpdate with maxUnavailable 1 and maxSurge 0 (exactly
// one of them non-zero, as Kubernetes validates; OnDelete without
// rollingUpdate), revisionHistoryLimit 10, and its pods' restartPolicy
// Always (manifest/daemonset.go).
//
// After loading, CheckUpdate compares a revision with the applied one (an
// immutable ConfigMap or Secret cannot change; a StatefulSet's selector,
// serviceName, volumeClaimTemplates and podManagementPolicy cannot, at the
// field's line through Set.Where), and Set.StampConfigHashes
// puts a keyed hash of the ConfigMaps and Secrets each Deployment and
// DaemonSet template and Pod uses on it (AnnotationConfigHash), so a configuration change rolls
// them out.
//
// The ranges a Service's clusterIP and node ports must fit, and whether
// another Service keeps them, are checked once the revision is loaded, by
// the allocation of addresses (package ipalloc), which names the line of
// the field through Set.Where.
//
// TemplateHash gives the pod-template-hash label of a Deployment's template.
//
// The package is pure apart from LoadDir's reading of files (and what a
// Decrypter given to it does): no clocks, no network, no logging. It never follows symbolic links, skips files and
// directories whose names start with ".", and refuses files over 4 MiB.
package manifest
