package ipalloc

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// svc builds a Service; opts are "ip=A", "type=NodePort", "np=PORT" (the
// node port of the port before it), "port=NAME/PORT/PROTO".
func svc(ns, name string, opts ...string) corev1.Service {
	s := corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}}
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "ip":
			s.Spec.ClusterIP = v
		case "type":
			s.Spec.Type = corev1.ServiceType(v)
		case "port":
			parts := strings.Split(v, "/")
			var n int32
			fmt.Sscan(parts[1], &n)
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: parts[0], Port: n, Protocol: corev1.Protocol(parts[2])})
		case "np":
			var n int32
			fmt.Sscan(v, &n)
			s.Spec.Ports[len(s.Spec.Ports)-1].NodePort = n
		default:
			panic(o)
		}
	}
	if len(s.Spec.Ports) == 0 {
		s.Spec.Ports = []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}
	}
	return s
}

// summary renders each Service's addresses: "ns/name ip np,np".
func summary(list []corev1.Service) []string {
	var out []string
	for _, s := range list {
		line := s.Namespace + "/" + s.Name + " " + s.Spec.ClusterIP
		if len(s.Spec.ClusterIPs) != 1 || s.Spec.ClusterIPs[0] != s.Spec.ClusterIP {
			line += fmt.Sprintf(" clusterIPs=%v", s.Spec.ClusterIPs)
		}
		var nps []string
		for _, p := range s.Spec.Ports {
			if p.NodePort != 0 {
				nps = append(nps, fmt.Sprint(p.NodePort))
			}
		}
		if len(nps) > 0 {
			line += " " + strings.Join(nps, ",")
		}
		out = append(out, line)
	}
	return out
}

func errStrings(errs []Error) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

var small = Config{ServiceCIDR: netip.MustParsePrefix("10.96.0.0/24"), NodePorts: PortRange{30000, 30099}}

