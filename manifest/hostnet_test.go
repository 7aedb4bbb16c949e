package manifest

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestPolicy_hostNetworkAndHostPort(t *testing.T) {
	allow := Policy{AllowHostNetwork: true}
	tests := []struct {
		name   string
		yaml   string
		pol    Policy
		want   string // "" for accepted
		policy string // the error without the flag, when it differs from want
	}{
		{
			name:   "hostNetwork without the flag names the flag and the line",
			yaml:   pod + "  hostNetwork: true\n",
			policy: "m.yaml:9: spec.hostNetwork: not allowed: the operator has not given --allow-host-network",
		},
		{
			name:   "hostPort without the flag",
			yaml:   pod + "    ports:\n    - containerPort: 8080\n      hostPort: 18080\n",
			policy: "m.yaml:11: spec.containers[0].ports[0].hostPort: not allowed: the operator has not given --allow-host-network",
		},
		{
			name:   "a Deployment's template on the host network without the flag",
			yaml:   deployment + "        ports:\n        - containerPort: 8080\n      hostNetwork: true\n",
			policy: "m.yaml:20: spec.template.spec.hostNetwork: not allowed: the operator has not given --allow-host-network",
		},
		{
			name: "hostNetwork: hostPort must equal containerPort",
			yaml: pod + "    ports:\n    - containerPort: 8080\n      hostPort: 9090\n  hostNetwork: true\n",
			want: "m.yaml:10: spec.containers[0].ports[0].containerPort: 8080 must match hostPort (9090) when hostNetwork is true",
		},
		{
			name: "two ports on one hostPort, protocol and hostIP",
			yaml: pod + "    ports:\n    - containerPort: 8080\n      hostPort: 80\n  - name: side\n    image: example/side:1.0\n    ports:\n    - containerPort: 9090\n      hostPort: 80\n",
			want: `m.yaml:16: spec.containers[1].ports[0].hostPort: duplicate value 80/TCP (hostIP ""): spec.containers[0].ports[0] takes it already`,
		},
		{
			name: "a hostIP that is not an address, and one without a hostPort",
			yaml: pod + "    ports:\n    - containerPort: 8080\n      hostPort: 80\n      hostIP: node-1\n    - containerPort: 9090\n      hostIP: 10.0.0.1\n",
			want: "m.yaml:12: spec.containers[0].ports[0].hostIP: \"node-1\" must be an IP address\n" +
				"m.yaml:14: spec.containers[0].ports[1].hostIP: has no effect without hostPort",
		},
		{
			name: "one hostPort for TCP and UDP, and for two hostIPs, is allowed",
			yaml: pod + "    ports:\n    - {containerPort: 53, hostPort: 53}\n    - {containerPort: 53, hostPort: 53, protocol: UDP}\n    - {containerPort: 54, hostPort: 54, hostIP: 127.0.0.1}\n    - {containerPort: 55, hostPort: 54, hostIP: 127.0.0.2}\n",
			policy: "m.yaml:10: spec.containers[0].ports[0].hostPort: not allowed: the operator has not given --allow-host-network\n" +
				"m.yaml:11: spec.containers[0].ports[1].hostPort: not allowed: the operator has not given --allow-host-network\n" +
				"m.yaml:12: spec.containers[0].ports[2].hostPort: not allowed: the operator has not given --allow-host-network\n" +
				"m.yaml:13: spec.containers[0].ports[3].hostPort: not allowed: the operator has not given --allow-host-network",
		},
		{
			name: "hostNetwork with a net.* sysctl is refused (it would set the node's); others are not",
			yaml: pod + "  hostNetwork: true\n  securityContext:\n    sysctls:\n    - {name: kernel.shmmax, value: '65536'}\n    - {name: net.ipv4.ip_forward, value: '0'}\n    - {name: net/core/somaxconn, value: '1024'}\n",
			want: `m.yaml:13: spec.securityContext.sysctls[1].name: sysctl "net.ipv4.ip_forward" may not be set when hostNetwork is true: the pod shares the node's network namespace` + "\n" +
				`m.yaml:14: spec.securityContext.sysctls[2].name: sysctl "net/core/somaxconn" may not be set when hostNetwork is true: the pod shares the node's network namespace`,
			policy: "m.yaml:9: spec.hostNetwork: not allowed: the operator has not given --allow-host-network",
		},
		{
			name:   "dnsPolicy ClusterFirstWithHostNet is accepted",
			yaml:   pod + "  hostNetwork: true\n  dnsPolicy: ClusterFirstWithHostNet\n",
			policy: "m.yaml:9: spec.hostNetwork: not allowed: the operator has not given --allow-host-network",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := allow.Decode("m.yaml", []byte(tt.yaml))
			if got := errString(err); got != tt.want {
				t.Errorf("with --allow-host-network: %s\nwant %s", got, tt.want)
			}
			want := tt.policy
			if want == "" {
				want = tt.want
			}
			_, err = Decode("m.yaml", []byte(tt.yaml))
			if got := errString(err); !strings.Contains(got, want) || want == "" && got != "" {
				t.Errorf("without the flag: %s\nwant %s", got, want)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestDefaults_hostNetworkPortsTakeTheContainerPort(t *testing.T) {
	doc := pod + "    ports:\n    - containerPort: 8080\n  hostNetwork: true\n"
	set, err := Policy{AllowHostNetwork: true}.Decode("m.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	got := set.Pods[0].Spec.Containers[0].Ports[0]
	if got.HostPort != 8080 || got.Protocol != corev1.ProtocolTCP {
		t.Errorf("port = %+v, want hostPort 8080/TCP", got)
	}
	if set.Pods[0].Spec.DNSPolicy != corev1.DNSClusterFirst {
		t.Errorf("dnsPolicy = %q: the manifest keeps Kubernetes' default; the node reads it as Default", set.Pods[0].Spec.DNSPolicy)
	}
}

func TestExamples_hostNetwork(t *testing.T) {
	if _, err := LoadDir("../examples/hostnetwork", ""); err == nil || !strings.Contains(err.Error(), "node-exporter.yaml:16: spec.template.spec.hostNetwork: not allowed: the operator has not given --allow-host-network") {
		t.Errorf("without the flag: %v", err)
	}
	set, err := Policy{AllowHostNetwork: true}.LoadDir("../examples/hostnetwork", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Deployments) != 1 || len(set.Pods) != 1 || len(set.Services) != 1 {
		t.Errorf("loaded %d deployments, %d pods, %d services", len(set.Deployments), len(set.Pods), len(set.Services))
	}
}
