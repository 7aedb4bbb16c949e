package nodes

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	gocni "github.com/containerd/go-cni"
	corev1 "k8s.io/api/core/v1"

	"bosun/scheduler"
)

func TestDNSPolicyOf(t *testing.T) {
	tests := []struct {
		host   bool
		policy corev1.DNSPolicy
		want   corev1.DNSPolicy
	}{
		{false, corev1.DNSClusterFirst, corev1.DNSClusterFirst},
		{false, corev1.DNSDefault, corev1.DNSDefault},
		{false, corev1.DNSNone, corev1.DNSNone},
		{false, corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst},
		{true, corev1.DNSClusterFirst, corev1.DNSDefault},
		{true, "", corev1.DNSDefault},
		{true, corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst},
		{true, corev1.DNSDefault, corev1.DNSDefault},
		{true, corev1.DNSNone, corev1.DNSNone},
	}
	for _, tt := range tests {
		spec := &corev1.PodSpec{HostNetwork: tt.host, DNSPolicy: tt.policy}
		if got := dnsPolicyOf(spec); got != tt.want {
			t.Errorf("hostNetwork %v, dnsPolicy %q: %q, want %q", tt.host, tt.policy, got, tt.want)
		}
	}
}

func TestPortMappings(t *testing.T) {
	spec := &corev1.PodSpec{
		InitContainers: []corev1.Container{{Ports: []corev1.ContainerPort{{ContainerPort: 9000, HostPort: 19000}}}},
		Containers: []corev1.Container{{Ports: []corev1.ContainerPort{
			{ContainerPort: 8080},
			{ContainerPort: 8443, HostPort: 443, HostIP: "10.0.0.1", Protocol: corev1.ProtocolTCP},
			{ContainerPort: 53, HostPort: 53, Protocol: corev1.ProtocolUDP},
		}}},
	}
	want := []gocni.PortMapping{
		{HostPort: 19000, ContainerPort: 9000, Protocol: "tcp"},
		{HostPort: 443, ContainerPort: 8443, Protocol: "tcp", HostIP: "10.0.0.1"},
		{HostPort: 53, ContainerPort: 53, Protocol: "udp"},
	}
	if got := portMappings(spec); !reflect.DeepEqual(got, want) {
		t.Errorf("portMappings = %+v\nwant %+v", got, want)
	}
	spec.HostNetwork = true
	if got := portMappings(spec); got != nil {
		t.Errorf("a hostNetwork pod maps nothing: %+v", got)
	}
}

func TestHostNetworkHostsFile(t *testing.T) {
	got := hostNetworkHostsFile("127.0.0.1\tlocalhost\n10.0.0.5\tnode-1", []corev1.HostAlias{{IP: "10.1.2.3", Hostnames: []string{"db", "db.local"}}, {IP: "10.9.9.9"}})
	want := "# Kubernetes-managed hosts file (host network, bosun).\n127.0.0.1\tlocalhost\n10.0.0.5\tnode-1\n\n# Entries added by HostAliases.\n10.1.2.3\tdb\tdb.local\n"
	if got != want {
		t.Errorf("hosts =\n%s\nwant\n%s", got, want)
	}
}

func TestBridgeConfList_chainsPortmapOnlyWhenPresent(t *testing.T) {
	with, err := bridgeConfList("b0", "10.1.0.0/24", "/x", true)
	if err != nil {
		t.Fatal(err)
	}
	without, _ := bridgeConfList("b0", "10.1.0.0/24", "/x", false)
	if !strings.Contains(string(with), `"type": "portmap"`) || !strings.Contains(string(with), `"portMappings": true`) || strings.Contains(string(without), "portmap") {
		t.Errorf("with:\n%s\nwithout:\n%s", with, without)
	}
}

func TestHostPortTable(t *testing.T) {
	tab := newHostPortTable()
	tcp := func(ip string, port int32) scheduler.HostPort {
		return scheduler.HostPort{Protocol: corev1.ProtocolTCP, HostIP: ip, Port: port}
	}
	if err := tab.acquire("default/old", "u-old", []scheduler.HostPort{tcp("", 8080), tcp("10.0.0.1", 9090)}); err != nil {
		t.Fatal(err)
	}
	// The same run again (a retried setup) holds what it held.
	if err := tab.acquire("default/old", "u-old", []scheduler.HostPort{tcp("", 8080), tcp("10.0.0.1", 9090)}); err != nil {
		t.Fatalf("the same run again: %v", err)
	}
	err := tab.acquire("default/new", "u-new", []scheduler.HostPort{tcp("::", 7070), tcp("10.0.0.2", 8080)})
	want := "HostPort conflict: host port 8080/TCP (hostIP 10.0.0.2) is held by pod default/old (uid u-old) on this node; the pod starts once that one is gone"
	if err == nil || err.Error() != want || !errors.Is(err, errHostPortConflict) {
		t.Fatalf("acquire = %v\nwant %s", err, want)
	}
	if err := tab.acquire("default/other", "u-other", []scheduler.HostPort{tcp("10.0.0.2", 9090), {Protocol: corev1.ProtocolUDP, Port: 8080}}); err != nil {
		t.Errorf("another address, another protocol: %v", err)
	}
	tab.release("u-old")
	if err := tab.acquire("default/new", "u-new", []scheduler.HostPort{tcp("::", 7070), tcp("10.0.0.2", 8080)}); err != nil {
		t.Errorf("once the holder is gone: %v", err)
	}
	if conflict := tab.hold("default/adopted", "u-adopted", []scheduler.HostPort{tcp("0.0.0.0", 7070)}); !conflict {
		t.Error("an adopted run on a held port: no conflict reported")
	}
}
