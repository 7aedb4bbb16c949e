package dns

import (
	"slices"
	"strconv"
	"testing"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func service(ns, name string, sel map[string]string, ports ...corev1.ServicePort) corev1.Service {
	return corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Selector: sel, Ports: ports},
	}
}

func readyPod(ns, name, ip string, labels map[string]string) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:  "app",
			Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: 8080}, {Name: "dns", ContainerPort: 5300, Protocol: corev1.ProtocolUDP}},
		}}},
		Status: corev1.PodStatus{
			PodIP:      ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

func notReady(p corev1.Pod) corev1.Pod {
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
	return p
}

func deleting(p corev1.Pod) corev1.Pod {
	now := metav1.Unix(1700000000, 0)
	p.DeletionTimestamp = &now
	return p
}

// testIndex is the fixture of the table tests: web (3 ready pods and 4 that
// must be left out), an empty service, a selector-less one, a dual-stack one.
func testIndex() *Index {
	web := map[string]string{"app": "web"}
	services := []corev1.Service{
		service("prod", "web", web,
			corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("web")},
			corev1.ServicePort{Name: "metrics", Port: 9090},
			corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(5300)},
			corev1.ServicePort{Port: 81}, // unnamed: no SRV
		),
		service("prod", "empty", map[string]string{"app": "nothing"}, corev1.ServicePort{Name: "http", Port: 80}),
		service("prod", "manual", nil),
		service("prod", "v6", map[string]string{"app": "v6"}),
		service("prod", "Bad.Name", web),
	}
	pods := []corev1.Pod{
		readyPod("prod", "web-2", "10.0.0.12", web),
		readyPod("prod", "web-1", "10.0.0.9", web),
		readyPod("prod", "web-3", "10.0.0.10", map[string]string{"app": "web", "extra": "x"}),
		notReady(readyPod("prod", "web-4", "10.0.0.20", web)),
		deleting(readyPod("prod", "web-5", "10.0.0.21", web)),
		readyPod("prod", "web-6", "", web),            // no IP yet
		readyPod("staging", "web-1", "10.0.1.1", web), // other namespace
		readyPod("prod", "other", "10.0.0.30", map[string]string{"app": "api"}),
		readyPod("prod", "v6-1", "fd00::2", map[string]string{"app": "v6"}),
		readyPod("prod", "v6-2", "10.0.0.40", map[string]string{"app": "v6"}),
	}
	// A pod without Ready condition at all is not ready.
	noCond := readyPod("prod", "web-7", "10.0.0.22", web)
	noCond.Status.Conditions = nil
	pods = append(pods, noCond)
	return BuildIndex("Cluster.Local", services, ptrs(pods), WithTTL(7))
}

func query(name string, qtype uint16) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 4242
	return m
}

func values(rrs []mdns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch r := rr.(type) {
		case *mdns.A:
			out = append(out, r.Hdr.Name+" A "+r.A.String())
		case *mdns.AAAA:
			out = append(out, r.Hdr.Name+" AAAA "+r.AAAA.String())
		case *mdns.SRV:
			out = append(out, r.Hdr.Name+" SRV "+r.Target+" "+strconv.Itoa(int(r.Port))+" w"+strconv.Itoa(int(r.Weight)))
		case *mdns.SOA:
			out = append(out, r.Hdr.Name+" SOA "+r.Ns)
		default:
			out = append(out, rr.String())
		}
	}
	return out
}

