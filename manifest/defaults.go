package manifest

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// DefaultNamespace is the namespace of objects whose manifests name none.
const DefaultNamespace = "default"

// The defaults below are the ones Kubernetes applies that bosun's other
// parts rely on; they run before validation, as in Kubernetes. Status is
// observed state, so whatever a manifest writes there is dropped.

func defaultPod(pod *corev1.Pod) {
	if pod.Namespace == "" {
		pod.Namespace = DefaultNamespace
	}
	pod.Status = corev1.PodStatus{}
	defaultPodSpec(&pod.Spec, corev1.RestartPolicyAlways)
}

func defaultDeployment(dep *appsv1.Deployment) {
	if dep.Namespace == "" {
		dep.Namespace = DefaultNamespace
	}
	dep.Status = appsv1.DeploymentStatus{}
	if dep.Spec.Replicas == nil {
		one := int32(1)
		dep.Spec.Replicas = &one
	}
	st := &dep.Spec.Strategy
	if st.Type == "" {
		st.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if st.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if st.RollingUpdate == nil {
			st.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		quarter := intstr.FromString("25%")
		if st.RollingUpdate.MaxSurge == nil {
			v := quarter
			st.RollingUpdate.MaxSurge = &v
		}
		if st.RollingUpdate.MaxUnavailable == nil {
			v := quarter
			st.RollingUpdate.MaxUnavailable = &v
		}
	}
	defaultPodSpec(&dep.Spec.Template.Spec, corev1.RestartPolicyAlways)
}

// defaultPodSpec fills in a pod spec's defaults; restart is the default
// restartPolicy ("" for a Job's pods, which must name theirs).
func defaultPodSpec(spec *corev1.PodSpec, restart corev1.RestartPolicy) {
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = restart
	}
	if spec.TerminationGracePeriodSeconds == nil {
		grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
		spec.TerminationGracePeriodSeconds = &grace
	}
	if spec.DNSPolicy == "" {
		spec.DNSPolicy = corev1.DNSClusterFirst
	}
	defaultHostNetworkPorts(spec)
	for i := range spec.InitContainers {
		defaultContainer(&spec.InitContainers[i])
	}
	for i := range spec.Containers {
		defaultContainer(&spec.Containers[i])
	}
}

func defaultContainer(c *corev1.Container) {
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = defaultPullPolicy(c.Image)
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
}

// defaultPullPolicy is Kubernetes' rule: Always for an image tagged
// ":latest" or not tagged at all (and not pinned by digest), IfNotPresent
// otherwise.
func defaultPullPolicy(image string) corev1.PullPolicy {
	if strings.Contains(image, "@") {
		return corev1.PullIfNotPresent
	}
	name := image
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	tag := ""
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		tag = name[i+1:]
	}
	if tag == "" || tag == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

func defaultService(svc *corev1.Service) {
	if svc.Namespace == "" {
		svc.Namespace = DefaultNamespace
	}
	svc.Status = corev1.ServiceStatus{}
	if svc.Spec.Type == "" {
		svc.Spec.Type = corev1.ServiceTypeClusterIP
	}
	if svc.Spec.SessionAffinity == "" {
		svc.Spec.SessionAffinity = corev1.ServiceAffinityNone
	}
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		c := svc.Spec.SessionAffinityConfig
		if c == nil {
			c = &corev1.SessionAffinityConfig{}
			svc.Spec.SessionAffinityConfig = c
		}
		if c.ClientIP == nil {
			c.ClientIP = &corev1.ClientIPConfig{}
		}
		if c.ClientIP.TimeoutSeconds == nil {
			t := int32(DefaultClientIPTimeoutSeconds)
			c.ClientIP.TimeoutSeconds = &t
		}
	}
	// A manifest may give its address in clusterIPs only, as Kubernetes
	// allows; the leader fills both.
	if svc.Spec.ClusterIP == "" && len(svc.Spec.ClusterIPs) == 1 {
		svc.Spec.ClusterIP = svc.Spec.ClusterIPs[0]
	}
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == 0 {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
}
