package reconciler

import appsv1 "k8s.io/api/apps/v1"

// The actions on StatefulSets.
const (
	PutStatefulSet    ActionType = "PutStatefulSet"
	DeleteStatefulSet ActionType = "DeleteStatefulSet"
)

// statefulSets runs each StatefulSet's pods under stable names.
func (p *planner) statefulSets(desired []appsv1.StatefulSet) {}
