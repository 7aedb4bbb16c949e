package proxy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"bosun/store"
)

// cluster is a real store (embedded etcd) that a test writes Services,
// pods and pod statuses to, as the leader and the agents do, and a cache
// of it as an agent's runner reads it.
type cluster struct {
	t     testing.TB
	st    *store.Store
	lead  *store.Leadership
	cache *store.Cache
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	st := store.NewTest(t)
	lead, err := st.Campaign(context.Background(), "test", store.DefaultSessionTTL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lead.Resign(context.Background()) })
	return &cluster{t: t, st: st, lead: lead, cache: store.RunTestCache(t, st, CacheConfig())}
}

func (c *cluster) apply(ops ...store.Op) {
	c.t.Helper()
	if err := c.lead.Apply(context.Background(), ops); err != nil {
		c.t.Fatal(err)
	}
}

func must(op store.Op, err error) store.Op {
	if err != nil {
		panic(err)
	}
	return op
}

// service is a ClusterIP Service selecting app=name, port 80 to the
// container port named http.
func service(name, vip string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{
			ClusterIP: vip, Selector: map[string]string{"app": name}, Type: corev1.ServiceTypeClusterIP,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http")}},
		},
	}
}

// pod is a pod of app on node n1 declaring the container port http.
func pod(app, name string, port int32) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{
			Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: port}},
		}}},
	}
}

// status reports pod p running at ip, ready or not.
func (c *cluster) status(p *corev1.Pod, ip string, ready bool) {
	c.t.Helper()
	cond := corev1.ConditionFalse
	if ready {
		cond = corev1.ConditionTrue
	}
	err := c.st.PutPodStatus(context.Background(), p.Namespace, p.Name, store.PodStatus{UID: p.UID, Node: "n1", Status: corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: ip, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: cond}},
	}})
	if err != nil {
		c.t.Fatal(err)
	}
}

