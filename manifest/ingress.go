package manifest

import (
	"reflect"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// ingressFieldTable is the rules of networking.k8s.io/v1 Ingress's and
// IngressClass's own types.
var ingressFieldTable = []typeFields{
	{Type: reflect.TypeFor[networkingv1.Ingress](), Where: "networking.k8s.io/v1 Ingress", Fields: []fieldRule{
		{"metadata", honoured, ""},
		{"spec", refused, "not yet"},
		{"status", refused, observed},
	}},
	{Type: reflect.TypeFor[networkingv1.IngressClass](), Where: "networking.k8s.io/v1 IngressClass", Fields: []fieldRule{
		{"metadata", honoured, ""},
		{"spec", refused, "not yet"},
	}},
}

func defaultIngress(ing *networkingv1.Ingress) {}

func validateIngress(ing *networkingv1.Ingress) problems {
	var ps problems
	validateMeta(&ing.ObjectMeta, validation.IsDNS1123Subdomain, subdomainRule, metaOther, &ps)
	return ps
}

func defaultIngressClass(c *networkingv1.IngressClass) {}

func validateIngressClass(c *networkingv1.IngressClass) problems {
	var ps problems
	validateMeta(&c.ObjectMeta, validation.IsDNS1123Subdomain, subdomainRule, metaOther, &ps)
	return ps
}
