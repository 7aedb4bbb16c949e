package nodes

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/scheduler"
)

func TestListenerPorts(t *testing.T) {
	tests := []struct {
		holder, addr string
		protocols    []corev1.Protocol
		want         string // formatted
	}{
		{HolderIngress, "0.0.0.0:80", nil, "TCP/0.0.0.0:80=ingress"},
		{HolderIngress, ":80", nil, "TCP/0.0.0.0:80=ingress"},
		{HolderAPI, "[::]:7070", nil, "TCP/0.0.0.0:7070=api"},
		{HolderAPI, "127.0.0.1:7070", nil, "TCP/127.0.0.1:7070=api"},
		{HolderAPI, "[fd00::1]:7070", nil, "TCP/[fd00::1]:7070=api"},
		{HolderAPI, "localhost:7070", nil, "TCP/0.0.0.0:7070=api"}, // a name: every address
		{HolderDNS, "127.0.0.1:5353", []corev1.Protocol{corev1.ProtocolUDP, corev1.ProtocolTCP}, "TCP/127.0.0.1:5353=dns,UDP/127.0.0.1:5353=dns"},
		{HolderIngress, "127.0.0.1:0", nil, ""}, // the system picks: unknown
		{HolderIngress, "", nil, ""},
		{HolderIngress, "0.0.0.0:http", nil, "TCP/0.0.0.0:80=ingress"},
	}
	for _, tt := range tests {
		got, err := ListenerPorts(tt.holder, tt.addr, tt.protocols...)
		if err != nil {
			t.Errorf("%s %q: %v", tt.holder, tt.addr, err)
			continue
		}
		if s := scheduler.FormatReservedPorts(got); s != tt.want {
			t.Errorf("%s %q = %q, want %q", tt.holder, tt.addr, s, tt.want)
		}
	}
	for _, bad := range []string{"80", "0.0.0.0:99999", "0.0.0.0:nosuchservice"} {
		if got, err := ListenerPorts(HolderAPI, bad); err == nil || !strings.Contains(err.Error(), "api listener") {
			t.Errorf("%q = %v, %v; want an error naming the api listener", bad, got, err)
		}
	}
}

func TestConfig_reservedPorts(t *testing.T) {
	c := Config{NodeName: "n1", StateDir: t.TempDir(), ReservedPorts: []scheduler.ReservedPort{
		{HostPort: scheduler.HostPort{Port: 80}, Holder: HolderIngress},
	}}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if got := c.ReservedPorts[0]; got.Protocol != corev1.ProtocolTCP || got.HostIP != "0.0.0.0" {
		t.Errorf("not normalized: %+v", got)
	}
	for _, bad := range []scheduler.ReservedPort{
		{HostPort: scheduler.HostPort{Port: 0}, Holder: HolderIngress},
		{HostPort: scheduler.HostPort{Port: 80, HostIP: "nowhere"}, Holder: HolderIngress},
		{HostPort: scheduler.HostPort{Port: 80, Protocol: "ICMP"}, Holder: HolderIngress},
	} {
		c := Config{NodeName: "n1", StateDir: t.TempDir(), ReservedPorts: []scheduler.ReservedPort{bad}}
		if err := c.setDefaults(); err == nil || !strings.HasPrefix(err.Error(), "reserved ports: ") {
			t.Errorf("%+v: %v, want a reserved ports error", bad, err)
		}
	}
}

// TestAgent_reservedPortsOnTheNode: the node object carries the configured
// listeners' ports and the pods' nameserver's once known; a restart with
// other flags publishes the new ones (the node object is written whole at
// every registration); none configured, no annotation.
func TestAgent_reservedPortsOnTheNode(t *testing.T) {
	agent := func(c Config) *Agent {
		c.NodeName, c.StateDir = "n1", t.TempDir()
		if err := c.setDefaults(); err != nil {
			t.Fatal(err)
		}
		return &Agent{cfg: c}
	}
	ingress, _ := ListenerPorts(HolderIngress, "0.0.0.0:80")
	a := agent(Config{ReservedPorts: ingress, PodDNS: true})
	if got := a.nodeObject("1.6.20").Annotations[scheduler.AnnotationReservedHostPorts]; got != "TCP/0.0.0.0:80=ingress" {
		t.Errorf("before the pod subnet is known: %q", got)
	}
	a.cfg.DNSServer = "10.88.1.1" // useSubnet
	want := "TCP/0.0.0.0:80=ingress,TCP/10.88.1.1:53=pod-dns,UDP/10.88.1.1:53=pod-dns"
	n := a.nodeObject("1.6.20")
	if got := n.Annotations[scheduler.AnnotationReservedHostPorts]; got != want {
		t.Errorf("annotation %q, want %q", got, want)
	}
	if ports, err := scheduler.ReservedPortsOf(n); err != nil || len(ports) != 3 {
		t.Errorf("the scheduler reads %v, %v", ports, err)
	}

	// Restarted with the ingress on 8080 and no DNS for the pods.
	moved, _ := ListenerPorts(HolderIngress, "0.0.0.0:8080")
	a = agent(Config{ReservedPorts: moved, DNSServer: "10.88.1.1"})
	if got := a.nodeObject("1.6.20").Annotations[scheduler.AnnotationReservedHostPorts]; got != "TCP/0.0.0.0:8080=ingress" {
		t.Errorf("after the restart: %q", got)
	}
	if got := agent(Config{}).nodeObject("1.6.20").Annotations; got != nil {
		t.Errorf("no reserved ports: annotations %v", got)
	}
}

