package e2e

import (
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// simulator is a `bosun agent --simulate N` process.
type simulator struct {
	cmd    *exec.Cmd
	exited chan struct{}
	log    *strings.Builder
}

func startSimulator(t testing.TB, s *stack, args ...string) *simulator {
	t.Helper()
	sim := &simulator{exited: make(chan struct{}), log: &strings.Builder{}}
	sim.cmd = exec.Command(bosun(t), append([]string{"agent", "--etcd-endpoints", "http://" + s.etcdAddr, "--node-ip", "127.0.0.1"}, args...)...)
	w := &lockedWriter{mu: s.logMu, w: sim.log}
	sim.cmd.Stdout, sim.cmd.Stderr = w, w
	if err := sim.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { sim.cmd.Wait(); close(sim.exited) }()
	t.Cleanup(func() {
		sim.stop()
		if t.Failed() {
			s.logMu.Lock()
			t.Logf("simulator log:\n%s", sim.log.String())
			s.logMu.Unlock()
		}
	})
	return sim
}

func (sim *simulator) stop() {
	select {
	case <-sim.exited:
		return
	default:
	}
	sim.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-sim.exited:
	case <-time.After(30 * time.Second):
		sim.cmd.Process.Kill()
		<-sim.exited
	}
}

// table runs `bosun get KIND -o wide` and returns its rows as fields by
// column name.
func (s *stack) table(kind string) ([]map[string]string, error) {
	out, err := s.cli("get", kind, "-o", "wide")
	if err != nil {
		return nil, fmt.Errorf("bosun get %s: %v: %s", kind, err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	head := strings.Fields(lines[0])
	var rows []map[string]string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		row := map[string]string{}
		for i, h := range head {
			if i < len(f) {
				row[h] = f[i]
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// TestSimulatedNodes: a control plane without a node of its own and a
// `bosun agent --simulate 20` process; a Deployment of 40 replicas is
// reported Running and Ready on the simulated nodes, spread over them, its
// headless Service answers their 40 addresses, and stopping the simulator
// takes its nodes away.
func TestSimulatedNodes(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("README.md", "nothing to run yet\n")
	repo.commit("empty")
	s := startControlPlane(t, repo.dir)
	sim := startSimulator(t, s, "--simulate", "20", "--simulate-start-delay", "300ms",
		"--simulate-prefix", "hollow", "--simulate-pod-cidrs", "10.240.0.0/16", "--max-pods", "4")
	s.waitFor("20 simulated nodes Ready", 30*time.Second, func() error {
		rows, err := s.table("nodes")
		if err != nil {
			return err
		}
		ready := 0
		for _, r := range rows {
			if strings.HasPrefix(r["NAME"], "hollow-") && r["STATUS"] == "Ready" && r["RUNTIME"] == "simulated://bosun" && r["PODS"] == "4" {
				ready++
			}
		}
		if ready != 20 {
			return fmt.Errorf("%d of 20 simulated nodes Ready: %v", ready, rows)
		}
		return nil
	})

	repo.write("web.yaml", `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 40
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: localhost/bosun-hello:v1
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: None
  selector: {app: web}
  ports:
  - port: 8080
`)
	repo.commit("40 replicas of web")
	var podIPs []string
	s.waitFor("40 pods Running and Ready on simulated nodes", 60*time.Second, func() error {
		rows, err := s.table("pods")
		if err != nil {
			return err
		}
		perNode := map[string]int{}
		podIPs = nil
		for _, r := range rows {
			if !strings.HasPrefix(r["NAME"], "web-") {
				continue
			}
			if r["STATUS"] != "Running" || r["READY"] != "1/1" || !strings.HasPrefix(r["NODE"], "hollow-") {
				return fmt.Errorf("pod %s: %s %s on %s", r["NAME"], r["STATUS"], r["READY"], r["NODE"])
			}
			if ip, err := netip.ParseAddr(r["IP"]); err != nil || !netip.MustParsePrefix("10.240.0.0/16").Contains(ip) {
				return fmt.Errorf("pod %s: IP %q not in the simulated range", r["NAME"], r["IP"])
			}
			perNode[r["NODE"]]++
			podIPs = append(podIPs, r["IP"])
		}
		if len(podIPs) != 40 {
			return fmt.Errorf("%d of 40 pods Running and Ready", len(podIPs))
		}
		// --max-pods 4 on 20 nodes: at least 10 nodes carry them.
		if len(perNode) < 10 {
			return fmt.Errorf("pods on %d nodes, want them spread over at least 10: %v", len(perNode), perNode)
		}
		return nil
	})
	slices.Sort(podIPs)
	if len(slices.Compact(slices.Clone(podIPs))) != 40 {
		t.Fatalf("pod addresses not unique: %v", podIPs)
	}
	s.waitFor("DNS to answer the 40 pod addresses", 30*time.Second, func() error {
		// Over UDP 40 A records do not fit in 512 bytes (the answer is
		// truncated, as it should be); ask over TCP, as a resolver then does.
		m := new(mdns.Msg)
		m.SetQuestion("web.default.svc.cluster.local.", mdns.TypeA)
		r, _, err := (&mdns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(m, s.dnsAddr)
		if err != nil {
			return err
		}
		if got := aRecords(r); !slices.Equal(got, podIPs) {
			return fmt.Errorf("A records %v, want %v", got, podIPs)
		}
		return nil
	})

	sim.stop()
	s.waitFor("the simulated nodes gone", 30*time.Second, func() error {
		rows, err := s.table("nodes")
		if err != nil {
			return err
		}
		for _, r := range rows {
			if strings.HasPrefix(r["NAME"], "hollow-") && r["STATUS"] == "Ready" {
				return fmt.Errorf("node %s still Ready", r["NAME"])
			}
		}
		return nil
	})
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if !strings.Contains(sim.log.String(), "run nothing") {
		t.Errorf("the simulator did not say it simulates:\n%s", sim.log.String())
	}
}
