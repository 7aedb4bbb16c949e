package dns

import (
	"net/netip"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"bosun/kube"
)

// trackPod is a ready pod of the app web in track, asking weight ("" for
// no annotation).
func trackPod(name, ip, track, weight string) corev1.Pod {
	labels := map[string]string{"app": "web"}
	if track != "" {
		labels[kube.LabelTrack] = track
	}
	p := readyPod("prod", name, ip, labels)
	if weight != "" {
		p.Annotations = map[string]string{kube.AnnotationWeight: weight}
	}
	return p
}

// headlessWeb is the headless Service web of prod, with a named port.
func headlessWeb() corev1.Service {
	svc := service("prod", "web", map[string]string{"app": "web"},
		corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("web")})
	svc.Spec.ClusterIP = corev1.ClusterIPNone
	return svc
}

// canaryPods are 4 stable pods of weight 90 and 1 canary pod of weight 10.
func canaryPods() []corev1.Pod {
	return []corev1.Pod{
		trackPod("web-s1", "10.0.0.1", "stable", "90"),
		trackPod("web-s2", "10.0.0.2", "stable", "90"),
		trackPod("web-s3", "10.0.0.3", "stable", "90"),
		trackPod("web-s4", "10.0.0.4", "stable", "90"),
		trackPod("web-c1", "10.0.0.9", "canary", "10"),
	}
}

const webName = "web.prod.svc.cluster.local."

// answerWeb asks ix for webName's records of qtype, n times, and counts the
// answers by their addresses (joined by spaces), failing t on a record
// whose TTL is not ttl.
func answerWeb(t *testing.T, ix *Index, qtype uint16, n int, ttl uint32) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for range n {
		r := ix.Answer(query(webName, qtype))
		key := ""
		for _, rr := range r.Answer {
			if rr.Header().Ttl != ttl {
				t.Fatalf("%s: TTL %d, want %d", rr, rr.Header().Ttl, ttl)
			}
			if key != "" {
				key += " "
			}
			key += addrOf(rr).String()
		}
		counts[key]++
	}
	return counts
}

const stableIPs = "10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4"

// TestWeighted_canaryShareFollowsWeights pins the point of it: with stable
// weight 90 over 4 pods and canary 10 over 1 pod, each answer names one
// group, the canary in 10 % of 10,000 answers (± 2 %), whatever the pod
// counts, with the short TTL.
func TestWeighted_canaryShareFollowsWeights(t *testing.T) {
	ix := BuildIndex("cluster.local", []corev1.Service{headlessWeb()}, ptrs(canaryPods()))
	const n = 10000
	counts := answerWeb(t, ix, mdns.TypeA, n, WeightedTTL)
	if len(counts) != 2 || counts[stableIPs]+counts["10.0.0.9"] != n {
		t.Fatalf("answers %v: want the stable group or the canary group", counts)
	}
	if share := float64(counts["10.0.0.9"]) / n; share < 0.08 || share > 0.12 {
		t.Errorf("canary share %.3f, want 0.10 ± 0.02 (%v)", share, counts)
	}
	// The same with 3 canary pods: weights, not pod counts, decide.
	pods := append(canaryPods(), trackPod("web-c2", "10.0.0.7", "canary", "10"), trackPod("web-c3", "10.0.0.8", "canary", "10"))
	ix = BuildIndex("cluster.local", []corev1.Service{headlessWeb()}, ptrs(pods))
	counts = answerWeb(t, ix, mdns.TypeA, n, WeightedTTL)
	if share := float64(counts["10.0.0.7 10.0.0.8 10.0.0.9"]) / n; share < 0.08 || share > 0.12 || counts[stableIPs]+counts["10.0.0.7 10.0.0.8 10.0.0.9"] != n {
		t.Errorf("3 canary pods: canary share %.3f, want 0.10 ± 0.02 (%v)", share, counts)
	}
}

