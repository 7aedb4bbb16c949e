package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"

	"bosun/store"
)

// BenchmarkRunner_readyToReachable measures what a node's runner adds to a
// pod becoming ready: from the write of its Ready status to the store
// (embedded etcd) to the first connection through its Service's VIP that
// reaches it (the cache sees the write, the runner computes the ports and
// syncs one transaction), and from its NotReady status to the first
// connection refused. A client in the runner's network namespace connects
// to the VIP in a tight loop (a refused connect takes a few µs, so the
// resolution is that fine). Each change follows a quiet time longer than
// MinSyncInterval. slow-connects counts the connects that took over
// 500 ms (a SYN lost while the rules changed, answered only on its
// retransmission 1 s later), hung-connects those that neither connected
// nor were refused within 1 s. services=1000 runs it beside 999 other Services of 10
// ready endpoints each, and reports the memory an agent holds for 1,000
// Services x 10 endpoints (Go heap after a collection: heap-MB in all,
// cache-heap-MB for the cache of services, pods and statuses,
// runner-heap-MB for the PortsBuilder and the Table), and the mean time
// of the full and incremental syncs (bosun_proxy_sync_seconds).
//
//	go test -run XXX -bench Runner_readyToReachable -benchtime 200x ./proxy/
func BenchmarkRunner_readyToReachable(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) { benchReadyToReachable(b, n) })
	}
}

