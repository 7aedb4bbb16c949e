package kubeproxy

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

// TestSameDataPath runs both engines, each in a fresh network namespace,
// on the same 50 Services x 10 endpoints, and checks that their tables send
// the same ClusterIP:ports to the same endpoints, that kube-proxy's table
// is in its namespace and not the host's, and that both follow an
// endpoint's replacement (so the incremental benchmark measures real
// updates).
func TestSameDataPath(t *testing.T) {
	requireRoot(t)
	in := newInputs(generate(50, 10))
	var wantVIPs, wantDNATs []string
	for _, s := range in.specs {
		wantVIPs = append(wantVIPs, fmt.Sprintf("%s:%d", s.ClusterIP, servicePort))
		for _, ep := range s.Endpoints {
			wantDNATs = append(wantDNATs, fmt.Sprintf("%s:%d", ep.IP, targetPort))
		}
	}
	slices.Sort(wantVIPs)
	slices.Sort(wantDNATs)
	for _, mk := range engines {
		e := mk()
		t.Run(e.name(), func(t *testing.T) {
			th, err := newNSThread()
			if err != nil {
				t.Fatal(err)
			}
			defer th.close()
			th.do(func() {
				if err = e.start(th); err == nil {
					err = e.load(in)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer th.do(func() { _ = e.stop() })
			checkPlace(t, th, e)
			check := func(when string, wantDNATs []string) {
				t.Helper()
				var vips, dnats []string
				th.do(func() { vips, dnats, err = dataPath(e.table()) })
				if err != nil {
					t.Fatal(err)
				}
				if extra, missing := diff(vips, wantVIPs); len(extra)+len(missing) > 0 {
					t.Errorf("%s: %d service map keys, want %d: unexpected %v, missing %v", when, len(vips), len(wantVIPs), extra, missing)
				}
				if extra, missing := diff(dnats, wantDNATs); len(extra)+len(missing) > 0 {
					t.Errorf("%s: %d DNAT targets, want %d: unexpected %v, missing %v", when, len(dnats), len(wantDNATs), extra, missing)
				}
			}
			check("after the full sync", wantDNATs)
			old := in.specs[7].Endpoints[4].IP
			for n, ip := range []netip.Addr{replacedIP(1), replacedIP(2)} {
				th.do(func() { err = e.replace(7, old, ip) })
				if err != nil {
					t.Fatal(err)
				}
				want := slices.Clone(wantDNATs)
				want[slices.Index(want, fmt.Sprintf("%s:%d", in.specs[7].Endpoints[4].IP, targetPort))] = fmt.Sprintf("%s:%d", ip, targetPort)
				slices.Sort(want)
				check(fmt.Sprintf("after replacement %d", n+1), want)
				old = ip
			}
		})
	}
}

// diff returns what got has that want has not and the reverse, at most 10
// of each, both sorted; duplicates count.
func diff(got, want []string) (extra, missing []string) {
	n := map[string]int{}
	for _, s := range got {
		n[s]++
	}
	for _, s := range want {
		n[s]--
	}
	for s, c := range n {
		for ; c > 0; c-- {
			extra = append(extra, s)
		}
		for ; c < 0; c++ {
			missing = append(missing, s)
		}
	}
	slices.Sort(extra)
	slices.Sort(missing)
	return extra[:min(len(extra), 10)], missing[:min(len(missing), 10)]
}