// TestWeighted_unweightedCases pins when answers hold every endpoint, as
// before weights, and when a group is never named.
func TestWeighted_unweightedCases(t *testing.T) {
	const all = "10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.9"
	for _, tc := range []struct {
		name string
		pods []corev1.Pod
		want string // the only answer
		ttl  uint32
	}{
		{"weights all 0", []corev1.Pod{
			trackPod("web-s1", "10.0.0.1", "stable", "0"), trackPod("web-s2", "10.0.0.2", "stable", ""),
			trackPod("web-s3", "10.0.0.3", "stable", "0"), trackPod("web-s4", "10.0.0.4", "stable", "0"),
			trackPod("web-c1", "10.0.0.9", "canary", "0"),
		}, all, DefaultTTL},
		{"one group", []corev1.Pod{
			trackPod("web-s1", "10.0.0.1", "stable", "90"), trackPod("web-s2", "10.0.0.2", "stable", "90"),
			trackPod("web-s3", "10.0.0.3", "stable", "90"), trackPod("web-s4", "10.0.0.4", "stable", "90"),
			trackPod("web-c1", "10.0.0.9", "stable", "90"),
		}, all, DefaultTTL},
		{"no tracks, weights set", []corev1.Pod{
			trackPod("web-s1", "10.0.0.1", "", "90"), trackPod("web-s2", "10.0.0.2", "", "90"),
			trackPod("web-s3", "10.0.0.3", "", "10"), trackPod("web-s4", "10.0.0.4", "", "90"),
			trackPod("web-c1", "10.0.0.9", "", "90"),
		}, all, DefaultTTL},
		{"canary group has no ready pod", append(canaryPods()[:4], notReady(trackPod("web-c1", "10.0.0.9", "canary", "10"))), stableIPs, DefaultTTL},
		{"canary weight 0", append(canaryPods()[:4], trackPod("web-c1", "10.0.0.9", "canary", "0")), stableIPs, WeightedTTL},
		{"canary without weight", append(canaryPods()[:4], trackPod("web-c1", "10.0.0.9", "canary", "")), stableIPs, WeightedTTL},
		{"canary weight not a number", append(canaryPods()[:4], trackPod("web-c1", "10.0.0.9", "canary", "ten")), stableIPs, WeightedTTL},
		{"stable weight 0", append(canaryPods()[4:], trackPod("web-s1", "10.0.0.1", "stable", "0")), "10.0.0.9", WeightedTTL},
		{"smallest weight of a group", []corev1.Pod{
			trackPod("web-s1", "10.0.0.1", "stable", "90"), trackPod("web-s2", "10.0.0.2", "stable", "0"),
			trackPod("web-c1", "10.0.0.9", "canary", "10"),
		}, "10.0.0.9", WeightedTTL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ix := BuildIndex("cluster.local", []corev1.Service{headlessWeb()}, ptrs(tc.pods))
			counts := answerWeb(t, ix, mdns.TypeA, 200, tc.ttl)
			if len(counts) != 1 || counts[tc.want] != 200 {
				t.Errorf("answers %v, want %q every time", counts, tc.want)
			}
		})
	}
}

// TestWeighted_answerPicksByWeight pins the pick itself with a chosen
// random number: groups in name order (canary, stable), each over a range
// as wide as its weight.
func TestWeighted_answerPicksByWeight(t *testing.T) {
	ix := BuildIndex("cluster.local", []corev1.Service{headlessWeb()}, ptrs(canaryPods()))
	for _, tc := range []struct {
		n    uint64
		want []string
	}{
		{0, []string{webName + " A 10.0.0.9"}},
		{9, []string{webName + " A 10.0.0.9"}},
		{10, []string{webName + " A 10.0.0.1", webName + " A 10.0.0.2", webName + " A 10.0.0.3", webName + " A 10.0.0.4"}},
		{99, []string{webName + " A 10.0.0.1", webName + " A 10.0.0.2", webName + " A 10.0.0.3", webName + " A 10.0.0.4"}},
	} {
		r := ix.answer(query(webName, mdns.TypeA), func(total uint64) uint64 {
			if total != 100 {
				t.Errorf("total weight %d, want 100", total)
			}
			return tc.n
		})
		checkReply(t, r, mdns.RcodeSuccess, tc.want, nil, nil)
	}
}

