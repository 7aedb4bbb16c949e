package reconciler

import (
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The actions on Ingresses and IngressClasses.
const (
	PutIngress         ActionType = "PutIngress"
	DeleteIngress      ActionType = "DeleteIngress"
	PutIngressClass    ActionType = "PutIngressClass"
	DeleteIngressClass ActionType = "DeleteIngressClass"
)

// ingresses stores the Ingresses and IngressClasses written in Git and
// prunes those removed from it, as Services are: a put only when the spec,
// labels or annotations changed. Puts go with the other objects, after the
// pod changes (a new route finds the new pods already planned); deletes
// come last.
func (p *planner) ingresses(desired []networkingv1.Ingress, classes []networkingv1.IngressClass) {
	const pruned = "pruned: removed from Git"
	puts, dels := syncObjects(classes, p.observed.IngressClasses,
		func(a, b *networkingv1.IngressClass) bool { return equality.Semantic.DeepEqual(a.Spec, b.Spec) },
		func(o *networkingv1.IngressClass, why string) Action {
			o.TypeMeta = metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "IngressClass"}
			return Action{Type: PutIngressClass, IngressClass: o, Reason: why}
		},
		func(_, name string) Action {
			return Action{Type: DeleteIngressClass, Name: name, Reason: pruned}
		})
	p.other = append(p.other, puts...)
	p.last = append(p.last, dels...)
	puts, dels = syncObjects(desired, p.observed.Ingresses,
		func(a, b *networkingv1.Ingress) bool { return equality.Semantic.DeepEqual(a.Spec, b.Spec) },
		func(o *networkingv1.Ingress, why string) Action {
			o.TypeMeta = metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "Ingress"}
			return Action{Type: PutIngress, Ingress: o, Reason: why}
		},
		func(ns, name string) Action {
			return Action{Type: DeleteIngress, Namespace: ns, Name: name, Reason: pruned}
		})
	p.other = append(p.other, puts...)
	p.last = append(p.last, dels...)
}
