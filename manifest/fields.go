package manifest

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// support says what bosun does with a field a manifest sets.
type support bool

const (
	honoured support = true  // carried out (value checks may narrow it: see Note)
	refused  support = false // a non-empty value is a validation error
)

// fieldRule is bosun's decision on one field of an API type, by its JSON
// name. Note says, for an honoured field, what bosun does with it when
// that is not simply what Kubernetes does (allowed values, limits); for a
// refused field, why, when there is more to say than "not supported".
type fieldRule struct {
	Name    string
	Support support
	Note    string
}

// typeFields is the rules of one API type. Where names where the type is
// met, for the README.
type typeFields struct {
	Type   reflect.Type
	Where  string
	Fields []fieldRule
}

// serverSet is the note of metadata the cluster sets, not manifests.
const serverSet = "set by the cluster, not by manifests"

// observed is the note of status fields: observed state, written by bosun.
const observed = "status is observed state, written by bosun, not by manifests"

// fieldTable is the one place that says which fields of the Kubernetes
// API bosun carries out. Validation walks every decoded object through it
// (checkFields): a field set to a non-empty value that is refused, or that
// the table does not know, is an error naming its path and line. Types are
// entered only through honoured fields; TestFieldTable_coversEveryField
// walks the API types by reflection and fails when a reachable field is
// listed nowhere, so a new k8s.io/api version cannot widen what bosun
// accepts without a decision here. The README's table of supported fields
// is generated from this one (TestFieldTable_README).
var fieldTable = slices.Concat(coreFieldTable, daemonSetFieldTable, statefulSetFieldTable, claimFieldTable, ingressFieldTable)

