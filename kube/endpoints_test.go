package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestEndpointSlices(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	pod := func(name, ip string, ready bool, port int32, labels map[string]string) *corev1.Pod {
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: labels},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: port}},
			}}},
			Status: corev1.PodStatus{PodIP: ip, Phase: corev1.PodRunning,
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
		}
	}
	web := map[string]string{"app": "web"}
	pods := []*corev1.Pod{
		pod("b", "10.0.0.9", true, 8080, web),
		pod("a", "10.0.0.10", false, 8080, web),
		pod("c", "10.0.0.3", true, 9090, web),                            // names its port differently: its own slice
		pod("d", "10.0.0.4", true, 8080, map[string]string{"app": "db"}), // not selected
		pod("e", "", true, 8080, web),                                    // no address yet
	}
	got := EndpointSlices(svc, pods)
	if len(got) != 2 {
		t.Fatalf("got %d slices, want 2: %+v", len(got), got)
	}
	first := got[0]
	if *first.Ports[0].Port != 8080 || len(first.Endpoints) != 2 {
		t.Fatalf("slice 0 = ports %v, %d endpoints; want 8080 with 2", *first.Ports[0].Port, len(first.Endpoints))
	}
	// Sorted by address, not by text: 10.0.0.9 before 10.0.0.10.
	if first.Endpoints[0].Addresses[0] != "10.0.0.9" || !*first.Endpoints[0].Conditions.Ready ||
		first.Endpoints[1].Addresses[0] != "10.0.0.10" || *first.Endpoints[1].Conditions.Ready {
		t.Errorf("slice 0 endpoints = %+v", first.Endpoints)
	}
	if first.Labels[ServiceNameLabel] != "web" || *first.Endpoints[0].NodeName != "n1" || first.Endpoints[0].TargetRef.Name != "b" {
		t.Errorf("slice 0 metadata = %+v", first)
	}
	if *got[1].Ports[0].Port != 9090 || got[1].Endpoints[0].Addresses[0] != "10.0.0.3" {
		t.Errorf("slice 1 = %+v", got[1])
	}
	svc.Spec.Selector = nil
	if got := EndpointSlices(svc, pods); len(got) != 0 {
		t.Errorf("a Service without a selector has endpoints: %+v", got)
	}
}

// TestEndpointHostname pins Kubernetes' rule: an endpoint has a hostname
// only when the pod's subdomain names the Service, in its namespace.
func TestEndpointHostname(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db"}}
	for _, tc := range []struct {
		name                string
		ns, host, subdomain string
		want                string
	}{
		{"hostname and subdomain naming the Service", "default", "db-0", "db", "db-0"},
		{"no subdomain", "default", "db-0", "", ""},
		{"subdomain names another Service", "default", "db-0", "web", ""},
		{"subdomain differs in case", "default", "db-0", "DB", ""},
		{"other namespace", "staging", "db-0", "db", ""},
		{"subdomain without hostname", "default", "", "db", ""},
	} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: tc.ns, Name: "p"},
			Spec:       corev1.PodSpec{Hostname: tc.host, Subdomain: tc.subdomain},
		}
		if got := EndpointHostname(svc, pod); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
