package kube

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ServiceNameLabel is the label Kubernetes puts on an EndpointSlice to name
// the Service it belongs to.
const ServiceNameLabel = discoveryv1.LabelServiceName

// Selects reports whether a Service's selector sel selects a pod labelled
// labels. An empty selector selects nothing: a Service without one has
// endpoints managed by hand in Kubernetes, and none in bosun.
func Selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

// Endpoint reports whether pod is an endpoint of svc, and whether that
// endpoint is ready to receive traffic. A pod is an endpoint when svc
// selects it (same namespace, selector matches), it is not being deleted,
// and it has an address; it is ready when its Ready condition is True, or,
// for a Service with publishNotReadyAddresses, whenever it has not finished.
// Every consumer of endpoints (DNS, the Service proxy, the API) asks here.
func Endpoint(svc *corev1.Service, pod *corev1.Pod) (isEndpoint, ready bool) {
	if pod.Namespace != svc.Namespace || pod.DeletionTimestamp != nil || pod.Status.PodIP == "" ||
		!Selects(svc.Spec.Selector, pod.Labels) {
		return false, false
	}
	if PodFinished(pod) {
		return true, false
	}
	return true, PodReady(pod) || svc.Spec.PublishNotReadyAddresses
}

// EndpointPort resolves the port a connection to service port sp reaches on
// pod: targetPort as a number, targetPort as the name of a container port
// of sp's protocol, or the service port itself when targetPort is unset.
// ok is false when a named targetPort is not declared by the pod (Kubernetes
// leaves such a pod out of that port) or a port is out of range.
func EndpointPort(sp corev1.ServicePort, pod *corev1.Pod) (port uint16, ok bool) {
	tp := sp.TargetPort
	switch {
	case tp.StrVal != "":
		proto := cmp.Or(sp.Protocol, corev1.ProtocolTCP)
		for _, c := range pod.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == tp.StrVal && cmp.Or(cp.Protocol, corev1.ProtocolTCP) == proto && validPort(cp.ContainerPort) {
					return uint16(cp.ContainerPort), true
				}
			}
		}
		return 0, false
	case tp.IntVal != 0:
		return uint16(tp.IntVal), validPort(tp.IntVal)
	default:
		return uint16(sp.Port), validPort(sp.Port)
	}
}

// EndpointHostname is the hostname of pod as an endpoint of svc: its
// spec.hostname when its spec.subdomain names svc (same namespace, exact
// name), else "". Kubernetes' EndpointSlice controller applies this rule;
// DNS names such an endpoint of a headless Service
// <hostname>.<svc>.<ns>.svc.<domain>.
func EndpointHostname(svc *corev1.Service, pod *corev1.Pod) string {
	if pod.Spec.Hostname == "" || pod.Spec.Subdomain != svc.Name || pod.Namespace != svc.Namespace {
		return ""
	}
	return pod.Spec.Hostname
}

func validPort(p int32) bool { return p > 0 && p <= 65535 }

const (
	// LabelTrack is the pod label that names a pod's endpoint group (its
	// track: stable or canary). Pods without it form the group "".
	LabelTrack = "bosun.dev/track"
	// AnnotationWeight is the pod annotation that gives its endpoint group's
	// weight: a non-negative integer.
	AnnotationWeight = "bosun.dev/weight"
)

// EndpointGroup returns the endpoint group of pod, its label
// bosun.dev/track ("" when absent), and the weight it asks for that group,
// its annotation bosun.dev/weight (0 when absent, and when it is not a
// non-negative integer: validation refuses such a manifest). A group's
// weight is the smallest its pods ask for, so that a group never takes
// more traffic than every one of its pods asks for (in the middle of a
// rollout that changes it, they disagree). The Service proxy splits new
// connections to a virtual IP by these weights, and DNS the answers of a
// headless Service.
func EndpointGroup(pod *corev1.Pod) (group string, weight int32) {
	group = pod.Labels[LabelTrack]
	v, ok := pod.Annotations[AnnotationWeight]
	if !ok {
		return group, 0
	}
	w, err := strconv.ParseInt(v, 10, 32)
	if err != nil || w < 0 {
		return group, 0
	}
	return group, int32(w)
}

// EndpointSlices returns the endpoints of svc among pods, shaped as
// Kubernetes' EndpointSlices (discovery.k8s.io/v1): one slice per distinct
// set of resolved ports (pods that name their target ports differently land
// in different slices, as in Kubernetes), endpoints sorted by address, each
// with its ready, serving and terminating conditions, node and pod. A
// Service without a selector has none.
func EndpointSlices(svc *corev1.Service, pods []*corev1.Pod) []discoveryv1.EndpointSlice {
	type member struct {
		ep   discoveryv1.Endpoint
		addr netip.Addr
	}
	groups := map[string][]member{}
	portsOf := map[string][]discoveryv1.EndpointPort{}
	for _, p := range pods {
		isEP, ready := Endpoint(svc, p)
		if !isEP {
			continue
		}
		addr, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil {
			continue
		}
		var ports []discoveryv1.EndpointPort
		var key strings.Builder
		for _, sp := range svc.Spec.Ports {
			port, ok := EndpointPort(sp, p)
			if !ok {
				continue
			}
			proto := cmp.Or(sp.Protocol, corev1.ProtocolTCP)
			ports = append(ports, discoveryv1.EndpointPort{
				Name: new(sp.Name), Protocol: &proto, Port: new(int32(port)), AppProtocol: sp.AppProtocol,
			})
			key.WriteString(sp.Name + "=" + strconv.Itoa(int(port)) + ";")
		}
		terminating := false
		ep := discoveryv1.Endpoint{
			Addresses: []string{addr.String()},
			Conditions: discoveryv1.EndpointConditions{
				Ready: new(ready), Serving: new(ready), Terminating: &terminating,
			},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
		}
		if p.Spec.NodeName != "" {
			ep.NodeName = new(p.Spec.NodeName)
		}
		if h := EndpointHostname(svc, p); h != "" {
			ep.Hostname = new(h)
		}
		k := key.String()
		groups[k] = append(groups[k], member{ep: ep, addr: addr})
		portsOf[k] = ports
	}
	keys := slices.Sorted(maps.Keys(groups))
	out := make([]discoveryv1.EndpointSlice, 0, len(keys))
	for i, k := range keys {
		ms := groups[k]
		slices.SortFunc(ms, func(a, b member) int {
			return cmp.Or(a.addr.Compare(b.addr), strings.Compare(a.ep.TargetRef.Name, b.ep.TargetRef.Name))
		})
		eps := make([]discoveryv1.Endpoint, len(ms))
		for j := range ms {
			eps[j] = ms[j].ep
		}
		out = append(out, discoveryv1.EndpointSlice{
			TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
			ObjectMeta: metav1.ObjectMeta{
				Name: svc.Name + "-" + strconv.Itoa(i), Namespace: svc.Namespace,
				Labels: map[string]string{ServiceNameLabel: svc.Name},
			},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   eps,
			Ports:       portsOf[k],
		})
	}
	return out
}
