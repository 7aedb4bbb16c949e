package kubeproxy

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/klog/v2"
	kubeproxyconfig "k8s.io/kubernetes/pkg/proxy/apis/config"
	"k8s.io/kubernetes/pkg/proxy/metrics"

	"bosun/proxy"
)

var (
	nServices  = flag.Int("services", 1000, "Services (one TCP port each) in the benchmarks")
	nEndpoints = flag.Int("endpoints", 10, "ready endpoints per Service in the benchmarks")
	nlList     = flag.Bool("nftables-netlink", true, "kube-proxy's NFTablesNetlink feature gate (beta, on by default in v1.37): list chains and sets over netlink instead of running nft")
)

func TestMain(m *testing.M) {
	flag.Parse()
	if err := utilfeature.DefaultMutableFeatureGate.Set(fmt.Sprintf("NFTablesNetlink=%t", *nlList)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	klog.SetLogger(logr.New(kubeLog))
	// As kube-proxy does at start: its sync metrics are observed on every sync.
	metrics.RegisterMetrics(kubeproxyconfig.ProxyModeNFTables)
	code := m.Run()
	printSummary()
	if errs := kubeLog.otherErrors(); len(errs) > 0 {
		fmt.Printf("kube-proxy logged these errors, none a failed sync: %s\n", strings.Join(errs, "; "))
	}
	os.Exit(code)
}

func requireRoot(tb testing.TB) {
	if os.Geteuid() != 0 {
		tb.Skip("needs root: creates network namespaces and programs nftables")
	}
}

var (
	benchOnce sync.Once
	benchIn   *inputs
	// inputHeap is the live heap the generated inputs take: the Services
	// and EndpointSlices (what kube-proxy's informers hold) and the
	// ServicePorts (what bosun's runner builds).
	objectsHeap, portsHeap int64
)

func benchInputs() *inputs {
	benchOnce.Do(func() {
		specs := generate(*nServices, *nEndpoints)
		in := &inputs{specs: specs}
		h0 := liveHeap()
		for i := range specs {
			in.services = append(in.services, specs[i].service())
			in.slices = append(in.slices, specs[i].slice())
		}
		h1 := liveHeap()
		for i := range specs {
			in.ports = append(in.ports, specs[i].servicePort())
		}
		h2 := liveHeap()
		objectsHeap, portsHeap = h1-h0, h2-h1
		benchIn = in
	})
	return benchIn
}

// liveHeap is the heap in use after a full collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// threads are the benchmarks' namespaces, one per benchmark and engine,
// kept across the benchmark's runs.
var (
	threadsMu sync.Mutex
	threads   = map[string]*nsThread{}
)

func thread(tb testing.TB, key string) *nsThread {
	threadsMu.Lock()
	defer threadsMu.Unlock()
	th, ok := threads[key]
	if !ok {
		var err error
		if th, err = newNSThread(); err != nil {
			tb.Fatal(err)
		}
		threads[key] = th
	}
	return th
}

// checkPlace fails unless e's table is in th's namespace, and, for
// kube-proxy, not in the host's.
func checkPlace(tb testing.TB, th *nsThread, e engine) {
	var in []string
	var err error
	th.do(func() { in, err = tables() })
	if err != nil {
		tb.Fatal(err)
	}
	if !slices.Contains(in, e.table()) {
		tb.Fatalf("%s: table %q not in the benchmark's network namespace (tables there: %v)", e.name(), e.table(), in)
	}
	if e.name() != "kube-proxy" {
		return // bosun's table name may be in use on the host by an agent
	}
	var host []string
	if err := inHost(func() (err error) { host, err = tables(); return err }); err != nil {
		tb.Fatal(err)
	}
	if slices.Contains(host, e.table()) {
		tb.Fatalf("table %q is in the host's network namespace too", e.table())
	}
}

// BenchmarkFullSync: a new engine instance gets every Service and programs
// its table from nothing (the table is deleted before each op, untimed).
// Timed: for bosun, Table.Sync of all the ports; for kube-proxy, the
// informer handler calls for every Service and EndpointSlice and the first
// sync they lead to. Reported besides ns/op: the table's chains, rules,
// set and map elements (nft -j list table), and heap-B, the live heap the
// engine instance keeps after its sync (measured after a GC, without the
// inputs, which are shared).
func BenchmarkFullSync(b *testing.B) {
	requireRoot(b)
	in := benchInputs()
	for _, mk := range engines {
		name := mk().name()
		b.Run("engine="+name, func(b *testing.B) {
			th := thread(b, "full/"+name)
			var e engine
			var heap int64
			var err error
			var cpu cpuMeter
			b.StopTimer()
			for range b.N {
				if e != nil {
					th.do(func() { err = e.stop() })
					if err != nil {
						b.Fatal(err)
					}
					e = nil
				}
				th.do(func() { err = proxy.Cleanup(proxy.Config{Table: mk().table(), NetNS: th.ns}) })
				if err != nil {
					b.Fatal(err)
				}
				before := liveHeap()
				e = mk()
				th.do(func() { err = e.start(th) })
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				cpu.start()
				th.do(func() { err = e.load(in) })
				cpu.stop()
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				heap = liveHeap() - before
				runtime.KeepAlive(e)
			}
			checkPlace(b, th, e)
			var st tableStats
			th.do(func() { st, err = statsOf(e.table()) })
			if err != nil {
				b.Fatal(err)
			}
			th.do(func() { err = e.stop() })
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(st.Chains), "chains")
			b.ReportMetric(float64(st.Rules), "rules")
			b.ReportMetric(float64(st.Elements), "elements")
			b.ReportMetric(float64(heap), "heap-B")
			cpu.report(b)
			record(b, "full", name, result{ns: b.Elapsed().Nanoseconds() / int64(b.N), cpu: cpu.total / time.Duration(b.N), stats: st, heap: heap})
		})
	}
}

