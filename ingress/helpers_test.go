package ingress

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// rule is "host path type service:port" (host "-" for none, type E, P or I).
func ing(ns, name string, rules ...string) networkingv1.Ingress {
	in := networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for _, r := range rules {
		f := strings.Fields(r)
		host := f[0]
		if host == "-" {
			host = ""
		}
		pt := map[string]networkingv1.PathType{"E": networkingv1.PathTypeExact, "P": networkingv1.PathTypePrefix, "I": networkingv1.PathTypeImplementationSpecific}[f[2]]
		var rule *networkingv1.IngressRule
		for i := range in.Spec.Rules {
			if in.Spec.Rules[i].Host == host {
				rule = &in.Spec.Rules[i]
			}
		}
		if rule == nil {
			in.Spec.Rules = append(in.Spec.Rules, networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{}}})
			rule = &in.Spec.Rules[len(in.Spec.Rules)-1]
		}
		rule.HTTP.Paths = append(rule.HTTP.Paths, networkingv1.HTTPIngressPath{Path: f[1], PathType: &pt, Backend: backendOf(f[3])})
	}
	return in
}

func backendOf(s string) networkingv1.IngressBackend {
	svc, port, _ := strings.Cut(s, ":")
	b := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc}}
	var n int32
	if _, err := fmt.Sscan(port, &n); err == nil {
		b.Service.Port.Number = n
	} else {
		b.Service.Port.Name = port
	}
	return b
}

func svc(ns, name string, port int32, target int) corev1.Service {
	return corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": name}, ClusterIP: "10.96.0.10",
		Ports: []corev1.ServicePort{{Name: "http", Port: port, TargetPort: intstr.FromInt(target)}},
	}}
}

func pod(ns, name, app, ip string, ready bool) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": app}},
		Status: corev1.PodStatus{PodIP: ip, Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}}}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func intstrName(s string) intstr.IntOrString { return intstr.FromString(s) }
