package scheduler

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestSchedule_hostPorts(t *testing.T) {
	withPorts := func(p Pod, ports ...HostPort) Pod { p.HostPorts = ports; return p }
	boundTo := func(p Pod, n string) Pod { p.NodeName = n; return p }
	tcp := func(port int32) HostPort { return HostPort{Port: port} }
	on := func(ip string, port int32) HostPort { return HostPort{HostIP: ip, Port: port} }
	udp := func(port int32) HostPort { return HostPort{Protocol: corev1.ProtocolUDP, Port: port} }
	two := []Node{node("n1", 4000, 4*gi), node("n2", 1000, gi)}

	tests := []struct {
		name          string
		nodes         []Node
		pods          []Pod
		bindings      map[string]string
		unschedulable map[string]string
	}{
		{
			name:     "a bound pod's host port sends the next one elsewhere, even to a fuller node",
			nodes:    two,
			pods:     []Pod{boundTo(withPorts(pod("default/a", 0, 0), tcp(80)), "n1"), withPorts(pod("default/b", 0, 0), tcp(80))},
			bindings: map[string]string{"default/b": "n2"},
		},
		{
			name:  "pods placed in the same call count: a third on port 80 fits nowhere",
			nodes: two,
			pods: []Pod{
				withPorts(pod("default/a", 0, 0), tcp(80)),
				withPorts(pod("default/b", 0, 0), tcp(80)),
				withPorts(pod("default/c", 0, 0), tcp(80)),
			},
			bindings: map[string]string{"default/a": "n1", "default/b": "n2"},
			unschedulable: map[string]string{
				"default/c": "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports",
			},
		},
		{
			name:  "another protocol, another port, or another hostIP is free",
			nodes: []Node{node("n1", 1000, gi)},
			pods: []Pod{
				boundTo(withPorts(pod("default/a", 0, 0), tcp(53), on("10.0.0.1", 8080)), "n1"),
				withPorts(pod("default/b", 0, 0), udp(53)),
				withPorts(pod("default/c", 0, 0), tcp(54)),
				withPorts(pod("default/d", 0, 0), on("10.0.0.2", 8080)),
			},
			bindings: map[string]string{"default/b": "n1", "default/c": "n1", "default/d": "n1"},
		},
		{
			name:  "every address (hostIP unset or 0.0.0.0) conflicts with any one address, both ways",
			nodes: []Node{node("n1", 1000, gi)},
			pods: []Pod{
				boundTo(withPorts(pod("default/a", 0, 0), on("10.0.0.1", 8080), on("0.0.0.0", 9090)), "n1"),
				withPorts(pod("default/b", 0, 0), tcp(8080)),
				withPorts(pod("default/c", 0, 0), on("10.0.0.2", 9090)),
			},
			bindings: map[string]string{},
			unschedulable: map[string]string{
				"default/b": "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports",
				"default/c": "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports",
			},
		},
		{
			name:  "'::' is every address too, and two spellings of one address are one address",
			nodes: []Node{node("n1", 1000, gi)},
			pods: []Pod{
				boundTo(withPorts(pod("default/a", 0, 0), on("::", 8080), on("::ffff:10.0.0.1", 9090), on("fd00:0::1", 7070)), "n1"),
				withPorts(pod("default/b", 0, 0), on("10.0.0.3", 8080)),
				withPorts(pod("default/c", 0, 0), on("10.0.0.1", 9090)),
				withPorts(pod("default/d", 0, 0), on("fd00::1", 7070)),
				withPorts(pod("default/e", 0, 0), on("0:0:0:0:0:0:0:0", 6060)),
				withPorts(pod("default/f", 0, 0), on("10.0.0.1", 6060)),
			},
			bindings: map[string]string{"default/e": "n1"},
			unschedulable: map[string]string{
				"default/b": "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports",
				"default/c": "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports",
				"default/d": "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports",
				"default/f": "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports",
			},
		},
		{
			name:  "NodePorts comes before NodeResourcesFit, as in kube-scheduler",
			nodes: []Node{node("n1", 1000, gi), node("n2", 1000, gi)},
			pods: []Pod{
				boundTo(withPorts(pod("default/a", 0, 0), tcp(80)), "n1"),
				withPorts(pod("default/b", 2000, 0), tcp(80)),
			},
			bindings: map[string]string{},
			unschedulable: map[string]string{
				"default/b": "0/2 nodes are available: 1 insufficient cpu, 1 node(s) didn't have free ports for the requested pod ports",
			},
		},
		{
			name:  "a pod bound to a node that is gone takes no port anywhere",
			nodes: []Node{node("n1", 1000, gi)},
			pods: []Pod{
				boundTo(withPorts(pod("default/a", 0, 0), tcp(80)), "gone"),
				withPorts(pod("default/b", 0, 0), tcp(80)),
			},
			bindings: map[string]string{"default/b": "n1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Schedule(tt.nodes, tt.pods)
			if !reflect.DeepEqual(res.Bindings, tt.bindings) {
				t.Errorf("bindings = %v, want %v", res.Bindings, tt.bindings)
			}
			want := tt.unschedulable
			if want == nil {
				want = map[string]string{}
			}
			if !reflect.DeepEqual(res.Unschedulable, want) {
				t.Errorf("unschedulable = %v, want %v", res.Unschedulable, want)
			}
		})
	}
}

func TestHostPortsOf(t *testing.T) {
	spec := &corev1.PodSpec{
		InitContainers: []corev1.Container{{Ports: []corev1.ContainerPort{{ContainerPort: 9000, HostPort: 9000}}}},
		Containers: []corev1.Container{{Ports: []corev1.ContainerPort{
			{ContainerPort: 8080},
			{ContainerPort: 8443, HostPort: 443, HostIP: "10.0.0.1"},
			{ContainerPort: 53, HostPort: 53, Protocol: corev1.ProtocolUDP},
		}}},
	}
	want := []HostPort{
		{Protocol: "TCP", HostIP: "0.0.0.0", Port: 9000},
		{Protocol: "TCP", HostIP: "10.0.0.1", Port: 443},
		{Protocol: "UDP", HostIP: "0.0.0.0", Port: 53},
	}
	if got := HostPortsOf(spec); !reflect.DeepEqual(got, want) {
		t.Errorf("HostPortsOf = %v\nwant %v", got, want)
	}
	spec.HostNetwork = true
	want = append(want[:1], append([]HostPort{{Protocol: "TCP", HostIP: "0.0.0.0", Port: 8080}}, want[1:]...)...)
	if got := HostPortsOf(spec); !reflect.DeepEqual(got, want) {
		t.Errorf("hostNetwork: HostPortsOf = %v\nwant %v", got, want)
	}
}
