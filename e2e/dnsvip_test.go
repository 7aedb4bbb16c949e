package e2e

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
)

// strayPod names the headless Service db as its subdomain, but db does not
// select it: Kubernetes gives it no DNS name, and neither does bosun.
const strayPod = `apiVersion: v1
kind: Pod
metadata:
  name: stray
  labels:
    app: stray
spec:
  hostname: stray
  subdomain: db
  containers:
  - name: stray
    image: localhost/bosun-hello:v1
    imagePullPolicy: IfNotPresent
    readinessProbe:
      httpGet: {path: /healthz, port: 8080}
      periodSeconds: 1
`

// TestDNS_serviceAndPodNames runs examples/dns on the real stack: a
// headless Service db whose pods db-0 and db-1 set hostname and subdomain,
// a Service web and a client pod. It asks the stack's DNS server and the
// client pod's resolver (through its resolv.conf) for the Services' names,
// the per-pod names of the headless Service and their SRV records, and
// looks inside db-0 for its hostname and /etc/hosts.
//
// web answers the virtual IP the leader gave it (the API shows it as
// spec.clusterIP) and nothing else. (A Service stored without an address
// answers its ready pods: TestServer_serviceAnswersItsVirtualIPOnceAllocated
// in package dns.)
func TestDNS_serviceAndPodNames(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.copyDir("../examples/dns")
	repo.write("stray.yaml", strayPod)
	start := time.Now()
	repo.commit("dns example and a stray pod")
	s := startStack(t, repo)

	byName := map[string]corev1.Pod{}
	var web []corev1.Pod
	s.waitFor("db-0, db-1, client, stray and 2 web pods ready", 90*time.Second, func() error {
		pods := s.pods()
		web = readyPods(pods, "web-")
		for _, name := range []string{"db-0", "db-1", "client", "stray"} {
			ready := readyPods(pods, name)
			i := slices.IndexFunc(ready, func(p corev1.Pod) bool { return p.Name == name })
			if i < 0 {
				return fmt.Errorf("%s not ready", name)
			}
			byName[name] = ready[i]
		}
		if len(web) != 2 {
			return fmt.Errorf("%d ready web pods", len(web))
		}
		return nil
	})
	t.Logf("commit -> pods ready (server start included): %v", time.Since(start))
	ip := func(name string) string { return byName[name].Status.PodIP }
	const db = "db.default.svc.cluster.local."
	dbPods := []corev1.Pod{byName["db-0"], byName["db-1"]}

	t.Run("hostname.subdomain names a ready pod of the headless Service", func(t *testing.T) {
		for _, name := range []string{"db-0", "db-1"} {
			s.waitFor(name+"."+db, 10*time.Second, func() error {
				return wantA(s, name+"."+db, []string{ip(name)})
			})
		}
	})

	t.Run("the headless Service answers its ready pods, each by its dashed address too", func(t *testing.T) {
		if err := wantA(s, db, ips(dbPods)); err != nil {
			t.Error(err)
		}
		for _, p := range dbPods {
			if err := wantA(s, strings.ReplaceAll(p.Status.PodIP, ".", "-")+"."+db, []string{p.Status.PodIP}); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("a pod its subdomain's Service does not select has no name", func(t *testing.T) {
		r, err := s.lookup("stray."+db, mdns.TypeA)
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != mdns.RcodeNameError {
			t.Errorf("stray.%s: rcode %s, answer %v; want NXDOMAIN", db, mdns.RcodeToString[r.Rcode], r.Answer)
		}
	})

	t.Run("SRV of the headless Service targets the per-pod names", func(t *testing.T) {
		r, err := s.lookup("_sql._tcp."+db, mdns.TypeSRV)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, rr := range r.Answer {
			if srv, ok := rr.(*mdns.SRV); ok {
				got = append(got, fmt.Sprintf("%s:%d", srv.Target, srv.Port))
			}
		}
		sort.Strings(got)
		want := []string{"db-0." + db + ":8080", "db-1." + db + ":8080"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("SRV _sql._tcp.%s = %v, want %v", db, got, want)
		}
		var extra []string
		for _, rr := range r.Extra {
			if a, ok := rr.(*mdns.A); ok {
				extra = append(extra, a.Hdr.Name+" "+a.A.String())
			}
		}
		sort.Strings(extra)
		if want := []string{"db-0." + db + " " + ip("db-0"), "db-1." + db + " " + ip("db-1")}; !reflect.DeepEqual(extra, want) {
			t.Errorf("SRV additional records = %v, want %v", extra, want)
		}
	})

	t.Run("the pod's hostname and /etc/hosts", func(t *testing.T) {
		base := "http://" + ip("db-0") + ":8080"
		host, err := httpGet(base + "/file?path=/proc/sys/kernel/hostname")
		if err != nil || host != "db-0\n" {
			t.Errorf("db-0's hostname = %q, %v; want db-0", host, err)
		}
		hosts, err := httpGet(base + "/file?path=/etc/hosts")
		if want := "\n" + ip("db-0") + "\tdb-0.db.default.svc.cluster.local\tdb-0\n"; err != nil || !strings.Contains(hosts, want) {
			t.Errorf("db-0's /etc/hosts lacks %q (%v):\n%s", want, err, hosts)
		}
	})

	t.Run("a pod resolves and reaches hostname.subdomain through its resolv.conf", func(t *testing.T) {
		client := "http://" + ip("client") + ":8080"
		body, err := httpGet(client + "/resolve?name=db-1.db")
		if err != nil || strings.TrimSpace(body) != ip("db-1") {
			t.Errorf("client resolved db-1.db to %q (%v), want %s", body, err, ip("db-1"))
		}
		body, err = httpGet(client + "/fetch?url=http://db-0.db:8080/")
		if err != nil || !strings.Contains(body, "hello from db-0") {
			t.Errorf("client GET http://db-0.db:8080/: %q, %v", body, err)
		}
	})

	t.Run("web answers its virtual IP, to the host and to a pod", func(t *testing.T) {
		const webFQDN = "web.default.svc.cluster.local."
		vip := clusterIP(t, s, "default", "web")
		if slices.Contains(ips(web), vip) {
			t.Fatalf("web's clusterIP %s is a pod's address", vip)
		}
		want, srvWant := []string{vip}, []string{webFQDN + ":80"}
		s.waitFor("A "+webFQDN, 10*time.Second, func() error { return wantA(s, webFQDN, want) })
		body, err := httpGet("http://" + ip("client") + ":8080/resolve?name=web")
		if got := strings.Fields(body); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("client resolved web to %q (%v), want %v", body, err, want)
		}
		r, err := s.lookup("_http._tcp."+webFQDN, mdns.TypeSRV)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, rr := range r.Answer {
			if srv, ok := rr.(*mdns.SRV); ok {
				got = append(got, fmt.Sprintf("%s:%d", srv.Target, srv.Port))
			}
		}
		sort.Strings(got)
		if !reflect.DeepEqual(got, srvWant) {
			t.Errorf("SRV _http._tcp.%s = %v, want %v", webFQDN, got, srvWant)
		}
		if extra := aRecords(&mdns.Msg{Answer: r.Extra}); !reflect.DeepEqual(extra, want) {
			t.Errorf("SRV additional records = %v, want %v", extra, want)
		}
		// A Service with a virtual IP has no per-pod names.
		r, err = s.lookup(strings.ReplaceAll(web[0].Status.PodIP, ".", "-")+"."+webFQDN, mdns.TypeA)
		if err != nil || r.Rcode != mdns.RcodeNameError {
			t.Errorf("web's pod by its dashed address: %v, %v; want NXDOMAIN", r, err)
		}
	})

	t.Run("a removed pod loses its names", func(t *testing.T) {
		// db.yaml without its last document, db-1.
		content := readFile(t, repo.dir+"/db.yaml")
		repo.write("db.yaml", content[:strings.LastIndex(content, "\n---\n")+1])
		repo.commit("remove db-1")
		s.waitFor("db-1.db to go", 30*time.Second, func() error {
			r, err := s.lookup("db-1."+db, mdns.TypeA)
			if err != nil {
				return err
			}
			if r.Rcode != mdns.RcodeNameError {
				return fmt.Errorf("rcode %s, answer %v", mdns.RcodeToString[r.Rcode], r.Answer)
			}
			return nil
		})
		if err := wantA(s, db, []string{ip("db-0")}); err != nil {
			t.Error(err)
		}
		if err := wantA(s, "db-0."+db, []string{ip("db-0")}); err != nil {
			t.Error(err)
		}
	})
}

// wantA asks the stack for the A records of name and compares them, sorted,
// with want.
func wantA(s *stack, name string, want []string) error {
	r, err := s.lookup(name, mdns.TypeA)
	if err != nil {
		return err
	}
	want = slices.Clone(want)
	sort.Strings(want)
	if got := aRecords(r); !reflect.DeepEqual(got, want) {
		return fmt.Errorf("A %s = %v (%s), want %v", name, got, mdns.RcodeToString[r.Rcode], want)
	}
	return nil
}

// clusterIP returns the virtual IP the API shows for the Service ns/name.
func clusterIP(t *testing.T, s *stack, ns, name string) string {
	t.Helper()
	var list struct{ Items []corev1.Service }
	if err := s.getJSON("/api/v1/services", &list); err != nil {
		t.Fatal(err)
	}
	for _, svc := range list.Items {
		if svc.Namespace == ns && svc.Name == name {
			if _, err := netip.ParseAddr(svc.Spec.ClusterIP); err != nil {
				t.Fatalf("%s/%s: clusterIP %q is not an address", ns, name, svc.Spec.ClusterIP)
			}
			return svc.Spec.ClusterIP
		}
	}
	t.Fatalf("no Service %s/%s in %+v", ns, name, list.Items)
	return ""
}