func TestIndexAnswer(t *testing.T) {
	ix := testIndex()
	const svc = "web.prod.svc.cluster.local."
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
		{name: "A lists ready selected pods sorted by address", q: svc, qtype: mdns.TypeA,
			answer: []string{svc + " A 10.0.0.9", svc + " A 10.0.0.10", svc + " A 10.0.0.12"}},
		{name: "names are case-insensitive", q: "WeB.PROD.svc.Cluster.LOCAL.", qtype: mdns.TypeA,
			answer: []string{svc + " A 10.0.0.9", svc + " A 10.0.0.10", svc + " A 10.0.0.12"}},
		{name: "AAAA of an IPv4-only service is NODATA", q: svc, qtype: mdns.TypeAAAA, ns: soa},
		{name: "SRV of a named port resolves a named targetPort", q: "_http._tcp." + svc, qtype: mdns.TypeSRV,
			answer: []string{
				"_http._tcp." + svc + " SRV 10-0-0-9." + svc + " 8080 w33",
				"_http._tcp." + svc + " SRV 10-0-0-10." + svc + " 8080 w33",
				"_http._tcp." + svc + " SRV 10-0-0-12." + svc + " 8080 w33",
			},
			extra: []string{"10-0-0-9." + svc + " A 10.0.0.9", "10-0-0-10." + svc + " A 10.0.0.10", "10-0-0-12." + svc + " A 10.0.0.12"}},
		{name: "SRV port without targetPort is the service port", q: "_METRICS._TCP." + svc, qtype: mdns.TypeSRV,
			answer: []string{
				"_metrics._tcp." + svc + " SRV 10-0-0-9." + svc + " 9090 w33",
				"_metrics._tcp." + svc + " SRV 10-0-0-10." + svc + " 9090 w33",
				"_metrics._tcp." + svc + " SRV 10-0-0-12." + svc + " 9090 w33",
			},
			extra: []string{"10-0-0-9." + svc + " A 10.0.0.9", "10-0-0-10." + svc + " A 10.0.0.10", "10-0-0-12." + svc + " A 10.0.0.12"}},
		{name: "SRV uses the port protocol and numeric targetPort", q: "_dns._udp." + svc, qtype: mdns.TypeSRV,
			answer: []string{
				"_dns._udp." + svc + " SRV 10-0-0-9." + svc + " 5300 w33",
				"_dns._udp." + svc + " SRV 10-0-0-10." + svc + " 5300 w33",
				"_dns._udp." + svc + " SRV 10-0-0-12." + svc + " 5300 w33",
			},
			extra: []string{"10-0-0-9." + svc + " A 10.0.0.9", "10-0-0-10." + svc + " A 10.0.0.10", "10-0-0-12." + svc + " A 10.0.0.12"}},
		{name: "SRV with the wrong protocol is NXDOMAIN", q: "_dns._tcp." + svc, qtype: mdns.TypeSRV, rcode: mdns.RcodeNameError, ns: soa},
		{name: "SRV target name has an A record", q: "10-0-0-10." + svc, qtype: mdns.TypeA,
			answer: []string{"10-0-0-10." + svc + " A 10.0.0.10"}},
		{name: "A of a service is not an SRV", q: svc, qtype: mdns.TypeSRV, ns: soa},
		{name: "not-ready pod has no target name", q: "10-0-0-20." + svc, qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: soa},
		{name: "service without ready endpoints is NODATA", q: "empty.prod.svc.cluster.local.", qtype: mdns.TypeA, ns: soa},
		{name: "named port of empty service is NODATA", q: "_http._tcp.empty.prod.svc.cluster.local.", qtype: mdns.TypeSRV, ns: soa},
		{name: "service without selector is NODATA", q: "manual.prod.svc.cluster.local.", qtype: mdns.TypeA, ns: soa},
		{name: "dual-stack service answers A", q: "v6.prod.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"v6.prod.svc.cluster.local. A 10.0.0.40"}},
		{name: "dual-stack service answers AAAA", q: "v6.prod.svc.cluster.local.", qtype: mdns.TypeAAAA,
			answer: []string{"v6.prod.svc.cluster.local. AAAA fd00::2"}},
		{name: "same service name in other namespace is unknown", q: "web.staging.svc.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, ns: soa},
		{name: "unknown service is NXDOMAIN with SOA", q: "nope.prod.svc.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, ns: soa},
		{name: "invalid service name is left out", q: "bad.name.prod.svc.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, ns: soa},
		{name: "namespace is an empty non-terminal", q: "prod.svc.cluster.local.", qtype: mdns.TypeA, ns: soa},
		{name: "apex SOA", q: "cluster.local.", qtype: mdns.TypeSOA, answer: soa},
		{name: "unsupported type on existing name is NODATA", q: svc, qtype: mdns.TypeTXT, ns: soa},
		{name: "ANY returns the addresses", q: svc, qtype: mdns.TypeANY,
			answer: []string{svc + " A 10.0.0.9", svc + " A 10.0.0.10", svc + " A 10.0.0.12"}},
		{name: "name outside the domain is refused", q: "example.com.", qtype: mdns.TypeA, rcode: mdns.RcodeRefused},
		{name: "suffix without label boundary is outside", q: "xcluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := query(tt.q, tt.qtype)
			r := ix.Answer(q)
			if r.Id != q.Id || !r.Response || len(r.Question) != 1 || r.Question[0] != q.Question[0] {
				t.Fatalf("reply header/question do not match the query: %+v", r.MsgHdr)
			}
			checkReply(t, r, tt.rcode, tt.answer, tt.ns, tt.extra)
			for _, rr := range slices.Concat(r.Answer, r.Ns, r.Extra) {
				if rr.Header().Ttl != 7 {
					t.Errorf("%s: ttl %d, want 7", rr.Header().Name, rr.Header().Ttl)
				}
			}
			if _, err := r.Pack(); err != nil {
				t.Errorf("reply does not pack: %v", err)
			}
		})
	}
}

func TestIndexAnswer_replyDoesNotAliasIndex(t *testing.T) {
	ix := testIndex()
	r := ix.Answer(query("web.prod.svc.cluster.local.", mdns.TypeA))
	r.Answer[0] = nil
	_ = append(r.Answer[:1], nil)
	r2 := ix.Answer(query("web.prod.svc.cluster.local.", mdns.TypeA))
	if len(r2.Answer) != 3 || r2.Answer[0] == nil || r2.Answer[1] == nil {
		t.Fatalf("modifying one reply changed the index: %v", r2.Answer)
	}
}

func TestBuildIndex_isDeterministic(t *testing.T) {
	a, b := testIndex(), testIndex()
	for name := range a.all() {
		for _, qt := range []uint16{mdns.TypeA, mdns.TypeAAAA, mdns.TypeSRV} {
			ra, rb := a.Answer(query(name, qt)), b.Answer(query(name, qt))
			if !slices.Equal(values(ra.Answer), values(rb.Answer)) || !slices.Equal(values(ra.Extra), values(rb.Extra)) {
				t.Fatalf("%s %d differs between builds", name, qt)
			}
		}
	}
}

func TestIndexAnswer_malformedQueries(t *testing.T) {
	ix := testIndex()
	noQ := new(mdns.Msg)
	noQ.Id = 1
	if r := ix.Answer(noQ); r.Rcode != mdns.RcodeFormatError {
		t.Errorf("no question: rcode %s, want FORMERR", mdns.RcodeToString[r.Rcode])
	}
	upd := query("cluster.local.", mdns.TypeSOA)
	upd.Opcode = mdns.OpcodeUpdate
	if r := ix.Answer(upd); r.Rcode != mdns.RcodeNotImplemented {
		t.Errorf("update: rcode %s, want NOTIMP", mdns.RcodeToString[r.Rcode])
	}
	chaos := query("web.prod.svc.cluster.local.", mdns.TypeA)
	chaos.Question[0].Qclass = mdns.ClassCHAOS
	if r := ix.Answer(chaos); r.Rcode != mdns.RcodeRefused {
		t.Errorf("class CH: rcode %s, want REFUSED", mdns.RcodeToString[r.Rcode])
	}
}

func TestConfig_upstreamsGetPort53AndNeverPointAtOurselves(t *testing.T) {
	c := Config{
		Listen:    []string{"127.0.0.1:5353", "10.88.0.1:53"},
		Upstreams: []string{"10.0.0.1", "127.0.0.1:5353", "[::1]:5300", "::1", "10.88.0.1"},
	}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.1:53", "[::1]:5300", "[::1]:53"}
	if !slices.Equal(c.Upstreams, want) {
		t.Errorf("upstreams = %q, want %q", c.Upstreams, want)
	}
	if c.Domain != DefaultDomain || c.TTL != DefaultTTL {
		t.Errorf("defaults: domain %q ttl %d", c.Domain, c.TTL)
	}
}

// TestBuildIndex_publishNotReadyAddresses: such a Service answers its
// pods whether ready or not, but never finished or deleted ones.
func TestBuildIndex_publishNotReadyAddresses(t *testing.T) {
	app := map[string]string{"app": "db"}
	publish := service("prod", "db", app)
	publish.Spec.PublishNotReadyAddresses = true
	done := notReady(readyPod("prod", "done", "10.0.0.4", app))
	done.Status.Phase = corev1.PodSucceeded
	pods := []corev1.Pod{
		readyPod("prod", "ready", "10.0.0.1", app),
		notReady(readyPod("prod", "starting", "10.0.0.2", app)),
		deleting(readyPod("prod", "going", "10.0.0.3", app)),
		done,
	}
	for _, tt := range []struct {
		svc  corev1.Service
		want []string
	}{
		{service("prod", "db", app), []string{"10.0.0.1"}},
		{publish, []string{"10.0.0.1", "10.0.0.2"}},
	} {
		ix := BuildIndex("cluster.local", []corev1.Service{tt.svc}, ptrs(pods))
		q := new(mdns.Msg)
		q.SetQuestion("db.prod.svc.cluster.local.", mdns.TypeA)
		r := ix.Answer(q)
		var got []string
		for _, rr := range r.Answer {
			got = append(got, rr.(*mdns.A).A.String())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("publishNotReadyAddresses=%v: A = %v, want %v", tt.svc.Spec.PublishNotReadyAddresses, got, tt.want)
		}
	}
}

// ptrs points at each pod of pods.
func ptrs(pods []corev1.Pod) []*corev1.Pod {
	out := make([]*corev1.Pod, len(pods))
	for i := range pods {
		out[i] = &pods[i]
	}
	return out
}

// checkReply compares a reply's rcode and the values of its answer,
// authority and additional sections with the expected ones.
func checkReply(t *testing.T, r *mdns.Msg, rcode int, answer, ns, extra []string) {
	t.Helper()
	if r.Rcode != rcode {
		t.Errorf("rcode = %s, want %s", mdns.RcodeToString[r.Rcode], mdns.RcodeToString[rcode])
	}
	if got := values(r.Answer); !slices.Equal(got, answer) {
		t.Errorf("answer = %q\nwant %q", got, answer)
	}
	if got := values(r.Ns); !slices.Equal(got, ns) {
		t.Errorf("authority = %q, want %q", got, ns)
	}
	if got := values(r.Extra); !slices.Equal(got, extra) {
		t.Errorf("additional = %q\nwant %q", got, extra)
	}
}
