package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"bosun/store"
)

// The Services of the ClusterIP tests: web gets an address, api asks for
// one, admin is a NodePort Service, db is headless.
const (
	allocWeb = `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
`
	allocAPI = `apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  clusterIP: 10.211.0.50
  selector: {app: api}
  ports:
  - {name: http, port: 80, targetPort: 8080}
`
	allocAdmin = `apiVersion: v1
kind: Service
metadata:
  name: admin
spec:
  type: NodePort
  selector: {app: admin}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: dns, port: 53, protocol: UDP}
`
	allocDB = `apiVersion: v1
kind: Service
metadata:
  name: db
spec:
  clusterIP: None
  selector: {app: db}
  ports:
  - {port: 5432}
`
)

// The ranges the ClusterIP tests' servers allocate from (a control plane
// programs no kernel state, so they need not be unique on the machine).
const (
	allocCIDR  = "10.211.0.0/16"
	allocPorts = "31000-31099"
)

// services returns the stack's Services by name, as `bosun get services
// -o json` prints them.
func (s *stack) services() map[string]corev1.Service {
	s.t.Helper()
	out, err := s.cli("get", "services", "-o", "json")
	if err != nil {
		s.t.Fatalf("bosun get services -o json: %v\n%s", err, out)
	}
	var list struct{ Items []corev1.Service }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		s.t.Fatalf("decode: %v\n%s", err, out)
	}
	m := map[string]corev1.Service{}
	for _, svc := range list.Items {
		m[svc.Name] = svc
	}
	return m
}

// addressesOf renders each Service's clusterIP(s) and node ports, sorted:
// "admin 10.211.3.4 [10.211.3.4] 31042,31042".
func addressesOf(svcs map[string]corev1.Service) []string {
	var out []string
	for name, svc := range svcs {
		line := fmt.Sprintf("%s %s %v", name, svc.Spec.ClusterIP, svc.Spec.ClusterIPs)
		var nps []string
		for _, p := range svc.Spec.Ports {
			if p.NodePort != 0 {
				nps = append(nps, fmt.Sprint(p.NodePort))
			}
		}
		if nps != nil {
			line += " " + strings.Join(nps, ",")
		}
		out = append(out, line)
	}
	slices.Sort(out)
	return out
}

// waitApplied waits until the stack applied commit and stores want
// Services with addresses.
func (s *stack) waitApplied(commit string, want int) map[string]corev1.Service {
	s.t.Helper()
	var svcs map[string]corev1.Service
	s.waitFor("commit "+commit[:8]+" applied with its Services", 30*time.Second, func() error {
		st, err := s.status()
		if err != nil || st.Sync.Applied == nil || st.Sync.Applied.Commit != commit {
			return fmt.Errorf("applied %+v, errors %v, %v", st.Sync.Applied, st.Sync.Errors, err)
		}
		svcs = s.services()
		if len(svcs) != want {
			return fmt.Errorf("%d services stored", len(svcs))
		}
		for _, svc := range svcs {
			if svc.Spec.ClusterIP == "" {
				return fmt.Errorf("%s has no clusterIP yet", svc.Name)
			}
		}
		return nil
	})
	return svcs
}

