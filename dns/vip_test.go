package dns

import (
	"slices"
	"strconv"
	"testing"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"bosun/store"
)

// vipIndex is the fixture of the virtual IP and per-pod name tests, in
// namespace prod:
//   - web: clusterIP 10.96.0.10, selects app=web (3 ready pods, 1 not ready)
//   - dual: clusterIPs 10.96.0.11 and fd00:96::11, no pods at all
//   - db: headless, selects app=db; db-0 and db-1 set hostname and
//     subdomain db, db-2 sets none, db-3 names another subdomain, db-4 is
//     not ready
//   - pending: clusterIP not allocated yet, selects app=web
//   - bad: clusterIP "10.96.0.300"
//   - cache: headless, two ready pods sharing the hostname "shared"
func vipIndex() *Index {
	web := map[string]string{"app": "web"}
	db := map[string]string{"app": "db"}
	cache := map[string]string{"app": "cache"}
	withIP := func(svc corev1.Service, ips ...string) corev1.Service {
		svc.Spec.ClusterIP = ips[0]
		if len(ips) > 1 {
			svc.Spec.ClusterIPs = ips
		}
		return svc
	}
	named := func(p corev1.Pod, hostname, subdomain string) corev1.Pod {
		p.Spec.Hostname, p.Spec.Subdomain = hostname, subdomain
		return p
	}
	http := corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("web")}
	services := []corev1.Service{
		withIP(service("prod", "web", web, http,
			corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(5300)},
			corev1.ServicePort{Port: 81}), "10.96.0.10"),
		withIP(service("prod", "dual", map[string]string{"app": "nothing"}, http), "10.96.0.11", "fd00:96::11"),
		withIP(service("prod", "db", db, http, corev1.ServicePort{Name: "metrics", Port: 9090}), corev1.ClusterIPNone),
		service("prod", "pending", web, http),
		withIP(service("prod", "bad", web, http), "10.96.0.300"),
		withIP(service("prod", "cache", cache), corev1.ClusterIPNone),
	}
	pods := []corev1.Pod{
		readyPod("prod", "web-1", "10.0.0.1", web),
		readyPod("prod", "web-2", "10.0.0.2", web),
		readyPod("prod", "web-3", "10.0.0.3", web),
		notReady(readyPod("prod", "web-4", "10.0.0.4", web)),
		named(readyPod("prod", "db-0", "10.0.1.10", db), "db-0", "db"),
		named(readyPod("prod", "db-1", "10.0.1.9", db), "DB-1", "db"),
		readyPod("prod", "db-2", "10.0.1.8", db),
		named(readyPod("prod", "db-3", "10.0.1.7", db), "db-3", "web"),
		notReady(named(readyPod("prod", "db-4", "10.0.1.6", db), "db-4", "db")),
		named(readyPod("prod", "cache-1", "10.0.2.2", cache), "shared", "cache"),
		named(readyPod("prod", "cache-2", "10.0.2.1", cache), "shared", "cache"),
		// Selected by no headless Service: its hostname names nothing.
		named(readyPod("prod", "web-5", "10.0.0.5", web), "front", "web"),
	}
	return BuildIndex("cluster.local", services, ptrs(pods), WithTTL(7))
}