// TestWeighted_srvWeightsAndOtherNames pins the SRV weights (the group's
// share of 10,000 divided among its endpoints; complete answers) and that
// per-pod names, ANY and the unweighted SRV answers are as before.
func TestWeighted_srvWeightsAndOtherNames(t *testing.T) {
	ix := BuildIndex("cluster.local", []corev1.Service{headlessWeb()}, ptrs(canaryPods()))
	srv := "_http._tcp." + webName
	r := ix.Answer(query(srv, mdns.TypeSRV))
	var want, extra []string
	for i, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.9"} {
		dn := dashed(netip.MustParseAddr(ip)) + "." + webName
		w := "2250" // 9,000 over 4 stable pods
		if i == 4 {
			w = "1000"
		}
		want = append(want, srv+" SRV "+dn+" 8080 w"+w)
		extra = append(extra, dn+" A "+ip)
	}
	checkReply(t, r, mdns.RcodeSuccess, want, nil, extra)
	for _, rr := range append(r.Answer, r.Extra...) {
		if rr.Header().Ttl != DefaultTTL {
			t.Errorf("%s: TTL %d, want %d", rr, rr.Header().Ttl, DefaultTTL)
		}
	}
	// Per-pod names answer their own address, as before.
	dn := "10-0-0-9." + webName
	r = ix.Answer(query(dn, mdns.TypeA))
	checkReply(t, r, mdns.RcodeSuccess, []string{dn + " A 10.0.0.9"}, nil, nil)
	if ttl := r.Answer[0].Header().Ttl; ttl != DefaultTTL {
		t.Errorf("%s: TTL %d, want %d", dn, ttl, DefaultTTL)
	}
	// ANY names every endpoint.
	if r := ix.Answer(query(webName, mdns.TypeANY)); len(r.Answer) != 5 {
		t.Errorf("ANY: %v, want the 5 endpoints", values(r.Answer))
	}

	// A canary of weight 0 is in the SRV answer with weight 0; without
	// weights, the SRV weights are as before (100 over the endpoints).
	pods := append(canaryPods()[:4], trackPod("web-c1", "10.0.0.9", "canary", "0"))
	r = BuildIndex("cluster.local", []corev1.Service{headlessWeb()}, ptrs(pods)).Answer(query(srv, mdns.TypeSRV))
	if got := values(r.Answer); len(got) != 5 || got[0] != srv+" SRV 10-0-0-1."+webName+" 8080 w2500" || got[4] != srv+" SRV 10-0-0-9."+webName+" 8080 w0" {
		t.Errorf("canary weight 0: SRV %q", got)
	}
	pods = append(canaryPods()[:4], trackPod("web-c1", "10.0.0.9", "stable", "90"))
	r = BuildIndex("cluster.local", []corev1.Service{headlessWeb()}, ptrs(pods)).Answer(query(srv, mdns.TypeSRV))
	for _, v := range values(r.Answer) {
		if !strings.HasSuffix(v, " w20") {
			t.Errorf("one group: SRV %q, want weight 20 each", v)
		}
	}
}

// TestWeighted_perFamily weighs each address family by its own endpoints:
// a family whose endpoints are all in one group answers them all.
func TestWeighted_perFamily(t *testing.T) {
	pods := append(canaryPods(), trackPod("web-s6", "fd00::1", "stable", "90"), trackPod("web-s7", "fd00::2", "stable", "90"))
	ix := BuildIndex("cluster.local", []corev1.Service{headlessWeb()}, ptrs(pods))
	if counts := answerWeb(t, ix, mdns.TypeAAAA, 200, DefaultTTL); counts["fd00::1 fd00::2"] != 200 {
		t.Errorf("AAAA answers %v, want both stable addresses every time", counts)
	}
	if counts := answerWeb(t, ix, mdns.TypeA, 1000, WeightedTTL); len(counts) != 2 {
		t.Errorf("A answers %v, want the two groups", counts)
	}
}

// TestWeighted_nameOfTwoServicesIsNotWeighted: Services whose names differ
// only in case share one name and its records; their pods are no one
// model of groups, so every record answers.
func TestWeighted_nameOfTwoServicesIsNotWeighted(t *testing.T) {
	other := headlessWeb()
	other.Name = "Web"
	other.Spec.Selector = map[string]string{"app": "other"}
	pods := append(canaryPods(), readyPod("prod", "other", "10.0.0.20", map[string]string{"app": "other"}))
	ix := BuildIndex("cluster.local", []corev1.Service{headlessWeb(), other}, ptrs(pods))
	for range 50 {
		r := ix.Answer(query(webName, mdns.TypeA))
		if len(r.Answer) != 6 {
			t.Fatalf("answers %q, want the 6 endpoints of both Services", values(r.Answer))
		}
		for _, rr := range r.Answer {
			if rr.Header().Ttl != DefaultTTL {
				t.Fatalf("%s: TTL %d, want %d", rr, rr.Header().Ttl, DefaultTTL)
			}
		}
	}
}