// TestClusterIP walks Service addresses on a control plane: the leader
// gives them as a revision is accepted, honours an address a manifest asks
// for, gives NodePort Services node ports in range, keeps every address
// across unrelated commits and a restart, refuses a revision whose
// Services ask for an address another Service keeps or one out of range
// (or a LoadBalancer) with file:line, changing nothing, and `bosun plan`
// shows what a new Service would get.
func TestClusterIP(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("web.yaml", allocWeb)
	repo.write("api.yaml", allocAPI)
	repo.write("admin.yaml", allocAdmin)
	repo.write("db.yaml", allocDB)
	first := repo.commit("four services")
	s := startControlPlane(t, repo.dir, "--service-cidr", allocCIDR, "--node-port-range", allocPorts)
	svcs := s.waitApplied(first, 4)
	cidr := netip.MustParsePrefix(allocCIDR)
	before := addressesOf(svcs)
	t.Logf("addresses: %v", before)

	t.Run("addresses are given, asked-for ones honoured, node ports in range", func(t *testing.T) {
		for name, svc := range svcs {
			switch name {
			case "db":
				if svc.Spec.ClusterIP != "None" || !slices.Equal(svc.Spec.ClusterIPs, []string{"None"}) {
					t.Errorf("db: clusterIP %q clusterIPs %v, want headless", svc.Spec.ClusterIP, svc.Spec.ClusterIPs)
				}
				continue
			case "api":
				if svc.Spec.ClusterIP != "10.211.0.50" {
					t.Errorf("api: clusterIP %q, want the 10.211.0.50 it asks for", svc.Spec.ClusterIP)
				}
			}
			ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
			if err != nil || !cidr.Contains(ip) || ip == cidr.Addr().Next() || !slices.Equal(svc.Spec.ClusterIPs, []string{svc.Spec.ClusterIP}) {
				t.Errorf("%s: clusterIP %q clusterIPs %v, want one address of %s", name, svc.Spec.ClusterIP, svc.Spec.ClusterIPs, allocCIDR)
			}
		}
		admin := svcs["admin"].Spec.Ports
		if len(admin) != 2 || admin[0].NodePort < 31000 || admin[0].NodePort > 31099 || admin[1].NodePort < 31000 || admin[1].NodePort > 31099 {
			t.Errorf("admin's node ports %+v, want two in %s", admin, allocPorts)
		}
		out, err := s.cli("get", "services")
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]string{
			"api":   "ClusterIP 10.211.0.50 80/TCP",
			"admin": fmt.Sprintf("NodePort %s 80:%d/TCP,53:%d/UDP", svcs["admin"].Spec.ClusterIP, admin[0].NodePort, admin[1].NodePort),
			"db":    "ClusterIP None 5432/TCP",
		} {
			if got := row(out, "default", name); !strings.HasPrefix(got, want+" ") {
				t.Errorf("bosun get services: %s is %q, want %q ...:\n%s", name, got, want, out)
			}
		}
		if !strings.Contains(out, "CLUSTER-IP") || !strings.Contains(out, "PORT(S)") {
			t.Errorf("bosun get services has no CLUSTER-IP and PORT(S) columns:\n%s", out)
		}
		out, err = s.cli("status")
		if err != nil || row(serviceSection(out), "default/web") != svcs["web"].Spec.ClusterIP+" -> 0 ready endpoints" ||
			row(serviceSection(out), "default/db") != "headless -> 0 ready endpoints" {
			t.Errorf("bosun status: %v\n%s", err, out)
		}
	})

	t.Run("an unrelated commit moves nobody", func(t *testing.T) {
		repo.write("cache.yaml", strings.ReplaceAll(allocWeb, "web", "cache"))
		repo.write("config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n")
		commit := repo.commit("another service and a config map")
		svcs := s.waitApplied(commit, 5)
		delete(svcs, "cache")
		if got := addressesOf(svcs); !slices.Equal(got, before) {
			t.Errorf("addresses after an unrelated commit:\n%v\nwant\n%v", got, before)
		}
	})

	t.Run("a revision asking for a kept or out-of-range address, or a LoadBalancer, is rejected whole", func(t *testing.T) {
		good := addressesOf(s.services())
		h := len(s.history())
		reject := func(msg string, want ...string) {
			t.Helper()
			bad := repo.commit(msg)
			s.waitFor("the revision to be rejected", 30*time.Second, func() error {
				st, err := s.status()
				if err != nil || st.Sync.Seen == nil || st.Sync.Seen.Commit != bad {
					return fmt.Errorf("seen %+v, %v", st.Sync.Seen, err)
				}
				return nil
			})
			st, _ := s.status()
			if st.Sync.Applied == nil || st.Sync.Applied.Commit == bad {
				t.Fatalf("the bad revision was applied")
			}
			if !slices.Equal(st.Sync.Errors, want) {
				t.Errorf("status errors:\n%s\nwant:\n%s", strings.Join(st.Sync.Errors, "\n"), strings.Join(want, "\n"))
			}
			h++
			hist := s.history()
			if len(hist) != h || hist[0].Result != store.ResultRejected || !slices.Equal(hist[0].Errors, want) {
				t.Errorf("history: %d entries, want %d; newest %s %v", len(hist), h, hist[0].Result, hist[0].Errors)
			}
			if got := addressesOf(s.services()); !slices.Equal(got, good) {
				t.Errorf("a rejected revision changed the Services:\n%v\nwant\n%v", got, good)
			}
		}
		repo.write("dup.yaml", strings.ReplaceAll(allocWeb, "web", "dup")+"  clusterIP: "+svcs["web"].Spec.ClusterIP+"\n")
		repo.write("far.yaml", strings.Replace(strings.NewReplacer("name: api", "name: far", "app: api", "app: far").Replace(allocAPI), "10.211.0.50", "10.96.0.50", 1))
		reject("addresses taken or out of range",
			"dup.yaml:9: spec.clusterIP: "+svcs["web"].Spec.ClusterIP+" is taken by Service default/web, which keeps it",
			"far.yaml:6: spec.clusterIP: 10.96.0.50 is outside the service CIDR "+allocCIDR+" (--service-cidr)")
		repo.git("rm", "-q", "dup.yaml", "far.yaml")
		repo.write("lb.yaml", strings.ReplaceAll(allocWeb, "web", "lb")+"  type: LoadBalancer\n")
		reject("a load balancer",
			`lb.yaml:9: spec.type: unsupported value "LoadBalancer": bosun has no load balancer provider; use type NodePort and point your load balancer at the nodes' ports`)
		repo.git("rm", "-q", "lb.yaml")
		fixed := repo.commit("drop the bad services")
		s.waitApplied(fixed, 5)
	})

	t.Run("bosun plan shows the address a new Service gets", func(t *testing.T) {
		dir := t.TempDir()
		r := &gitRepo{t: t, dir: dir}
		for _, name := range []string{"web", "api", "admin", "db", "cache"} {
			doc := map[string]string{"web": allocWeb, "api": allocAPI, "admin": allocAdmin, "db": allocDB,
				"cache": strings.ReplaceAll(allocWeb, "web", "cache")}[name]
			r.write(name+".yaml", doc)
		}
		r.write("config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n")
		r.write("new.yaml", strings.ReplaceAll(allocAdmin, "admin", "fresh"))
		out, code := s.plan("--dir", dir)
		if code != 2 || !strings.Contains(out, "+ Service default/fresh  (10.211.") || !strings.Contains(out, ":310") {
			t.Errorf("bosun plan --dir (exit %d):\n%s", code, out)
		}
		if strings.Contains(out, "Service default/web") {
			t.Errorf("the plan changes web:\n%s", out)
		}
	})

	t.Run("a restart keeps every address", func(t *testing.T) {
		want := addressesOf(s.services())
		s.stop(syscall.SIGTERM)
		s.start()
		s.waitFor("the restarted server to lead", 30*time.Second, func() error {
			st, err := s.status()
			if err != nil || st.Leader == "" {
				return fmt.Errorf("leader %q, %v", st.Leader, err)
			}
			return nil
		})
		repo.write("config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: c\n")
		commit := repo.commit("change the config map")
		s.waitApplied(commit, 5)
		if got := addressesOf(s.services()); !slices.Equal(got, want) {
			t.Errorf("addresses after a restart and a commit:\n%v\nwant\n%v", got, want)
		}
	})

	t.Run("bosun validate checks the ranges offline", func(t *testing.T) {
		dir := t.TempDir()
		r := &gitRepo{t: t, dir: dir}
		r.write("api.yaml", allocAPI)
		r.write("admin.yaml", strings.Replace(allocAdmin, "port: 80, targetPort: 8080}", "port: 80, targetPort: 8080, nodePort: 30080}", 1))
		out, err := exec.Command(bosun(t), "validate", "--node-port-range", allocPorts, dir).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("bosun validate: %v, want exit 1\n%s", err, out)
		}
		for _, want := range []string{
			"admin.yaml:9: spec.ports[0].nodePort: 30080 is outside the node port range 31000-31099 (--node-port-range)",
			"api.yaml:6: spec.clusterIP: 10.211.0.50 is outside the service CIDR 10.96.0.0/16 (--service-cidr)",
		} {
			if !strings.Contains(string(out), want) {
				t.Errorf("bosun validate lacks %q:\n%s", want, out)
			}
		}
		out, err = exec.Command(bosun(t), "validate", "--service-cidr", allocCIDR, "--node-port-range", "30000-30100", dir).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "valid: ") {
			t.Errorf("bosun validate with the cluster's ranges: %v\n%s", err, out)
		}
	})
}

