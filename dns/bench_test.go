package dns

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"bosun/store"
)

// benchCluster has nsCount namespaces with the services web, api, db and
// svc-N (3 ready pods each), matching testdata/dnsperf-queries.txt.
func benchCluster(nsCount, extraSvcs int) ([]corev1.Service, []corev1.Pod) {
	var services []corev1.Service
	var pods []corev1.Pod
	ip := 0
	for n := range nsCount {
		ns := "prod"
		if n == 1 {
			ns = "staging"
		} else if n > 1 {
			ns = "ns" + strconv.Itoa(n)
		}
		names := []string{"web", "api", "db"}
		for i := range extraSvcs {
			names = append(names, "svc-"+strconv.Itoa(i))
		}
		for _, name := range names {
			sel := map[string]string{"app": name}
			services = append(services, service(ns, name, sel,
				corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("web")},
				corev1.ServicePort{Name: "grpc", Port: 9000}))
			for p := range 3 {
				ip++
				addr := fmt.Sprintf("10.%d.%d.%d", ip>>16&255, ip>>8&255, ip&255)
				pods = append(pods, readyPod(ns, name+"-"+strconv.Itoa(p), addr, sel))
			}
		}
	}
	return services, pods
}

func BenchmarkBuildIndex(b *testing.B) {
	services, pods := benchCluster(10, 100) // 1030 services, 3090 pods
	b.ReportAllocs()
	for b.Loop() {
		BuildIndex("cluster.local", services, ptrs(pods))
	}
}

func BenchmarkAnswer(b *testing.B) {
	services, pods := benchCluster(10, 100)
	ix := BuildIndex("cluster.local", services, ptrs(pods))
	for _, bc := range []struct {
		name  string
		qname string
		qtype uint16
	}{
		{"A", "web.prod.svc.cluster.local.", mdns.TypeA},
		{"SRV", "_http._tcp.web.prod.svc.cluster.local.", mdns.TypeSRV},
		{"NXDOMAIN", "missing.prod.svc.cluster.local.", mdns.TypeA},
		{"MixedCase", "Web.Prod.svc.cluster.local.", mdns.TypeA},
		{"PodName", "10-0-0-2.web.prod.svc.cluster.local.", mdns.TypeA},
	} {
		q := query(bc.qname, bc.qtype)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ix.Answer(q)
			}
		})
	}
	// A headless Service of 4 stable pods (weight 90) and a canary (10):
	// each A answer is one group, picked at random.
	weighted := BuildIndex("cluster.local", []corev1.Service{headlessWeb()}, ptrs(canaryPods()))
	for _, bc := range []struct {
		name  string
		qname string
		qtype uint16
	}{
		{"Weighted_A", webName, mdns.TypeA},
		{"Weighted_SRV", "_http._tcp." + webName, mdns.TypeSRV},
	} {
		q := query(bc.qname, bc.qtype)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				weighted.Answer(q)
			}
		})
	}
	withClusterIPs(services)
	vip := BuildIndex("cluster.local", services, ptrs(pods))
	for _, bc := range []struct {
		name  string
		qname string
		qtype uint16
	}{
		{"VirtualIP_A", "web.prod.svc.cluster.local.", mdns.TypeA},
		{"VirtualIP_SRV", "_http._tcp.web.prod.svc.cluster.local.", mdns.TypeSRV},
	} {
		q := query(bc.qname, bc.qtype)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				vip.Answer(q)
			}
		})
	}
}

// withClusterIPs gives every Service a virtual IP of its own.
func withClusterIPs(services []corev1.Service) {
	for i := range services {
		services[i].Spec.ClusterIP = fmt.Sprintf("10.96.%d.%d", i>>8&255, i&255)
	}
}

// BenchmarkServeDNS is the in-process cost of one query after unpacking:
// lookup, EDNS0, truncation check and packing.
func BenchmarkServeDNS(b *testing.B) {
	s := handlerForTest(b)
	services, pods := benchCluster(10, 100)
	s.index.Store(BuildIndex("cluster.local", services, ptrs(pods)))
	q := query("web.prod.svc.cluster.local.", mdns.TypeA)
	q.SetEdns0(1232, false)
	w := &discardWriter{}
	b.ReportAllocs()
	for b.Loop() {
		s.ServeDNS(w, q)
	}
}

type discardWriter struct{ recorder }