func TestAllocate(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		desired  []corev1.Service
		previous [][]corev1.Service
		want     []string
		errs     []string
	}{
		{
			name:    "new Services get hashed addresses; headless ones none",
			desired: []corev1.Service{svc("default", "api"), svc("default", "db", "ip=None"), svc("default", "web")},
			want:    []string{"default/api 10.96.70.156", "default/db None", "default/web 10.96.4.85"},
		},
		{
			name:     "kept addresses move for nobody: a new Service whose hash falls on one takes the next",
			desired:  []corev1.Service{svc("default", "api"), svc("default", "db"), svc("default", "web")},
			previous: [][]corev1.Service{{svc("default", "api", "ip=10.96.4.85"), svc("default", "db", "ip=10.96.0.6")}},
			want:     []string{"default/api 10.96.4.85", "default/db 10.96.0.6", "default/web 10.96.4.86"},
		},
		{
			name:    "an explicit address is honoured when free",
			desired: []corev1.Service{svc("default", "web", "ip=10.96.0.10")},
			want:    []string{"default/web 10.96.0.10"},
		},
		{
			name:     "an explicit address another Service keeps is an error; the keeper keeps it",
			desired:  []corev1.Service{svc("default", "api"), svc("default", "web", "ip=10.96.0.5")},
			previous: [][]corev1.Service{{svc("default", "api", "ip=10.96.0.5")}},
			errs:     []string{"Service default/web: spec.clusterIP: 10.96.0.5 is taken by Service default/api, which keeps it"},
		},
		{
			name:    "two Services asking for one address: the first by namespace/name gets it",
			desired: []corev1.Service{svc("b", "web", "ip=10.96.0.5"), svc("a", "web", "ip=10.96.0.5")},
			errs:    []string{"Service b/web: spec.clusterIP: 10.96.0.5 is taken by Service a/web, which asks for it too"},
		},
		{
			name: "addresses out of the CIDR or set aside",
			desired: []corev1.Service{svc("default", "a", "ip=10.97.0.1"), svc("default", "b", "ip=10.96.0.0"),
				svc("default", "c", "ip=10.96.0.1"), svc("default", "d", "ip=10.96.255.255"), svc("default", "e", "ip=nope")},
			errs: []string{
				"Service default/a: spec.clusterIP: 10.97.0.1 is outside the service CIDR 10.96.0.0/16 (--service-cidr)",
				"Service default/b: spec.clusterIP: 10.96.0.0 is the network address of the service CIDR 10.96.0.0/16; it is never given",
				"Service default/c: spec.clusterIP: 10.96.0.1 is reserved: the first address of the service CIDR 10.96.0.0/16 is kept free, as Kubernetes keeps it for the kubernetes Service",
				"Service default/d: spec.clusterIP: 10.96.255.255 is the broadcast address of the service CIDR 10.96.0.0/16; it is never given",
				`Service default/e: spec.clusterIP: invalid value "nope": must be an IPv4 address, None, or left out`,
			},
		},
		{
			name:     "a Service moves to the address it asks for; its old one is free for another",
			desired:  []corev1.Service{svc("default", "a", "ip=10.96.0.9"), svc("default", "b", "ip=10.96.0.5")},
			previous: [][]corev1.Service{{svc("default", "a", "ip=10.96.0.5")}},
			want:     []string{"default/a 10.96.0.9", "default/b 10.96.0.5"},
		},
		{
			name:     "a removed Service's address is free again",
			desired:  []corev1.Service{svc("default", "new", "ip=10.96.0.5")},
			previous: [][]corev1.Service{{svc("default", "gone", "ip=10.96.0.5")}},
			want:     []string{"default/new 10.96.0.5"},
		},
		{
			name:    "the first list that gives a Service an address wins; a loser of a corrupt tie gets a new one",
			desired: []corev1.Service{svc("default", "a"), svc("default", "b"), svc("default", "c")},
			previous: [][]corev1.Service{
				{svc("default", "a", "ip=10.96.0.5"), svc("default", "b")},
				{svc("default", "a", "ip=10.96.0.7"), svc("default", "b", "ip=10.96.0.8"), svc("default", "c", "ip=10.96.0.5")},
			},
			want: []string{"default/a 10.96.0.5", "default/b 10.96.0.8", "default/c 10.96.124.51"},
		},
		{
			name:     "a kept address the CIDR no longer holds is replaced",
			cfg:      small,
			desired:  []corev1.Service{svc("default", "web")},
			previous: [][]corev1.Service{{svc("default", "web", "ip=10.96.7.7")}},
			want:     []string{"default/web 10.96.0.230"},
		},
		{
			name:    "a full CIDR",
			cfg:     Config{ServiceCIDR: netip.MustParsePrefix("10.96.0.0/30")},
			desired: []corev1.Service{svc("default", "a"), svc("default", "b")},
			errs:    []string{"Service default/b: spec.clusterIP: no free address left in the service CIDR 10.96.0.0/30 (1 in use)"},
		},
		{
			name: "node ports: given in range, asked for, and shared by TCP and UDP of one port number",
			cfg:  small,
			desired: []corev1.Service{
				svc("default", "dns", "type=NodePort", "port=dns/53/UDP", "port=dns-tcp/53/TCP"),
				svc("default", "web", "type=NodePort", "port=http/80/TCP", "np=30080", "port=https/443/TCP"),
				svc("default", "plain", "port=http/80/TCP"),
			},
			want: []string{"default/dns 10.96.0.72 30066,30066", "default/web 10.96.0.230 30080,30009", "default/plain 10.96.0.83"},
		},
		{
			name: "node ports are kept by port name and protocol; a ClusterIP Service has none",
			cfg:  small,
			desired: []corev1.Service{
				svc("default", "web", "type=NodePort", "port=https/8443/TCP", "port=http/8080/TCP"),
				svc("default", "was", "port=http/80/TCP"),
			},
			previous: [][]corev1.Service{{
				svc("default", "web", "ip=10.96.0.9", "type=NodePort", "port=http/80/TCP", "np=30001", "port=https/443/TCP", "np=30002"),
				svc("default", "was", "ip=10.96.0.10", "type=NodePort", "port=http/80/TCP", "np=30003"),
			}},
			want: []string{"default/web 10.96.0.9 30002,30001", "default/was 10.96.0.10"},
		},
		{
			name: "node ports out of range or taken",
			cfg:  small,
			desired: []corev1.Service{
				svc("default", "a", "type=NodePort", "port=x/80/TCP", "np=31000"),
				svc("default", "b", "type=NodePort", "port=x/80/TCP", "np=30001"),
				svc("default", "c", "type=NodePort", "port=x/80/TCP", "np=30005", "port=y/81/TCP", "np=30005"),
				svc("default", "d", "type=NodePort", "port=x/80/TCP"),
			},
			previous: [][]corev1.Service{{svc("default", "d", "ip=10.96.0.9", "type=NodePort", "port=x/80/TCP", "np=30001")}},
			errs: []string{
				"Service default/a: spec.ports[0].nodePort: 31000 is outside the node port range 30000-30099 (--node-port-range)",
				"Service default/b: spec.ports[0].nodePort: node port 30001 is taken by Service default/d, which keeps it",
				"Service default/c: spec.ports[1].nodePort: node port 30005 is given twice for TCP",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.desired)
			for i := range in {
				in[i] = *in[i].DeepCopy()
			}
			got, errs := Allocate(tt.cfg, tt.desired, tt.previous...)
			if !reflect.DeepEqual(in, tt.desired) {
				t.Errorf("Allocate modified its input")
			}
			if !slices.Equal(errStrings(errs), tt.errs) {
				t.Errorf("errors:\n got: %s\nwant: %s", strings.Join(errStrings(errs), "\n      "), strings.Join(tt.errs, "\n      "))
			}
			if len(tt.errs) > 0 {
				return
			}
			if s := summary(got); !slices.Equal(s, tt.want) {
				t.Errorf("allocated:\n got: %s\nwant: %s", strings.Join(s, "\n      "), strings.Join(tt.want, "\n      "))
			}
		})
	}
}