func TestIndexAnswer_virtualIPsAndPodNames(t *testing.T) {
	ix := vipIndex()
	const (
		web   = "web.prod.svc.cluster.local."
		db    = "db.prod.svc.cluster.local."
		cache = "cache.prod.svc.cluster.local."
	)
	soa := []string{"cluster.local. SOA ns.dns.cluster.local."}
	tests := []struct {
		name   string
		q      string
		qtype  uint16
		rcode  int
		answer []string
		ns     []string
		extra  []string
	}{
		// A Service with a virtual IP: that address, whatever its pods.
		{name: "A of a Service with a clusterIP is the clusterIP alone", q: web, qtype: mdns.TypeA,
			answer: []string{web + " A 10.96.0.10"}},
		{name: "AAAA of an IPv4 clusterIP is NODATA", q: web, qtype: mdns.TypeAAAA, ns: soa},
		{name: "SRV of a clusterIP Service: the service port, the Service's own name", q: "_http._tcp." + web, qtype: mdns.TypeSRV,
			answer: []string{"_http._tcp." + web + " SRV " + web + " 80 w100"},
			extra:  []string{web + " A 10.96.0.10"}},
		{name: "SRV of a UDP port gives the service port, not the targetPort", q: "_dns._udp." + web, qtype: mdns.TypeSRV,
			answer: []string{"_dns._udp." + web + " SRV " + web + " 53 w100"},
			extra:  []string{web + " A 10.96.0.10"}},
		{name: "no per-pod names under a clusterIP Service", q: "10-0-0-1." + web, qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, ns: soa},
		{name: "a hostname whose subdomain names a clusterIP Service names nothing", q: "front." + web, qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, ns: soa},
		{name: "a clusterIP Service without endpoints still answers", q: "dual.prod.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"dual.prod.svc.cluster.local. A 10.96.0.11"}},
		{name: "clusterIPs: the IPv6 address as AAAA", q: "dual.prod.svc.cluster.local.", qtype: mdns.TypeAAAA,
			answer: []string{"dual.prod.svc.cluster.local. AAAA fd00:96::11"}},
		{name: "clusterIPs: SRV additional records carry every address", q: "_http._tcp.dual.prod.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{"_http._tcp.dual.prod.svc.cluster.local. SRV dual.prod.svc.cluster.local. 80 w100"},
			extra:  []string{"dual.prod.svc.cluster.local. A 10.96.0.11", "dual.prod.svc.cluster.local. AAAA fd00:96::11"}},
		{name: "a clusterIP that is not an address answers nothing", q: "bad.prod.svc.cluster.local.", qtype: mdns.TypeA, ns: soa},

		// Not allocated yet: as before virtual IPs, the ready pods.
		{name: "a Service without a clusterIP yet answers its ready pods", q: "pending.prod.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{
				"pending.prod.svc.cluster.local. A 10.0.0.1", "pending.prod.svc.cluster.local. A 10.0.0.2",
				"pending.prod.svc.cluster.local. A 10.0.0.3", "pending.prod.svc.cluster.local. A 10.0.0.5",
			}},
		{name: "a Service without a clusterIP yet has per-pod names", q: "10-0-0-2.pending.prod.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"10-0-0-2.pending.prod.svc.cluster.local. A 10.0.0.2"}},

		// Headless: ready pods, a name per endpoint.
		{name: "A of a headless Service is its ready pods", q: db, qtype: mdns.TypeA,
			answer: []string{db + " A 10.0.1.7", db + " A 10.0.1.8", db + " A 10.0.1.9", db + " A 10.0.1.10"}},
		{name: "every ready endpoint has its dashed name", q: "10-0-1-8." + db, qtype: mdns.TypeA,
			answer: []string{"10-0-1-8." + db + " A 10.0.1.8"}},
		{name: "an endpoint with a hostname keeps its dashed name", q: "10-0-1-10." + db, qtype: mdns.TypeA,
			answer: []string{"10-0-1-10." + db + " A 10.0.1.10"}},
		{name: "hostname.subdomain names the pod", q: "db-0." + db, qtype: mdns.TypeA,
			answer: []string{"db-0." + db + " A 10.0.1.10"}},
		{name: "hostnames are case-insensitive", q: "DB-1.db.prod.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"db-1." + db + " A 10.0.1.9"}},
		{name: "a hostname with another subdomain is not a name here", q: "db-3." + db, qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, ns: soa},
		{name: "a pod that is not ready has no names", q: "db-4." + db, qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, ns: soa},
		{name: "a not-ready pod has no dashed name", q: "10-0-1-6." + db, qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, ns: soa},
		{name: "SRV targets of a headless Service are the per-pod names", q: "_http._tcp." + db, qtype: mdns.TypeSRV,
			answer: []string{
				"_http._tcp." + db + " SRV 10-0-1-7." + db + " 8080 w25",
				"_http._tcp." + db + " SRV 10-0-1-8." + db + " 8080 w25",
				"_http._tcp." + db + " SRV db-1." + db + " 8080 w25",
				"_http._tcp." + db + " SRV db-0." + db + " 8080 w25",
			},
			extra: []string{
				"10-0-1-7." + db + " A 10.0.1.7", "10-0-1-8." + db + " A 10.0.1.8",
				"db-1." + db + " A 10.0.1.9", "db-0." + db + " A 10.0.1.10",
			}},
		{name: "two pods with one hostname share the name", q: "shared." + cache, qtype: mdns.TypeA,
			answer: []string{"shared." + cache + " A 10.0.2.1", "shared." + cache + " A 10.0.2.2"}},
		{name: "a headless Service without named ports still names its pods", q: "10-0-2-1." + cache, qtype: mdns.TypeA,
			answer: []string{"10-0-2-1." + cache + " A 10.0.2.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ix.Answer(query(tt.q, tt.qtype))
			checkReply(t, r, tt.rcode, tt.answer, tt.ns, tt.extra)
			if _, err := r.Pack(); err != nil {
				t.Errorf("reply does not pack: %v", err)
			}
		})
	}
	want := []string{`prod/bad: clusterIP "10.96.0.300": not an IP address`}
	if !slices.Equal(ix.Skipped, want) {
		t.Errorf("skipped = %q, want %q", ix.Skipped, want)
	}
}

// TestBuilder_podsDoNotRecomputeVirtualIPServices: once a Service has its
// virtual IP, its pods coming and going cost DNS nothing.
func TestBuilder_podsDoNotRecomputeVirtualIPServices(t *testing.T) {
	services, pods := scaleCluster(20, 5)
	for i := range services {
		services[i].Spec.ClusterIP = "10.96.0." + strconv.Itoa(i+1)
	}
	b := NewBuilder("cluster.local")
	first, _ := b.Update(services, pods)
	pods = slices.Clone(pods)
	pods[7] = notReadyPtr(pods[7])
	ix, stats := b.Update(services, pods)
	if stats.PodsChanged != 1 || stats.Recomputed != 0 || ix != first {
		t.Fatalf("one pod unready: %+v, same index %v; want nothing recomputed", stats, ix == first)
	}
	// Turning headless makes the pods matter again.
	services = slices.Clone(services)
	services[1].Spec.ClusterIP = corev1.ClusterIPNone
	ix, stats = b.Update(services, pods)
	if stats.Recomputed != 1 {
		t.Fatalf("one Service turned headless: %+v, want 1 recomputed", stats)
	}
	sameAnswers(t, "headless", ix, BuildIndex("cluster.local", services, pods))
	pods = slices.Clone(pods)
	pods[7] = readyPtr(pods[7]) // app-1's
	ix, stats = b.Update(services, pods)
	if stats.Recomputed != 1 {
		t.Fatalf("a pod of the headless Service ready: %+v, want 1 recomputed", stats)
	}
	sameAnswers(t, "pod ready", ix, BuildIndex("cluster.local", services, pods))
}

// TestServer_serviceAnswersItsVirtualIPOnceAllocated follows a Service in
// the store from no clusterIP (its ready pods answer, as before virtual
// IPs) to an allocated one (the virtual IP alone), and to headless.
func TestServer_serviceAnswersItsVirtualIPOnceAllocated(t *testing.T) {
	st := store.NewTest(t)
	svc := service("prod", "web", webLabels, corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("web")})
	putService(t, st, svc)
	putPod(t, st, readyPod("prod", "web-1", "10.0.0.2", webLabels))
	putPod(t, st, readyPod("prod", "web-2", "10.0.0.1", webLabels))
	s := startServer(t, st, Config{})
	addr := s.Addrs()[0]
	const name = "web.prod.svc.cluster.local."

	waitAnswer(t, addr, name, mdns.RcodeSuccess, []string{"10.0.0.1", "10.0.0.2"})

	svc.Spec.ClusterIP = "10.96.0.10"
	putService(t, st, svc)
	waitAnswer(t, addr, name, mdns.RcodeSuccess, []string{"10.96.0.10"})
	r := exchange(t, "udp", addr, query("_http._tcp."+name, mdns.TypeSRV))
	if got, want := values(r.Answer), []string{"_http._tcp." + name + " SRV " + name + " 80 w100"}; !slices.Equal(got, want) {
		t.Errorf("SRV = %q, want %q", got, want)
	}
	waitAnswer(t, addr, "10-0-0-1."+name, mdns.RcodeNameError, nil)

	svc.Spec.ClusterIP = corev1.ClusterIPNone
	putService(t, st, svc)
	waitAnswer(t, addr, name, mdns.RcodeSuccess, []string{"10.0.0.1", "10.0.0.2"})
	waitAnswer(t, addr, "10-0-0-1."+name, mdns.RcodeSuccess, []string{"10.0.0.1"})
}
