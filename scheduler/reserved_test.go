package scheduler

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	noFreePorts1 = "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports"
	unreadable1  = "0/1 nodes are available: 1 node(s) had an unreadable bosun.dev/reserved-host-ports annotation"
)

func TestSchedule_reservedPorts(t *testing.T) {
	withPorts := func(p Pod, ports ...HostPort) Pod { p.HostPorts = ports; return p }
	reserving := func(n Node, ports ...HostPort) Node { n.ReservedPorts = ports; return n }
	tcp := func(ip string, port int32) HostPort {
		return HostPort{Protocol: corev1.ProtocolTCP, HostIP: ip, Port: port}
	}
	udp := func(ip string, port int32) HostPort {
		return HostPort{Protocol: corev1.ProtocolUDP, HostIP: ip, Port: port}
	}
	unknown := func(name string) Node {
		n := node(name, 1000, gi)
		n.ReservedPortsErr = errors.New("node " + name + ": bosun.dev/reserved-host-ports: entry 1: garbage")
		return n
	}
	// What a server's node reserves: its ingress on every address, the
	// pods' DNS on the bridge's address, the API on loopback.
	server := reserving(node("n1", 1000, gi), tcp("0.0.0.0", 80), udp("10.88.1.1", 53), tcp("10.88.1.1", 53), tcp("127.0.0.1", 7070))

	tests := []struct {
		name          string
		nodes         []Node
		pods          []Pod
		bindings      map[string]string
		unschedulable map[string]string
	}{
		{
			name:          "a pod asking the ingress's port stays pending, for kube-scheduler's reason",
			nodes:         []Node{server},
			pods:          []Pod{withPorts(pod("default/a", 0, 0), tcp("", 80))},
			bindings:      map[string]string{},
			unschedulable: map[string]string{"default/a": noFreePorts1},
		},
		{
			name:  "a wildcard reservation takes the port on every address",
			nodes: []Node{server},
			pods: []Pod{
				withPorts(pod("default/a", 0, 0), tcp("10.0.0.5", 80)),
				withPorts(pod("default/b", 0, 0), tcp("::1", 80)),
			},
			bindings:      map[string]string{},
			unschedulable: map[string]string{"default/a": noFreePorts1, "default/b": noFreePorts1},
		},
		{
			name:  "a specific reservation takes its address, and every-address asks, not another address",
			nodes: []Node{server},
			pods: []Pod{
				withPorts(pod("default/loop", 0, 0), tcp("127.0.0.1", 7070)),
				withPorts(pod("default/any", 0, 0), tcp("0.0.0.0", 7070)),
				withPorts(pod("default/unset", 0, 0), tcp("", 7070)),
				withPorts(pod("default/other", 0, 0), tcp("10.0.0.5", 7070)),
			},
			bindings: map[string]string{"default/other": "n1"},
			unschedulable: map[string]string{
				"default/loop": noFreePorts1, "default/any": noFreePorts1, "default/unset": noFreePorts1,
			},
		},
		{
			name:  "UDP and TCP are apart: the DNS's 53 both ways is taken, UDP 80 and TCP 7071 are free",
			nodes: []Node{server},
			pods: []Pod{
				withPorts(pod("default/dns-udp", 0, 0), udp("", 53)),
				withPorts(pod("default/dns-tcp", 0, 0), tcp("10.88.1.1", 53)),
				withPorts(pod("default/udp80", 0, 0), udp("", 80)),
				withPorts(pod("default/tcp7071", 0, 0), tcp("", 7071)),
			},
			bindings:      map[string]string{"default/udp80": "n1", "default/tcp7071": "n1"},
			unschedulable: map[string]string{"default/dns-udp": noFreePorts1, "default/dns-tcp": noFreePorts1},
		},
		{
			name:  "another node without the listener takes the pod",
			nodes: []Node{server, node("n2", 1000, gi)},
			pods: []Pod{
				withPorts(pod("default/a", 0, 0), tcp("", 80)),
				withPorts(pod("default/b", 0, 0), tcp("", 80)),
			},
			bindings: map[string]string{"default/a": "n2"},
			unschedulable: map[string]string{
				"default/b": "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports",
			},
		},
		{
			name:  "a daemon pod pinned to the node waits too",
			nodes: []Node{server, node("n2", 1000, gi)},
			pods: []Pod{func() Pod {
				p := withPorts(pod("default/ds-n1", 0, 0), tcp("", 80))
				p.Daemon = true
				p.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
					NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{
						{Key: metav1.ObjectNameField, Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}},
					}}},
				}}}
				return p
			}()},
			bindings: map[string]string{},
			unschedulable: map[string]string{
				"default/ds-n1": "0/2 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, 1 node(s) didn't match Pod's node affinity/selector",
			},
		},
		{
			name:     "pods without host ports are not concerned",
			nodes:    []Node{server},
			pods:     []Pod{pod("default/a", 0, 0)},
			bindings: map[string]string{"default/a": "n1"},
		},
		{
			name:  "a node whose reservations are unknown takes no pod with a host port, others still, and says why",
			nodes: []Node{unknown("n1")},
			pods: []Pod{
				withPorts(pod("default/a", 0, 0), tcp("", 31000)),
				pod("default/b", 0, 0),
			},
			bindings:      map[string]string{"default/b": "n1"},
			unschedulable: map[string]string{"default/a": unreadable1},
		},
		{
			name:     "each node says its own reason",
			nodes:    []Node{server, unknown("n2")},
			pods:     []Pod{withPorts(pod("default/a", 0, 0), tcp("", 80))},
			bindings: map[string]string{},
			unschedulable: map[string]string{"default/a": "0/2 nodes are available: " +
				"1 node(s) didn't have free ports for the requested pod ports, 1 node(s) had an unreadable bosun.dev/reserved-host-ports annotation"},
		},
		{
			name: "ports built by hand, not normalized, are compared as normalized",
			nodes: []Node{
				reserving(node("n1", 1000, gi), HostPort{Port: 80}), // TCP, every address
				reserving(node("n2", 1000, gi), HostPort{HostIP: "::ffff:10.0.0.7", Port: 81}),
			},
			pods: []Pod{
				withPorts(pod("default/mapped", 0, 0), HostPort{Protocol: corev1.ProtocolTCP, HostIP: "::ffff:10.0.0.5", Port: 80}),
				withPorts(pod("default/any", 0, 0), HostPort{HostIP: "::", Port: 81}),
				withPorts(pod("default/both", 0, 0), HostPort{Port: 80}, HostPort{Port: 81}),
			},
			bindings: map[string]string{"default/mapped": "n2", "default/any": "n1"},
			unschedulable: map[string]string{
				"default/both": "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports",
			},
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
	// The node's list is not changed by the pods placed on it.
	if len(server.ReservedPorts) != 4 {
		t.Errorf("the node's reserved ports were changed: %v", server.ReservedPorts)
	}
}

