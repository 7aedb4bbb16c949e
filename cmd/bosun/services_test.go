package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/api"
	"bosun/kube"
)

func TestPrintServices_typeClusterIPAndPorts(t *testing.T) {
	svcs := []corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}, Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.0.12",
			Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}, {Port: 53, Protocol: corev1.ProtocolUDP}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "admin"}, Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeNodePort, ClusterIP: "10.96.3.4",
			Ports: []corev1.ServicePort{{Port: 80, NodePort: 30080, Protocol: corev1.ProtocolTCP}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db"}, Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: "None", Ports: []corev1.ServicePort{{Port: 5432, Protocol: corev1.ProtocolTCP}}}},
	}
	raw, _ := json.Marshal(map[string]any{"items": svcs})
	var b bytes.Buffer
	if err := printTable(&b, "services", raw, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	want := `NAMESPACE   NAME    TYPE        CLUSTER-IP   PORT(S)         AGE
default     web     ClusterIP   10.96.0.12   80/TCP,53/UDP   -
default     admin   NodePort    10.96.3.4    80:30080/TCP    -
default     db      ClusterIP   None         5432/TCP        -
`
	if got := b.String(); got != want {
		t.Errorf("get services:\n%s\nwant:\n%s", got, want)
	}
}

func TestPrintEndpoints_readyAddressesWithPorts(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}
	var pods []*corev1.Pod
	for i, ip := range []string{"10.88.0.5", "10.88.0.3", "10.88.0.4", "10.88.0.6", "10.88.0.7"} {
		ready := corev1.ConditionTrue
		if i == 4 {
			ready = corev1.ConditionFalse
		}
		pods = append(pods, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-" + ip, Labels: map[string]string{"app": "web"}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}}})
	}
	empty := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "idle"}}
	raw, _ := json.Marshal(map[string]any{"items": append(kube.EndpointSlices(svc, pods), kube.EndpointSlices(empty, pods)...)})
	for _, tt := range []struct {
		wide bool
		want string
	}{
		{false, "default     web    10.88.0.3:80,10.88.0.4:80,10.88.0.5:80 + 1 more...   1\n"},
		{true, "default     web    10.88.0.3:80,10.88.0.4:80,10.88.0.5:80,10.88.0.6:80   1\n"},
	} {
		var b bytes.Buffer
		if err := printTable(&b, "endpoints", raw, tt.wide, time.Now()); err != nil {
			t.Fatal(err)
		}
		if lines := strings.SplitAfter(b.String(), "\n"); len(lines) < 2 || lines[1] != tt.want {
			t.Errorf("get endpoints (wide %v):\n%s\nwant a line:\n%s", tt.wide, b.String(), tt.want)
		}
	}
}

func TestServiceLine(t *testing.T) {
	for _, tt := range []struct {
		s    api.ServiceStatus
		want string
	}{
		{api.ServiceStatus{Type: "ClusterIP", ClusterIP: "10.96.0.12", Ready: 3}, "10.96.0.12 -> 3 ready endpoints"},
		{api.ServiceStatus{Type: "ClusterIP", ClusterIP: "None", Ready: 1}, "headless -> 1 ready endpoint"},
		{api.ServiceStatus{Type: "NodePort", ClusterIP: "10.96.3.4", Ports: "80:30080/TCP"}, "10.96.3.4 (80:30080/TCP) -> 0 ready endpoints"},
	} {
		if got := serviceLine(tt.s); got != tt.want {
			t.Errorf("serviceLine(%+v) = %q, want %q", tt.s, got, tt.want)
		}
	}
}