// startRunner runs a Runner until the test ends (or stop is called).
func startRunner(t testing.TB, cfg RunConfig, cache *store.Cache) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	r := New(cfg, cache)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return 10 s after its context ended")
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitTable waits until the listing of table in ns satisfies cond.
func waitTable(t testing.TB, ns netns.NsHandle, table, what string, cond func(listing string) bool) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := listTable(t, ns, table)
		if cond(l) {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; table %s:\n%s", what, table, l)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sameRules reports whether two listings are equal but for their tables'
// names.
func sameRules(a, tableA, b, tableB string) bool {
	return strings.ReplaceAll(a, `"`+tableA+`"`, `"T"`) == strings.ReplaceAll(b, `"`+tableB+`"`, `"T"`)
}

// TestRunner_followsTheStore: the runner programs what the store says
// (only ready endpoints, the port named per pod), follows a pod turning
// ready and not, and a Service going; what it programs equals a table
// synced with Ports of the same state; it sets br_netfilter's sysctl in
// its network namespace; stopped, it leaves the table; a new runner
// rebuilds the same table.
func TestRunner_followsTheStore(t *testing.T) {
	ns := newNS(t)
	run(t, ns, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0")
	c := newCluster(t)
	web := service("web", "10.96.0.10")
	w1, w2, w3 := pod("web", "web-1", 8080), pod("web", "web-2", 9090), pod("web", "web-3", 8080)
	c.apply(must(store.PutService(web)), must(store.PutPod(w1)), must(store.PutPod(w2)), must(store.PutPod(w3)))
	c.status(w1, "10.88.0.2", true)
	c.status(w2, "10.88.0.3", true)
	c.status(w3, "10.88.0.4", false)

	reg := prometheus.NewRegistry()
	const table = "runnertest"
	stop := startRunner(t, RunConfig{Table: table, NetNS: ns, Registerer: reg}, c.cache)
	waitTable(t, ns, table, "the two ready endpoints", func(l string) bool {
		return strings.Contains(l, `"10.88.0.2"`) && strings.Contains(l, `"10.88.0.3"`) && strings.Contains(l, "9090")
	})
	if l := listTable(t, ns, table); strings.Contains(l, `"10.88.0.4"`) {
		t.Errorf("a pod that is not ready is in the rules:\n%s", l)
	}
	if got := strings.TrimSpace(run(t, ns, "sysctl", "-n", "net.bridge.bridge-nf-call-iptables")); got != "1" {
		t.Errorf("net.bridge.bridge-nf-call-iptables in the runner's namespace = %s; want 1", got)
	}

	c.status(w3, "10.88.0.4", true)
	c.status(w1, "10.88.0.2", false)
	listing := waitTable(t, ns, table, "web-3 in, web-1 out", func(l string) bool {
		return strings.Contains(l, `"10.88.0.4"`) && !strings.Contains(l, `"10.88.0.2"`)
	})

	// The same rules as a table synced with Ports of the same state.
	snap, err := c.cache.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Ports(snap.Services, snap.Pods)
	check, err := Open(Config{Table: "runnercheck", NetNS: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	if _, err := check.Sync(want); err != nil {
		t.Fatal(err)
	}
	if l := listTable(t, ns, "runnercheck"); !sameRules(listing, table, l, "runnercheck") {
		t.Errorf("the runner's table differs from Ports synced at once:\nrunner:\n%s\nPorts:\n%s", listing, l)
	}
	if err := Cleanup(Config{Table: "runnercheck", NetNS: ns}); err != nil {
		t.Fatal(err)
	}

	if got := metric(t, reg, "bosun_proxy_endpoints"); got != 2 {
		t.Errorf("bosun_proxy_endpoints = %v; want 2", got)
	}
	if got := metric(t, reg, "bosun_proxy_service_ports"); got != 1 {
		t.Errorf("bosun_proxy_service_ports = %v; want 1", got)
	}
	if got := metric(t, reg, "bosun_proxy_last_sync_timestamp_seconds"); time.Since(time.Unix(int64(got), 0)) > time.Minute {
		t.Errorf("bosun_proxy_last_sync_timestamp_seconds = %v; want about now", got)
	}

	// Stopped, the runner leaves its rules; a new one rebuilds the same.
	stop()
	if l := listTable(t, ns, table); l != listing {
		t.Fatalf("the table changed when the runner stopped:\n%s", l)
	}
	reg2 := prometheus.NewRegistry()
	startRunner(t, RunConfig{Table: table, NetNS: ns, KeepBridgeNetfilter: true, Registerer: reg2}, c.cache)
	for deadline := time.Now().Add(10 * time.Second); metric(t, reg2, "bosun_proxy_syncs_total", "ok") < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the new runner did not sync in 10 s")
		}
	}
	if l := listTable(t, ns, table); l != listing {
		t.Fatalf("a new runner programmed other rules:\nbefore:\n%s\nafter:\n%s", listing, l)
	}

	c.apply(store.DeleteService("default", "web"))
	waitTable(t, ns, table, "the Service gone", func(l string) bool { return !strings.Contains(l, "10.96.0.10") })
}

// metric returns the value of a gauge or counter of reg, by its labels'
// values (none: the metric without labels).
func metric(t testing.TB, reg *prometheus.Registry, name string, labelValues ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			if len(m.GetLabel()) != len(labelValues) {
				continue
			}
			for i, l := range m.GetLabel() {
				if l.GetValue() != labelValues[i] {
					continue next
				}
			}
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s%v", name, labelValues)
	return 0
}

// TestRunner_rebuildsAfterAFailedSync: when the table is deleted behind
// the runner's back (nft flush ruleset, another tool), the next
// incremental sync fails, and the retry rebuilds the whole table.
func TestRunner_rebuildsAfterAFailedSync(t *testing.T) {
	ns := newNS(t)
	c := newCluster(t)
	web := service("web", "10.96.0.10")
	w1, w2 := pod("web", "web-1", 8080), pod("web", "web-2", 8080)
	c.apply(must(store.PutService(web)), must(store.PutPod(w1)), must(store.PutPod(w2)))
	c.status(w1, "10.88.0.2", true)
	c.status(w2, "10.88.0.3", false)
	reg := prometheus.NewRegistry()
	const table = "runnerretry"
	startRunner(t, RunConfig{Table: table, NetNS: ns, Registerer: reg, KeepBridgeNetfilter: true}, c.cache)
	waitTable(t, ns, table, "web-1", func(l string) bool { return strings.Contains(l, `"10.88.0.2"`) })

	run(t, ns, "nft", "delete", "table", "ip", table)
	c.status(w2, "10.88.0.3", true)
	waitTable(t, ns, table, "the table rebuilt with web-2", func(l string) bool {
		return strings.Contains(l, `"10.88.0.2"`) && strings.Contains(l, `"10.88.0.3"`)
	})
	if errs, oks := metric(t, reg, "bosun_proxy_syncs_total", "error"), metric(t, reg, "bosun_proxy_syncs_total", "ok"); errs < 1 || oks < 2 {
		t.Errorf("bosun_proxy_syncs_total: %v errors, %v ok; want an error, then ok", errs, oks)
	}
}

// TestRunner_openFailsRetried: a runner that cannot open its table (a name
// too long for nftables) keeps retrying with backoff and stops on its
// context.
func TestRunner_openFailsRetried(t *testing.T) {
	ns := newNS(t)
	c := newCluster(t)
	c.apply(must(store.PutService(service("web", "10.96.0.10"))))
	reg := prometheus.NewRegistry()
	stop := startRunner(t, RunConfig{Table: strings.Repeat("x", 300), NetNS: ns, Registerer: reg, KeepBridgeNetfilter: true}, c.cache)
	time.Sleep(500 * time.Millisecond) // tries at 0, 100, 300 ms (backoff 100, 200, 400 ms)
	stop()
	if errs := metric(t, reg, "bosun_proxy_syncs_total", "error"); errs < 2 || errs > 4 {
		t.Errorf("%v failed syncs in 500 ms; want 2 to 4 (retries with backoff)", errs)
	}
}

func TestCheckTableName(t *testing.T) {
	for name, ok := range map[string]bool{
		"bosun": true, "bosune2e12": true, "bosun_test-1": true, "B": true,
		"": false, "1bosun": false, "-x": false, "bo sun": false, "bo.sun": false, strings.Repeat("x", 65): false,
	} {
		if err := CheckTableName(name); (err == nil) != ok {
			t.Errorf("CheckTableName(%q) = %v; want ok %v", name, err, ok)
		}
	}
}
