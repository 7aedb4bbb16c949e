package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"

	"bosun/store"
)

// The simulated cluster of BenchmarkScale; BOSUN_SCALE_NODES,
// BOSUN_SCALE_DEPLOYMENTS and BOSUN_SCALE_REPLICAS make it smaller for a
// quick run.
var (
	scaleNodes       = envInt("BOSUN_SCALE_NODES", 1000)
	scaleDeployments = envInt("BOSUN_SCALE_DEPLOYMENTS", 500)
	scaleReplicas    = envInt("BOSUN_SCALE_REPLICAS", 60)
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkScale runs a bosun control plane (embedded etcd, leader, DNS,
// API; no agent) against simulated nodes (`bosun agent --simulate`): by
// default 1,000 nodes and a repository of 500 Deployments x 60 replicas
// (30,000 pods) and 500 headless Services. Each iteration is a whole
// cluster from scratch; run it with -benchtime 1x -count 5 and compare with
// benchstat (make bench-scale). It reports:
//
//   - s/commit-to-bound: the commit of the repository -> every pod bound
//   - s/commit-to-ready: the same commit -> every pod Ready
//   - s/rollout: a commit changing every Deployment's image -> every pod of
//     the new image Ready and every old pod gone
//   - ms/ready-to-dns-p50, -p99: a pod's status turning Ready -> the DNS
//     server answering its address, sampled on about 300 of the rollout's pods
//   - s/rollout-one, ms/ready-to-dns-one-p50, -p99: then one Deployment
//     rolls to a new image among all the others, every new pod sampled
//   - %cpu/leader-idle, MB/server-rss: the server's CPU over 10 s once
//     idle, and its resident memory
//   - ms/api-get-pods: GET /api/v1/pods (every pod), median of 5
//   - MB/etcd-db: the etcd database size
//   - leader-losses: times the leader lost its election lease
//
// Progress is followed by a watch on etcd from the benchmark's process,
// timestamped as its events arrive, not by polling.
func BenchmarkScale(b *testing.B) {
	if testing.Short() {
		b.Skip("end-to-end benchmark")
	}
	for i := 0; i < b.N; i++ {
		runScale(b)
	}
}

func runScale(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pods := scaleDeployments * scaleReplicas
	repo := newGitRepo(b)
	repo.write("README.md", "scale test\n")
	repo.commit("empty")
	// Commits are announced as a webhook would (a sync request), so the
	// idle server does not fetch from Git every few hundred milliseconds.
	// BOSUN_SCALE_SERVER_ARGS adds flags, e.g. --pprof-listen 127.0.0.1:6060.
	s := startControlPlane(b, repo.dir, append([]string{"--poll", "1m"}, strings.Fields(os.Getenv("BOSUN_SCALE_SERVER_ARGS"))...)...)
	etcdURL := "http://" + s.etcdAddr
	cli, err := store.Dial([]string{etcdURL})
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()

	// The simulated nodes stand for other machines: at a lower priority
	// they leave this machine's CPU to the control plane they load.
	sim := exec.Command("nice", "-n", "10", bosun(b), "agent", "--simulate", strconv.Itoa(scaleNodes), "--etcd-endpoints", etcdURL)
	simLog := &lockedWriter{mu: &sync.Mutex{}, w: &strings.Builder{}}
	sim.Stdout, sim.Stderr = simLog, simLog
	if err := sim.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		sim.Process.Signal(syscall.SIGTERM)
		sim.Wait()
	}()
	simStart := time.Now()
	s.waitFor(fmt.Sprintf("%d simulated nodes", scaleNodes), 5*time.Minute, func() error {
		resp, err := cli.Get(ctx, store.Prefix+store.NodesPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return err
		}
		if resp.Count != int64(scaleNodes) {
			return fmt.Errorf("%d registered", resp.Count)
		}
		return nil
	})
	b.Logf("%d simulated nodes registered in %v", scaleNodes, time.Since(simStart).Round(time.Millisecond))

	w := newScaleWatcher(b, s, cli)
	go w.run(ctx)

	writeScaleRepo(repo, "v1")
	commit := time.Now()
	repo.commit("deploy the scale test")
	requestSync(b, cli)
	bound := w.wait("every pod bound", 5*time.Minute, func(c scaleCounts) bool { return c.pods == pods && c.bound == pods })
	ready := w.wait("every pod ready", 10*time.Minute, func(c scaleCounts) bool { return c.pods == pods && c.ready["v1"] == pods })
	b.Logf("commit -> %d pods bound %v, ready %v", pods, bound.Sub(commit), ready.Sub(commit))

	// Idle: nothing changes, so the leader sleeps. (The Go runtime returns
	// the memory of the burst to the kernel for a few seconds after it.)
	time.Sleep(15 * time.Second)
	cpu := cpuPercent(b, s.cmd.Process.Pid, 10*time.Second)
	rss := rssMB(b, s.cmd.Process.Pid)
	heap := metricValue(s.metrics(), "go_memstats_heap_inuse_bytes") / 1e6
	simCPU := cpuPercent(b, sim.Process.Pid, 5*time.Second)
	simRSS := rssMB(b, sim.Process.Pid)
	b.Logf("idle: server %.2f %% of a core, %.0f MB RSS (Go heap in use %.0f MB); simulator %.2f %%, %.0f MB", cpu, rss, heap, simCPU, simRSS)
	apiMS := apiGetPodsMS(b, s)
	st, err := cli.Status(ctx, etcdURL)
	if err != nil {
		b.Fatal(err)
	}

	// A rolling update of every Deployment, sampling Ready -> DNS.
	writeScaleRepo(repo, "v2")
	w.sampleDNS("v2")
	rollStart := time.Now()
	repo.commit("roll every Deployment to v2")
	requestSync(b, cli)
	rolled := w.wait("every pod rolled to v2", 15*time.Minute, func(c scaleCounts) bool { return c.pods == pods && c.ready["v2"] == pods })
	b.Logf("rollout of %d pods: %v", pods, rolled.Sub(rollStart))
	dns := w.dnsLatencies()
	if len(dns) < min(10, pods) {
		b.Fatalf("only %d Ready -> DNS samples", len(dns))
	}

	// A small change in a large cluster: one Deployment rolls to v3 among
	// 30,000 pods, every one of its new pods sampled.
	time.Sleep(5 * time.Second)
	writeScaleDeployment(repo, 0, "v3")
	w.sampleDNS("v3")
	oneStart := time.Now()
	repo.commit("roll app-000 to v3")
	requestSync(b, cli)
	one := w.wait("app-000 rolled to v3", 5*time.Minute, func(c scaleCounts) bool {
		return c.pods == pods && c.ready["v3"] == scaleReplicas
	})
	steady := w.dnsLatencies()
	if len(steady) < scaleReplicas/2 {
		b.Fatalf("only %d Ready -> DNS samples of app-000's %d pods", len(steady), scaleReplicas)
	}
	b.Logf("rollout of one Deployment (%d pods) among %d: %v; Ready -> DNS p50 %.1f ms, p99 %.1f ms",
		scaleReplicas, pods, one.Sub(oneStart), percentile(steady, 50), percentile(steady, 99))

	// The leader's 2 s election lease must hold under this load: a leader
	// that loses it replans from scratch.
	s.logMu.Lock()
	losses := strings.Count(s.log.String(), "lost leadership")
	s.logMu.Unlock()

	b.ReportMetric(float64(losses), "leader-losses")
	b.ReportMetric(bound.Sub(commit).Seconds(), "s/commit-to-bound")
	b.ReportMetric(ready.Sub(commit).Seconds(), "s/commit-to-ready")
	b.ReportMetric(rolled.Sub(rollStart).Seconds(), "s/rollout")
	b.ReportMetric(percentile(dns, 50), "ms/ready-to-dns-p50")
	b.ReportMetric(percentile(dns, 99), "ms/ready-to-dns-p99")
	b.ReportMetric(one.Sub(oneStart).Seconds(), "s/rollout-one")
	b.ReportMetric(percentile(steady, 50), "ms/ready-to-dns-one-p50")
	b.ReportMetric(percentile(steady, 99), "ms/ready-to-dns-one-p99")
	b.ReportMetric(cpu, "%cpu/leader-idle")
	b.ReportMetric(rss, "MB/server-rss")
	b.ReportMetric(heap, "MB/server-heap")
	b.ReportMetric(apiMS, "ms/api-get-pods")
	b.ReportMetric(float64(st.DbSize)/1e6, "MB/etcd-db")
}

// writeScaleRepo writes the scale test's Deployments and Services, every
// Deployment on image version.
func writeScaleRepo(repo *gitRepo, version string) {
	for i := range scaleDeployments {
		writeScaleDeployment(repo, i, version)
	}
}

// writeScaleDeployment writes the i-th Deployment and its Service.
func writeScaleDeployment(repo *gitRepo, i int, version string) {
	name := fmt.Sprintf("app-%03d", i)
	repo.write("apps/"+name+".yaml", fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: %[2]d
  selector:
    matchLabels:
      app: %[1]s
  strategy:
    rollingUpdate:
      maxSurge: 25%%
      maxUnavailable: 25%%
  template:
    metadata:
      labels:
        app: %[1]s
    spec:
      containers:
      - name: app
        image: localhost/bosun-hello:%[3]s
        ports:
        - name: http
          containerPort: 8080
        resources:
          requests:
            cpu: 50m
            memory: 32Mi
---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
spec:
  clusterIP: None
  selector:
    app: %[1]s
  ports:
  - name: http
    port: 80
    targetPort: http
`, name, scaleReplicas, version))
}

// scaleCounts are the watcher's tallies: pods stored, bound, and Ready by
// image version.
type scaleCounts struct {
	pods, bound int
	ready       map[string]int
}

// scalePod is what the watcher keeps of a pod and its status.
type scalePod struct {
	uid, node, version, app string
	statusUID               string
	ready                   bool
	ip                      string
}

func (p *scalePod) isReady() bool { return p.ready && p.statusUID == p.uid && p.uid != "" }

// scaleWatcher follows pods and pod statuses in etcd, as events arrive.
type scaleWatcher struct {
	b   *testing.B
	s   *stack
	cli *clientv3.Client

	mu      sync.Mutex
	pods    map[string]*scalePod // namespace/name
	counts  scaleCounts
	changed chan struct{}
	// at is the arrival time of the events last applied.
	at time.Time

	sampleVersion string
	sampleAll     bool      // every pod of sampleVersion, not about 300
	samples       []float64 // ms
	sampling      sync.WaitGroup
}

func newScaleWatcher(b *testing.B, s *stack, cli *clientv3.Client) *scaleWatcher {
	return &scaleWatcher{b: b, s: s, cli: cli, pods: map[string]*scalePod{},
		counts: scaleCounts{ready: map[string]int{}}, changed: make(chan struct{}, 1)}
}

func (w *scaleWatcher) run(ctx context.Context) {
	resp, err := w.cli.Get(ctx, store.Prefix, clientv3.WithPrefix())
	if err != nil {
		w.b.Error(err)
		return
	}
	w.mu.Lock()
	for _, kv := range resp.Kvs {
		w.apply(kv.Key, kv.Value)
	}
	w.mu.Unlock()
	for wr := range w.cli.Watch(ctx, store.Prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
		if wr.Err() != nil {
			w.b.Errorf("watch: %v", wr.Err())
			return
		}
		now := time.Now()
		w.mu.Lock()
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete {
				w.apply(ev.Kv.Key, nil)
			} else {
				w.apply(ev.Kv.Key, ev.Kv.Value)
			}
		}
		w.at = now
		w.mu.Unlock()
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
}

// apply records one key's new value (nil: deleted). Pods are told apart
// from statuses by their value, so any key layout under the prefix works.
func (w *scaleWatcher) apply(key, value []byte) {
	k := string(key)
	switch {
	case strings.Contains(k, "/"+store.PodStatusPrefix):
		name := k[strings.Index(k, "/"+store.PodStatusPrefix)+len(store.PodStatusPrefix)+1:]
		p := w.pods[name]
		if p == nil {
			return
		}
		w.count(p, -1)
		p.statusUID, p.ready, p.ip = "", false, ""
		if value != nil {
			var st scaleStatusJSON
			if json.Unmarshal(value, &st) == nil {
				p.statusUID, p.ip = st.UID, st.Status.PodIP
				for _, c := range st.Status.Conditions {
					p.ready = p.ready || c.Type == string(corev1.PodReady) && c.Status == string(corev1.ConditionTrue)
				}
			}
		}
		w.count(p, +1)
		if p.isReady() && p.version == w.sampleVersion && (w.sampleAll || sampled(name)) {
			w.sampling.Add(1)
			go w.probeDNS(p.app, p.ip, time.Now())
		}
	case strings.Contains(k, "/"+store.PodsPrefix):
		name, old := w.podKeyName(k)
		if value == nil {
			if p := old; p != nil {
				w.count(p, -1)
				delete(w.pods, name)
			}
			return
		}
		var pod scalePodJSON
		if json.Unmarshal(value, &pod) != nil {
			return
		}
		name = pod.Metadata.Namespace + "/" + pod.Metadata.Name
		p := w.pods[name]
		if p == nil {
			p = &scalePod{}
			w.pods[name] = p
		} else {
			w.count(p, -1)
		}
		p.uid, p.node, p.app = pod.Metadata.UID, pod.Spec.NodeName, pod.Metadata.Labels.App
		if len(pod.Spec.Containers) > 0 {
			_, p.version, _ = strings.Cut(pod.Spec.Containers[0].Image, ":")
		}
		w.count(p, +1)
	}
}

// scalePodJSON and scaleStatusJSON are the fields of a pod and of a
// store.PodStatus the watcher reads: decoding only them keeps the
// benchmark's own process from taking the CPU it measures.
type scalePodJSON struct {
	Metadata struct {
		Namespace, Name, UID string
		Labels               struct {
			App string `json:"app"`
		}
	}
	Spec struct {
		NodeName   string
		Containers []struct{ Image string }
	}
}

type scaleStatusJSON struct {
	UID    string
	Status struct {
		PodIP      string
		Conditions []struct{ Type, Status string }
	}
}

// podKeyName finds the pod a pod key names: its last two segments are the
// namespace and the name.
func (w *scaleWatcher) podKeyName(key string) (string, *scalePod) {
	parts := strings.Split(key, "/")
	if len(parts) < 2 {
		return "", nil
	}
	name := parts[len(parts)-2] + "/" + parts[len(parts)-1]
	return name, w.pods[name]
}

func (w *scaleWatcher) count(p *scalePod, d int) {
	w.counts.pods += d
	if p.node != "" {
		w.counts.bound += d
	}
	if p.isReady() {
		w.counts.ready[p.version] += d
	}
}

// wait returns the arrival time of the events that made cond true.
func (w *scaleWatcher) wait(what string, timeout time.Duration, cond func(scaleCounts) bool) time.Time {
	w.b.Helper()
	deadline := time.After(timeout)
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
	for {
		w.mu.Lock()
		ok, at, c := cond(w.counts), w.at, w.counts
		c.ready = maps.Clone(w.counts.ready)
		w.mu.Unlock()
		if ok {
			return at
		}
		select {
		case <-w.changed:
		case <-progress.C:
			w.b.Logf("waiting for %s: %d pods, %d bound, ready %v", what, c.pods, c.bound, c.ready)
		case <-deadline:
			w.b.Fatalf("%s: not after %v: %d pods, %d bound, ready %v\nserver log:\n%s", what, timeout, c.pods, c.bound, c.ready, w.s.logTail(40))
		}
	}
}

// sampled picks about 300 of the pods, by name.
func sampled(name string) bool {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32()%uint32(max(1, scaleDeployments*scaleReplicas/300)) == 0
}

// sync asks the leader to fetch the repository now, as a webhook does.
func requestSync(b *testing.B, cli *clientv3.Client) {
	if err := store.New(cli).RequestSync(context.Background(), "scale benchmark"); err != nil {
		b.Fatal(err)
	}
}

// sampleDNS starts sampling Ready -> DNS for pods of version: about 300
// of them on the first call, every one after it (a rollout of one
// Deployment). Earlier samples are dropped.
func (w *scaleWatcher) sampleDNS(version string) {
	w.sampling.Wait()
	w.mu.Lock()
	w.sampleAll = w.sampleVersion != ""
	w.sampleVersion = version
	w.samples = nil
	w.mu.Unlock()
}

// probeDNS asks the DNS server for the pod's Service every 5 ms until the
// answer holds the pod's address, and records how long that took from
// readyAt. (Asking every millisecond, a few hundred probes at once would
// load the DNS server they measure.)
func (w *scaleWatcher) probeDNS(app, ip string, readyAt time.Time) {
	defer w.sampling.Done()
	c := &mdns.Client{Timeout: time.Second}
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(app+".default.svc.cluster.local"), mdns.TypeA)
	m.SetEdns0(8192, false)
	for time.Since(readyAt) < 10*time.Second {
		r, _, err := c.Exchange(m, w.s.dnsAddr)
		if err == nil && slices.Contains(aRecords(r), ip) {
			w.mu.Lock()
			w.samples = append(w.samples, float64(time.Since(readyAt).Microseconds())/1000)
			w.mu.Unlock()
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.b.Errorf("DNS never answered %s for %s within 10 s of Ready", ip, app)
}

func (w *scaleWatcher) dnsLatencies() []float64 {
	w.sampling.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.samples)
}

func percentile(ms []float64, p int) float64 {
	sort.Float64s(ms)
	i := (len(ms)*p + 99) / 100
	return ms[max(0, min(i-1, len(ms)-1))]
}

// cpuPercent is the CPU a process used over d, in percent of one core.
func cpuPercent(b *testing.B, pid int, d time.Duration) float64 {
	ticks := func() float64 {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			b.Fatal(err)
		}
		// Fields after the command name, which is in parentheses.
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		return u + s
	}
	before := ticks()
	time.Sleep(d)
	const hz = 100 // USER_HZ on Linux
	return (ticks() - before) / hz / d.Seconds() * 100
}

// rssMB is a process' resident memory.
func rssMB(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	b.Fatalf("no VmRSS for %d", pid)
	return 0
}

// apiGetPodsMS is the median time of GET /api/v1/pods, body read.
func apiGetPodsMS(b *testing.B, s *stack) float64 {
	var ms []float64
	for range 5 {
		start := time.Now()
		resp, err := s.get("/api/v1/pods")
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n == 0 {
			b.Fatalf("GET /api/v1/pods: %s", resp.Status)
		}
		ms = append(ms, float64(time.Since(start).Microseconds())/1000)
	}
	return percentile(ms, 50)
}