func TestAgent_admitReservedPorts(t *testing.T) {
	ingress, _ := ListenerPorts(HolderIngress, "0.0.0.0:80")
	api, _ := ListenerPorts(HolderAPI, "127.0.0.1:7070")
	a := &Agent{cfg: Config{ReservedPorts: append(ingress, api...), PodDNS: true, DNSServer: "10.88.1.1"}}
	spec := func(ports ...corev1.ContainerPort) []scheduler.HostPort {
		return scheduler.HostPortsOf(&corev1.PodSpec{Containers: []corev1.Container{{Ports: ports}}})
	}
	tests := []struct {
		name  string
		ports []scheduler.HostPort
		want  string // "" admits
	}{
		{"the ingress's port on every address", spec(corev1.ContainerPort{ContainerPort: 8080, HostPort: 80}),
			"port 80/TCP is bosun's ingress listener (--ingress-listen) on this node (TCP/0.0.0.0:80): not given to pods (the pod asks host port 80/TCP on 0.0.0.0); choose another port"},
		{"the ingress's port on one address", spec(corev1.ContainerPort{ContainerPort: 8080, HostPort: 80, HostIP: "10.0.0.5"}), "bosun's ingress listener"},
		{"UDP 53, the pods' DNS", spec(corev1.ContainerPort{ContainerPort: 53, HostPort: 53, Protocol: corev1.ProtocolUDP}),
			"port 53/UDP is bosun's cluster DNS for this node's pods (their nameserver) on this node (UDP/10.88.1.1:53)"},
		{"the API's port, every address", spec(corev1.ContainerPort{ContainerPort: 1, HostPort: 7070}), "bosun's API (--api-listen)"},
		{"the API's port on another address", spec(corev1.ContainerPort{ContainerPort: 1, HostPort: 7070, HostIP: "10.0.0.5"}), ""},
		{"UDP 80", spec(corev1.ContainerPort{ContainerPort: 80, HostPort: 80, Protocol: corev1.ProtocolUDP}), ""},
		{"another port", spec(corev1.ContainerPort{ContainerPort: 80, HostPort: 8081}), ""},
	}
	for _, tt := range tests {
		e := a.admitReservedPorts(tt.ports)
		switch {
		case tt.want == "" && e != nil:
			t.Errorf("%s: refused: %v", tt.name, e)
		case tt.want != "" && (e == nil || !strings.Contains(e.Message, tt.want) || e.Reason != ReasonHostPortReserved):
			t.Errorf("%s: %v, want %s: %q", tt.name, e, ReasonHostPortReserved, tt.want)
		}
	}
}

// TestBuildStatus_rejected: a pod the node refused is Failed with the
// reason and message, scheduled, not ready, without container statuses
// or a pod IP; rebuilt later it is the same status (not written again).
func TestBuildStatus_rejected(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	in := statusInput{Pod: pod, Records: map[string]*containerRecord{}, HostIP: "10.0.0.1", PodIP: "10.88.1.5",
		StartTime: t0, Reason: ReasonHostPortReserved, Message: "Pod was rejected: port 80/TCP is bosun's ingress listener", Now: t0}
	st := buildStatus(in)
	if st.Phase != corev1.PodFailed || st.Reason != ReasonHostPortReserved || st.Message != in.Message {
		t.Errorf("phase %s, reason %q, message %q", st.Phase, st.Reason, st.Message)
	}
	if st.PodIP != "" || st.PodIPs != nil || st.StartTime != nil || st.ContainerStatuses != nil || st.HostIP != "10.0.0.1" {
		t.Errorf("status %+v", st)
	}
	want := map[corev1.PodConditionType]corev1.ConditionStatus{
		corev1.PodScheduled: corev1.ConditionTrue, corev1.ContainersReady: corev1.ConditionFalse, corev1.PodReady: corev1.ConditionFalse,
	}
	if len(st.Conditions) != len(want) {
		t.Errorf("conditions %+v", st.Conditions)
	}
	for _, c := range st.Conditions {
		if want[c.Type] != c.Status {
			t.Errorf("condition %s %s, want %s", c.Type, c.Status, want[c.Type])
		}
	}
	in.Prev, in.Now = &st, t0.Add(time.Minute)
	if again := buildStatus(in); !statusEqual(&again, &st) {
		t.Errorf("rebuilt a minute later: %+v\nwas %+v", again, st)
	}
}
