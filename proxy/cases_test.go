package proxy

import (
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Cases shared by the golden model tests and the kernel tests.

func ep(ip string, port uint16) Endpoint {
	return Endpoint{IP: netip.MustParseAddr(ip), Port: port}
}

func port(ns, name, portName string, proto corev1.Protocol, vip string, p uint16, groups ...Group) ServicePort {
	return ServicePort{Namespace: ns, Name: name, PortName: portName, Protocol: proto,
		ClusterIP: netip.MustParseAddr(vip), Port: p, Groups: groups}
}

type goldenCase struct {
	name  string
	ports []ServicePort
}

func goldenCases() []goldenCase {
	web := port("default", "web", "http", corev1.ProtocolTCP, "10.96.0.10", 80,
		Group{Endpoints: []Endpoint{ep("10.244.0.2", 8080), ep("10.244.0.3", 8080), ep("10.244.0.4", 8080)}})
	dns := port("default", "stats", "", corev1.ProtocolUDP, "10.96.0.11", 8125,
		Group{Endpoints: []Endpoint{ep("10.244.0.5", 8125), ep("10.244.0.6", 8125)}})
	// targetPort "http" resolves per pod: two pods name different numbers.
	named := port("default", "api", "http", corev1.ProtocolTCP, "10.96.0.12", 80,
		Group{Endpoints: []Endpoint{ep("10.244.0.7", 8080), ep("10.244.0.8", 9090)}})
	weighted := port("default", "shop", "", corev1.ProtocolTCP, "10.96.0.13", 80,
		Group{Name: "canary", Weight: 10, Endpoints: []Endpoint{ep("10.244.1.2", 8080)}},
		Group{Name: "stable", Weight: 90, Endpoints: []Endpoint{ep("10.244.1.3", 8080), ep("10.244.1.4", 8080), ep("10.244.1.5", 8080)}})
	affinity := port("default", "sticky", "", corev1.ProtocolTCP, "10.96.0.14", 80,
		Group{Endpoints: []Endpoint{ep("10.244.0.9", 8080), ep("10.244.0.10", 8080)}})
	affinity.AffinityTimeout = 3 * time.Hour
	empty := port("default", "down", "", corev1.ProtocolTCP, "10.96.0.15", 80)
	emptyNP := port("default", "down-np", "", corev1.ProtocolUDP, "10.96.0.16", 53)
	emptyNP.NodePort = 30053
	nodePort := port("default", "web-np", "", corev1.ProtocolTCP, "10.96.0.17", 80,
		Group{Endpoints: []Endpoint{ep("10.244.0.2", 8080)}})
	nodePort.NodePort = 30080
	return []goldenCase{
		{"tcp-3-endpoints", []ServicePort{web}},
		{"udp", []ServicePort{dns}},
		{"named-target-port", []ServicePort{named}},
		{"weighted-90-10", []ServicePort{weighted}},
		{"affinity", []ServicePort{affinity}},
		{"no-endpoints", []ServicePort{empty, emptyNP}},
		{"node-port", []ServicePort{nodePort}},
		// The hairpin mark is in every endpoint chain; this case has a pod
		// that is an endpoint of two Services.
		{"hairpin", []ServicePort{web, nodePort}},
	}
}
