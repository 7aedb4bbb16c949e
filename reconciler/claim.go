package reconciler

import corev1 "k8s.io/api/core/v1"

// The actions on PersistentVolumeClaims.
const (
	PutClaim    ActionType = "PutClaim"
	DeleteClaim ActionType = "DeleteClaim"
)

// claims stores the claims written in Git and prunes those removed from it.
func (p *planner) claims(desired []corev1.PersistentVolumeClaim) {}