func TestReservedPorts_formatAndParse(t *testing.T) {
	ports := []ReservedPort{
		{HostPort{Protocol: "TCP", HostIP: "0.0.0.0", Port: 80}, "ingress"},
		{HostPort{HostIP: "", Port: 443}, "ingress-tls"}, // defaults: TCP, every address
		{HostPort{Protocol: "UDP", HostIP: "10.88.1.1", Port: 53}, "dns"},
		{HostPort{Protocol: "TCP", HostIP: "10.88.1.1", Port: 53}, "dns"},
		{HostPort{Protocol: "TCP", HostIP: "::", Port: 2379}, "etcd"},         // every address too
		{HostPort{Protocol: "TCP", HostIP: "fd00:0::1", Port: 7070}, "api"},   // one spelling
		{HostPort{Protocol: "TCP", HostIP: "::ffff:127.0.0.1", Port: 9}, "x"}, // IPv4-mapped: IPv4
		{HostPort{Protocol: "UDP", HostIP: "10.88.1.1", Port: 53}, "dns"},     // twice: once
		{HostPort{Protocol: "SCTP", HostIP: "10.0.0.1", Port: 9999}, ""},      // no holder
	}
	got := FormatReservedPorts(ports)
	want := "SCTP/10.0.0.1:9999,TCP/0.0.0.0:2379=etcd,TCP/0.0.0.0:443=ingress-tls,TCP/0.0.0.0:80=ingress," +
		"TCP/10.88.1.1:53=dns,TCP/127.0.0.1:9=x,TCP/[fd00::1]:7070=api,UDP/10.88.1.1:53=dns"
	if got != want {
		t.Fatalf("FormatReservedPorts =\n%s\nwant\n%s", got, want)
	}
	back, err := ParseReservedPorts(got)
	if err != nil {
		t.Fatal(err)
	}
	if again := FormatReservedPorts(back); again != got {
		t.Errorf("round trip: %s\nwant %s", again, got)
	}
	if back[5] != (ReservedPort{HostPort{Protocol: "TCP", HostIP: "127.0.0.1", Port: 9}, "x"}) {
		t.Errorf("parsed %+v", back[5])
	}
	if got, err := ParseReservedPorts(""); got != nil || err != nil {
		t.Errorf(`"" = %v, %v; want none`, got, err)
	}
	if got := FormatReservedPorts(nil); got != "" {
		t.Errorf("no ports = %q", got)
	}
}

