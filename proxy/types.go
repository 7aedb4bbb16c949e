package proxy

import (
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// ServicePort is one port of one Service with a virtual IP, as the data
// path programs it: connections to ClusterIP:Port (and to NodePort on the
// node's own addresses) of Protocol go to one of the ready endpoints.
type ServicePort struct {
	// Namespace and Name name the Service; PortName names the port ("" for
	// a Service's single unnamed port).
	Namespace, Name, PortName string
	// Protocol is TCP or UDP.
	Protocol corev1.Protocol
	// ClusterIP is the Service's virtual IP; Port its port.
	ClusterIP netip.Addr
	Port      uint16
	// NodePort, when not 0, also serves the port on every local address of
	// the node (type NodePort).
	NodePort uint16
	// AffinityTimeout, when not 0, keeps a client (by source address) on
	// the endpoint it was sent to for this long after its last new
	// connection (sessionAffinity: ClientIP).
	AffinityTimeout time.Duration
	// Groups are the ready endpoints, by group. A port without any endpoint
	// rejects new connections at once.
	Groups []Group
}

// Group is a set of endpoints that share a weight: the pods of one track
// (the label bosun.dev/track: stable or canary) of the Service.
type Group struct {
	// Name is the group's track ("" when the pods carry none).
	Name string
	// Weight is the group's relative share of new connections, split
	// equally among its endpoints. When no group of a port has a weight,
	// every endpoint gets an equal share; a group without endpoints gets
	// nothing and its share goes to the others.
	Weight int32
	// Endpoints are the group's ready endpoints, sorted by address.
	Endpoints []Endpoint
}

// Endpoint is one pod's address and the port the service port maps to.
type Endpoint struct {
	IP   netip.Addr
	Port uint16
}

// Key identifies a service port: namespace/name/port/protocol.
func (sp *ServicePort) Key() string {
	return sp.Namespace + "/" + sp.Name + "/" + sp.PortName + "/" + string(sp.Protocol)
}