// coreFieldTable is the rules of the kinds of the first issues and of
// the types they share (pod specs, metadata, selectors); each later kind
// keeps its own in its file.
var coreFieldTable = []typeFields{
	// ---- objects ----
	{Type: reflect.TypeFor[corev1.Pod](), Where: "v1 Pod", Fields: []fieldRule{
		{"metadata", honoured, ""},
		{"spec", honoured, ""},
		{"status", refused, observed},
	}},
	{Type: reflect.TypeFor[appsv1.Deployment](), Where: "apps/v1 Deployment", Fields: []fieldRule{
		{"metadata", honoured, ""},
		{"spec", honoured, ""},
		{"status", refused, observed},
	}},
	{Type: reflect.TypeFor[corev1.Service](), Where: "v1 Service", Fields: []fieldRule{
		{"metadata", honoured, ""},
		{"spec", honoured, ""},
		{"status", refused, observed},
	}},
	{Type: reflect.TypeFor[corev1.ConfigMap](), Where: "v1 ConfigMap", Fields: []fieldRule{
		{"metadata", honoured, ""},
		{"data", honoured, "env, envFrom and volumes; a change rolls out the pods that use it"},
		{"binaryData", honoured, "volumes"},
		{"immutable", honoured, "a revision that changes an immutable ConfigMap's data is rejected"},
	}},
	{Type: reflect.TypeFor[corev1.Secret](), Where: "v1 Secret", Fields: []fieldRule{
		{"metadata", honoured, ""},
		{"data", honoured, "values are never shown: not in logs, status, history, plan diffs or errors"},
		{"stringData", honoured, "merged into data"},
		{"type", honoured, "any type but kubernetes.io/service-account-token and bootstrap.kubernetes.io/token; required keys checked"},
		{"immutable", honoured, "a revision that changes an immutable Secret's data is rejected"},
	}},
	{Type: reflect.TypeFor[corev1.Namespace](), Where: "v1 Namespace", Fields: []fieldRule{
		{"metadata", honoured, "name and labels; objects may also use namespaces no manifest declares"},
		{"spec", refused, "namespace finalizers"},
		{"status", refused, observed},
	}},
	{Type: reflect.TypeFor[batchv1.Job](), Where: "batch/v1 Job", Fields: []fieldRule{
		{"metadata", honoured, ""},
		{"spec", honoured, "a Job runs once per template and completions; changing them in Git runs it again"},
		{"status", refused, observed},
	}},
	{Type: reflect.TypeFor[batchv1.CronJob](), Where: "batch/v1 CronJob", Fields: []fieldRule{
		{"metadata", honoured, ""},
		{"spec", honoured, ""},
		{"status", refused, observed},
	}},
	{Type: reflect.TypeFor[metav1.TypeMeta](), Where: "every object", Fields: []fieldRule{
		{"apiVersion", honoured, ""},
		{"kind", honoured, ""},
	}},
	{Type: reflect.TypeFor[metav1.ObjectMeta](), Where: "metadata", Fields: []fieldRule{
		{"name", honoured, "required (not in pod and job templates)"},
		{"namespace", honoured, `default "default" (not in pod and job templates)`},
		{"labels", honoured, ""},
		{"annotations", honoured, "bosun.dev/ annotations bosun does not act on are refused"},
		{"generateName", refused, "names come from Git"},
		{"selfLink", refused, serverSet},
		{"uid", refused, serverSet},
		{"resourceVersion", refused, serverSet},
		{"generation", refused, serverSet},
		{"creationTimestamp", refused, serverSet},
		{"deletionTimestamp", refused, serverSet},
		{"deletionGracePeriodSeconds", refused, serverSet},
		{"ownerReferences", refused, serverSet},
		{"finalizers", refused, ""},
		{"managedFields", refused, serverSet},
	}},

	// ---- Deployment ----
	{Type: reflect.TypeFor[appsv1.DeploymentSpec](), Where: "Deployment spec", Fields: []fieldRule{
		{"replicas", honoured, ""},
		{"selector", honoured, "must match the template's labels"},
		{"template", honoured, ""},
		{"strategy", honoured, "RollingUpdate (maxSurge, maxUnavailable) or Recreate"},
		{"minReadySeconds", honoured, ""},
		{"revisionHistoryLimit", honoured, ""},
		{"progressDeadlineSeconds", honoured, ""},
		{"paused", refused, "pause a rollout by not merging it"},
	}},
	{Type: reflect.TypeFor[appsv1.DeploymentStrategy](), Where: "Deployment spec.strategy", Fields: []fieldRule{
		{"type", honoured, ""},
		{"rollingUpdate", honoured, ""},
	}},
	{Type: reflect.TypeFor[appsv1.RollingUpdateDeployment](), Where: "Deployment spec.strategy.rollingUpdate", Fields: []fieldRule{
		{"maxUnavailable", honoured, ""},
		{"maxSurge", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.PodTemplateSpec](), Where: "spec.template", Fields: []fieldRule{
		{"metadata", honoured, "labels and annotations"},
		{"spec", honoured, ""},
	}},
	{Type: reflect.TypeFor[metav1.LabelSelector](), Where: "selectors", Fields: []fieldRule{
		{"matchLabels", honoured, ""},
		{"matchExpressions", honoured, ""},
	}},
	{Type: reflect.TypeFor[metav1.LabelSelectorRequirement](), Where: "selector matchExpressions", Fields: []fieldRule{
		{"key", honoured, ""},
		{"operator", honoured, ""},
		{"values", honoured, ""},
	}},

	// ---- Job and CronJob ----
	{Type: reflect.TypeFor[batchv1.JobSpec](), Where: "Job spec, CronJob spec.jobTemplate.spec", Fields: []fieldRule{
		{"parallelism", honoured, "changes apply to the running Job"},
		{"completions", honoured, ""},
		{"activeDeadlineSeconds", honoured, "counts from the start, or from resuming; Failed, DeadlineExceeded"},
		{"backoffLimit", honoured, "failed pods, or with OnFailure container restarts, as in Kubernetes; failed pods are replaced after 10 s, doubling to 6 min"},
		{"template", honoured, "restartPolicy OnFailure or Never"},
		{"ttlSecondsAfterFinished", honoured, "the finished Job's pods are deleted and the Job hidden; a small record keeps the same spec from running again"},
		{"completionMode", honoured, "NonIndexed only"},
		{"suspend", honoured, "stops the running pods; they do not count as failures"},
		{"podFailurePolicy", refused, ""},
		{"successPolicy", refused, ""},
		{"backoffLimitPerIndex", refused, "indexed Jobs"},
		{"maxFailedIndexes", refused, "indexed Jobs"},
		{"selector", refused, "bosun selects a Job's pods itself"},
		{"manualSelector", refused, "bosun selects a Job's pods itself"},
		{"podReplacementPolicy", refused, ""},
		{"managedBy", refused, ""},
		{"scheduling", refused, "gang scheduling"},
	}},
	{Type: reflect.TypeFor[batchv1.CronJobSpec](), Where: "CronJob spec", Fields: []fieldRule{
		{"schedule", honoured, "five fields or @hourly-style descriptors; at most one run a minute: Jobs are named by the minute"},
		{"timeZone", honoured, "IANA names; UTC when unset; named hours follow the wall clock across DST: a skipped 02:30 runs at 03:30, a repeated one runs once"},
		{"startingDeadlineSeconds", honoured, "a later run is skipped and said so; without it the latest missed run starts"},
		{"concurrencyPolicy", honoured, "Allow, Forbid (the run is skipped), Replace"},
		{"suspend", honoured, "runs due while suspended count as missed, as in Kubernetes"},
		{"jobTemplate", honoured, "changes apply to later runs"},
		{"successfulJobsHistoryLimit", honoured, ""},
		{"failedJobsHistoryLimit", honoured, ""},
	}},
	{Type: reflect.TypeFor[batchv1.JobTemplateSpec](), Where: "CronJob spec.jobTemplate", Fields: []fieldRule{
		{"metadata", honoured, "labels and annotations"},
		{"spec", honoured, ""},
	}},

	// ---- Service ----
	{Type: reflect.TypeFor[corev1.ServiceSpec](), Where: "Service spec", Fields: []fieldRule{
		{"ports", honoured, ""},
		{"selector", honoured, ""},
		{"clusterIP", honoured, `an IPv4 address of --service-cidr when free, "None" (headless: DNS answers the ready pods' IPs), or left out: the leader gives one, kept across restarts, failovers and other commits`},
		{"clusterIPs", honoured, "one address, the same as clusterIP; bosun fills it"},
		{"type", honoured, "ClusterIP or NodePort; LoadBalancer is refused (no load balancer provider: use NodePort), ExternalName too"},
		{"sessionAffinity", honoured, "None or ClientIP"},
		{"sessionAffinityConfig", honoured, "with ClientIP"},
		{"externalTrafficPolicy", honoured, "NodePort Services: Cluster only"},
		{"internalTrafficPolicy", honoured, "Cluster only"},
		{"publishNotReadyAddresses", honoured, "DNS answers pods that are not ready too"},
		{"ipFamilies", honoured, "IPv4 only"},
		{"ipFamilyPolicy", honoured, "SingleStack only"},
		{"externalIPs", refused, ""},
		{"loadBalancerIP", refused, "bosun has no load balancer provider: use type NodePort"},
		{"loadBalancerSourceRanges", refused, "bosun has no load balancer provider: use type NodePort"},
		{"externalName", refused, "ExternalName Services are not supported"},
		{"healthCheckNodePort", refused, "it goes with externalTrafficPolicy Local, which bosun does not carry out"},
		{"allocateLoadBalancerNodePorts", refused, "bosun has no load balancer provider: use type NodePort"},
		{"loadBalancerClass", refused, "bosun has no load balancer provider: use type NodePort"},
		{"trafficDistribution", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.SessionAffinityConfig](), Where: "Service spec.sessionAffinityConfig", Fields: []fieldRule{
		{"clientIP", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.ClientIPConfig](), Where: "Service spec.sessionAffinityConfig.clientIP", Fields: []fieldRule{
		{"timeoutSeconds", honoured, "1 to 86400, default 10800"},
	}},
	{Type: reflect.TypeFor[corev1.ServicePort](), Where: "Service spec.ports", Fields: []fieldRule{
		{"name", honoured, "SRV records"},
		{"protocol", honoured, "TCP or UDP; SCTP on headless Services only"},
		{"appProtocol", honoured, "informational, as in Kubernetes"},
		{"port", honoured, ""},
		{"targetPort", honoured, "a number or a container port name"},
		{"nodePort", honoured, "type NodePort: a port of --node-port-range when free, or left out: the leader gives one"},
	}},

	// ---- Pod ----
	{Type: reflect.TypeFor[corev1.PodSpec](), Where: "Pod spec, spec.template.spec", Fields: []fieldRule{
		{"volumes", honoured, "emptyDir, configMap, secret, downwardAPI, projected, hostPath (under --allow-host-path), persistentVolumeClaim"},
		{"initContainers", honoured, "run in order; restartPolicy Always makes a sidecar"},
		{"containers", honoured, ""},
		{"restartPolicy", honoured, "Deployments: Always; Jobs: OnFailure or Never"},
		{"terminationGracePeriodSeconds", honoured, ""},
		{"dnsPolicy", honoured, "ClusterFirst, ClusterFirstWithHostNet, Default or None; with hostNetwork, ClusterFirst means Default as in Kubernetes"},
		{"dnsConfig", honoured, ""},
		{"hostAliases", honoured, "/etc/hosts"},
		{"hostname", honoured, ""},
		{"subdomain", honoured, "with hostname: the pod's name hostname.subdomain.namespace.svc.domain in /etc/hosts, and in DNS while a headless Service named subdomain selects the pod"},
		{"nodeSelector", honoured, ""},
		{"nodeName", honoured, "pins the pod to that node"},
		{"securityContext", honoured, ""},
		{"affinity", honoured, ""},
		{"tolerations", honoured, ""},
		{"topologySpreadConstraints", honoured, ""},
		{"automountServiceAccountToken", honoured, "false only: bosun mounts no tokens"},
		{"enableServiceLinks", honoured, "false only: bosun injects no service environment variables"},
		{"os", honoured, "linux only"},
		{"hostNetwork", honoured, "under --allow-host-network: the pod's containers share the node's network, its IP is the node's"},
		{"ephemeralContainers", refused, ""},
		{"activeDeadlineSeconds", refused, "use a Job's activeDeadlineSeconds"},
		{"serviceAccountName", refused, "bosun has no service accounts"},
		{"serviceAccount", refused, "bosun has no service accounts"},
		{"hostPID", refused, ""},
		{"hostIPC", refused, ""},
		{"shareProcessNamespace", refused, ""},
		{"imagePullSecrets", refused, "images come from public or --insecure-registries registries, or `bosun image import`"},
		{"schedulerName", refused, "bosun has one scheduler"},
		{"priorityClassName", refused, "no priorities or preemption"},
		{"priority", refused, "no priorities or preemption"},
		{"readinessGates", refused, ""},
		{"runtimeClassName", refused, ""},
		{"preemptionPolicy", refused, "no priorities or preemption"},
		{"overhead", refused, ""},
		{"setHostnameAsFQDN", refused, ""},
		{"hostUsers", refused, "user namespaces"},
		{"schedulingGates", refused, ""},
		{"resourceClaims", refused, "dynamic resource allocation"},
		{"resources", refused, "pod-level resources; set them per container"},
		{"hostnameOverride", refused, ""},
		{"schedulingGroup", refused, "gang scheduling"},
		{"evictionResponders", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.PodOS](), Where: "spec.os", Fields: []fieldRule{
		{"name", honoured, "linux"},
	}},
	{Type: reflect.TypeFor[corev1.PodDNSConfig](), Where: "spec.dnsConfig", Fields: []fieldRule{
		{"nameservers", honoured, ""},
		{"searches", honoured, ""},
		{"options", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.PodDNSConfigOption](), Where: "spec.dnsConfig.options", Fields: []fieldRule{
		{"name", honoured, ""},
		{"value", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.HostAlias](), Where: "spec.hostAliases", Fields: []fieldRule{
		{"ip", honoured, ""},
		{"hostnames", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.PodSecurityContext](), Where: "spec.securityContext", Fields: []fieldRule{
		{"runAsUser", honoured, ""},
		{"runAsGroup", honoured, ""},
		{"runAsNonRoot", honoured, "an image that would run as root does not start"},
		{"supplementalGroups", honoured, ""},
		{"fsGroup", honoured, "owns the pod's volumes (not hostPath), setgid directories; added to every container's groups"},
		{"fsGroupChangePolicy", honoured, "volumes are made fresh for each pod, so both policies give them to fsGroup"},
		{"sysctls", honoured, "namespaced sysctls only"},
		{"seccompProfile", honoured, "RuntimeDefault (the default) or Unconfined"},
		{"seLinuxOptions", refused, ""},
		{"windowsOptions", refused, "Linux nodes only"},
		{"supplementalGroupsPolicy", honoured, "Merge (the image's /etc/group too) or Strict"},
		{"appArmorProfile", refused, ""},
		{"seLinuxChangePolicy", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.Sysctl](), Where: "spec.securityContext.sysctls", Fields: []fieldRule{
		{"name", honoured, ""},
		{"value", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.SeccompProfile](), Where: "seccompProfile", Fields: []fieldRule{
		{"type", honoured, "RuntimeDefault or Unconfined"},
		{"localhostProfile", refused, "Localhost profiles"},
	}},

	// ---- placement ----
	{Type: reflect.TypeFor[corev1.Toleration](), Where: "spec.tolerations", Fields: []fieldRule{
		{"key", honoured, "empty with operator Exists tolerates every taint"},
		{"operator", honoured, "Equal (the default) or Exists; Lt and Gt are refused"},
		{"value", honoured, ""},
		{"effect", honoured, "NoSchedule, PreferNoSchedule, NoExecute; empty matches all"},
		{"tolerationSeconds", honoured, "NoExecute only: the pod is evicted that long after the taint was added (or after it was bound, if later)"},
	}},
	{Type: reflect.TypeFor[corev1.Affinity](), Where: "spec.affinity", Fields: []fieldRule{
		{"nodeAffinity", honoured, ""},
		{"podAffinity", honoured, ""},
		{"podAntiAffinity", honoured, "also keeps matching pods out of the domains of pods placed earlier"},
	}},
	{Type: reflect.TypeFor[corev1.NodeAffinity](), Where: "spec.affinity.nodeAffinity", Fields: []fieldRule{
		{"requiredDuringSchedulingIgnoredDuringExecution", honoured, "terms ORed, expressions ANDed; a filter"},
		{"preferredDuringSchedulingIgnoredDuringExecution", honoured, "weights of matching terms summed, normalized over the feasible nodes; a score"},
	}},
	{Type: reflect.TypeFor[corev1.NodeSelector](), Where: "node affinity", Fields: []fieldRule{
		{"nodeSelectorTerms", honoured, "at least one"},
	}},
	{Type: reflect.TypeFor[corev1.NodeSelectorTerm](), Where: "node affinity", Fields: []fieldRule{
		{"matchExpressions", honoured, "on node labels"},
		{"matchFields", honoured, "metadata.name, In or NotIn, one value"},
	}},
	{Type: reflect.TypeFor[corev1.NodeSelectorRequirement](), Where: "node affinity", Fields: []fieldRule{
		{"key", honoured, ""},
		{"operator", honoured, "In, NotIn, Exists, DoesNotExist, Gt, Lt (integers)"},
		{"values", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.PreferredSchedulingTerm](), Where: "node affinity", Fields: []fieldRule{
		{"weight", honoured, "1-100"},
		{"preference", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.PodAffinity](), Where: "spec.affinity.podAffinity", Fields: []fieldRule{
		{"requiredDuringSchedulingIgnoredDuringExecution", honoured, "a pod that matches its own terms may start first, anywhere"},
		{"preferredDuringSchedulingIgnoredDuringExecution", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.PodAntiAffinity](), Where: "spec.affinity.podAntiAffinity", Fields: []fieldRule{
		{"requiredDuringSchedulingIgnoredDuringExecution", honoured, ""},
		{"preferredDuringSchedulingIgnoredDuringExecution", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.PodAffinityTerm](), Where: "pod (anti-)affinity", Fields: []fieldRule{
		{"labelSelector", honoured, "unset selects no pods"},
		{"namespaces", honoured, "default: the pod's own"},
		{"topologyKey", honoured, "kubernetes.io/hostname or any node label"},
		{"matchLabelKeys", honoured, "the pod's own values of these labels are added to the selector (In)"},
		{"mismatchLabelKeys", honoured, "the pod's own values of these labels are added to the selector (NotIn)"},
		{"namespaceSelector", refused, "list the namespaces instead"},
	}},
	{Type: reflect.TypeFor[corev1.WeightedPodAffinityTerm](), Where: "pod (anti-)affinity", Fields: []fieldRule{
		{"weight", honoured, "1-100"},
		{"podAffinityTerm", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.TopologySpreadConstraint](), Where: "spec.topologySpreadConstraints", Fields: []fieldRule{
		{"maxSkew", honoured, ""},
		{"topologyKey", honoured, "kubernetes.io/hostname or any node label"},
		{"whenUnsatisfiable", honoured, "DoNotSchedule (a filter) or ScheduleAnyway (a score)"},
		{"labelSelector", honoured, "pods of the pod's own namespace"},
		{"minDomains", honoured, "DoNotSchedule only"},
		{"nodeAffinityPolicy", honoured, "Honor (default) or Ignore"},
		{"nodeTaintsPolicy", honoured, "Ignore (default) or Honor"},
		{"matchLabelKeys", honoured, "the pod's own values of these labels are added to the selector"},
	}},

	// ---- volumes ----
	{Type: reflect.TypeFor[corev1.Volume](), Where: "spec.volumes", Fields: []fieldRule{
		{"name", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.VolumeSource](), Where: "spec.volumes", Fields: []fieldRule{
		{"emptyDir", honoured, "on the node's disk, or tmpfs with medium Memory"},
		{"configMap", honoured, ""},
		{"secret", honoured, "on tmpfs, so its files never touch the node's disk"},
		{"downwardAPI", honoured, ""},
		{"projected", honoured, "of configMap, secret and downwardAPI, on tmpfs"},
		{"hostPath", honoured, "only under the prefixes of --allow-host-path"},
		{"persistentVolumeClaim", honoured, "a local volume (see v1 PersistentVolumeClaim)"},
		{"gcePersistentDisk", refused, ""},
		{"awsElasticBlockStore", refused, ""},
		{"gitRepo", refused, "deprecated in Kubernetes; use an init container"},
		{"nfs", refused, ""},
		{"iscsi", refused, ""},
		{"glusterfs", refused, ""},
		{"rbd", refused, ""},
		{"flexVolume", refused, ""},
		{"cinder", refused, ""},
		{"cephfs", refused, ""},
		{"flocker", refused, ""},
		{"fc", refused, ""},
		{"azureFile", refused, ""},
		{"vsphereVolume", refused, ""},
		{"quobyte", refused, ""},
		{"azureDisk", refused, ""},
		{"photonPersistentDisk", refused, ""},
		{"portworxVolume", refused, ""},
		{"scaleIO", refused, ""},
		{"storageos", refused, ""},
		{"csi", refused, ""},
		{"ephemeral", refused, ""},
		{"image", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.EmptyDirVolumeSource](), Where: "emptyDir", Fields: []fieldRule{
		{"medium", honoured, `"" (disk) or Memory (tmpfs)`},
		{"sizeLimit", honoured, "the tmpfs size with medium Memory; refused on disk, where bosun would not evict"},
		{"mode", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.HostPathVolumeSource](), Where: "hostPath", Fields: []fieldRule{
		{"path", honoured, "under a prefix of --allow-host-path"},
		{"type", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.ConfigMapVolumeSource](), Where: "configMap volume", Fields: []fieldRule{
		{"items", honoured, ""},
		{"defaultMode", honoured, ""},
		{"optional", honoured, ""},
		{"defaultUser", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.SecretVolumeSource](), Where: "secret volume", Fields: []fieldRule{
		{"secretName", honoured, ""},
		{"items", honoured, ""},
		{"defaultMode", honoured, ""},
		{"optional", honoured, ""},
		{"defaultUser", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.LocalObjectReference](), Where: "references by name", Fields: []fieldRule{
		{"name", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.KeyToPath](), Where: "volume items", Fields: []fieldRule{
		{"key", honoured, ""},
		{"path", honoured, ""},
		{"mode", honoured, ""},
		{"user", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.DownwardAPIVolumeSource](), Where: "downwardAPI volume", Fields: []fieldRule{
		{"items", honoured, ""},
		{"defaultMode", honoured, ""},
		{"defaultUser", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.DownwardAPIVolumeFile](), Where: "downwardAPI items", Fields: []fieldRule{
		{"path", honoured, ""},
		{"fieldRef", honoured, ""},
		{"resourceFieldRef", honoured, ""},
		{"mode", honoured, ""},
		{"user", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.ProjectedVolumeSource](), Where: "projected volume", Fields: []fieldRule{
		{"sources", honoured, ""},
		{"defaultMode", honoured, ""},
		{"defaultUser", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.VolumeProjection](), Where: "projected sources", Fields: []fieldRule{
		{"secret", honoured, ""},
		{"downwardAPI", honoured, ""},
		{"configMap", honoured, ""},
		{"serviceAccountToken", refused, "bosun has no service accounts"},
		{"clusterTrustBundle", refused, ""},
		{"podCertificate", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.SecretProjection](), Where: "projected secret", Fields: []fieldRule{
		{"items", honoured, ""},
		{"optional", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.ConfigMapProjection](), Where: "projected configMap", Fields: []fieldRule{
		{"items", honoured, ""},
		{"optional", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.DownwardAPIProjection](), Where: "projected downwardAPI", Fields: []fieldRule{
		{"items", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.ObjectFieldSelector](), Where: "fieldRef", Fields: []fieldRule{
		{"apiVersion", honoured, "v1"},
		{"fieldPath", honoured, "metadata.name, namespace, uid, labels['k'], annotations['k'] (whole labels and annotations in volumes); spec.nodeName; status.podIP(s), hostIP(s)"},
	}},
	{Type: reflect.TypeFor[corev1.ResourceFieldSelector](), Where: "resourceFieldRef", Fields: []fieldRule{
		{"containerName", honoured, ""},
		{"resource", honoured, "limits and requests of cpu, memory and ephemeral-storage; an unset limit is the node's allocatable"},
		{"divisor", honoured, ""},
	}},

	// ---- containers ----
	{Type: reflect.TypeFor[corev1.Container](), Where: "containers, initContainers", Fields: []fieldRule{
		{"name", honoured, ""},
		{"image", honoured, ""},
		{"command", honoured, ""},
		{"args", honoured, ""},
		{"workingDir", honoured, ""},
		{"ports", honoured, ""},
		{"envFrom", honoured, "configMapRef, secretRef"},
		{"env", honoured, ""},
		{"resources", honoured, "cpu and memory limits (cgroups) and requests (scheduling)"},
		{"restartPolicy", honoured, "init containers only: Always makes a sidecar"},
		{"volumeMounts", honoured, ""},
		{"livenessProbe", honoured, ""},
		{"readinessProbe", honoured, ""},
		{"startupProbe", honoured, ""},
		{"lifecycle", honoured, ""},
		{"terminationMessagePath", honoured, "at most 4096 bytes, shown in the terminated state"},
		{"terminationMessagePolicy", honoured, "File or FallbackToLogsOnError (the log's last 80 lines, 2048 bytes)"},
		{"imagePullPolicy", honoured, ""},
		{"securityContext", honoured, ""},
		{"resizePolicy", refused, "in-place resize"},
		{"restartPolicyRules", refused, ""},
		{"volumeDevices", refused, "block devices"},
		{"stdin", refused, ""},
		{"stdinOnce", refused, ""},
		{"tty", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.ContainerPort](), Where: "containers[].ports", Fields: []fieldRule{
		{"name", honoured, ""},
		{"containerPort", honoured, ""},
		{"protocol", honoured, ""},
		{"hostPort", honoured, "under --allow-host-network: the node forwards <node IP>:hostPort to the pod (CNI portmap); with hostNetwork it equals containerPort"},
		{"hostIP", honoured, "with hostPort: only that address of the node forwards"},
	}},
	{Type: reflect.TypeFor[corev1.EnvVar](), Where: "containers[].env", Fields: []fieldRule{
		{"name", honoured, ""},
		{"value", honoured, "$(VAR) references expanded"},
		{"valueFrom", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.EnvVarSource](), Where: "env valueFrom", Fields: []fieldRule{
		{"fieldRef", honoured, ""},
		{"resourceFieldRef", honoured, ""},
		{"configMapKeyRef", honoured, ""},
		{"secretKeyRef", honoured, ""},
		{"fileKeyRef", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.ConfigMapKeySelector](), Where: "configMapKeyRef", Fields: []fieldRule{
		{"key", honoured, ""},
		{"optional", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.SecretKeySelector](), Where: "secretKeyRef", Fields: []fieldRule{
		{"key", honoured, ""},
		{"optional", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.EnvFromSource](), Where: "containers[].envFrom", Fields: []fieldRule{
		{"prefix", honoured, ""},
		{"configMapRef", honoured, ""},
		{"secretRef", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.ConfigMapEnvSource](), Where: "envFrom configMapRef", Fields: []fieldRule{
		{"optional", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.SecretEnvSource](), Where: "envFrom secretRef", Fields: []fieldRule{
		{"optional", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.ResourceRequirements](), Where: "containers[].resources", Fields: []fieldRule{
		{"limits", honoured, "cpu, memory"},
		{"requests", honoured, "cpu, memory"},
		{"claims", refused, "dynamic resource allocation"},
	}},
	{Type: reflect.TypeFor[corev1.VolumeMount](), Where: "containers[].volumeMounts", Fields: []fieldRule{
		{"name", honoured, ""},
		{"mountPath", honoured, ""},
		{"readOnly", honoured, ""},
		{"subPath", honoured, "resolved inside the volume; links cannot lead out"},
		{"recursiveReadOnly", refused, ""},
		{"mountPropagation", refused, ""},
		{"subPathExpr", refused, ""},
		{"bindMountOptions", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.Probe](), Where: "probes", Fields: []fieldRule{
		{"initialDelaySeconds", honoured, ""},
		{"timeoutSeconds", honoured, ""},
		{"periodSeconds", honoured, ""},
		{"successThreshold", honoured, ""},
		{"failureThreshold", honoured, ""},
		{"terminationGracePeriodSeconds", honoured, "the grace of a liveness or startup kill; not on readiness probes"},
	}},
	{Type: reflect.TypeFor[corev1.ProbeHandler](), Where: "probes", Fields: []fieldRule{
		{"exec", honoured, ""},
		{"httpGet", honoured, ""},
		{"tcpSocket", honoured, ""},
		{"grpc", honoured, "grpc.health.v1 Check"},
	}},
	{Type: reflect.TypeFor[corev1.ExecAction](), Where: "exec probes and hooks", Fields: []fieldRule{
		{"command", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.HTTPGetAction](), Where: "httpGet probes and hooks", Fields: []fieldRule{
		{"path", honoured, ""},
		{"port", honoured, ""},
		{"host", honoured, ""},
		{"scheme", honoured, ""},
		{"httpHeaders", honoured, ""},
		{"protocol", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.HTTPHeader](), Where: "httpGet headers", Fields: []fieldRule{
		{"name", honoured, ""},
		{"value", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.TCPSocketAction](), Where: "tcpSocket probes", Fields: []fieldRule{
		{"port", honoured, ""},
		{"host", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.GRPCAction](), Where: "grpc probes", Fields: []fieldRule{
		{"port", honoured, ""},
		{"service", honoured, ""},
		{"mode", honoured, "Plaintext (default) or TLS without verifying the certificate"},
	}},
	{Type: reflect.TypeFor[corev1.Lifecycle](), Where: "containers[].lifecycle", Fields: []fieldRule{
		{"postStart", honoured, "the container counts as started (and the next in sequence starts) once it returns; a failure kills it"},
		{"preStop", honoured, ""},
		{"stopSignal", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.LifecycleHandler](), Where: "lifecycle hooks", Fields: []fieldRule{
		{"exec", honoured, ""},
		{"httpGet", honoured, "any HTTP answer passes, as in kubelet"},
		{"sleep", honoured, ""},
		{"tcpSocket", refused, "deprecated in Kubernetes"},
	}},
	{Type: reflect.TypeFor[corev1.SleepAction](), Where: "sleep hooks", Fields: []fieldRule{
		{"seconds", honoured, ""},
	}},
	{Type: reflect.TypeFor[corev1.SecurityContext](), Where: "containers[].securityContext", Fields: []fieldRule{
		{"capabilities", honoured, "added to and dropped from containerd's default set; names without CAP_"},
		{"privileged", honoured, "only with --allow-privileged"},
		{"runAsUser", honoured, ""},
		{"runAsGroup", honoured, ""},
		{"runAsNonRoot", honoured, ""},
		{"readOnlyRootFilesystem", honoured, ""},
		{"allowPrivilegeEscalation", honoured, "false sets no_new_privs"},
		{"seccompProfile", honoured, "RuntimeDefault (the default) or Unconfined"},
		{"seLinuxOptions", refused, ""},
		{"windowsOptions", refused, "Linux nodes only"},
		{"procMount", refused, ""},
		{"appArmorProfile", refused, ""},
	}},
	{Type: reflect.TypeFor[corev1.Capabilities](), Where: "capabilities", Fields: []fieldRule{
		{"add", honoured, ""},
		{"drop", honoured, "ALL drops every capability"},
	}},
}

// leafTypes are values the walker does not look into: their fields are
// not fields of the manifest.
var leafTypes = map[reflect.Type]bool{
	reflect.TypeFor[resource.Quantity]():      true,
	reflect.TypeFor[intstr.IntOrString]():     true,
	reflect.TypeFor[metav1.Time]():            true,
	reflect.TypeFor[metav1.MicroTime]():       true,
	reflect.TypeFor[metav1.FieldsV1]():        true,
	reflect.TypeFor[metav1.Duration]():        true,
	reflect.TypeFor[resource.QuantityValue](): true,
}

// rulesByType indexes fieldTable: type -> JSON name -> rule.
var rulesByType = func() map[reflect.Type]map[string]fieldRule {
	out := make(map[reflect.Type]map[string]fieldRule, len(fieldTable))
	for _, tf := range fieldTable {
		m := make(map[string]fieldRule, len(tf.Fields))
		for _, f := range tf.Fields {
			m[f.Name] = f
		}
		out[tf.Type] = m
	}
	return out
}()

// checkFields walks obj (a pointer to a decoded API object) and reports
// every non-empty field that fieldTable does not honour.
func checkFields(obj any) problems {
	var ps problems
	v := reflect.ValueOf(obj)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	walkFields(v, "", &ps)
	return ps
}

func walkFields(v reflect.Value, path string, ps *problems) {
	t := v.Type()
	rules, known := rulesByType[t]
	if !known {
		// Reached through an honoured field but not in the table: the
		// reflection test keeps this from happening; refuse to be safe.
		*ps = append(*ps, problem{path: path, msg: "not supported by bosun"})
		return
	}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, inline := jsonName(sf)
		if name == "-" {
			continue
		}
		fv := v.Field(i)
		if inline {
			walkFields(fv, path, ps)
			continue
		}
		if empty(fv) {
			continue
		}
		p := joinPath(path, name)
		rule, ok := rules[name]
		if !ok || rule.Support == refused {
			msg := "not supported by bosun"
			if ok && rule.Note != "" {
				msg += ": " + rule.Note
			}
			*ps = append(*ps, problem{path: p, msg: msg})
			continue
		}
		walkValue(fv, p, ps)
	}
}

// walkValue descends into an honoured field's value.
func walkValue(v reflect.Value, path string, ps *problems) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if leafTypes[v.Type()] {
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		walkFields(v, path, ps)
	case reflect.Slice, reflect.Array:
		if !structy(v.Type().Elem()) {
			return
		}
		for i := 0; i < v.Len(); i++ {
			walkValue(v.Index(i), path+"["+strconv.Itoa(i)+"]", ps)
		}
	case reflect.Map:
		if !structy(v.Type().Elem()) {
			return
		}
		iter := v.MapRange()
		for iter.Next() {
			walkValue(iter.Value(), path+"["+iter.Key().String()+"]", ps)
		}
	}
}

// structy reports whether values of t hold fields the walker must check.
func structy(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct && !leafTypes[t]
}

// empty reports whether a field is unset: the zero value, an empty list or
// map, or a struct (not behind a pointer) whose fields are all empty, as
// generators write "status: {}" and "resources: {}". A pointer is set as
// soon as it is there: "hostUsers: false" says something, and so does
// "namespaceSelector: {}" (every namespace).
func empty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	case reflect.Pointer:
		return v.IsNil()
	case reflect.Struct:
		if leafTypes[v.Type()] {
			return v.IsZero()
		}
		return emptyStruct(v)
	}
	return v.IsZero()
}

func emptyStruct(v reflect.Value) bool {
	for i := 0; i < v.NumField(); i++ {
		if v.Type().Field(i).IsExported() && !empty(v.Field(i)) {
			return false
		}
	}
	return true
}

// jsonName is a struct field's JSON name, and whether it is inlined
// (embedded without a name of its own).
func jsonName(sf reflect.StructField) (string, bool) {
	tag := sf.Tag.Get("json")
	name, opts, _ := strings.Cut(tag, ",")
	if sf.Anonymous && name == "" {
		return "", true
	}
	if strings.Contains(","+opts+",", ",inline,") {
		return "", true
	}
	if name == "" {
		name = sf.Name
	}
	return name, false
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// FieldTableMarkdown renders fieldTable as the README shows it: a row per
// API type, with the fields bosun honours (and what to know about them) and
// those it refuses.
func FieldTableMarkdown() string {
	var b strings.Builder
	b.WriteString("| type | where | honoured | refused (a validation error) |\n|---|---|---|---|\n")
	cell := func(fields []fieldRule, want support) string {
		var parts []string
		for _, f := range fields {
			if f.Support != want {
				continue
			}
			s := "`" + f.Name + "`"
			if f.Note != "" && f.Note != serverSet && f.Note != observed {
				s += " (" + strings.ReplaceAll(f.Note, "|", `\|`) + ")"
			}
			parts = append(parts, s)
		}
		if len(parts) == 0 {
			return "-"
		}
		return strings.Join(parts, ", ")
	}
	for _, tf := range fieldTable {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", tf.Type.Name(), tf.Where, cell(tf.Fields, honoured), cell(tf.Fields, refused))
	}
	return b.String()
}