func TestParseReservedPorts_refusesGarbage(t *testing.T) {
	long := strings.Repeat("x", 5000)
	tests := map[string]string{
		"TCP/0.0.0.0:80,":                `entry 2: "": want PROTOCOL/ADDRESS:PORT[=HOLDER]`,
		"0.0.0.0:80":                     `entry 1: "0.0.0.0:80": want PROTOCOL/ADDRESS:PORT[=HOLDER], like TCP/0.0.0.0:80=ingress`,
		"tcp/0.0.0.0:80":                 `protocol "tcp": want TCP, UDP or SCTP`,
		"ICMP/0.0.0.0:80":                `protocol "ICMP": want TCP, UDP or SCTP`,
		"TCP/0.0.0.0":                    `"0.0.0.0": want ADDRESS:PORT`,
		"TCP/localhost:80":               `"localhost:80": want ADDRESS:PORT`,
		"TCP/::1:80":                     `"::1:80": want ADDRESS:PORT, an IP address ([brackets] around IPv6)`,
		"TCP/0.0.0.0:65536":              `want ADDRESS:PORT`,
		"TCP/0.0.0.0:0":                  `port 0: want 1 to 65535`,
		"TCP/0.0.0.0:-1":                 `want ADDRESS:PORT`,
		"TCP/[fe80::1%eth0]:80":          `address "fe80::1%eth0": no zone allowed`,
		"TCP/0.0.0.0:80=":                `holder "": want 1 to 63 of a-z, 0-9 and -`,
		"TCP/0.0.0.0:80=Ingress":         `holder "Ingress"`,
		"TCP/0.0.0.0:80=a=b":             `holder "a=b"`,
		"TCP/0.0.0.0:80 ,UDP/1.2.3.4:53": `entry 1: "TCP/0.0.0.0:80 ": "0.0.0.0:80 ": want ADDRESS:PORT`,
		"TCP/" + long:                    `entry 1: "TCP/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"...`,
	}
	for in, want := range tests {
		got, err := ParseReservedPorts(in)
		if err == nil {
			t.Errorf("%.40q: parsed %v, want an error", in, got)
			continue
		}
		if !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), AnnotationReservedHostPorts+": ") {
			t.Errorf("%.40q: error %q, want it to contain %q", in, err, want)
		}
		if len(err.Error()) > 400 {
			t.Errorf("%.40q: error of %d bytes", in, len(err.Error()))
		}
	}
}

// TestParseReservedPorts_limits: at most MaxReservedPorts entries in
// MaxReservedPortsBytes; past them the value is refused whole (that node
// is unreadable), quickly and with a short error.
func TestParseReservedPorts_limits(t *testing.T) {
	entries := func(n int) string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("TCP/10.0.0.1:%d=x", 1000+i)
		}
		return strings.Join(out, ",")
	}
	if got, err := ParseReservedPorts(entries(MaxReservedPorts)); err != nil || len(got) != MaxReservedPorts {
		t.Errorf("%d entries: %d, %v", MaxReservedPorts, len(got), err)
	}
	for in, want := range map[string]string{
		entries(MaxReservedPorts + 1):                 "bosun.dev/reserved-host-ports: 257 entries: at most 256",
		strings.Repeat(",", 1<<20):                    "bosun.dev/reserved-host-ports: 1048576 bytes: at most 8192",
		"TCP/0.0.0.0:80=" + strings.Repeat("a", 8200): "bosun.dev/reserved-host-ports: 8215 bytes: at most 8192",
	} {
		if got, err := ParseReservedPorts(in); err == nil || err.Error() != want {
			t.Errorf("%.40q...: %d ports, %v; want %q", in, len(got), err, want)
		}
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Annotations: map[string]string{
		AnnotationReservedHostPorts: entries(MaxReservedPorts + 1),
	}}}
	if got := NodeOf(n); got.ReservedPortsErr == nil || got.ReservedPorts != nil {
		t.Errorf("NodeOf of an oversized value: %v, %v", got.ReservedPorts, got.ReservedPortsErr)
	}
}

