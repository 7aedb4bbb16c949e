package server

import (
	"testing"

	"bosun/ingress"
	"bosun/nodes"
	"bosun/scheduler"
)

func TestConfig_reservedPorts(t *testing.T) {
	pprof, _ := nodes.ListenerPorts(nodes.HolderPprof, "127.0.0.1:6060")
	c := Config{DNSListen: "127.0.0.1:5353", APIListen: "0.0.0.0:7070", WebhookListen: ":7071", EtcdListen: "10.0.0.1:2379",
		Ingress: &ingress.Config{Listen: "0.0.0.0:80"}}
	c.AgentConf.ReservedPorts = pprof
	got, err := c.reservedPorts("https://10.0.0.1:2380")
	if err != nil {
		t.Fatal(err)
	}
	want := "TCP/0.0.0.0:7070=api,TCP/0.0.0.0:7071=webhook,TCP/0.0.0.0:80=ingress,TCP/10.0.0.1:2379=etcd,TCP/10.0.0.1:2380=etcd-peer," +
		"TCP/127.0.0.1:5353=dns,TCP/127.0.0.1:6060=pprof,UDP/127.0.0.1:5353=dns"
	if s := scheduler.FormatReservedPorts(got); s != want {
		t.Errorf("reserved ports\n%s\nwant\n%s", s, want)
	}
	// An external etcd: none of its ports are this machine's.
	c = Config{DNSListen: "127.0.0.1:5353", APIListen: "127.0.0.1:7070", EtcdListen: "127.0.0.1:2379", EtcdEndpoints: []string{"http://10.0.0.9:2379"}}
	got, err = c.reservedPorts("")
	if s := scheduler.FormatReservedPorts(got); err != nil || s != "TCP/127.0.0.1:5353=dns,TCP/127.0.0.1:7070=api,UDP/127.0.0.1:5353=dns" {
		t.Errorf("with an external etcd: %s, %v", s, err)
	}
	c.APIListen = "nonsense"
	if _, err := c.reservedPorts(""); err == nil {
		t.Error("a malformed --api-listen: no error")
	}
}
