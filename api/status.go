package api

import (
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"bosun/kube"
	"bosun/store"
)

// Status is the answer of GET /api/v1/status.
type Status struct {
	Leader      string             `json:"leader"`
	Sync        store.SyncStatus   `json:"sync"`
	Nodes       []NodeStatus       `json:"nodes"`
	Deployments []DeploymentStatus `json:"deployments"`
	Pods        PodCounts          `json:"pods"`
	Services    []ServiceStatus    `json:"services"`
	// Canaries summarises each canary (BuildCanaries), sorted by namespace
	// and name.
	Canaries []CanarySummary `json:"canaries,omitempty"`
	// FailedJobs lists the Jobs that failed, "<ns>/<name>: <reason>:
	// <message>".
	FailedJobs []string `json:"failedJobs,omitempty"`
	// Etcd is the etcd members as the answering replica last checked
	// them; without a quorum, Leader is "" and the rest of the status is
	// what the replica held when it lost it.
	Etcd *EtcdStatus `json:"etcd,omitempty"`
}

// EtcdStatus is the etcd members' health with what it means for users
// (store.ClusterHealth.Message; "" when all is well).
type EtcdStatus struct {
	store.ClusterHealth
	Message string `json:"message,omitempty"`
}

// NodeStatus summarises one node.
type NodeStatus struct {
	Name   string `json:"name"`
	Ready  bool   `json:"ready"`
	Pods   int    `json:"pods"`
	CPU    string `json:"cpu"`
	Memory string `json:"memory"`
}

// DeploymentStatus summarises one deployment.
type DeploymentStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Desired   int32  `json:"desired"`
	Ready     int32  `json:"ready"`
	Updated   int32  `json:"updated"`
	// Rollout is "complete", "progressing" or "failed: <why>".
	Rollout string `json:"rollout"`
}

// PodCounts counts pods by phase.
type PodCounts struct {
	Total         int            `json:"total"`
	ByPhase       map[string]int `json:"byPhase"`
	Unschedulable []string       `json:"unschedulable,omitempty"`
	// NotReady lists running pods that are not ready, with why (their
	// probes' latest failures).
	NotReady []string `json:"notReady,omitempty"`
	// Initializing lists pods whose init containers have not completed,
	// with their STATUS (Init:1/2, Init:CrashLoopBackOff, ...).
	Initializing []string `json:"initializing,omitempty"`
}

// ServiceStatus is a Service's address and its endpoints.
type ServiceStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Type is ClusterIP or NodePort.
	Type string `json:"type,omitempty"`
	// ClusterIP is the Service's virtual IP, "None" for a headless
	// Service, "" until the leader gave it one.
	ClusterIP string `json:"clusterIP,omitempty"`
	// Ports are its ports as `bosun get services` shows them.
	Ports string `json:"ports,omitempty"`
	// Endpoints are the IPs of its ready endpoints, sorted; Ready counts
	// them.
	Endpoints []string `json:"endpoints"`
	Ready     int      `json:"ready"`
}

// BuildStatus summarises a snapshot.
func BuildStatus(leader string, snap *store.Snapshot) Status {
	st := Status{Leader: leader, Sync: snap.Sync, Pods: PodCounts{ByPhase: map[string]int{}}}
	perNode := map[string]int{}
	for _, p := range snap.Pods {
		st.Pods.Total++
		phase := string(p.Status.Phase)
		if phase == "" {
			phase = string(corev1.PodPending)
		}
		st.Pods.ByPhase[phase]++
		if p.Spec.NodeName != "" {
			perNode[p.Spec.NodeName]++
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				st.Pods.Unschedulable = append(st.Pods.Unschedulable, p.Namespace+"/"+p.Name+": "+c.Message)
			}
		}
		if len(p.Spec.InitContainers) > 0 && p.Status.Phase == corev1.PodPending && !podInitialized(p) {
			st.Pods.Initializing = append(st.Pods.Initializing, p.Namespace+"/"+p.Name+": "+SummarizePod(p).Status)
		}
		if p.Status.Phase == corev1.PodRunning && !kube.PodReady(p) {
			st.Pods.NotReady = append(st.Pods.NotReady, p.Namespace+"/"+p.Name+": "+notReadyReason(p))
		}
	}
	for _, n := range snap.Nodes {
		st.Nodes = append(st.Nodes, NodeStatus{
			Name:   n.Name,
			Ready:  kube.NodeReady(&n),
			Pods:   perNode[n.Name],
			CPU:    n.Status.Allocatable.Cpu().String(),
			Memory: n.Status.Allocatable.Memory().String(),
		})
	}
	for _, d := range snap.Deployments {
		st.Deployments = append(st.Deployments, deploymentStatus(&d))
	}
	for _, j := range Jobs(snap) {
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
				st.FailedJobs = append(st.FailedJobs, j.Namespace+"/"+j.Name+": "+c.Reason+": "+c.Message)
			}
		}
	}
	for _, c := range BuildCanaries(snap) {
		st.Canaries = append(st.Canaries, c.Summary())
	}
	for _, svc := range snap.Services {
		eps := Endpoints(&svc, snap.Pods)
		st.Services = append(st.Services, ServiceStatus{
			Namespace: svc.Namespace, Name: svc.Name, Type: string(svc.Spec.Type), ClusterIP: svc.Spec.ClusterIP,
			Ports: kube.ServicePorts(&svc), Endpoints: eps, Ready: len(eps),
		})
	}
	return st
}

