package proxy

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// benchPorts is services Services of one TCP port with endpoints endpoints
// each; variant moves the last endpoint of the first Service.
func benchPorts(services, endpoints, variant int) []ServicePort {
	ports := make([]ServicePort, services)
	for s := range ports {
		g := Group{}
		for e := range endpoints {
			ip := netip.AddrFrom4([4]byte{10, byte(100 + s/250), byte(s % 250), byte(e + 2)})
			g.Endpoints = append(g.Endpoints, Endpoint{IP: ip, Port: 8080})
		}
		if s == 0 && variant%2 == 1 {
			g.Endpoints[endpoints-1].IP = netip.AddrFrom4([4]byte{10, 99, 0, 2})
		}
		ports[s] = ServicePort{
			Namespace: "default", Name: fmt.Sprintf("svc-%04d", s), PortName: "http", Protocol: corev1.ProtocolTCP,
			ClusterIP: netip.AddrFrom4([4]byte{10, 96, byte(s / 250), byte(s%250 + 1)}), Port: 80,
			Groups: []Group{g},
		}
	}
	return ports
}

const benchServices, benchEndpoints = 1000, 10

// BenchmarkSyncFull: one transaction that rebuilds the table for 1,000
// Services x 10 endpoints (1,000 service chains and backends maps).
func BenchmarkSyncFull(b *testing.B) {
	b.ReportAllocs()
	benchRebuild(b, benchServices)
}

// benchRebuild times full rebuilds of a table of n Services x
// benchEndpoints endpoints.
func benchRebuild(b *testing.B, n int) {
	ns := newNS(b)
	tbl := openIn(b, ns)
	ports := benchPorts(n, benchEndpoints, 0)
	start := time.Now()
	user0, sys0 := cpuTime()
	for b.Loop() {
		tbl.mu.Lock()
		tbl.programmed = nil // as after Open or a failure: rebuild
		tbl.mu.Unlock()
		if st, err := tbl.Sync(ports); err != nil || !st.Full {
			b.Fatal(st, err)
		}
	}
	reportTimes(b, start, user0, sys0)
}

// BenchmarkRebuildScale: BenchmarkSyncFull at other sizes. The kernel
// finds a set by name by walking the table's list of sets (to refuse a
// second set of the same name, then for each rule and element message
// that names it), so creating one numgen map per service port grows with
// the square of their number. Not matched by -bench Sync: a run at 4,000
// Services takes a while.
func BenchmarkRebuildScale(b *testing.B) {
	for _, n := range []int{500, 2000, 4000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) { benchRebuild(b, n) })
	}
}

// BenchmarkSyncIncremental: one endpoint of one Service changes in a table
// of 1,000 Services x 10 endpoints, and of 100, 3,000 and 10,000 Services
// to show whether the cost grows with the table (the kernel validates the
// whole table at a commit that adds a verdict; an endpoint change adds
// none).
func BenchmarkSyncIncremental(b *testing.B) {
	for _, n := range []int{benchServices, 100, 3000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			benchChange(b, benchPorts(n, benchEndpoints, 0), benchPorts(n, benchEndpoints, 1), true)
		})
	}
}

// BenchmarkSyncOtherChanges: other single changes at 1,000 Services x 10
// endpoints. no-endpoints: the first Service loses all its endpoints, then
// gets them back (elements only, as an endpoint change). add-service: a
// Service comes and goes (a chain and a verdict: the kernel validates the
// table). affinity-endpoint: one endpoint of a Service with ClientIP
// affinity changes (its endpoint chains: validated too).
func BenchmarkSyncOtherChanges(b *testing.B) {
	b.Run("no-endpoints", func(b *testing.B) {
		a := benchPorts(benchServices, benchEndpoints, 0)
		none := cloneState(a)
		none[0].Groups = nil
		benchChange(b, a, none, true)
	})
	b.Run("add-service", func(b *testing.B) {
		a := benchPorts(benchServices+1, benchEndpoints, 0)
		benchChange(b, a[:benchServices], a, false)
	})
	b.Run("affinity-endpoint", func(b *testing.B) {
		a, c := benchPorts(benchServices, benchEndpoints, 0), benchPorts(benchServices, benchEndpoints, 1)
		a[0].AffinityTimeout, c[0].AffinityTimeout = time.Hour, time.Hour
		benchChange(b, a, c, true)
	})
}

// benchChange syncs a and b in turn, after a first full Sync of a. changed
// says whether one port changes between them (else one is added and
// removed).
func benchChange(b *testing.B, x, y []ServicePort, changed bool) {
	ns := newNS(b)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tbl := openIn(b, ns)
	states := [2][]ServicePort{x, y}
	mustSync(b, tbl, states[0])
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportAllocs()
	i := 0
	start := time.Now()
	user0, sys0 := cpuTime()
	for b.Loop() {
		i++
		st, err := tbl.Sync(states[i%2])
		if err != nil || st.Full || (changed && st.Changed != 1) || (!changed && st.Added+st.Removed != 1) {
			b.Fatal(st, err)
		}
	}
	reportTimes(b, start, user0, sys0)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "table-heap-MB")
	runtime.KeepAlive(tbl)
}

// cpuTime is the process's user and system CPU time: on a loaded machine
// (CI shares its cores) it says more than the wall clock.
func cpuTime() (user, sys time.Duration) {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

func reportTimes(b *testing.B, start time.Time, user0, sys0 time.Duration) {
	user, sys := cpuTime()
	n := float64(b.N)
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/n, "ms/sync")
	b.ReportMetric(float64((user-user0).Microseconds())/1000/n, "user-ms/sync")
	b.ReportMetric(float64((sys-sys0).Microseconds())/1000/n, "sys-ms/sync")
}
