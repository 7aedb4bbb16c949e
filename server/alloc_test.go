package server

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"bosun/ipalloc"
	"bosun/manifest"
	"bosun/store"
)

const allocWeb = `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
`

const allocAdmin = `---
apiVersion: v1
kind: Service
metadata:
  name: admin
spec:
  type: NodePort
  selector:
    app: admin
  ports:
  - port: 80
`

// addresses renders each desired Service's ClusterIP, and "np" for each
// node port in the default range.
func addresses(l *leader) []string {
	var out []string
	for _, s := range l.desired.Services {
		line := s.Name + " " + s.Spec.ClusterIP
		for _, p := range s.Spec.Ports {
			if ipalloc.DefaultNodePorts.Contains(p.NodePort) {
				line += " np"
			}
		}
		out = append(out, line)
	}
	return out
}

func mustDecode(t *testing.T, yaml string) *manifest.Set {
	t.Helper()
	set, err := manifest.Decode("app.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestLeader_allocatesAndKeepsServiceAddresses: the leader gives a
// revision's Services their addresses when it accepts it and stores them
// in the desired state; a new leader (a restart, a failover) reads them
// back, an unrelated commit keeps them, and a revision that asks for an
// address another Service keeps, or one out of the service CIDR, is
// rejected whole with file:line.
func TestLeader_allocatesAndKeepsServiceAddresses(t *testing.T) {
	ctx := context.Background()
	st := store.NewTest(t)
	cache := store.RunTestCache(t, st, store.CacheConfig{})
	lead := newLeadership(t, st)
	cfg := Config{ID: "a", HistoryLimit: 10}
	cfg.setDefaults()
	newLeader := func() *leader {
		l := &leader{cfg: cfg, st: st, cache: cache, lead: lead, log: slog.New(slog.DiscardHandler), m: newMetrics(prometheus.NewRegistry())}
		if err := l.restore(ctx); err != nil {
			t.Fatal(err)
		}
		return l
	}
	accept := func(l *leader, commit, manifests string) {
		t.Helper()
		if err := l.accept(ctx, revisionDir(t, commit, manifests)); err != nil {
			t.Fatal(err)
		}
	}

	l := newLeader()
	accept(l, "c1", allocWeb+allocAdmin)
	first := l.desired.Services
	for _, s := range first {
		ip, err := netip.ParseAddr(s.Spec.ClusterIP)
		if err != nil || !ipalloc.DefaultServiceCIDR.Contains(ip) || !slices.Equal(s.Spec.ClusterIPs, []string{s.Spec.ClusterIP}) {
			t.Fatalf("%s: clusterIP %q clusterIPs %v", s.Name, s.Spec.ClusterIP, s.Spec.ClusterIPs)
		}
	}
	if np := first[0].Spec.Ports[0].NodePort; first[0].Name != "admin" || !ipalloc.DefaultNodePorts.Contains(np) {
		t.Fatalf("admin's node port %d", np)
	}
	d, err := st.Desired(ctx)
	if err != nil || !slices.EqualFunc(d.Services, first, func(a, b corev1.Service) bool { return a.Spec.ClusterIP == b.Spec.ClusterIP }) {
		t.Fatalf("the stored desired state lacks the addresses: %v", err)
	}

	// A new leader reads them back; an unrelated commit (a new Service)
	// moves nobody.
	l = newLeader()
	if got := addresses(l); !slices.Equal(got, []string{"admin " + first[0].Spec.ClusterIP + " np", "web " + first[1].Spec.ClusterIP}) {
		t.Fatalf("restored %v", got)
	}
	accept(l, "c2", allocWeb+allocAdmin+strings.ReplaceAll(allocAdmin, "admin", "api")+"  clusterIP: 10.96.0.99\n")
	if l.sync.Errors != nil {
		t.Fatalf("rejected: %v", l.sync.Errors)
	}
	if l.desired.Services[0].Spec.ClusterIP != first[0].Spec.ClusterIP || l.desired.Services[0].Spec.Ports[0].NodePort != first[0].Spec.Ports[0].NodePort ||
		l.desired.Services[2].Spec.ClusterIP != first[1].Spec.ClusterIP || l.desired.Services[1].Spec.ClusterIP != "10.96.0.99" {
		t.Fatalf("an unrelated commit moved addresses: %v, before %v", addresses(l), first)
	}

	// Asking for web's address, or one outside the CIDR: rejected, with
	// the line of the field; nothing changes.
	bad := allocWeb + "---\n" + strings.ReplaceAll(allocWeb, "web", "db") + "  clusterIP: " + first[1].Spec.ClusterIP + "\n" +
		"---\n" + strings.ReplaceAll(allocWeb, "web", "cache") + "  clusterIP: 10.0.0.1\n"
	before := l.desired
	accept(l, "c3", bad)
	want := []string{
		"app.yaml:22: spec.clusterIP: " + first[1].Spec.ClusterIP + " is taken by Service default/web, which keeps it",
		"app.yaml:34: spec.clusterIP: 10.0.0.1 is outside the service CIDR 10.96.0.0/16 (--service-cidr)",
	}
	if !slices.Equal(l.sync.Errors, want) {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(l.sync.Errors, "\n"), strings.Join(want, "\n"))
	}
	if l.desired != before || l.sync.Applied.Commit != "c2" {
		t.Fatalf("a rejected revision changed the desired state")
	}
}

// TestLeader_restoreReadsStoredServices: a desired state stored without
// addresses (by a bosun that did not allocate) takes them from the
// Services stored in etcd, so an upgrade moves nobody.
func TestLeader_restoreReadsStoredServices(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st := store.NewTest(t)
	cache := store.RunTestCache(t, st, store.CacheConfig{})
	lead := newLeadership(t, st)
	set := mustDecode(t, allocWeb+allocAdmin)
	stored := *set.Services[1].DeepCopy()
	stored.Spec.ClusterIP, stored.Spec.ClusterIPs = "10.96.7.7", []string{"10.96.7.7"}
	put, err := store.PutService(&stored)
	if err != nil {
		t.Fatal(err)
	}
	desired, err := store.PutDesired(desiredFrom(store.Revision{Commit: "old"}, set))
	if err != nil {
		t.Fatal(err)
	}
	if err := lead.Apply(ctx, []store.Op{put, desired}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{ID: "a", HistoryLimit: 10}
	cfg.setDefaults()
	l := &leader{cfg: cfg, st: st, cache: cache, lead: lead, log: slog.New(slog.DiscardHandler), m: newMetrics(prometheus.NewRegistry())}
	if err := l.restore(ctx); err != nil {
		t.Fatal(err)
	}
	if web := l.desired.Services[1]; web.Name != "web" || web.Spec.ClusterIP != "10.96.7.7" {
		t.Fatalf("web restored with %q, want the stored 10.96.7.7", web.Spec.ClusterIP)
	}
	if admin := l.desired.Services[0]; !ipalloc.Complete(l.desired.Services) || admin.Spec.ClusterIP == "" {
		t.Fatalf("admin restored without addresses: %+v", admin.Spec)
	}
}
