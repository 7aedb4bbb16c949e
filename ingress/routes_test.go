package ingress

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMatch_hostsAndPaths(t *testing.T) {
	routes := ing("web", "main",
		"foo.example.com / P front:80",
		"foo.example.com /api P api:80",
		"foo.example.com /api/v2 P v2:80",
		"foo.example.com /exact E exact:80",
		"foo.example.com /exact P exactprefix:80",
		"foo.example.com /impl/ I impl:80",
		"*.example.com /wild P wild:80",
		"- /any P any:80",
	)
	def := ing("web", "zdefault")
	def.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "fallback", Port: networkingv1.ServiceBackendPort{Number: 80}}}
	tab := Build(Input{Ingresses: []networkingv1.Ingress{routes, def}}, nil)
	if len(tab.Warnings) != 0 {
		t.Fatalf("warnings: %v", tab.Warnings)
	}
	for _, c := range []struct{ host, path, want string }{
		{"foo.example.com", "/", "front"},
		{"FOO.Example.COM:8080", "/x", "front"},
		{"foo.example.com.", "/x", "front"},
		{"foo.example.com", "/api", "api"},
		{"foo.example.com", "/api/", "api"},
		{"foo.example.com", "/api/users", "api"},
		{"foo.example.com", "/apix", "front"}, // by elements
		{"foo.example.com", "/api/v2", "v2"},
		{"foo.example.com", "/api/v2/x", "v2"},
		{"foo.example.com", "/api/v21", "api"},
		{"foo.example.com", "/exact", "exact"}, // Exact beats Prefix of the same path
		{"foo.example.com", "/exact/", "exactprefix"},
		{"foo.example.com", "/exact/more", "exactprefix"},
		{"foo.example.com", "/impl", "impl"}, // ImplementationSpecific is Prefix, trailing slash ignored
		{"foo.example.com", "/impl/x", "impl"},
		{"foo.example.com", "/x/../api/v2", "v2"}, // dot segments resolved
		{"foo.example.com", "//api", "api"},
		{"bar.example.com", "/wild/x", "wild"},
		{"bar.example.com", "/any/x", "any"}, // wildcard host's paths miss: falls to hostless rules
		{"a.b.example.com", "/wild", "fallback"},
		{"example.com", "/wild", "fallback"},
		{"foo.example.com", "/any", "front"}, // the exact host's "/" matched first
		{"other.org", "/any/1", "any"},
		{"other.org", "/nothing", "fallback"},
		{"[::1]:80", "/any", "any"},
	} {
		b := tab.Match(c.host, c.path)
		got := "<nil>"
		if b != nil {
			got = b.Service
		}
		if got != c.want {
			t.Errorf("Match(%q, %q) = %s, want %s", c.host, c.path, got, c.want)
		}
	}
	empty := Build(Input{Ingresses: []networkingv1.Ingress{routes}}, nil)
	if b := empty.Match("other.org", "/nothing"); b != nil {
		t.Errorf("no default backend: got %s, want nil (404)", b)
	}
}

func TestBuild_conflictsFirstByNameWins(t *testing.T) {
	a := ing("a", "one", "h.example / P s1:80")
	b := ing("b", "two", "h.example / P s2:80", "h.example / E s3:80")
	d1, d2 := ing("a", "d"), ing("b", "d")
	d1.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "d1", Port: networkingv1.ServiceBackendPort{Number: 1}}}
	d2.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "d2", Port: networkingv1.ServiceBackendPort{Number: 1}}}
	tab := Build(Input{Ingresses: []networkingv1.Ingress{b, d2, a, d1}}, nil)
	if got := tab.Match("h.example", "/x").Service; got != "s1" {
		t.Errorf("prefix: %s, want s1 (a/one before b/two)", got)
	}
	if got := tab.Match("h.example", "/").Service; got != "s3" {
		t.Errorf("exact /: %s, want s3", got)
	}
	if got := tab.Match("x", "/").Service; got != "d1" {
		t.Errorf("default: %s, want d1", got)
	}
	want := []string{
		`ingress b/d: defaultBackend: ingress a/d already gives one`,
		`ingress b/two: host "h.example" path "/": ingress a/one already routes it`,
	}
	if !slices.Equal(tab.Warnings, want) {
		t.Errorf("warnings:\n%s\nwant\n%s", strings.Join(tab.Warnings, "\n"), strings.Join(want, "\n"))
	}
}

func TestBuild_classes(t *testing.T) {
	str := func(s string) *string { return &s }
	mine := networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "internal"}, Spec: networkingv1.IngressClassSpec{Controller: Controller}}
	theirs := networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "nginx"}, Spec: networkingv1.IngressClassSpec{Controller: "k8s.io/ingress-nginx"}}
	theirsDefault := theirs
	theirsDefault.Annotations = map[string]string{AnnotationDefaultClass: "true"}
	for _, c := range []struct {
		class   *string
		classes []networkingv1.IngressClass
		want    bool
	}{
		{nil, nil, true},
		{str(""), nil, true},
		{str("bosun"), nil, true},
		{str("internal"), []networkingv1.IngressClass{mine}, true},
		{str("internal"), nil, false},
		{str("nginx"), []networkingv1.IngressClass{mine, theirs}, false},
		{nil, []networkingv1.IngressClass{theirs}, true},
		{nil, []networkingv1.IngressClass{theirsDefault}, false},
		{str("bosun"), []networkingv1.IngressClass{theirsDefault}, true},
	} {
		if got := Served(c.class, c.classes); got != c.want {
			cl := "<nil>"
			if c.class != nil {
				cl = *c.class
			}
			t.Errorf("Served(%q, %d classes) = %v, want %v", cl, len(c.classes), got, c.want)
		}
	}
	in := ing("a", "x", "h / P s:80")
	in.Spec.IngressClassName = str("nginx")
	tab := Build(Input{Ingresses: []networkingv1.Ingress{in}, IngressClasses: []networkingv1.IngressClass{theirs}}, nil)
	if tab.Match("h", "/") != nil || tab.Ingresses != 0 {
		t.Errorf("an Ingress of another controller was served")
	}
}