func TestCheckReservedPort(t *testing.T) {
	got, err := CheckReservedPort(ReservedPort{HostPort{HostIP: "", Port: 80}, "ingress"})
	if err != nil || got != (ReservedPort{HostPort{Protocol: "TCP", HostIP: "0.0.0.0", Port: 80}, "ingress"}) {
		t.Errorf("CheckReservedPort = %+v, %v", got, err)
	}
	for _, bad := range []ReservedPort{
		{HostPort{HostIP: "localhost", Port: 80}, "api"},
		{HostPort{HostIP: "", Port: 0}, "api"},
		{HostPort{HostIP: "", Port: 70000}, "api"},
		{HostPort{Protocol: "ICMP", Port: 1}, "api"},
		{HostPort{Port: 1}, "API"},
	} {
		if _, err := CheckReservedPort(bad); err == nil {
			t.Errorf("CheckReservedPort(%+v): no error", bad)
		}
	}
}

func TestNodeOf_reservedPorts(t *testing.T) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Annotations: map[string]string{
		AnnotationReservedHostPorts: "TCP/0.0.0.0:80=ingress,UDP/10.88.1.1:53=dns",
	}}}
	got := NodeOf(n)
	want := []HostPort{{Protocol: "TCP", HostIP: "0.0.0.0", Port: 80}, {Protocol: "UDP", HostIP: "10.88.1.1", Port: 53}}
	if !reflect.DeepEqual(got.ReservedPorts, want) || got.ReservedPortsErr != nil {
		t.Errorf("NodeOf: reserved %v (%v), want %v", got.ReservedPorts, got.ReservedPortsErr, want)
	}
	n.Annotations[AnnotationReservedHostPorts] = "TCP/0.0.0.0:80=ingress,garbage"
	got = NodeOf(n)
	if got.ReservedPorts != nil || got.ReservedPortsErr == nil ||
		!strings.Contains(got.ReservedPortsErr.Error(), `node n1: bosun.dev/reserved-host-ports: entry 2: "garbage"`) {
		t.Errorf("NodeOf of garbage: reserved %v, error %v; want none known, the error", got.ReservedPorts, got.ReservedPortsErr)
	}
	if _, err := ReservedPortsOf(n); err == nil || !strings.Contains(err.Error(), `node n1: bosun.dev/reserved-host-ports: entry 2: "garbage"`) {
		t.Errorf("ReservedPortsOf: %v", err)
	}
	delete(n.Annotations, AnnotationReservedHostPorts)
	if got := NodeOf(n); got.ReservedPorts != nil || got.ReservedPortsErr != nil {
		t.Errorf("NodeOf without the annotation: %+v", got)
	}
}

// FuzzParseReservedPorts: any value is parsed or refused, never a panic,
// and what parses formats to a value that parses to the same ports.
func FuzzParseReservedPorts(f *testing.F) {
	for _, s := range []string{"", "TCP/0.0.0.0:80=ingress", "UDP/[fd00::1]:53=dns,TCP/127.0.0.1:7070", "TCP/[::ffff:1.2.3.4]:1", "x/y:z=w", ",,", "SCTP/[fe80::1%a]:9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ports, err := ParseReservedPorts(s)
		if err != nil {
			return
		}
		out := FormatReservedPorts(ports)
		again, err := ParseReservedPorts(out)
		if err != nil {
			t.Fatalf("%q -> %q: %v", s, out, err)
		}
		if FormatReservedPorts(again) != out {
			t.Fatalf("%q -> %q -> %q", s, out, FormatReservedPorts(again))
		}
	})
}