// notReadyReason explains a running pod that is not ready: the probes'
// summary when a probe failed, else the Ready condition's message.
func notReadyReason(p *corev1.Pod) string {
	var ready string
	for _, c := range p.Status.Conditions {
		switch {
		case c.Type == probesCondition && c.Status == corev1.ConditionFalse && c.Message != "":
			return c.Message
		case c.Type == corev1.PodReady:
			ready = c.Message
		}
	}
	if ready == "" {
		return "not ready"
	}
	return ready
}

// probesCondition is the node agent's summary of a pod's probes
// (nodes.ConditionProbes; the API does not depend on the agent).
const probesCondition corev1.PodConditionType = "bosun.dev/Probes"

func deploymentStatus(d *appsv1.Deployment) DeploymentStatus {
	desired := int32(1)
	if d.Spec.Replicas != nil {
		desired = *d.Spec.Replicas
	}
	return DeploymentStatus{
		Namespace: d.Namespace, Name: d.Name, Desired: desired,
		Ready: d.Status.ReadyReplicas, Updated: d.Status.UpdatedReplicas,
		Rollout: rolloutState(d, desired),
	}
}

// rolloutState reads the planner's Progressing condition.
func rolloutState(d *appsv1.Deployment, desired int32) string {
	for _, c := range d.Status.Conditions {
		if c.Type != appsv1.DeploymentProgressing {
			continue
		}
		switch {
		case c.Status == corev1.ConditionFalse:
			return "failed: " + c.Message
		case c.Reason == "NewReplicaSetAvailable" && d.Status.UpdatedReplicas == desired && d.Status.Replicas == desired:
			return "complete"
		}
	}
	return "progressing"
}

// Endpoints returns the sorted IPs of svc's ready endpoints (kube.Endpoint
// decides).
func Endpoints(svc *corev1.Service, pods []*corev1.Pod) []string {
	ips := []string{}
	for _, p := range pods {
		if _, ready := kube.Endpoint(svc, p); ready {
			ips = append(ips, p.Status.PodIP)
		}
	}
	sort.Strings(ips)
	return ips
}

// PodSummary is a pod's line in `bosun get pods`, as kubectl prints it.
type PodSummary struct {
	// Ready and Total count the app containers and the sidecars (init
	// containers with restartPolicy Always).
	Ready, Total int
	// Status is kubectl's STATUS: Init:1/2, Init:Error,
	// Init:CrashLoopBackOff, PodInitializing, a container's waiting or
	// terminated reason (CrashLoopBackOff, Completed, Error), Terminating,
	// else the phase. An unschedulable pod reads Pending(<reason>).
	Status string
	// Restarts sums the restarts of the app containers and sidecars, or,
	// while the pod initializes, of its init containers.
	Restarts int32
}

// SummarizePod derives a pod's READY, STATUS and RESTARTS columns from its
// status, following kubectl's printPod.
func SummarizePod(p *corev1.Pod) PodSummary {
	s := PodSummary{Total: len(p.Spec.Containers), Status: string(p.Status.Phase)}
	if s.Status == "" {
		s.Status = string(corev1.PodPending)
	}
	if p.Status.Reason != "" {
		s.Status = p.Status.Reason
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			s.Status = "Pending(" + c.Reason + ")"
		}
	}
	sidecar := map[string]bool{}
	for i := range p.Spec.InitContainers {
		c := &p.Spec.InitContainers[i]
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecar[c.Name] = true
			s.Total++
		}
	}
	var sidecarRestarts int32
	initializing := false
	for i, cs := range p.Status.InitContainerStatuses {
		s.Restarts += cs.RestartCount
		if sidecar[cs.Name] {
			sidecarRestarts += cs.RestartCount
		}
		switch {
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			continue
		case sidecar[cs.Name] && cs.Started != nil && *cs.Started:
			if cs.Ready {
				s.Ready++
			}
			continue
		case cs.State.Terminated != nil:
			switch t := cs.State.Terminated; {
			case t.Reason != "":
				s.Status = "Init:" + t.Reason
			case t.Signal != 0:
				s.Status = fmt.Sprintf("Init:Signal:%d", t.Signal)
			default:
				s.Status = fmt.Sprintf("Init:ExitCode:%d", t.ExitCode)
			}
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "PodInitializing":
			s.Status = "Init:" + cs.State.Waiting.Reason
		default:
			s.Status = fmt.Sprintf("Init:%d/%d", i, len(p.Spec.InitContainers))
		}
		initializing = true
		break
	}
	if !initializing || podInitialized(p) {
		s.Restarts = sidecarRestarts
		hasRunning := false
		for i := len(p.Status.ContainerStatuses) - 1; i >= 0; i-- {
			cs := p.Status.ContainerStatuses[i]
			s.Restarts += cs.RestartCount
			switch t := cs.State.Terminated; {
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
				s.Status = cs.State.Waiting.Reason
			case t != nil && t.Reason != "":
				s.Status = t.Reason
			case t != nil && t.Signal != 0:
				s.Status = fmt.Sprintf("Signal:%d", t.Signal)
			case t != nil:
				s.Status = fmt.Sprintf("ExitCode:%d", t.ExitCode)
			case cs.Ready && cs.State.Running != nil:
				hasRunning = true
				s.Ready++
			}
		}
		if s.Status == "Completed" && hasRunning {
			s.Status = "NotReady"
			if kube.PodReady(p) {
				s.Status = "Running"
			}
		}
	}
	if p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
		s.Status = "Terminating"
	}
	return s
}

func podInitialized(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodInitialized {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
