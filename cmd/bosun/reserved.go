package main

import (
	"fmt"

	"bosun/nodes"
	"bosun/scheduler"
)

// listenFlag is a listen address flag whose port the node reserves (see
// nodes.ListenerPorts): TCP listeners only here; the server adds its own
// (server.Config: DNS, API, etcd, ingress).
type listenFlag struct{ flag, holder, addr string }

// reservedPorts reads the listen flags into the ports they take on this
// machine, appended to ports.
func reservedPorts(ports []scheduler.ReservedPort, flags ...listenFlag) ([]scheduler.ReservedPort, error) {
	for _, f := range flags {
		p, err := nodes.ListenerPorts(f.holder, f.addr)
		if err != nil {
			return nil, &exitError{code: 2, err: fmt.Errorf("%s: %w", f.flag, err)}
		}
		ports = append(ports, p...)
	}
	return ports, nil
}
