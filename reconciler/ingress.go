package reconciler

import networkingv1 "k8s.io/api/networking/v1"

// The actions on Ingresses and IngressClasses.
const (
	PutIngress         ActionType = "PutIngress"
	DeleteIngress      ActionType = "DeleteIngress"
	PutIngressClass    ActionType = "PutIngressClass"
	DeleteIngressClass ActionType = "DeleteIngressClass"
)

// ingresses stores the Ingresses and IngressClasses written in Git and
// prunes those removed from it.
func (p *planner) ingresses(desired []networkingv1.Ingress, classes []networkingv1.IngressClass) {}