// TestClusterIP_failover: two control-plane replicas on one etcd; the
// Services' addresses survive the leader's death, and the new leader keeps
// them through a new commit.
func TestClusterIP_failover(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	endpoints := sharedEtcd(t)
	repo := newGitRepo(t)
	repo.write("web.yaml", allocWeb)
	repo.write("admin.yaml", allocAdmin)
	first := repo.commit("two services")
	flags := []string{"--etcd-endpoints", endpoints, "--service-cidr", allocCIDR, "--node-port-range", allocPorts}
	a := startControlPlane(t, repo.dir, append(flags, "--id", "replica-a")...)
	b := startControlPlane(t, repo.dir, append(flags, "--id", "replica-b")...)
	want := addressesOf(a.waitApplied(first, 2))

	leader, other := a, b
	a.waitFor("a leader", 30*time.Second, func() error {
		st, err := a.status()
		if err != nil || (st.Leader != "replica-a" && st.Leader != "replica-b") {
			return fmt.Errorf("leader %q, %v", st.Leader, err)
		}
		if st.Leader == "replica-b" {
			leader, other = b, a
		}
		return nil
	})
	if got := addressesOf(other.services()); !slices.Equal(got, want) {
		t.Errorf("the follower serves %v, want %v", got, want)
	}
	leader.stop(syscall.SIGKILL)
	other.waitFor("the other replica to lead", 20*time.Second, func() error {
		st, err := other.status()
		if err != nil || st.Leader == "" || (leader == a && st.Leader != "replica-b") || (leader == b && st.Leader != "replica-a") {
			return fmt.Errorf("leader %q, %v", st.Leader, err)
		}
		return nil
	})
	repo.write("cache.yaml", strings.ReplaceAll(allocWeb, "web", "cache"))
	commit := repo.commit("a third service")
	svcs := other.waitApplied(commit, 3)
	delete(svcs, "cache")
	if got := addressesOf(svcs); !slices.Equal(got, want) {
		t.Errorf("addresses after a failover and a commit:\n%v\nwant\n%v", got, want)
	}
}

