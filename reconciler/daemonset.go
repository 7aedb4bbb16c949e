package reconciler

import appsv1 "k8s.io/api/apps/v1"

// The actions on DaemonSets.
const (
	PutDaemonSet    ActionType = "PutDaemonSet"
	DeleteDaemonSet ActionType = "DeleteDaemonSet"
)

// daemonSets runs one pod of each DaemonSet on every eligible node.
func (p *planner) daemonSets(desired []appsv1.DaemonSet) {}
