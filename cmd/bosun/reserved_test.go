package main

import (
	"strings"
	"testing"

	"bosun/nodes"
	"bosun/scheduler"
)

func TestReservedPorts_fromListenFlags(t *testing.T) {
	got, err := reservedPorts(nil, listenFlag{"--ingress-listen", nodes.HolderIngress, "0.0.0.0:80"},
		listenFlag{"--ingress-tls-listen", nodes.HolderIngressTLS, ""}, listenFlag{"--listen", nodes.HolderAgent, "[::]:10250"})
	if s := scheduler.FormatReservedPorts(got); err != nil || s != "TCP/0.0.0.0:10250=agent,TCP/0.0.0.0:80=ingress" {
		t.Errorf("reservedPorts = %q, %v", s, err)
	}
	_, err = reservedPorts(nil, listenFlag{"--ingress-listen", nodes.HolderIngress, "80"})
	if err == nil || !strings.HasPrefix(err.Error(), "--ingress-listen: ") {
		t.Errorf("a malformed address: %v, want an error naming the flag", err)
	}
}