// TestClusterIP_endpoints: on a node that runs pods, `bosun get endpoints`
// answers the Service's EndpointSlices and `bosun status` its ClusterIP and
// ready endpoints.
func TestClusterIP_endpoints(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.copyDir("../examples/hello/web")
	commit := repo.commit("hello web")
	s := startStack(t, repo)
	s.waitApplied(commit, 1)
	s.waitFor("3 ready web pods", 90*time.Second, func() error {
		if n := len(readyPods(s.pods(), "web-")); n != 3 {
			return fmt.Errorf("%d ready web pods", n)
		}
		return nil
	})
	web := s.services()["web"]
	s.waitFor("status to count 3 ready endpoints", 10*time.Second, func() error {
		out, err := s.cli("status")
		if err != nil || row(serviceSection(out), "default/web") != web.Spec.ClusterIP+" -> 3 ready endpoints" {
			return fmt.Errorf("bosun status: %v\n%s", err, out)
		}
		return nil
	})
	out, err := s.cli("get", "endpoints", "web", "-o", "json")
	if err != nil {
		t.Fatalf("bosun get endpoints web -o json: %v\n%s", err, out)
	}
	var list struct{ Items []discoveryv1.EndpointSlice }
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Items) != 1 {
		t.Fatalf("want one EndpointSlice (%v):\n%s", err, out)
	}
	sl := list.Items[0]
	var addrs []string
	for _, ep := range sl.Endpoints {
		if *ep.Conditions.Ready {
			addrs = append(addrs, ep.Addresses...)
		}
	}
	if sl.Kind != "EndpointSlice" || len(sl.Ports) != 1 || *sl.Ports[0].Port != 8080 || !slices.Equal(addrs, ips(readyPods(s.pods(), "web-"))) {
		t.Errorf("slice %+v, ready %v", sl, addrs)
	}
	out, err = s.cli("get", "endpoints")
	if got := row(out, "default", "web"); err != nil || strings.Count(got, ":8080") != 3 || !strings.HasSuffix(got, " 0") {
		t.Errorf("bosun get endpoints: %v\n%s", err, out)
	}
}

// row finds the line of a table whose first cells are key and returns its
// other cells joined by single spaces ("" when there is none).
func row(table string, key ...string) string {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) > len(key) && slices.Equal(f[:len(key)], key) {
			return strings.Join(f[len(key):], " ")
		}
	}
	return ""
}

// serviceSection is the SERVICE table of `bosun status`.
func serviceSection(status string) string {
	_, after, _ := strings.Cut(status, "\nSERVICE")
	return after
}