func (*discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// TestServeForDNSPerf serves the benchmark cluster from an embedded store
// for dnsperf; it runs only when BOSUN_DNSPERF_SERVE is a duration. See
// doc.go for the command lines.
func TestServeForDNSPerf(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("BOSUN_DNSPERF_SERVE"))
	if err != nil {
		t.Skip("set BOSUN_DNSPERF_SERVE=30s to serve the benchmark cluster on BOSUN_DNSPERF_LISTEN (default 127.0.0.1:5353)")
	}
	listen := os.Getenv("BOSUN_DNSPERF_LISTEN")
	if listen == "" {
		listen = DefaultListen
	}
	st := store.NewTest(t)
	services, pods := benchCluster(10, 100)
	for _, svc := range services {
		putService(t, st, svc)
	}
	for _, p := range pods {
		putPod(t, st, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	s, err := New(Config{Listen: []string{listen}, Upstreams: []string{"127.0.0.1:1"}}, st)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		<-s.Ready()
		t.Logf("serving %d names on %v for %v", s.Index().Len(), s.Addrs(), d)
	}()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkBuildIndex_500Services30kPodsOneNamespace is the scale test's
// shape: 500 Services of 60 ready pods each, all in one namespace.
func BenchmarkBuildIndex_500Services30kPodsOneNamespace(b *testing.B) {
	services, pods := scaleCluster(500, 60)
	b.ReportAllocs()
	for b.Loop() {
		BuildIndex("cluster.local", services, pods)
	}
}

// BenchmarkIndexUpdate_onePodReady is what the server does on a change
// during a rollout at the scale test's shape (500 Services x 60 pods): one
// pod turns Ready (or back), every other pod is the same pointer as before
// (the cache's pods are immutable).
func BenchmarkIndexUpdate_onePodReady(b *testing.B) {
	services, ready := scaleCluster(500, 60)
	unready := slices.Clone(ready)
	unready[12345] = notReadyPtr(ready[12345])
	benchUpdates(b, services, ready, unready)
}

// BenchmarkIndexUpdate_onePodReadyCopies is the same with every pod a new
// pointer on each update, as while the snapshot holds pod values (before
// store.Snapshot.Pods is []*corev1.Pod): every pod is compared field by
// field.
func BenchmarkIndexUpdate_onePodReadyCopies(b *testing.B) {
	services, ready := scaleCluster(500, 60)
	unready := make([]*corev1.Pod, len(ready))
	for i, p := range ready {
		cp := *p
		unready[i] = &cp
	}
	unready[12345] = notReadyPtr(ready[12345])
	benchUpdates(b, services, ready, unready)
}

// benchUpdates alternates Builder.Update between two inputs that differ by
// one pod's readiness, so that every update recomputes one Service.
func benchUpdates(b *testing.B, services []corev1.Service, x, y []*corev1.Pod) {
	bl := NewBuilder("cluster.local")
	bl.Update(services, x)
	inputs := [2][]*corev1.Pod{y, x}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, st := bl.Update(services, inputs[i%2]); st.Recomputed != 1 {
			b.Fatalf("recomputed %d services, want 1", st.Recomputed)
		}
		i++
	}
}

// BenchmarkBuilder_full is the server's first load and periodic resync at
// the scale test's shape: a Builder computing every name.
func BenchmarkBuilder_full(b *testing.B) {
	services, pods := scaleCluster(500, 60)
	bl := NewBuilder("cluster.local")
	b.ReportAllocs()
	for b.Loop() {
		bl.Reset()
		bl.Update(services, pods)
	}
}

// BenchmarkBuildIndex_500Services30kPodsVirtualIPs is the scale test's
// shape once every Service has its virtual IP: its pods no longer matter.
func BenchmarkBuildIndex_500Services30kPodsVirtualIPs(b *testing.B) {
	services, pods := scaleCluster(500, 60)
	withClusterIPs(services)
	b.ReportAllocs()
	for b.Loop() {
		BuildIndex("cluster.local", services, pods)
	}
}

// BenchmarkIndexUpdate_onePodReadyVirtualIPs is
// BenchmarkIndexUpdate_onePodReady once every Service has its virtual IP:
// the pod's change recomputes nothing.
func BenchmarkIndexUpdate_onePodReadyVirtualIPs(b *testing.B) {
	services, ready := scaleCluster(500, 60)
	withClusterIPs(services)
	unready := slices.Clone(ready)
	unready[12345] = notReadyPtr(ready[12345])
	bl := NewBuilder("cluster.local")
	bl.Update(services, ready)
	inputs := [2][]*corev1.Pod{unready, ready}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, st := bl.Update(services, inputs[i%2]); st.Recomputed != 0 || st.PodsChanged != 1 {
			b.Fatalf("%+v, want one pod changed and nothing recomputed", st)
		}
		i++
	}
}

// BenchmarkIndexUpdate_onePodReadyHostnames is
// BenchmarkIndexUpdate_onePodReady with headless Services whose pods all set
// hostname and subdomain (a StatefulSet's shape): every endpoint has two
// names.
func BenchmarkIndexUpdate_onePodReadyHostnames(b *testing.B) {
	services, ready := scaleCluster(500, 60)
	for i := range services {
		services[i].Spec.ClusterIP = corev1.ClusterIPNone
	}
	for i, p := range ready {
		cp := p.DeepCopy()
		cp.Spec.Hostname, cp.Spec.Subdomain = cp.Name, cp.Labels["app"]
		ready[i] = cp
	}
	unready := slices.Clone(ready)
	unready[12345] = notReadyPtr(ready[12345])
	benchUpdates(b, services, ready, unready)
}
