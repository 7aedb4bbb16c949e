package server

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

// TestUnreadableReserved_logsOncePerNodeAndValue: a node whose annotation
// does not read is logged once for each value it takes, not at every
// pass; a node that reads again, or is gone, is forgotten.
func TestUnreadableReserved_logsOncePerNodeAndValue(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	node := func(name, v string) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{scheduler.AnnotationReservedHostPorts: v}}}
	}
	var u unreadableReserved
	lines := func() int { n := strings.Count(buf.String(), "\n"); buf.Reset(); return n }
	good := node("n2", "TCP/0.0.0.0:80=ingress")
	u.check(log, []corev1.Node{node("n1", "garbage"), good})
	if out := buf.String(); !strings.Contains(out, "node=n1") || !strings.Contains(out, `entry 1: \"garbage\"`) || lines() != 1 {
		t.Errorf("first pass: %s", out)
	}
	u.check(log, []corev1.Node{node("n1", "garbage"), good})
	if n := lines(); n != 0 {
		t.Errorf("same value again: %d lines", n)
	}
	u.check(log, []corev1.Node{node("n1", "more garbage"), good})
	if n := lines(); n != 1 {
		t.Errorf("a new value: %d lines", n)
	}
	u.check(log, []corev1.Node{good})
	u.check(log, []corev1.Node{node("n1", "more garbage"), good})
	if n := lines(); n != 1 || len(u) != 1 {
		t.Errorf("gone and back: %d lines, remembered %v", n, u)
	}
}