// incState is an engine instance loaded with every Service, kept across
// the runs of BenchmarkIncrementalSync.
type incState struct {
	th  *nsThread
	e   engine
	svc int        // the Service whose endpoint changes
	cur netip.Addr // the endpoint to replace next
	n   int        // replacements so far
}

var (
	incMu     sync.Mutex
	incStates = map[string]*incState{}
)

// BenchmarkIncrementalSync: with every Service programmed, one endpoint of
// one Service is replaced by a new pod (a new address each op, so every
// op adds one endpoint and removes one) and the engine updates its table.
// Timed: building that one Service's new input (an EndpointSlice for
// kube-proxy, a ServicePort for bosun), handing it to the engine, and the
// sync.
func BenchmarkIncrementalSync(b *testing.B) {
	requireRoot(b)
	in := benchInputs()
	for _, mk := range engines {
		name := mk().name()
		b.Run("engine="+name, func(b *testing.B) {
			s := loaded(b, in, name, mk)
			var err error
			var cpu cpuMeter
			b.ResetTimer()
			cpu.start()
			for range b.N {
				s.n++
				next := replacedIP(s.n)
				th, e, svc, cur := s.th, s.e, s.svc, s.cur
				th.do(func() { err = e.replace(svc, cur, next) })
				if err != nil {
					b.Fatal(err)
				}
				s.cur = next
			}
			cpu.stop()
			b.StopTimer()
			cpu.report(b)
			record(b, "incremental", name, result{ns: b.Elapsed().Nanoseconds() / int64(b.N), cpu: cpu.total / time.Duration(b.N)})
		})
	}
}

