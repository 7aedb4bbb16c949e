package api

import (
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

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
}

// ServiceStatus lists a service's endpoints (ready pod IPs).
type ServiceStatus struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Endpoints []string `json:"endpoints"`
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
		if p.Status.Phase == corev1.PodRunning && !PodReady(&p) {
			st.Pods.NotReady = append(st.Pods.NotReady, p.Namespace+"/"+p.Name+": "+notReadyReason(&p))
		}
	}
	for _, n := range snap.Nodes {
		st.Nodes = append(st.Nodes, NodeStatus{
			Name:   n.Name,
			Ready:  nodeReady(&n),
			Pods:   perNode[n.Name],
			CPU:    n.Status.Allocatable.Cpu().String(),
			Memory: n.Status.Allocatable.Memory().String(),
		})
	}
	for _, d := range snap.Deployments {
		st.Deployments = append(st.Deployments, deploymentStatus(&d))
	}
	for _, svc := range snap.Services {
		st.Services = append(st.Services, ServiceStatus{
			Namespace: svc.Namespace, Name: svc.Name, Endpoints: Endpoints(&svc, snap.Pods),
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

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// PodReady reports whether a pod's Ready condition is true.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Endpoints returns the sorted IPs of the ready pods svc selects.
func Endpoints(svc *corev1.Service, pods []corev1.Pod) []string {
	ips := []string{}
	if len(svc.Spec.Selector) == 0 {
		return ips
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	for i := range pods {
		p := &pods[i]
		if p.Namespace != svc.Namespace || p.DeletionTimestamp != nil || p.Status.PodIP == "" || !PodReady(p) {
			continue
		}
		if sel.Matches(labels.Set(p.Labels)) {
			ips = append(ips, p.Status.PodIP)
		}
	}
	sort.Strings(ips)
	return ips
}