func TestConfig(t *testing.T) {
	for _, tt := range []struct{ cidr, ports, err string }{
		{"10.96.0.0/16", "30000-32767", ""},
		{"10.0.0.0/12", "1-65535", ""},
		{"10.96.0.0/30", "80-80", ""},
		{"10.96.0.1/16", "", "service CIDR 10.96.0.1/16: not a network address; did you mean 10.96.0.0/16?"},
		{"10.0.0.0/8", "", "service CIDR 10.0.0.0/8: too large; a /12 at most, as in Kubernetes"},
		{"10.96.0.0/31", "", "service CIDR 10.96.0.0/31: too small; a /30 at least"},
		{"fd00::/108", "", "service CIDR fd00::/108: must be IPv4 (bosun serves IPv4 Services only)"},
		{"10.96.0.0", "", `service CIDR "10.96.0.0": want an IPv4 network such as 10.96.0.0/16`},
		{"10.96.0.0/16", "32767-30000", `node port range "32767-30000": want FIRST-LAST within 1-65535, such as 30000-32767`},
		{"10.96.0.0/16", "30000", `node port range "30000": want FIRST-LAST within 1-65535, such as 30000-32767`},
	} {
		_, err := ParseServiceCIDR(tt.cidr)
		if err == nil && tt.ports != "" {
			_, err = ParsePortRange(tt.ports)
		}
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.err {
			t.Errorf("%s %s: error %q, want %q", tt.cidr, tt.ports, got, tt.err)
		}
	}
	if got := (Config{}).WithDefaults(); got.ServiceCIDR != DefaultServiceCIDR || got.NodePorts != DefaultNodePorts || got.Validate() != nil {
		t.Errorf("defaults: %+v", got)
	}
}

// randomRevision draws a revision of up to 40 Services from 60 names in a
// /26 (61 usable addresses) and a range of 50 node ports, so that hashes
// collide and ranges fill. Some ask for an address or node port.
func randomRevision(rng *rand.Rand, cfg Config) []corev1.Service {
	pl := newPool(cfg.ServiceCIDR)
	var out []corev1.Service
	for i := range 60 {
		if rng.IntN(3) != 0 || len(out) == 40 {
			continue
		}
		var opts []string
		switch rng.IntN(10) {
		case 0:
			opts = append(opts, "ip=None")
		case 1:
			opts = append(opts, "ip="+pl.addr(uint32(rng.IntN(int(pl.n)))).String())
		}
		if opts == nil && rng.IntN(3) == 0 {
			opts = append(opts, "type=NodePort", "port=a/80/TCP")
			if rng.IntN(5) == 0 {
				opts = append(opts, fmt.Sprintf("np=%d", cfg.NodePorts.First+int32(rng.IntN(cfg.NodePorts.size()))))
			}
			if rng.IntN(2) == 0 {
				opts = append(opts, "port=b/80/UDP")
			}
		}
		out = append(out, svc([]string{"default", "team"}[i%2], fmt.Sprintf("s%d", i), opts...))
	}
	return out
}

