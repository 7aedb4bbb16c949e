package ingress

import (
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

// reference is Kubernetes' path rule written another way: by comparing
// path elements one by one.
func referenceMatch(paths []string, exact []bool, req string) int {
	best, bestLen, bestExact := -1, -1, false
	reqEls := strings.Split(strings.Trim(req, "/"), "/")
	for i, p := range paths {
		var ok bool
		norm := p
		if exact[i] {
			ok = req == p
		} else {
			norm = strings.TrimRight(p, "/")
			if norm == "" {
				norm = "/"
			}
			els := strings.Split(strings.Trim(norm, "/"), "/")
			if norm == "/" {
				ok = true
			} else if len(els) <= len(reqEls) {
				ok = true
				for j := range els {
					if els[j] != reqEls[j] {
						ok = false
						break
					}
				}
				// "/a" does not match "//a"-like oddities: req is cleaned already.
			}
		}
		if !ok {
			continue
		}
		if len(norm) > bestLen || len(norm) == bestLen && exact[i] && !bestExact {
			best, bestLen, bestExact = i, len(norm), exact[i]
		}
	}
	return best
}

func FuzzMatch(f *testing.F) {
	f.Add("/api/v1/users", "Foo.Example.com:443")
	f.Add("/", "")
	f.Add("/apix/../api/", "x.example.com")
	f.Add("//a//b/", "a.b.example.com.")
	f.Add("/v2", "[::1]")
	paths := []string{"/", "/api", "/api/", "/api/v1", "/api/v1", "/b/c", "/a/b"}
	exact := []bool{false, false, true, false, true, true, false}
	var rules []string
	for i, p := range paths {
		t := "P"
		if exact[i] {
			t = "E"
		}
		rules = append(rules, "foo.example.com "+p+" "+t+" s"+string(rune('0'+i))+":80")
	}
	tab := Build(Input{Ingresses: []networkingv1.Ingress{ing("ns", "i", rules...)}}, nil)
	f.Fuzz(func(t *testing.T, path, host string) {
		b := tab.Match(host, path) // never panics, whatever the input
		if NormalizeHost(host) != "foo.example.com" {
			if b != nil {
				t.Fatalf("host %q matched %s", host, b.Service)
			}
			return
		}
		req := cleanPath(path)
		if !strings.HasPrefix(req, "/") || strings.Contains(req, "//") || strings.Contains(req, "/../") {
			t.Fatalf("cleanPath(%q) = %q", path, req)
		}
		want := referenceMatch(paths, exact, req)
		got := "<nil>"
		if b != nil {
			got = b.Service
		}
		wantS := "<nil>"
		if want >= 0 {
			wantS = "s" + string(rune('0'+want))
		}
		if got != wantS {
			t.Fatalf("Match(%q) (cleaned %q) = %s, want %s", path, req, got, wantS)
		}
	})
}
