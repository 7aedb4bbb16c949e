package ingress

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// trackPod is a ready pod of Service app in track, with a weight ("" for
// none).
func trackPod(name, ip, track, weight string) *corev1.Pod {
	p := pod("web", name, "app", ip, true)
	p.Labels["bosun.dev/track"] = track
	if weight != "" {
		p.Annotations = map[string]string{"bosun.dev/weight": weight}
	}
	return p
}

// The canary's share holds when the table is rebuilt between requests (as
// Follow does on every pod change of the cluster): the counters live in
// Cursors, not in the table, and the run is interleaved.
func TestCursors_splitSurvivesRebuilds(t *testing.T) {
	in := Input{Ingresses: []networkingv1.Ingress{ing("web", "i", "h / P app:80")}, Services: []corev1.Service{svc("web", "app", 80, 8080)},
		Pods: []*corev1.Pod{trackPod("a", "10.0.0.1", "stable", "90"), trackPod("b", "10.0.0.2", "stable", "90"), trackPod("c", "10.0.0.3", "canary", "10")}}
	canary := ap("10.0.0.3:8080")
	for _, every := range []int{1, 3, 20, 1000} {
		var cur Cursors
		counts := map[netip.AddrPort]int{}
		var tab *Table
		run, maxRun := 0, 0
		for i := range 1000 {
			if i%every == 0 {
				tab = Build(in, nil)
				cur.Keep(tab)
			}
			e, ok := cur.Pick(tab.Match("h", "/"))
			if !ok {
				t.Fatal("no endpoint")
			}
			counts[e]++
			if e == canary {
				run++
				maxRun = max(maxRun, run)
			} else {
				run = 0
			}
			// Every 10 requests (90/10 over their GCD) hold exactly one
			// canary request.
			if (i+1)%10 == 0 && counts[canary] != (i+1)/10 {
				t.Fatalf("rebuild every %d: after %d requests the canary got %d", every, i+1, counts[canary])
			}
		}
		if counts[canary] != 100 || counts[ap("10.0.0.1:8080")] != 450 || counts[ap("10.0.0.2:8080")] != 450 {
			t.Errorf("rebuild every %d: %v, want 100 canary and 450 to each stable pod", every, counts)
		}
		if maxRun != 1 {
			t.Errorf("rebuild every %d: %d canary requests in a row, want them interleaved", every, maxRun)
		}
	}
}

// Without weights the round robin also continues across tables.
func TestCursors_roundRobinSurvivesRebuilds(t *testing.T) {
	in := Input{Ingresses: []networkingv1.Ingress{ing("web", "i", "h / P app:80")}, Services: []corev1.Service{svc("web", "app", 80, 8080)},
		Pods: []*corev1.Pod{pod("web", "a", "app", "10.0.0.1", true), pod("web", "b", "app", "10.0.0.2", true), pod("web", "c", "app", "10.0.0.3", true)}}
	var cur Cursors
	counts := map[netip.AddrPort]int{}
	for range 300 {
		tab := Build(in, nil)
		cur.Keep(tab)
		e, _ := cur.Pick(tab.Match("h", "/"))
		counts[e]++
	}
	for e, n := range counts {
		if n != 100 {
			t.Errorf("%s got %d of 300", e, n)
		}
	}
	// A table without the backend forgets its counter.
	cur.Keep(Build(Input{}, nil))
	n := 0
	cur.m.Range(func(any, any) bool { n++; return true })
	if n != 0 {
		t.Errorf("%d counters kept for backends no table has", n)
	}
}

// Weights whose run is too long to interleave still split exactly, and
// weights with a common divisor interleave by their quotient.
func TestPickN_weights(t *testing.T) {
	for _, c := range []struct {
		stable, canary string
		n              int
	}{{"5000", "3", 2 * 5003}, {"900", "100", 1000}, {"1", "1", 10}, {"3", "0", 30}} {
		in := Input{Ingresses: []networkingv1.Ingress{ing("web", "i", "h / P app:80")}, Services: []corev1.Service{svc("web", "app", 80, 8080)},
			Pods: []*corev1.Pod{trackPod("a", "10.0.0.1", "stable", c.stable), trackPod("c", "10.0.0.3", "canary", c.canary)}}
		b := Build(in, nil).Match("h", "/")
		got := 0
		for i := range c.n {
			if e, _ := b.PickN(uint64(i)); e == ap("10.0.0.3:8080") {
				got++
			}
		}
		var sw, cw int
		fmt.Sscan(c.stable, &sw)
		fmt.Sscan(c.canary, &cw)
		if want := c.n * cw / (sw + cw); got != want {
			t.Errorf("weights %s/%s: canary got %d of %d, want %d", c.stable, c.canary, got, c.n, want)
		}
	}
}