func loaded(b *testing.B, in *inputs, name string, mk func() engine) *incState {
	incMu.Lock()
	defer incMu.Unlock()
	if s, ok := incStates[name]; ok {
		return s
	}
	th := thread(b, "incremental/"+name)
	e := mk()
	var err error
	th.do(func() {
		if err = e.start(th); err == nil {
			err = e.load(in)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	checkPlace(b, th, e)
	svc := len(in.specs) / 2
	s := &incState{th: th, e: e, svc: svc, cur: in.specs[svc].Endpoints[len(in.specs[svc].Endpoints)/2].IP}
	incStates[name] = s
	return s
}

// The summary: every benchmark run's result, by benchmark and engine. A
// run starts with b.N == 1 (testing's probe run); the last invocation of a
// run is the one testing reports.
type result struct {
	ns    int64
	cpu   time.Duration // per op
	stats tableStats
	heap  int64
}

var (
	resultsMu sync.Mutex
	results   = map[string][][]result{} // "full/bosun" -> runs -> invocations
)

func record(b *testing.B, bench, engine string, r result) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	k := bench + "/" + engine
	if b.N == 1 || len(results[k]) == 0 {
		results[k] = append(results[k], nil)
	}
	runs := results[k]
	runs[len(runs)-1] = append(runs[len(runs)-1], r)
}

// median of what f picks from the reported result of every run.
func median(k string, f func(result) float64) (float64, int) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	var vs []float64
	for _, run := range results[k] {
		if len(run) > 0 {
			vs = append(vs, f(run[len(run)-1]))
		}
	}
	if len(vs) == 0 {
		return 0, 0
	}
	slices.Sort(vs)
	m := vs[len(vs)/2]
	if len(vs)%2 == 0 {
		m = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
	}
	return m, len(vs)
}

func printSummary() {
	ms := func(r result) float64 { return float64(r.ns) / float64(time.Millisecond) }
	var parts []string
	runs := 0
	for _, bench := range []string{"full", "incremental"} {
		bo, n := median(bench+"/bosun", ms)
		kp, n2 := median(bench+"/kube-proxy", ms)
		if n == 0 || n2 == 0 {
			continue
		}
		runs = max(runs, min(n, n2))
		cpuOf := func(k string) float64 {
			v, _ := median(k, func(r result) float64 { return float64(r.cpu) / float64(time.Millisecond) })
			return v
		}
		parts = append(parts, fmt.Sprintf("%s sync bosun %.2f ms (CPU %.2f ms), kube-proxy %.2f ms (CPU %.2f ms with nft) = %.1fx bosun's time",
			bench, bo, cpuOf(bench+"/bosun"), kp, cpuOf(bench+"/kube-proxy"), kp/bo))
	}
	for _, eng := range []string{"bosun", "kube-proxy"} {
		k := "full/" + eng
		c, n := median(k, func(r result) float64 { return float64(r.stats.Chains) })
		if n == 0 {
			continue
		}
		r, _ := median(k, func(r result) float64 { return float64(r.stats.Rules) })
		el, _ := median(k, func(r result) float64 { return float64(r.stats.Elements) })
		h, _ := median(k, func(r result) float64 { return float64(r.heap) / (1 << 20) })
		parts = append(parts, fmt.Sprintf("%s %.0f chains, %.0f rules, %.0f elements, heap %.1f MiB", eng, c, r, el, h))
	}
	if len(parts) == 0 {
		return
	}
	fmt.Printf("Summary (%d Services x %d endpoints, kube-proxy NFTablesNetlink=%t, medians of %d runs; inputs: Service+EndpointSlice objects %.1f MiB, ServicePorts %.1f MiB): %s\n",
		*nServices, *nEndpoints, *nlList, runs, float64(objectsHeap)/(1<<20), float64(portsHeap)/(1<<20), strings.Join(parts, "; "))
}

// cpuMeter adds up the CPU time (user and system) of this process and of
// its children (the nft processes knftables runs, counted once waited
// for) over the timed regions: on a shared machine it says more than the
// wall clock, and the wall clock of kube-proxy's syncs hides the nft
// processes' share.
type cpuMeter struct {
	self0, children0 time.Duration
	self, children   time.Duration
	total            time.Duration
}

func rusage(who int) time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(who, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (c *cpuMeter) start() {
	c.self0, c.children0 = rusage(unix.RUSAGE_SELF), rusage(unix.RUSAGE_CHILDREN)
}

func (c *cpuMeter) stop() {
	c.self += rusage(unix.RUSAGE_SELF) - c.self0
	c.children += rusage(unix.RUSAGE_CHILDREN) - c.children0
	c.total = c.self + c.children
}

// report adds cpu-ms/op (this process and nft) and nft-cpu-ms/op (nft).
func (c *cpuMeter) report(b *testing.B) {
	n := float64(b.N) * float64(time.Millisecond)
	b.ReportMetric(float64(c.total)/n, "cpu-ms/op")
	b.ReportMetric(float64(c.children)/n, "nft-cpu-ms/op")
}
