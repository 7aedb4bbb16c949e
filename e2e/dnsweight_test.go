package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// TestDNS_headlessServiceAnswersByTrackWeight runs examples/canary-dns on
// the real stack: a headless Service web selecting 4 stable pods (label
// bosun.dev/track stable, annotation bosun.dev/weight 90) and 1 canary pod
// (canary, 10), plain Pods in the Git repository. Of 1,000 A queries
// through bosun's DNS with a real client, each answer names one track (the
// 4 stable addresses, or the canary's alone) with a 1 s TTL, and about 10 %
// (± 3 %) name the canary. The SRV answer stays complete, weighted 2250
// per stable pod and 1000 for the canary; a pod's own name answers its
// address with the usual TTL.
func TestDNS_headlessServiceAnswersByTrackWeight(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.copyDir("../examples/canary-dns")
	start := time.Now()
	repo.commit("headless web: 4 stable pods (90), 1 canary pod (10)")
	s := startStack(t, repo)

	const (
		name = "web.default.svc.cluster.local."
		srv  = "_http._tcp." + name
	)
	var stable, canary []string
	s.waitFor("4 stable and 1 canary pods ready, all in the SRV answer", 120*time.Second, func() error {
		pods := s.pods()
		stable, canary = ips(readyPods(pods, "web-stable-")), ips(readyPods(pods, "web-canary-"))
		if len(stable) != 4 || len(canary) != 1 {
			return fmt.Errorf("%d stable, %d canary pods ready", len(stable), len(canary))
		}
		r, err := s.lookup(srv, mdns.TypeSRV)
		if err != nil {
			return err
		}
		if len(r.Answer) != 5 {
			return fmt.Errorf("SRV answer has %d records", len(r.Answer))
		}
		return nil
	})
	t.Logf("commit -> pods ready in DNS (server start included): %v", time.Since(start))

	t.Run("1,000 A queries: one track per answer, the canary in about 10 %", func(t *testing.T) {
		const n = 1000
		var toCanary, toStable int
		begin := time.Now()
		for i := range n {
			r, err := s.lookup(name, mdns.TypeA)
			if err != nil {
				t.Fatalf("query %d: %v", i, err)
			}
			if r.Rcode != mdns.RcodeSuccess {
				t.Fatalf("query %d: %s", i, mdns.RcodeToString[r.Rcode])
			}
			for _, rr := range r.Answer {
				if rr.Header().Ttl != 1 {
					t.Fatalf("query %d: %s: TTL %d, want 1", i, rr, rr.Header().Ttl)
				}
			}
			switch got := aRecords(r); {
			case slices.Equal(got, canary):
				toCanary++
			case slices.Equal(got, stable):
				toStable++
			default:
				t.Fatalf("query %d: answer %v, want the stable pods %v or the canary pod %v", i, got, stable, canary)
			}
		}
		share := float64(toCanary) / n
		t.Logf("%d queries in %v: %d canary (%.1f %%), %d stable", n, time.Since(begin), toCanary, 100*share, toStable)
		if share < 0.07 || share > 0.13 {
			t.Errorf("canary share %.3f, want 0.10 ± 0.03", share)
		}
	})

	t.Run("SRV complete, weighted by track; per-pod names as before", func(t *testing.T) {
		r, err := s.lookup(srv, mdns.TypeSRV)
		if err != nil {
			t.Fatal(err)
		}
		weights := map[string]uint16{}
		for _, rr := range r.Answer {
			s := rr.(*mdns.SRV)
			ip := strings.ReplaceAll(strings.TrimSuffix(s.Target, "."+name), "-", ".")
			weights[ip] = s.Weight
			if s.Port != 8080 {
				t.Errorf("%s: port %d, want 8080", s, s.Port)
			}
		}
		for _, ip := range stable {
			if weights[ip] != 2250 {
				t.Errorf("stable %s: SRV weight %d, want 2250 (%v)", ip, weights[ip], weights)
			}
		}
		if weights[canary[0]] != 1000 {
			t.Errorf("canary %s: SRV weight %d, want 1000 (%v)", canary[0], weights[canary[0]], weights)
		}
		pod := strings.ReplaceAll(canary[0], ".", "-") + "." + name
		r, err = s.lookup(pod, mdns.TypeA)
		if err != nil {
			t.Fatal(err)
		}
		if got := aRecords(r); !slices.Equal(got, canary) || r.Answer[0].Header().Ttl != 5 {
			t.Errorf("%s: %v, want %v with TTL 5", pod, r.Answer, canary)
		}
	})
}