// TestAllocate_properties runs random sequences of revisions, each
// allocated against the last accepted one, as the leader does, and checks
// the invariants: no two Services share an address or a node port; every
// one is in range and usable; an accepted revision moves no Service that
// did not ask to move; an explicit request is honoured exactly or
// refused; the result does not depend on the order of the input.
func TestAllocate_properties(t *testing.T) {
	cfg := Config{ServiceCIDR: netip.MustParsePrefix("10.96.0.0/26"), NodePorts: PortRange{30000, 30049}}
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 8))
		var applied []corev1.Service
		for step := range 8 {
			desired := randomRevision(rng, cfg)
			got, errs := Allocate(cfg, desired, applied)
			shuffled := slices.Clone(desired)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			got2, errs2 := Allocate(cfg, shuffled, applied)
			if !slices.Equal(errStrings(errs), errStrings(errs2)) || !sameByKey(got, got2) {
				t.Fatalf("seed %d step %d: the result depends on the order of the input", seed, step)
			}
			if len(errs) > 0 {
				checkRefusalsAreDeserved(t, seed, step, cfg, desired, applied, errs)
				continue // rejected: the applied revision stays
			}
			checkInvariants(t, seed, step, cfg, desired, applied, got)
			applied = got
		}
	}
}

func sameByKey(a, b []corev1.Service) bool {
	m := map[string]string{}
	for _, l := range summary(a) {
		k, v, _ := strings.Cut(l, " ")
		m[k] = v
	}
	for _, l := range summary(b) {
		k, v, _ := strings.Cut(l, " ")
		if m[k] != v {
			return false
		}
		delete(m, k)
	}
	return len(m) == 0
}

func checkInvariants(t *testing.T, seed uint64, step int, cfg Config, desired, applied, got []corev1.Service) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d step %d: %s\n%s", seed, step, fmt.Sprintf(format, args...), strings.Join(summary(got), "\n"))
	}
	before := map[string]*corev1.Service{}
	for i := range applied {
		before[keyOf(&applied[i])] = &applied[i]
	}
	ips := map[string]string{}
	ports := map[string]string{}
	for i, s := range got {
		d := desired[i]
		if s.Spec.ClusterIP == corev1.ClusterIPNone {
			if d.Spec.ClusterIP != corev1.ClusterIPNone || !slices.Equal(s.Spec.ClusterIPs, []string{"None"}) {
				fail("%s: headless when not asked, or clusterIPs %v", keyOf(&s), s.Spec.ClusterIPs)
			}
			continue
		}
		ip, err := netip.ParseAddr(s.Spec.ClusterIP)
		if err != nil || cfg.check(ip) != "" || !slices.Equal(s.Spec.ClusterIPs, []string{s.Spec.ClusterIP}) {
			fail("%s: unusable address %q (%v)", keyOf(&s), s.Spec.ClusterIP, s.Spec.ClusterIPs)
		}
		if o, dup := ips[s.Spec.ClusterIP]; dup {
			fail("%s and %s share %s", o, keyOf(&s), s.Spec.ClusterIP)
		}
		ips[s.Spec.ClusterIP] = keyOf(&s)
		if d.Spec.ClusterIP != "" && d.Spec.ClusterIP != s.Spec.ClusterIP {
			fail("%s asked for %s, got %s", keyOf(&s), d.Spec.ClusterIP, s.Spec.ClusterIP)
		}
		b := before[keyOf(&s)]
		if d.Spec.ClusterIP == "" && b != nil && HasClusterIP(b) && b.Spec.ClusterIP != s.Spec.ClusterIP {
			fail("%s moved from %s to %s", keyOf(&s), b.Spec.ClusterIP, s.Spec.ClusterIP)
		}
		for j, p := range s.Spec.Ports {
			if s.Spec.Type != corev1.ServiceTypeNodePort {
				if p.NodePort != 0 {
					fail("%s: a node port on a %s Service", keyOf(&s), s.Spec.Type)
				}
				continue
			}
			if !cfg.NodePorts.Contains(p.NodePort) {
				fail("%s: node port %d out of range", keyOf(&s), p.NodePort)
			}
			k := fmt.Sprintf("%d/%s", p.NodePort, p.Protocol)
			if o, dup := ports[k]; dup {
				fail("%s and %s share node port %s", o, keyOf(&s), k)
			}
			ports[k] = keyOf(&s)
			if other, ok := ports[fmt.Sprintf("%d/%s", p.NodePort, other(p.Protocol))]; ok && other != keyOf(&s) {
				fail("%s and %s share node port %d", other, keyOf(&s), p.NodePort)
			}
			if asked := d.Spec.Ports[j].NodePort; asked != 0 && asked != p.NodePort {
				fail("%s asked for node port %d, got %d", keyOf(&s), asked, p.NodePort)
			}
			if d.Spec.Ports[j].NodePort == 0 && b != nil && b.Spec.Type == corev1.ServiceTypeNodePort {
				for _, bp := range b.Spec.Ports {
					if bp.Name == p.Name && bp.Protocol == p.Protocol && bp.NodePort != p.NodePort {
						fail("%s port %s moved from node port %d to %d", keyOf(&s), p.Name, bp.NodePort, p.NodePort)
					}
				}
			}
		}
	}
}