func benchReadyToReachable(b *testing.B, services int) {
	ns := newNS(b)
	for _, args := range [][]string{
		{"link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"addr", "add", "10.200.0.1/24", "dev", "v0"}, // the client's source
		{"addr", "add", "10.200.0.2/24", "dev", "v0"}, // the measured pod
		{"link", "set", "v1", "up"},
		{"link", "set", "v0", "up"},
		{"route", "add", "default", "dev", "v0"}, // the node's route to the service CIDR
	} {
		run(b, ns, "ip", args...)
	}
	var l net.Listener
	if err := inNS(b, ns, func() (err error) { l, err = net.Listen("tcp4", "10.200.0.2:8080"); return err }); err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	st := store.NewTest(b)
	ctx := context.Background()
	lead, err := st.Campaign(ctx, "bench", store.DefaultSessionTTL)
	if err != nil {
		b.Fatal(err)
	}
	defer lead.Resign(ctx)
	c := &cluster{t: b, st: st, lead: lead}
	background(b, c, services-1, 10)
	measured := pod("measured", "measured-1", 8080)
	c.apply(must(store.PutService(service("measured", "10.96.255.1"))), must(store.PutPod(measured)))
	c.status(measured, "10.200.0.2", false)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	c.cache = store.RunTestCache(b, st, CacheConfig())
	if _, err := c.cache.Snapshot(ctx); err != nil { // listed, and the snapshot built
		b.Fatal(err)
	}
	runtime.GC()
	var cached runtime.MemStats
	runtime.ReadMemStats(&cached)
	reg := prometheus.NewRegistry()
	startRunner(b, RunConfig{Table: "benchready", NetNS: ns, Registerer: reg, KeepBridgeNetfilter: true}, c.cache)
	start := time.Now()
	for metric(b, reg, "bosun_proxy_service_ports") != float64(services) {
		if time.Since(start) > 2*time.Minute {
			b.Fatal("the runner did not program every Service in 2 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	vip := "10.96.255.1:80"
	// dial connects to the VIP from the namespace until the connection
	// succeeds (want true) or is refused (want false), and returns when. A
	// connect that times out (1 s) instead is counted in hung.
	hung, slow := 0, 0
	dial := func(want bool) time.Time {
		var at time.Time
		err := inNS(b, ns, func() error {
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				d0 := time.Now()
				conn, err := net.DialTimeout("tcp4", vip, time.Second)
				if time.Since(d0) > 500*time.Millisecond {
					slow++
				}
				if err == nil {
					conn.Close()
				}
				if (err == nil) == want {
					at = time.Now()
					return nil
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					hung++
					continue
				}
				if err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
					return err
				}
			}
			return fmt.Errorf("%s: still not %v after 10 s", vip, want)
		})
		if err != nil {
			b.Fatal(err)
		}
		return at
	}
	dial(false)
	var up, down, write []time.Duration
	// Each change comes after a quiet time longer than MinSyncInterval, as
	// a pod's readiness usually does (in a burst, the runner syncs at most
	// once per MinSyncInterval, 10 ms).
	const quiet = 30 * time.Millisecond
	b.ResetTimer()
	for range b.N {
		time.Sleep(quiet)
		t0 := time.Now()
		c.status(measured, "10.200.0.2", true)
		write = append(write, time.Since(t0))
		up = append(up, dial(true).Sub(t0))
		time.Sleep(quiet)
		t0 = time.Now()
		c.status(measured, "10.200.0.2", false)
		down = append(down, dial(false).Sub(t0))
	}
	b.StopTimer()
	slices.Sort(up)
	slices.Sort(down)
	slices.Sort(write)
	pct := func(d []time.Duration, p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(up, 0.5), "ready-p50-ms")
	b.ReportMetric(pct(up, 0.99), "ready-p99-ms")
	b.ReportMetric(pct(down, 0.5), "notready-p50-ms")
	b.ReportMetric(pct(down, 0.99), "notready-p99-ms")
	b.ReportMetric(pct(write, 0.5), "write-p50-ms")
	b.ReportMetric(float64(hung), "hung-connects")
	b.ReportMetric(float64(slow), "slow-connects")
	b.ReportMetric(0, "ns/op")
	if services > 1 {
		mb := func(a, b runtime.MemStats) float64 { return float64(int64(a.HeapAlloc)-int64(b.HeapAlloc)) / (1 << 20) }
		b.ReportMetric(mb(after, before), "heap-MB")
		b.ReportMetric(mb(cached, before), "cache-heap-MB")
		b.ReportMetric(mb(after, cached), "runner-heap-MB")
	}
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "bosun_proxy_sync_seconds" {
			continue
		}
		for _, m := range mf.Metric {
			h := m.GetHistogram()
			b.ReportMetric(1000*h.GetSampleSum()/float64(h.GetSampleCount()), "sync-"+m.GetLabel()[0].GetValue()+"-ms")
			b.ReportMetric(float64(h.GetSampleCount()), "syncs-"+m.GetLabel()[0].GetValue())
		}
	}
	b.ReportMetric(metric(b, reg, "bosun_proxy_syncs_total", "error"), "syncs-failed")
}

// background writes n Services of pods ready endpoints each (addresses in
// 10.0.0.0/8 nothing answers at), straight to etcd in batches.
func background(b testing.TB, c *cluster, n, pods int) {
	b.Helper()
	if n <= 0 {
		return
	}
	var ops []store.Op
	var statuses []clientv3.Op
	for i := range n {
		app := fmt.Sprintf("bg-%04d", i)
		ops = append(ops, must(store.PutService(service(app, fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)))))
		for j := range pods {
			p := pod(app, fmt.Sprintf("%s-%d", app, j), 8080)
			ops = append(ops, must(store.PutPod(p)))
			k := i*pods + j
			v, err := json.Marshal(store.PodStatus{UID: p.UID, Node: "n1", Status: corev1.PodStatus{
				Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.%d.%d.%d", 100+k/62500, k/250%250, k%250+1),
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			}})
			if err != nil {
				b.Fatal(err)
			}
			statuses = append(statuses, clientv3.OpPut(store.PodStatusKey("n1", p.Namespace, p.Name), string(v)))
		}
	}
	c.apply(ops...)
	for len(statuses) > 0 {
		batch := statuses[:min(100, len(statuses))]
		statuses = statuses[len(batch):]
		if _, err := c.st.Client().Txn(context.Background()).Then(batch...).Commit(); err != nil {
			b.Fatal(err)
		}
	}
}
