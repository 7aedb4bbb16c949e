package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPrintIngresses_hostsPortsAndBackends(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	prefix := networkingv1.PathTypePrefix
	ing := networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", CreationTimestamp: metav1.NewTime(now.Add(-2 * time.Hour))},
		Spec: networkingv1.IngressSpec{
			TLS: []networkingv1.IngressTLS{{Hosts: []string{"a.example.test"}, SecretName: "tls"}},
			Rules: []networkingv1.IngressRule{
				{Host: "a.example.test", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{Path: "/api", PathType: &prefix, Backend: networkingv1.IngressBackend{
						Service: &networkingv1.IngressServiceBackend{Name: "api", Port: networkingv1.ServiceBackendPort{Number: 8080}}}}}}}},
				{Host: "a.example.test"},
				{Host: "b.example.test"},
			},
			DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Name: "http"}}},
		},
	}
	raw, _ := json.Marshal(map[string]any{"items": []networkingv1.Ingress{ing}})
	var b bytes.Buffer
	if err := printTable(&b, kinds["ing"], raw, true, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"<none>", "a.example.test,b.example.test", "80, 443", "2h", "a.example.test/api->api:8080,*->web:http"} {
		if !strings.Contains(out, want) {
			t.Errorf("get ing -o wide lacks %q:\n%s", want, out)
		}
	}
}