func other(p corev1.Protocol) corev1.Protocol {
	if p == corev1.ProtocolTCP {
		return corev1.ProtocolUDP
	}
	return corev1.ProtocolTCP
}

// checkRefusalsAreDeserved: a revision is refused only for a request that
// cannot be met: an address or node port another desired Service keeps or
// asked for first, or a range that is full.
func checkRefusalsAreDeserved(t *testing.T, seed uint64, step int, cfg Config, desired, applied []corev1.Service, errs []Error) {
	t.Helper()
	for _, e := range errs {
		switch {
		case strings.Contains(e.Message, " is taken by Service "):
			holder := strings.Fields(e.Message[strings.Index(e.Message, " is taken by Service ")+len(" is taken by Service "):])[0]
			holder = strings.TrimSuffix(holder, ",")
			found := false
			for i := range desired {
				if keyOf(&desired[i]) == holder {
					found = true
				}
			}
			if !found {
				t.Fatalf("seed %d step %d: %v: the holder is not desired", seed, step, e)
			}
		case strings.Contains(e.Message, "no free"):
			n := 0
			for _, d := range desired {
				if d.Spec.ClusterIP != corev1.ClusterIPNone {
					n++
				}
			}
			if strings.Contains(e.Field, "clusterIP") && n <= int(newPool(cfg.ServiceCIDR).n) {
				t.Fatalf("seed %d step %d: %v with only %d Services", seed, step, e, n)
			}
		default:
			t.Fatalf("seed %d step %d: unexpected refusal %v", seed, step, e)
		}
	}
}

// TestAllocate_removedServicesFreeTheirAddresses: every address and node
// port of a removed Service can be asked for at once by a new one.
func TestAllocate_removedServicesFreeTheirAddresses(t *testing.T) {
	cfg := Config{ServiceCIDR: netip.MustParsePrefix("10.96.0.0/26"), NodePorts: PortRange{30000, 30049}}
	for seed := range uint64(100) {
		rng := rand.New(rand.NewPCG(seed, 9))
		var desired []corev1.Service
		for _, s := range randomRevision(rng, cfg) {
			s.Spec.ClusterIP = "" // no requests: all are given
			for j := range s.Spec.Ports {
				s.Spec.Ports[j].NodePort = 0
			}
			desired = append(desired, s)
		}
		applied, errs := Allocate(cfg, desired)
		if len(errs) > 0 || len(applied) == 0 {
			continue
		}
		gone := applied[rng.IntN(len(applied))]
		next := slices.DeleteFunc(slices.Clone(applied), func(s corev1.Service) bool { return keyOf(&s) == keyOf(&gone) })
		heir := *gone.DeepCopy()
		heir.Name = "heir"
		next = append(next, heir)
		got, errs := Allocate(cfg, next, applied)
		if len(errs) > 0 {
			t.Fatalf("seed %d: %v", seed, errs)
		}
		if h := got[len(got)-1]; h.Spec.ClusterIP != gone.Spec.ClusterIP || !reflect.DeepEqual(h.Spec.Ports, gone.Spec.Ports) {
			t.Fatalf("seed %d: heir got %v, want %v", seed, summary([]corev1.Service{h}), summary([]corev1.Service{gone}))
		}
	}
}
