package manifest

import (
	"strings"
	"testing"
)

// TestValidateService_addresses pins the checks of a Service's addresses,
// type, affinity and traffic policies that need no configuration (the
// ranges of --service-cidr and --node-port-range are checked at
// allocation, ipalloc).
func TestValidateService_addresses(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // empty: valid
	}{
		{name: "an explicit IPv4 clusterIP", yaml: service + "  clusterIP: 10.96.0.20\n"},
		{name: "clusterIPs alone", yaml: service + "  clusterIPs: [10.96.0.20]\n"},
		{name: "headless", yaml: service + "  clusterIP: None\n"},
		{name: "NodePort with and without a nodePort", yaml: service + "  - name: admin\n    port: 81\n    nodePort: 30081\n" +
			"  type: NodePort\n  externalTrafficPolicy: Cluster\n  internalTrafficPolicy: Cluster\n"},
		{name: "ClientIP affinity", yaml: service + "  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n    clientIP:\n      timeoutSeconds: 60\n"},
		{
			name: "a clusterIP that is not an IPv4 address",
			yaml: service + "  clusterIP: fd00::1\n---\n" + strings.Replace(service, "name: web", "name: api", 1) + "  clusterIP: 10.96.0.300\n",
			want: []string{
				`m.yaml:12: spec.clusterIP: invalid value "fd00::1": must be an IPv4 address from the service CIDR, None (headless), or left out (bosun gives one)`,
				`m.yaml:25: spec.clusterIP: invalid value "10.96.0.300": must be an IPv4 address from the service CIDR, None (headless), or left out (bosun gives one)`,
			},
		},
		{
			name: "clusterIPs that disagree with clusterIP or are dual-stack",
			yaml: service + "  clusterIP: 10.96.0.20\n  clusterIPs: [10.96.0.21]\n---\n" +
				strings.Replace(service, "name: web", "name: api", 1) + "  clusterIPs: [10.96.0.20, fd00::1]\n",
			want: []string{
				`m.yaml:13: spec.clusterIPs[0]: must be the same as spec.clusterIP ("10.96.0.20")`,
				"m.yaml:26: spec.clusterIPs: at most one address: bosun serves IPv4 single-stack Services",
			},
		},
		{name: "SCTP on a headless Service", yaml: service + "    protocol: SCTP\n  clusterIP: None\n"},
		{
			name: "SCTP on a Service with a virtual IP",
			yaml: service + "    protocol: SCTP\n",
			want: []string{`m.yaml:12: spec.ports[0].protocol: unsupported value "SCTP": bosun's Service proxy programs TCP and UDP; an SCTP port needs a headless Service (clusterIP: None), whose DNS names the pods`},
		},
		{
			name: "LoadBalancer is refused with what to do instead",
			yaml: service + "  type: LoadBalancer\n",
			want: []string{`m.yaml:12: spec.type: unsupported value "LoadBalancer": bosun has no load balancer provider; use type NodePort and point your load balancer at the nodes' ports`},
		},
		{
			name: "a headless NodePort",
			yaml: service + "  type: NodePort\n  clusterIP: None\n",
			want: []string{"m.yaml:13: spec.clusterIP: must not be None when type is NodePort: a node port forwards to the Service's virtual IP"},
		},
		{
			name: "a nodePort on a ClusterIP Service, and one out of any range",
			yaml: service + "    nodePort: 30080\n---\n" + strings.Replace(service, "name: web", "name: api", 1) + "    nodePort: 70000\n  type: NodePort\n",
			want: []string{
				"m.yaml:12: spec.ports[0].nodePort: may only be set when type is NodePort",
				"m.yaml:25: spec.ports[0].nodePort: 70000 is out of range (1-65535)",
			},
		},
		{
			name: "traffic policies other than Cluster",
			yaml: service + "  type: NodePort\n  externalTrafficPolicy: Local\n  internalTrafficPolicy: Local\n---\n" +
				strings.Replace(service, "name: web", "name: api", 1) + "  externalTrafficPolicy: Cluster\n",
			want: []string{
				`m.yaml:13: spec.externalTrafficPolicy: unsupported value "Local": bosun's node ports forward to the endpoints on every node (Cluster); it does not keep the client's address by serving only a node's own endpoints`,
				`m.yaml:14: spec.internalTrafficPolicy: unsupported value "Local": bosun sends a Service's traffic to its endpoints on every node (Cluster)`,
				"m.yaml:27: spec.externalTrafficPolicy: may only be set when type is NodePort",
			},
		},
		{
			name: "session affinity timeouts and configs without ClientIP",
			yaml: service + "  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n    clientIP:\n      timeoutSeconds: 86401\n---\n" +
				strings.Replace(service, "name: web", "name: api", 1) + "  sessionAffinityConfig:\n    clientIP:\n      timeoutSeconds: 5\n---\n" +
				strings.Replace(service, "name: web", "name: db", 1) + "  sessionAffinity: Sticky\n",
			want: []string{
				"m.yaml:15: spec.sessionAffinityConfig.clientIP.timeoutSeconds: 86401 is out of range: must be 1 to 86400 (a day)",
				"m.yaml:28: spec.sessionAffinityConfig: must not be set when sessionAffinity is None",
				`m.yaml:43: spec.sessionAffinity: unsupported value "Sticky": must be None or ClientIP`,
			},
		},
		{
			name: "ClientIP on a headless Service",
			yaml: service + "  clusterIP: None\n  sessionAffinity: ClientIP\n",
			want: []string{"m.yaml:13: spec.sessionAffinity: ClientIP needs a virtual IP: a headless Service has none"},
		},
		{
			name: "load balancer fields are refused with what to do instead",
			yaml: service + "  loadBalancerIP: 1.2.3.4\n  healthCheckNodePort: 31000\n",
			want: []string{
				"m.yaml:12: spec.loadBalancerIP: not supported by bosun: bosun has no load balancer provider: use type NodePort",
				"m.yaml:13: spec.healthCheckNodePort: not supported by bosun: it goes with externalTrafficPolicy Local, which bosun does not carry out",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode("m.yaml", []byte(tt.yaml))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Decode succeeded, want:\n%s", strings.Join(tt.want, "\n"))
			}
			if got := err.Error(); got != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n got: %s\nwant: %s", strings.ReplaceAll(got, "\n", "\n      "), strings.Join(tt.want, "\n      "))
			}
		})
	}
}