func TestBuild_endpoints(t *testing.T) {
	s := svc("web", "app", 80, 8080)
	named := s
	named.Name = "named"
	named.Spec.Selector = map[string]string{"app": "app"}
	named.Spec.Ports = []corev1.ServicePort{{Name: "web", Port: 81, TargetPort: intstrName("http")}}
	withPort := pod("web", "p3", "app", "10.0.0.3", true)
	withPort.Spec.Containers = []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9000}}}}
	pods := []*corev1.Pod{
		pod("web", "p2", "app", "10.0.0.2", true),
		pod("web", "p1", "app", "10.0.0.1", true),
		pod("web", "p4", "app", "10.0.0.4", false),  // not ready
		pod("other", "p5", "app", "10.0.0.5", true), // another namespace
		withPort,
	}
	in := ing("web", "i", "h /a P app:80", "h /b P named:web", "h /c P app:81", "h /d P missing:80")
	tab := Build(Input{Ingresses: []networkingv1.Ingress{in}, Services: []corev1.Service{s, named}, Pods: pods}, nil)
	if got, want := tab.Match("h", "/a").Endpoints(), []netip.AddrPort{ap("10.0.0.1:8080"), ap("10.0.0.2:8080"), ap("10.0.0.3:8080")}; !slices.Equal(got, want) {
		t.Errorf("by number: %v, want %v", got, want)
	}
	if got, want := tab.Match("h", "/b").Endpoints(), []netip.AddrPort{ap("10.0.0.3:9000")}; !slices.Equal(got, want) {
		t.Errorf("named target port: %v, want %v", got, want)
	}
	if b := tab.Match("h", "/c"); len(b.Endpoints()) != 0 || !strings.Contains(b.Problem, "has no TCP port 81") {
		t.Errorf("missing port: %v %q", b.Endpoints(), b.Problem)
	}
	if b := tab.Match("h", "/d"); !strings.Contains(b.Problem, "no Service web/missing") {
		t.Errorf("missing service: %q", b.Problem)
	}
	for path, want := range map[string]string{"/a": "no_endpoint", "/c": "no_port", "/d": "no_service"} {
		if got := tab.Match("h", path).Reason; got != want {
			t.Errorf("%s: reason %q, want %q", path, got, want)
		}
	}
	if _, ok := tab.Match("h", "/d").Pick(); ok {
		t.Error("a backend without endpoints picked one")
	}
}

func TestPick_roundRobinAndWeights(t *testing.T) {
	s := svc("web", "app", 80, 8080)
	mk := func(name, ip, track, weight string) *corev1.Pod {
		p := pod("web", name, "app", ip, true)
		p.Labels["bosun.dev/track"] = track
		if weight != "" {
			p.Annotations = map[string]string{"bosun.dev/weight": weight}
		}
		return p
	}
	in := ing("web", "i", "h / P app:80")
	// Without weights: every endpoint in turn.
	tab := Build(Input{Ingresses: []networkingv1.Ingress{in}, Services: []corev1.Service{s},
		Pods: []*corev1.Pod{mk("a", "10.0.0.1", "stable", ""), mk("b", "10.0.0.2", "stable", ""), mk("c", "10.0.0.3", "canary", "")}}, nil)
	counts := map[netip.AddrPort]int{}
	b := tab.Match("h", "/")
	for range 300 {
		e, _ := b.Pick()
		counts[e]++
	}
	for e, n := range counts {
		if n != 100 {
			t.Errorf("round robin: %s got %d of 300", e, n)
		}
	}
	// With weights 90/10 over 2+1 pods: exactly 90 and 10 in every 100.
	tab = Build(Input{Ingresses: []networkingv1.Ingress{in}, Services: []corev1.Service{s},
		Pods: []*corev1.Pod{mk("a", "10.0.0.1", "stable", "90"), mk("b", "10.0.0.2", "stable", "90"), mk("c", "10.0.0.3", "canary", "10")}}, nil)
	clear(counts)
	b = tab.Match("h", "/")
	for range 1000 {
		e, _ := b.Pick()
		counts[e]++
	}
	if counts[ap("10.0.0.3:8080")] != 100 || counts[ap("10.0.0.1:8080")] != 450 || counts[ap("10.0.0.2:8080")] != 450 {
		t.Errorf("weighted: %v", counts)
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{"": "/", "/": "/", "a": "/a", "/a/": "/a/", "/a/./b/../c": "/a/c", "/a//b/": "/a/b/", "/..": "/", "/a/..": "/"} {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}
