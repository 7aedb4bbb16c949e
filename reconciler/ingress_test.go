package reconciler

import (
	"slices"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/manifest"
)

func TestPlan_ingressesPutOnChangeAndPrune(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pt := networkingv1.PathTypePrefix
	mk := func(name, svc string) networkingv1.Ingress {
		return networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: name}, Spec: networkingv1.IngressSpec{
			Rules: []networkingv1.IngressRule{{Host: "a.example", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &pt, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}}
	}
	class := networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "internal"}, Spec: networkingv1.IngressClassSpec{Controller: "bosun.dev/ingress"}}
	summary := func(as []Action) []string {
		var out []string
		for _, a := range as {
			out = append(out, string(a.Type)+" "+a.Object()+" "+a.Reason)
		}
		return out
	}
	desired := &manifest.Set{Ingresses: []networkingv1.Ingress{mk("a", "s1"), mk("b", "s1")}, IngressClasses: []networkingv1.IngressClass{class}}
	got := summary(Plan(desired, Observed{}, now).Actions)
	want := []string{"PutIngressClass ingressclass/internal create", "PutIngress ingress/web/a create", "PutIngress ingress/web/b create"}
	if !slices.Equal(got, want) {
		t.Fatalf("first plan:\n%q\nwant\n%q", got, want)
	}
	// Stored as they are: nothing to do.
	stored := Observed{Ingresses: []networkingv1.Ingress{mk("a", "s1"), mk("b", "s1")}, IngressClasses: []networkingv1.IngressClass{class}}
	stored.Ingresses[0].ResourceVersion = "7"
	if got := Plan(desired, stored, now).Actions; len(got) != 0 {
		t.Fatalf("nothing changed, yet: %q", summary(got))
	}
	// One changed, one removed, the class removed: put, then deletes last.
	desired = &manifest.Set{Ingresses: []networkingv1.Ingress{mk("a", "s2")}}
	res := Plan(desired, stored, now).Actions
	got = summary(res)
	want = []string{"PutIngress ingress/web/a changed in Git", "DeleteIngressClass ingressclass/internal pruned: removed from Git", "DeleteIngress ingress/web/b pruned: removed from Git"}
	if !slices.Equal(got, want) {
		t.Fatalf("change and prune:\n%q\nwant\n%q", got, want)
	}
	if res[0].Ingress.ResourceVersion != "7" || res[0].Ingress.Kind != "Ingress" {
		t.Errorf("put keeps the stored metadata: %+v", res[0].Ingress.ObjectMeta)
	}
}
