package server

import (
	"fmt"
	"log/slog"
	"net/url"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"bosun/nodes"
	"bosun/scheduler"
)

// reservedPorts are the ports this server listens on at its machine (the
// DNS, API, webhook, embedded etcd's client and peer addresses, the
// ingress proxy), added to what the agent config reserves already: the
// node agent of this machine publishes them so that no pod is given one as
// a host port (nodes/reserved.go). peer is the embedded member's peer URL
// ("" when it has none: a single member's peer listener is on a loopback
// port nobody dials).
func (c Config) reservedPorts(peer string) ([]scheduler.ReservedPort, error) {
	type listener struct {
		holder, addr string
		protocols    []corev1.Protocol
	}
	both := []corev1.Protocol{corev1.ProtocolUDP, corev1.ProtocolTCP}
	ls := []listener{
		{nodes.HolderDNS, c.DNSListen, both},
		{nodes.HolderAPI, c.APIListen, nil},
		{nodes.HolderWebhook, c.WebhookListen, nil},
	}
	if len(c.EtcdEndpoints) == 0 {
		ls = append(ls, listener{nodes.HolderEtcd, c.EtcdListen, nil})
		if peer != "" {
			u, err := url.Parse(peer)
			if err != nil {
				return nil, fmt.Errorf("etcd peer URL %q: %w", peer, err)
			}
			ls = append(ls, listener{nodes.HolderEtcdPeer, u.Host, nil})
		}
	}
	if c.Ingress != nil {
		ls = append(ls, listener{nodes.HolderIngress, c.Ingress.Listen, nil}, listener{nodes.HolderIngressTLS, c.Ingress.TLSListen, nil})
	}
	out := slices.Clone(c.AgentConf.ReservedPorts)
	for _, l := range ls {
		ports, err := nodes.ListenerPorts(l.holder, l.addr, l.protocols...)
		if err != nil {
			return nil, err
		}
		out = append(out, ports...)
	}
	return out, nil
}

// unreadableReserved is what the leader last logged of nodes whose
// reserved ports (scheduler.AnnotationReservedHostPorts) do not read: the
// annotation's value, by node.
type unreadableReserved map[string]string

// check warns once per node and value of a node whose reserved ports do
// not read (the scheduler then keeps every hostPort pod off it, saying
// so), and forgets the nodes that read again or are gone.
func (u *unreadableReserved) check(log *slog.Logger, ns []corev1.Node) {
	now := unreadableReserved{}
	for i := range ns {
		n := &ns[i]
		if _, err := scheduler.ReservedPortsOf(n); err != nil {
			v := n.Annotations[scheduler.AnnotationReservedHostPorts]
			if last, ok := (*u)[n.Name]; !ok || last != v {
				log.Warn("node's reserved host ports do not read; no pod with a host port goes there", "node", n.Name, "err", err)
			}
			now[n.Name] = v
		}
	}
	*u = now
}
