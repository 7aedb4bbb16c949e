package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
)

// metricsDeployment runs one pod on each of two nodes (required
// anti-affinity on the hostname), behind a Service.
const metricsDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: web}}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: web
        image: localhost/bosun-hello:v1
        env:
        - {name: PORT, value: "8080"}
        ports:
        - {name: http, containerPort: 8080}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 8080}
`

// TestMetrics_everyLoopMovesAfterACommit: after a commit, a metric of each
// loop (Git source, leader, scheduler, agent, DNS, API) has moved on the
// server's /metrics, and the agent's own (pod starts, image-less starts,
// its node DNS) on the /metrics of `bosun agent --listen`.
func TestMetrics_everyLoopMovesAfterACommit(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("README.md", "nothing to run yet\n")
	repo.commit("empty")
	s := startStack(t, repo)
	agentAddr := freePort(t)
	b := startAgentWith(t, "metrics-b", "--etcd-endpoints", "http://"+s.etcdAddr, "--node-ip", "127.0.0.1", "--listen", agentAddr)
	var agentGateway string
	s.waitFor("two nodes", 60*time.Second, func() error {
		var list struct{ Items []corev1.Node }
		if err := s.getJSON("/api/v1/nodes", &list); err != nil || len(list.Items) != 2 {
			return fmt.Errorf("%d nodes, %v", len(list.Items), err)
		}
		for _, n := range list.Items {
			if n.Name == "metrics-b" && n.Spec.PodCIDR != "" {
				p, err := netip.ParsePrefix(n.Spec.PodCIDR)
				if err != nil {
					return err
				}
				agentGateway = p.Masked().Addr().Next().String() // the pods' nameserver
			}
		}
		if agentGateway == "" {
			return fmt.Errorf("node metrics-b has no pod CIDR yet")
		}
		return nil
	})
	serverMetrics := func() (metricsText, error) { txt, err := s.getText("/metrics"); return metricsText(txt), err }
	agentMetrics := func() (metricsText, error) {
		txt, err := httpGet("http://" + agentAddr + "/metrics")
		return metricsText(txt), err
	}
	srvBefore, err := serverMetrics()
	if err != nil {
		t.Fatal(err)
	}
	agBefore, err := agentMetrics()
	if err != nil {
		t.Fatalf("agent /metrics: %v\n%s", err, b.log.String())
	}

	repo.write("web/app.yaml", metricsDeployment)
	commit := repo.commit("web on two nodes")
	s.waitFor("both pods ready, one per node", 120*time.Second, func() error {
		ready := readyPods(s.pods(), "web-")
		nodes := map[string]bool{}
		for _, p := range ready {
			nodes[p.Spec.NodeName] = true
		}
		if len(ready) != 2 || len(nodes) != 2 {
			return fmt.Errorf("%d ready pods on %v", len(ready), nodes)
		}
		return nil
	})
	s.waitFor("the commit applied", 30*time.Second, func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		if st.Sync.Applied == nil || st.Sync.Applied.Commit != commit {
			return fmt.Errorf("applied %+v", st.Sync.Applied)
		}
		return nil
	})

	// DNS queries to the server's DNS and to the agent's node DNS.
	s.waitFor("web resolves on the server's DNS", 30*time.Second, func() error {
		r, err := s.lookup("web.default.svc.cluster.local", mdns.TypeA)
		if err != nil || r.Rcode != mdns.RcodeSuccess {
			return fmt.Errorf("%v %v", r, err)
		}
		return nil
	})
	s.waitFor("web resolves on the agent's node DNS", 30*time.Second, func() error {
		m := new(mdns.Msg)
		m.SetQuestion("web.default.svc.cluster.local.", mdns.TypeA)
		r, _, err := (&mdns.Client{Timeout: 2 * time.Second}).Exchange(m, net.JoinHostPort(agentGateway, "53"))
		if err != nil || r.Rcode != mdns.RcodeSuccess {
			return fmt.Errorf("%v %v", r, err)
		}
		return nil
	})

	type moved struct {
		loop, name string
		labels     []string
	}
	onServer := []moved{
		{"git", "bosun_git_fetches_total", []string{`result="ok"`}},
		{"git", "bosun_git_fetch_duration_seconds_count", nil},
		{"leader", "bosun_revisions_total", []string{`result="accepted"`}},
		{"leader", "bosun_reconcile_passes_total", nil},
		{"leader", "bosun_plan_duration_seconds_count", nil},
		{"leader", "bosun_actions_total", []string{`type="CreatePod"`}},
		{"leader", "bosun_rollouts_total", []string{`outcome="complete"`}},
		{"scheduler", "bosun_scheduler_placements_total", nil},
		{"agent", "bosun_agent_pod_starts_total", nil},
		{"agent", "bosun_agent_pod_start_duration_seconds_count", nil},
		{"agent", "bosun_agent_container_starts_total", nil},
		{"dns", "bosun_dns_queries_total", []string{`qtype="A"`, `rcode="NOERROR"`}},
		{"api", "bosun_api_requests_total", []string{`route="GET /api/v1/{kind}"`, `code="200"`}},
		{"api", "bosun_api_request_duration_seconds_count", []string{`route="GET /api/v1/status"`}},
	}
	onAgent := []moved{
		{"agent", "bosun_agent_pod_starts_total", nil},
		{"agent", "bosun_agent_pod_start_duration_seconds_count", nil},
		{"agent", "bosun_agent_container_starts_total", nil},
		{"dns", "bosun_dns_queries_total", []string{`qtype="A"`, `rcode="NOERROR"`}},
	}
	check := func(where string, get func() (metricsText, error), before metricsText, want []moved) {
		t.Helper()
		s.waitFor(where+" metrics moved", 30*time.Second, func() error {
			now, err := get()
			if err != nil {
				return err
			}
			var stuck []string
			for _, m := range want {
				was, _ := before.value(m.name, m.labels...)
				is, ok := now.value(m.name, m.labels...)
				if !ok || is <= was {
					stuck = append(stuck, fmt.Sprintf("%s: %s%v %v -> %v (present %v)", m.loop, m.name, m.labels, was, is, ok))
				}
			}
			if len(stuck) > 0 {
				return fmt.Errorf("not moved:\n%s", strings.Join(stuck, "\n"))
			}
			return nil
		})
	}
	check("server", serverMetrics, srvBefore, onServer)
	check("agent", agentMetrics, agBefore, onAgent)

	// The server's gauges of the Git source and the leader.
	now, err := serverMetrics()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"bosun_git_revision_age_seconds", "bosun_git_fetch_consecutive_failures", "bosun_leader"} {
		if _, ok := now.value(g); !ok {
			t.Errorf("server /metrics lacks %s", g)
		}
	}
	if v, _ := now.value("bosun_leader"); v != 1 {
		t.Errorf("bosun_leader = %v, want 1", v)
	}
	// Bounded labels: no pod name anywhere.
	for _, p := range s.pods() {
		if strings.Contains(string(now), p.Name) {
			t.Errorf("server /metrics carries the pod name %s", p.Name)
		}
	}
}

// metricsText is a scrape in Prometheus's text format.
type metricsText string

// value sums the samples of name (exactly) whose labels include every one
// of labels (`k="v"`); ok says whether any sample matched.
func (m metricsText) value(name string, labels ...string) (float64, bool) {
	var sum float64
	found := false
	sc := bufio.NewScanner(strings.NewReader(string(m)))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		series, val, ok := strings.Cut(line, " ")
		if i := strings.Index(line, "} "); i >= 0 {
			series, val, ok = line[:i+1], line[i+2:], true
		}
		if !ok {
			continue
		}
		metric, lbls, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(lbls, l) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(val)[0], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	return sum, found
}
