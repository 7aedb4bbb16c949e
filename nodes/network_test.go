package nodes

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodCIDRCheck(t *testing.T) {
	node := func(name, host string, cidrs ...string) corev1.Node {
		n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if len(cidrs) > 0 {
			n.Spec.PodCIDR, n.Spec.PodCIDRs = cidrs[0], cidrs
		}
		if host != "" {
			n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.7"}, {Type: corev1.NodeHostName, Address: host}}
		}
		return n
	}
	for name, tc := range map[string]struct {
		cidr          string
		nodes         []corev1.Node
		refuse, warns string // "" for neither
	}{
		"alone":              {"10.88.0.0/16", nil, "", ""},
		"itself, restarted":  {"10.88.0.0/16", []corev1.Node{node("me", "m1", "10.88.0.0/16")}, "", ""},
		"disjoint":           {"10.88.0.0/16", []corev1.Node{node("b", "m1", "10.89.0.0/16"), node("c", "m1", "10.90.1.0/24")}, "", ""},
		"adjacent /24s":      {"10.90.2.0/24", []corev1.Node{node("b", "m1", "10.90.1.0/24"), node("c", "m1", "10.90.3.0/24")}, "", ""},
		"no CIDR registered": {"10.88.0.0/16", []corev1.Node{node("b", "m1")}, "", ""},
		"same, same machine": {"10.88.0.0/16", []corev1.Node{node("b", "m1", "10.88.0.0/16")},
			"pod CIDR 10.88.0.0/16 overlaps node b's 10.88.0.0/16, on this machine: pods of both would get the same addresses", ""},
		"inside another's, same machine":  {"10.88.3.0/24", []corev1.Node{node("b", "m1", "10.89.0.0/16"), node("c", "m1", "10.88.0.0/16")}, "overlaps node c's 10.88.0.0/16, on this machine", ""},
		"containing another's":            {"10.0.0.0/8", []corev1.Node{node("b", "m1", "10.88.3.0/24")}, "overlaps node b's 10.88.3.0/24, on this machine", ""},
		"a node's second CIDR":            {"10.91.0.0/16", []corev1.Node{node("b", "m1", "10.90.0.0/16", "10.91.0.0/16")}, "overlaps node b's 10.91.0.0/16", ""},
		"same, other machine":             {"10.88.0.0/16", []corev1.Node{node("b", "m2", "10.88.0.0/16")}, "", "pod CIDR 10.88.0.0/16 overlaps node b's 10.88.0.0/16: pods of both get the same addresses"},
		"same, machine unknown":           {"10.88.0.0/16", []corev1.Node{node("b", "", "10.88.0.0/16")}, "", "overlaps node b's"},
		"other machine, then this one":    {"10.88.0.0/16", []corev1.Node{node("b", "m2", "10.88.0.0/16"), node("c", "m1", "10.88.0.0/16")}, "overlaps node c's", ""},
		"bad CIDR":                        {"10.88.0.0", nil, `pod CIDR "10.88.0.0"`, ""},
		"a node's unparsable CIDR is not": {"10.88.0.0/16", []corev1.Node{node("b", "m1", "junk")}, "", ""},
	} {
		refuse, warn := podCIDRCheck("me", "m1", tc.cidr, tc.nodes)
		if tc.refuse == "" && refuse != nil || tc.refuse != "" && (refuse == nil || !strings.Contains(refuse.Error(), tc.refuse)) {
			t.Errorf("%s: refuse = %v, want %q", name, refuse, tc.refuse)
		}
		if tc.warns == "" && warn != "" || !strings.Contains(warn, tc.warns) {
			t.Errorf("%s: warn = %q, want %q", name, warn, tc.warns)
		}
	}
}
