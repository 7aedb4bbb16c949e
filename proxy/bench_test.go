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
// Services x 10 endpoints (11,000 chains).
func BenchmarkSyncFull(b *testing.B) {
	ns := newNS(b)
	tbl := openIn(b, ns)
	ports := benchPorts(benchServices, benchEndpoints, 0)
	b.ReportAllocs()
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

// BenchmarkSyncIncremental: one endpoint of one Service changes in a table
// of 1,000 Services x 10 endpoints (and, to show how the kernel's share
// grows with the table, of 100 and 3,000 Services).
func BenchmarkSyncIncremental(b *testing.B) {
	for _, n := range []int{benchServices, 100, 3000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) { benchIncremental(b, n) })
	}
}

func benchIncremental(b *testing.B, services int) {
	ns := newNS(b)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tbl := openIn(b, ns)
	states := [2][]ServicePort{benchPorts(services, benchEndpoints, 0), benchPorts(services, benchEndpoints, 1)}
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
		if err != nil || st.Full || st.Changed != 1 {
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
