package main

import (
	"bosun/ipalloc"
)

// serviceFlags declares the ranges Services get their addresses from: the
// server allocates from them, `bosun validate` checks manifests against
// them.
func serviceFlags(fs *flagSet, cfg *ipalloc.Config) {
	*cfg = cfg.WithDefaults()
	fs.Func("service-cidr", "IPv4 range of Service virtual IPs (ClusterIPs); its network, first and broadcast addresses are never given (default "+ipalloc.DefaultServiceCIDR.String()+")", func(v string) error {
		p, err := ipalloc.ParseServiceCIDR(v)
		cfg.ServiceCIDR = p
		return err
	})
	fs.Func("node-port-range", "ports NodePort Services are given, FIRST-LAST (default "+ipalloc.DefaultNodePorts.String()+")", func(v string) error {
		r, err := ipalloc.ParsePortRange(v)
		cfg.NodePorts = r
		return err
	})
}
