package main

import (
	"context"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"bosun/dns"
	"bosun/nodes"
	"bosun/store"
)

// nodeDNSFlags turn on the cluster DNS of a node that runs no server.
type nodeDNSFlags struct {
	on     bool
	domain string // the cluster domain of the node's pods (nodes.Config.ClusterDomain)
}

func (f *nodeDNSFlags) declare(fs *flagSet) {
	fs.BoolVar(&f.on, "dns", true, "answer this node's pods' DNS queries (the cluster domain from the cluster state, other names forwarded to this machine's resolvers) at the nameserver their resolv.conf names: the pod network's gateway, port 53; false: pods with dnsPolicy ClusterFirst resolve nothing unless something else answers there")
}

// runNodeDNS serves the cluster DNS to the node's pods once the agent has
// registered (the pod network, and so the gateway address, is set up then),
// from the agent's cache, until ctx ends. A server's own node gets it from
// the server's DNS; a node of `bosun agent` alone has nothing else
// answering at its pods' nameserver.
func runNodeDNS(ctx context.Context, f nodeDNSFlags, agent *nodes.Agent, cache *store.Cache, reg prometheus.Registerer, log *slog.Logger) error {
	select {
	case <-agent.Registered():
	case <-ctx.Done():
		return nil
	}
	srv, err := dns.New(dns.Config{
		Listen: []string{net.JoinHostPort(agent.DNSServer(), "53")}, Domain: f.domain,
		Logger: log, Registerer: reg,
	}, cache)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}