func TestDefaultService_affinityTimeoutAndClusterIPs(t *testing.T) {
	set, err := Decode("m.yaml", []byte(service+"  sessionAffinity: ClientIP\n  clusterIPs: [10.96.0.9]\n"))
	if err != nil {
		t.Fatal(err)
	}
	svc := set.Services[0]
	if c := svc.Spec.SessionAffinityConfig; c == nil || c.ClientIP == nil || c.ClientIP.TimeoutSeconds == nil || *c.ClientIP.TimeoutSeconds != DefaultClientIPTimeoutSeconds {
		t.Errorf("sessionAffinityConfig = %+v, want clientIP.timeoutSeconds %d", c, DefaultClientIPTimeoutSeconds)
	}
	if svc.Spec.ClusterIP != "10.96.0.9" {
		t.Errorf("clusterIP = %q, want the address of clusterIPs", svc.Spec.ClusterIP)
	}
}

// TestWeightAnnotation: bosun.dev/weight is a pod's (and a pod
// template's) non-negative integer, and nothing else's.
func TestWeightAnnotation(t *testing.T) {
	withAnn := func(doc, after, value string) string {
		return strings.Replace(doc, after, after+"  annotations:\n    bosun.dev/weight: \""+value+"\"\n", 1)
	}
	tmpl := func(value string) string {
		return strings.Replace(deployment, "      labels:\n        app: web\n", "      labels:\n        app: web\n      annotations:\n        bosun.dev/weight: \""+value+"\"\n", 1)
	}
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{name: "on a pod", yaml: withAnn(pod, "  name: p\n", "90")},
		{name: "zero on a pod template", yaml: tmpl("0")},
		{name: "negative", yaml: withAnn(pod, "  name: p\n", "-1"),
			want: []string{`m.yaml:6: metadata.annotations[bosun.dev/weight]: invalid value "-1": must be a non-negative integer (the pod's endpoint group's relative share of its Services' new connections)`}},
		{name: "not a number in a template", yaml: tmpl("10%"),
			want: []string{`m.yaml:15: spec.template.metadata.annotations[bosun.dev/weight]: invalid value "10%": must be a non-negative integer (the pod's endpoint group's relative share of its Services' new connections)`}},
		{name: "on a Service", yaml: withAnn(service, "  name: web\n", "1"),
			want: []string{"m.yaml:6: metadata.annotations[bosun.dev/weight]: only pods and pod templates may set it: it weighs a pod's endpoints in its Services"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode("m.yaml", []byte(tt.yaml))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n got: %s\nwant: %s", got, strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestSetWhere: the lines of a Service's clusterIP and node ports are
// kept for the checks made after loading; a field that is not written
// falls back to its nearest written parent.
func TestSetWhere(t *testing.T) {
	yaml := "# comment\n" + service + "  - name: admin\n    port: 81\n    nodePort: 30081\n  clusterIP: 10.96.0.7\n  type: NodePort\n"
	set, err := Decode("svc.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	key := ObjectKey{Kind: KindService, Namespace: "default", Name: "web"}
	for path, want := range map[string]string{
		"spec.clusterIP":          "svc.yaml:16",
		"spec.ports[1].nodePort":  "svc.yaml:15",
		"spec.ports[0].nodePort":  "svc.yaml:10",
		"metadata.labels[absent]": "svc.yaml:2",
	} {
		if got := set.Where(key, path).String(); got != want {
			t.Errorf("Where(%s) = %s, want %s", path, got, want)
		}
	}
	if got := (&Set{}).Where(key, "spec.clusterIP"); got != (Source{}) {
		t.Errorf("Where on an empty set = %v", got)
	}
}
