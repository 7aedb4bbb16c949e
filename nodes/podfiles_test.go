package nodes

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodDNS_policies(t *testing.T) {
	cluster := clusterDNS{Server: "10.88.0.1", Domain: "cluster.local"}
	host := parseResolvConf("# the node's\nnameserver 192.0.2.53\nnameserver 192.0.2.54 ; second\nsearch corp.example lab.example\noptions edns0 ndots:2\n")
	two := "2"
	for _, tc := range []struct {
		name string
		spec corev1.PodSpec
		want string
	}{
		{"ClusterFirst (the default)", corev1.PodSpec{},
			"nameserver 10.88.0.1\nsearch prod.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"},
		{"ClusterFirstWithHostNet is ClusterFirst", corev1.PodSpec{DNSPolicy: corev1.DNSClusterFirstWithHostNet},
			"nameserver 10.88.0.1\nsearch prod.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"},
		{"ClusterFirst with dnsConfig merged", corev1.PodSpec{DNSConfig: &corev1.PodDNSConfig{
			Nameservers: []string{"10.88.0.1", "1.1.1.1"}, Searches: []string{"corp.example"},
			Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &two}, {Name: "single-request"}}}},
			"nameserver 10.88.0.1\nnameserver 1.1.1.1\nsearch prod.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:2 single-request\n"},
		{"Default is the node's", corev1.PodSpec{DNSPolicy: corev1.DNSDefault},
			"nameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example lab.example\noptions edns0 ndots:2\n"},
		{"None takes dnsConfig only", corev1.PodSpec{DNSPolicy: corev1.DNSNone, DNSConfig: &corev1.PodDNSConfig{
			Nameservers: []string{"9.9.9.9", "8.8.8.8", "1.1.1.1", "1.0.0.1"}, Searches: []string{"a.example"}}},
			"nameserver 9.9.9.9\nnameserver 8.8.8.8\nnameserver 1.1.1.1\nsearch a.example\n"},
	} {
		if got := podDNS(&tc.spec, "prod", cluster, host).resolvConf(); got != tc.want {
			t.Errorf("%s:\n%s\nwant\n%s", tc.name, got, tc.want)
		}
	}
}

func TestHostsFile_podAndAliases(t *testing.T) {
	got := hostsFile("web", "", "10.88.0.5", []corev1.HostAlias{{IP: "127.0.0.1", Hostnames: []string{"foo.local", "bar.local"}}, {IP: "10.1.2.3", Hostnames: []string{"db"}}})
	for _, want := range []string{"127.0.0.1\tlocalhost\n", "10.88.0.5\tweb\n", "\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tdb\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("hosts lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(hostsFile("web", "", "10.88.0.5", nil), "HostAliases") {
		t.Error("alias header without aliases")
	}
}

// TestHostsFile_subdomain: with spec.subdomain, the pod's line carries its
// fully qualified name first, as kubelet writes it.
func TestHostsFile_subdomain(t *testing.T) {
	spec := &corev1.PodSpec{Hostname: "db-0", Subdomain: "db"}
	domain := podHostDomain(spec, "prod", "cluster.local")
	if domain != "db.prod.svc.cluster.local" {
		t.Fatalf("domain %q", domain)
	}
	if got := hostsFile("db-0", domain, "10.88.0.5", nil); !strings.Contains(got, "\n10.88.0.5\tdb-0.db.prod.svc.cluster.local\tdb-0\n") {
		t.Errorf("hosts lacks the fully qualified name:\n%s", got)
	}
	if got := podHostDomain(&corev1.PodSpec{Hostname: "db-0"}, "prod", "cluster.local"); got != "" {
		t.Errorf("no subdomain: domain %q", got)
	}
}

func TestPodHostname(t *testing.T) {
	long := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("b", 70)}}
	if got := podHostname(long); len(got) != 63 {
		t.Errorf("hostname length %d", len(got))
	}
	named := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1"}, Spec: corev1.PodSpec{Hostname: "front"}}
	if got := podHostname(named); got != "front" {
		t.Errorf("spec.hostname ignored: %q", got)
	}
}
