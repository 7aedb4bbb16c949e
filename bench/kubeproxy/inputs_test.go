package kubeproxy

import (
	"fmt"
	"net/netip"
	"slices"

	"bosun/proxy"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// The inputs both engines get: one set of Services, generated once and
// converted to what each engine reads (Service and EndpointSlice objects
// for kube-proxy, proxy.ServicePort for bosun).
const (
	namespace   = "bench"
	serviceCIDR = "10.96.0.0/16"
	podCIDR     = "10.244.0.0/16"
	servicePort = 80
	targetPort  = 8080
	// nodes is how many nodes the endpoints are spread over; the engines
	// run as node-0, so one endpoint in nodes of each Service is local
	// (kube-proxy keeps a hairpin set element for local endpoints).
	nodes    = 10
	nodeName = "node-0"
)

// svcSpec is one Service with one TCP port and its ready endpoints.
type svcSpec struct {
	Name      string
	ClusterIP netip.Addr
	Endpoints []epSpec // sorted by IP
}

type epSpec struct {
	IP   netip.Addr
	Node string
}

// generate returns n Services of m endpoints each: ClusterIPs from
// 10.96.0.10 up, pod IPs from 10.244.0.2 up, endpoint j on node j%nodes.
func generate(n, m int) []svcSpec {
	vip := netip.MustParseAddr("10.96.0.10")
	pod := netip.MustParseAddr("10.244.0.2")
	out := make([]svcSpec, n)
	for i := range out {
		s := svcSpec{Name: fmt.Sprintf("svc-%05d", i), ClusterIP: vip}
		vip = vip.Next()
		for j := range m {
			s.Endpoints = append(s.Endpoints, epSpec{IP: pod, Node: fmt.Sprintf("node-%d", j%nodes)})
			pod = pod.Next()
		}
		out[i] = s
	}
	return out
}

// replacedIP is the address of the n-th replacement pod (10.245.0.0/16,
// outside the generated ones, distinct for 65,000 replacements).
func replacedIP(n int) netip.Addr {
	n %= 65000
	return netip.AddrFrom4([4]byte{10, 245, byte(n >> 8), byte(n)})
}

// service is s as the API server would hand it to kube-proxy.
func (s *svcSpec) service() *v1.Service {
	ip := s.ClusterIP.String()
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: s.Name, UID: types.UID("uid-" + s.Name)},
		Spec: v1.ServiceSpec{
			Type:            v1.ServiceTypeClusterIP,
			ClusterIP:       ip,
			ClusterIPs:      []string{ip},
			IPFamilies:      []v1.IPFamily{v1.IPv4Protocol},
			SessionAffinity: v1.ServiceAffinityNone,
			Ports: []v1.ServicePort{{
				Protocol:   v1.ProtocolTCP,
				Port:       servicePort,
				TargetPort: intstr.FromInt32(targetPort),
			}},
		},
	}
}

// slice is s's endpoints as the EndpointSlice controller would write
// them: one slice (at most 100 endpoints fit), every endpoint ready.
func (s *svcSpec) slice() *discovery.EndpointSlice {
	es := &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace,
			Name:      s.Name + "-abcde",
			Labels:    map[string]string{discovery.LabelServiceName: s.Name},
		},
		AddressType: discovery.AddressTypeIPv4,
		Ports: []discovery.EndpointPort{{
			Name:     ptr.To(""),
			Port:     ptr.To[int32](targetPort),
			Protocol: ptr.To(v1.ProtocolTCP),
		}},
	}
	for _, ep := range s.Endpoints {
		es.Endpoints = append(es.Endpoints, discovery.Endpoint{
			Addresses: []string{ep.IP.String()},
			Conditions: discovery.EndpointConditions{
				Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false),
			},
			NodeName: ptr.To(ep.Node),
		})
	}
	return es
}

// servicePort is s as bosun's runner hands it to the rule engine: one
// group (no tracks, no weights) of ready endpoints.
func (s *svcSpec) servicePort() proxy.ServicePort {
	eps := make([]proxy.Endpoint, len(s.Endpoints))
	for i, ep := range s.Endpoints {
		eps[i] = proxy.Endpoint{IP: ep.IP, Port: targetPort}
	}
	return proxy.ServicePort{
		Namespace: namespace,
		Name:      s.Name,
		Protocol:  v1.ProtocolTCP,
		ClusterIP: s.ClusterIP,
		Port:      servicePort,
		Groups:    []proxy.Group{{Endpoints: eps}},
	}
}

// replaceEndpoint returns a copy of s whose endpoint at old is replaced by
// a pod at ip on the same node, as when a pod is replaced by a new one.
func (s svcSpec) replaceEndpoint(old, ip netip.Addr) svcSpec {
	eps := slices.Clone(s.Endpoints)
	for j := range eps {
		if eps[j].IP == old {
			eps[j].IP = ip
		}
	}
	slices.SortFunc(eps, func(a, b epSpec) int { return a.IP.Compare(b.IP) })
	s.Endpoints = eps
	return s
}
