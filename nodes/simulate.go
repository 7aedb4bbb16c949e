package nodes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"bosun/kube"
	"bosun/store"
)

// Simulated nodes carry this label (value "true") and this runtime version,
// so that nothing mistakes them for real ones.
const (
	LabelSimulated           = "bosun.dev/simulated"
	SimulatedRuntimeVersion  = "simulated://bosun"
	DefaultSimulatedPodCIDRs = "10.192.0.0/10"
)

// SimConfig configures a Simulation. The zero value of every field but
// Nodes has a working default, given in its comment.
type SimConfig struct {
	// Nodes is how many simulated nodes to run, at least 1.
	Nodes int
	// Prefix names the nodes <Prefix>-0001, <Prefix>-0002, ... (at least
	// four digits, more when Nodes needs them). Default "sim".
	Prefix string
	// StartDelay is how long a pod bound to a simulated node stays
	// ContainerCreating before it is Running and Ready. Default 0.
	StartDelay time.Duration
	// PodCIDRs is the range the nodes' pod networks are cut from: node i
	// gets the i-th /24 of it. Default 10.192.0.0/10 (16,384 nodes), away
	// from the real agent's default 10.88.0.0/16 and the 10.87.x and
	// 10.90-10.139 ranges bosun's tests give real nodes.
	PodCIDRs string
	// Node is the configuration every simulated node shares: Labels,
	// Capacity (default 8 CPUs and 32Gi), MaxPods (default 110, at most
	// 253: a /24 of pod addresses), SystemReserved, Taints, NodeIP, LeaseTTL
	// and ResyncInterval (default 5m: the watch tells a node its pods; the
	// resync is only a safety net, and a thousand nodes each listing pods
	// every 10 s would be the load). NodeName, PodCIDR and the containerd,
	// network and state-directory fields are not used.
	Node Config
	// Concurrency bounds how many nodes start at once (register, then read
	// the pods bound to them). Default 32.
	Concurrency int
	// Registerer, when set, registers the simulation's metrics.
	Registerer prometheus.Registerer
	// Logger: the simulation logs its progress; the nodes log warnings
	// (everything when the logger takes debug). Default: discard.
	Logger *slog.Logger
}

// Simulation runs many simulated nodes in one process, like Kubernetes'
// kubemark hollow nodes: each is a real Agent (registration, lease,
// watch, a worker per pod, deregistration) whose pods do not run. A pod
// bound to a simulated node is reported ContainerCreating, then, after
// StartDelay, Running with every container started and Ready (init
// containers completed), with an address from the node's pod CIDR; a pod
// whose containers run to completion (restartPolicy Never or OnFailure, as
// Jobs' pods) Succeeded instead. A pod that goes away has its status
// deleted. Nothing touches containerd, the network or the disk.
type Simulation struct {
	cfg     SimConfig
	st      *store.Store
	log     *slog.Logger
	agents  []*Agent
	metrics *simMetrics
}

type simMetrics struct {
	nodes   prometheus.Gauge
	started prometheus.Counter
	stopped prometheus.Counter
}

// NewSimulation validates cfg and returns a simulation of cfg.Nodes nodes
// that writes to st (one etcd client for all of them). It does not contact
// etcd.
func NewSimulation(cfg SimConfig, st *store.Store) (*Simulation, error) {
	if st == nil {
		return nil, errors.New("nodes: store is nil")
	}
	if cfg.Nodes < 1 {
		return nil, fmt.Errorf("nodes: simulate %d nodes: want at least 1", cfg.Nodes)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "sim"
	}
	if cfg.PodCIDRs == "" {
		cfg.PodCIDRs = DefaultSimulatedPodCIDRs
	}
	if cfg.StartDelay < 0 {
		return nil, fmt.Errorf("nodes: simulated start delay %s: must not be negative", cfg.StartDelay)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 32
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cidrs, err := simulatedCIDRs(cfg.PodCIDRs, cfg.Nodes)
	if err != nil {
		return nil, fmt.Errorf("nodes: %w", err)
	}
	s := &Simulation{cfg: cfg, st: st, log: cfg.Logger.With("component", "simulation")}
	s.metrics = &simMetrics{
		nodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bosun_simulated_nodes", Help: "Simulated nodes registered by this process.",
		}),
		started: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_simulated_pods_started_total", Help: "Pods this process' simulated nodes started (bound and reported).",
		}),
		stopped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_simulated_pods_stopped_total", Help: "Pods this process' simulated nodes stopped (their status deleted or replaced).",
		}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.metrics.nodes, s.metrics.started, s.metrics.stopped} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("nodes: simulation metrics: %w", err)
			}
		}
	}
	nodeLog := cfg.Logger
	if !nodeLog.Handler().Enabled(context.Background(), slog.LevelDebug) {
		nodeLog = slog.New(minLevel{nodeLog.Handler(), slog.LevelWarn})
	}
	if cfg.Node.NodeIP == "" {
		cfg.Node.NodeIP = hostIP() // once, not per node
	}
	width := max(4, len(strconv.Itoa(cfg.Nodes)))
	for i := range cfg.Nodes {
		nc := cfg.Node
		nc.NodeName = fmt.Sprintf("%s-%0*d", cfg.Prefix, width, i+1)
		nc.PodCIDR = cidrs[i].String()
		nc.Logger = nodeLog
		a, err := newSimulatedAgent(nc, st, s, cidrs[i])
		if err != nil {
			return nil, fmt.Errorf("nodes: simulated node %s: %w", nc.NodeName, err)
		}
		s.agents = append(s.agents, a)
	}
	return s, nil
}

// simulatedCIDRs cuts n /24s from the range r.
func simulatedCIDRs(r string, n int) ([]netip.Prefix, error) {
	p, err := netip.ParsePrefix(r)
	if err != nil || !p.Addr().Is4() || p.Bits() > 24 {
		return nil, fmt.Errorf("simulated pod CIDRs %q: want an IPv4 prefix of /24 or wider", r)
	}
	p = p.Masked()
	if room := 1 << (24 - p.Bits()); n > room {
		return nil, fmt.Errorf("simulated pod CIDRs %s: room for %d nodes' /24s, not %d", p, room, n)
	}
	base := p.Addr().As4()
	first := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8
	out := make([]netip.Prefix, n)
	for i := range out {
		a := first + uint32(i)<<8
		out[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), 0}), 24)
	}
	return out, nil
}

func newSimulatedAgent(cfg Config, st *store.Store, sim *Simulation, cidr netip.Prefix) (*Agent, error) {
	if cfg.Capacity == nil {
		cfg.Capacity = corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("8"),
			corev1.ResourceMemory: resource.MustParse("32Gi"),
		}
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = 5 * time.Minute
	}
	labels := map[string]string{}
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	labels[LabelSimulated] = "true"
	cfg.Labels = labels
	if errs := validation.IsDNS1123Subdomain(cfg.NodeName); len(errs) > 0 {
		return nil, fmt.Errorf("node name %q: %v", cfg.NodeName, errs)
	}
	if err := cfg.setNodeDefaults(); err != nil {
		return nil, err
	}
	if pods := cfg.Capacity.Pods().Value(); pods > 253 {
		return nil, fmt.Errorf("max pods %d: a simulated node has a /24, 253 pod addresses", pods)
	}
	a := &Agent{cfg: cfg, st: st, log: cfg.Logger.With("component", "agent", "node", cfg.NodeName), registered: make(chan struct{})}
	a.runner = &simRunner{a: a, sim: sim, cidr: cidr}
	return a, nil
}

// NodeNames lists the simulated nodes, in order.
func (s *Simulation) NodeNames() []string {
	out := make([]string, len(s.agents))
	for i, a := range s.agents {
		out[i] = a.cfg.NodeName
	}
	return out
}

// Run starts every node, at most Concurrency at a time, and runs them
// until ctx ends; then each deregisters. If a node cannot start, Run stops
// the others and returns its error.
func (s *Simulation) Run(ctx context.Context) error {
	nodes, err := s.st.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("read nodes: %w", err)
	}
	host, _ := os.Hostname()
	var warns []string
	for _, a := range s.agents {
		refuse, warn := podCIDRCheck(a.cfg.NodeName, host, a.cfg.PodCIDR, nodes)
		if refuse != nil {
			return fmt.Errorf("simulated node %s: %w", a.cfg.NodeName, refuse)
		}
		if warn != "" {
			warns = append(warns, warn)
		}
	}
	if len(warns) > 0 {
		s.log.Warn("simulated pod addresses overlap other nodes'", "first", warns[0], "count", len(warns))
	}
	s.log.Info("starting simulated nodes: they register and report pods as running, but run nothing",
		"nodes", len(s.agents), "first", s.agents[0].cfg.NodeName, "last", s.agents[len(s.agents)-1].cfg.NodeName,
		"podCIDRs", s.cfg.PodCIDRs, "startDelay", s.cfg.StartDelay, "concurrency", s.cfg.Concurrency)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	slots := make(chan struct{}, s.cfg.Concurrency)
	began := time.Now()
	for _, a := range s.agents {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		var once sync.Once
		release := func() { once.Do(func() { <-slots }) }
		a.running = func() {
			s.metrics.nodes.Inc()
			release()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := a.Run(ctx)
			release()
			if err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
				cancel()
			}
		}()
	}
	// Every slot back: every node started (or failed, or ctx ended).
	for range s.cfg.Concurrency {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
	}
	if ctx.Err() == nil {
		s.log.Info("simulated nodes registered", "nodes", len(s.agents), "took", time.Since(began).Round(time.Millisecond))
	}
	wg.Wait()
	s.metrics.nodes.Set(0)
	s.log.Info("simulated nodes stopped and deregistered", "nodes", len(s.agents))
	return firstErr
}

// simRunner runs one simulated node's pods: status only, no containers.
type simRunner struct {
	a    *Agent
	sim  *Simulation
	cidr netip.Prefix

	mu   sync.Mutex
	used [256]bool // host part of the pod addresses in use
}

func (r *simRunner) setUp(ctx context.Context) (context.Context, string, error) {
	return ctx, SimulatedRuntimeVersion, nil
}

func (r *simRunner) startNetwork(context.Context) error { return nil }

func (r *simRunner) discover(context.Context) (map[string]map[string][]adoptedContainer, error) {
	return nil, nil
}

func (r *simRunner) newWorker(key string, done chan<- podTask) podTask {
	ns, name, _ := strings.Cut(key, "/")
	return &simWorker{r: r, key: key, namespace: ns, name: name, done: done, kick: make(chan struct{}, 1),
		log: r.a.log.With("pod", key)}
}

func (r *simRunner) leftRunning() string { return "simulated pods stop reporting" }

func (r *simRunner) close() {}

// allocate hands out the lowest free pod address (x.y.z.2 to .254: .1 is
// the gateway a real node's bridge has).
func (r *simRunner) allocate() (netip.Addr, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for host := 2; host < 255; host++ {
		if !r.used[host] {
			r.used[host] = true
			b := r.cidr.Addr().As4()
			b[3] = byte(host)
			return netip.AddrFrom4(b), true
		}
	}
	return netip.Addr{}, false
}

func (r *simRunner) release(ip netip.Addr) {
	if !ip.IsValid() {
		return
	}
	r.mu.Lock()
	r.used[ip.As4()[3]] = false
	r.mu.Unlock()
}

// simWorker is the simulated counterpart of podWorker for one pod key. It
// has no goroutine of its own while its pod's status is settled: set starts
// one only when there is something to write (a new pod, the end of the
// start delay, a pod gone), so a thousand nodes of idle pods cost nothing.
type simWorker struct {
	r                    *simRunner
	key, namespace, name string
	done                 chan<- podTask
	kick                 chan struct{} // capacity 1: "desired changed"
	log                  *slog.Logger

	mu      sync.Mutex
	desired *corev1.Pod
	ctx     context.Context // set by launch
	wg      *sync.WaitGroup
	busy    bool      // a converge goroutine runs
	ended   bool      // reported done: a new pod of this key gets a new worker
	settled types.UID // the pod whose final status is written

	cur *simPod // owned by the converge goroutine
}

// simPod is one pod instance (UID) on a simulated node.
type simPod struct {
	uid       types.UID
	ip        netip.Addr
	bound     time.Time
	message   string
	published *corev1.PodStatus
}

func (w *simWorker) podKey() string { return w.key }

func (w *simWorker) adoptPrevious(map[string][]adoptedContainer, *store.PodStatus) {}

func (w *simWorker) set(p *corev1.Pod) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.desired = p
	w.poke()
}

func (w *simWorker) launch(ctx context.Context, wg *sync.WaitGroup) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ctx, w.wg = ctx, wg
	w.poke()
}

// poke starts a converge goroutine if there is work and none runs, or
// wakes the one that runs. w.mu is held; only Run's goroutine calls it, so
// wg.Add never races the loop's Wait.
func (w *simWorker) poke() {
	if w.ctx == nil || w.ended {
		return
	}
	if w.busy {
		select {
		case w.kick <- struct{}{}:
		default:
		}
		return
	}
	if w.desired != nil && w.desired.UID == w.settled {
		return
	}
	w.busy = true
	w.wg.Add(1)
	go w.converge(w.ctx)
}

func (w *simWorker) converge(ctx context.Context) {
	defer w.wg.Done()
	for {
		w.mu.Lock()
		desired := w.desired
		if ctx.Err() != nil || (desired != nil && desired.UID == w.settled) {
			w.busy = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		wait, gone := w.step(ctx, desired, time.Now())
		if gone {
			w.mu.Lock()
			w.ended, w.busy = true, false
			w.mu.Unlock()
			select {
			case w.done <- w:
			case <-ctx.Done():
			}
			return
		}
		if wait <= 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-w.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// step converges once: it forgets a pod that is gone or replaced, reports
// the bound one, and returns how long until it must step again (0: its
// status is final). gone: no pod is bound and nothing is left.
func (w *simWorker) step(ctx context.Context, desired *corev1.Pod, now time.Time) (wait time.Duration, gone bool) {
	st := w.r.a.st
	if w.cur != nil && (desired == nil || desired.UID != w.cur.uid) {
		// Like a real agent: the status goes with the pod; a pod replaced
		// under the same name gets its status overwritten.
		if desired == nil {
			if err := st.DeletePodStatus(ctx, w.r.a.cfg.NodeName, w.namespace, w.name, w.cur.uid); err != nil {
				if ctx.Err() == nil {
					w.log.Warn("delete pod status", "err", err)
				}
				return time.Second, false
			}
		}
		w.r.release(w.cur.ip)
		w.log.Debug("simulated pod stopped", "uid", w.cur.uid)
		w.cur = nil
		w.r.sim.metrics.stopped.Inc()
	}
	if desired == nil {
		return 0, true
	}
	if w.cur == nil {
		w.cur = &simPod{uid: desired.UID, bound: now}
		if ip, ok := w.r.allocate(); ok {
			w.cur.ip = ip
		} else {
			w.cur.message = "simulated node " + w.r.a.cfg.NodeName + ": no free pod address in " + w.r.cidr.String()
		}
		w.r.sim.metrics.started.Inc()
		w.log.Debug("simulated pod bound", "uid", desired.UID, "ip", w.cur.ip)
	}
	r := w.cur
	if !r.ip.IsValid() {
		// More pods than addresses: try again once one is released.
		if ip, ok := w.r.allocate(); ok {
			r.ip, r.message = ip, ""
		}
	}
	readyAt := r.bound.Add(w.r.sim.cfg.StartDelay)
	final := !now.Before(readyAt) && r.ip.IsValid()
	if !final && w.r.sim.cfg.StartDelay == 0 && r.published != nil {
		return w.r.a.cfg.ResyncInterval, false // waiting for an address; nothing new to say
	}
	ip := ""
	if r.ip.IsValid() {
		ip = r.ip.String()
	}
	recs := map[string]*containerRecord{}
	if final {
		recs = simulatedRecords(&desired.Spec, readyAt)
	}
	status := buildStatus(statusInput{
		Pod: desired, Records: recs, PodIP: ip, HostIP: w.r.a.cfg.NodeIP,
		StartTime: r.bound, Message: r.message, Prev: r.published, Now: now,
	})
	if !statusEqual(&status, r.published) {
		ps := store.PodStatus{UID: desired.UID, Node: w.r.a.cfg.NodeName, Owner: kube.OwnerOf(desired), Status: status}
		if err := st.PutPodStatus(ctx, w.namespace, w.name, ps); err != nil {
			if ctx.Err() == nil {
				w.log.Warn("write pod status", "err", err)
			}
			return time.Second, false
		}
		r.published = &status
	}
	switch {
	case final:
		// Settled: nothing is written for this pod again, so the status
		// need not be kept (30,000 of them add up).
		r.published = nil
		w.mu.Lock()
		w.settled = r.uid
		w.mu.Unlock()
		return 0, false
	case !r.ip.IsValid():
		return w.r.a.cfg.ResyncInterval, false
	default:
		return readyAt.Sub(now), false
	}
}

// simulatedRecords are the records of a pod whose containers all started
// at at: init containers completed, sidecars and app containers running
// with every probe passing, app containers that run to completion (a
// restartPolicy of Never or OnFailure) completed, and then their sidecars
// too.
func simulatedRecords(spec *corev1.PodSpec, at time.Time) map[string]*containerRecord {
	recs := map[string]*containerRecord{}
	// A pod that runs to completion is reported done: its sidecars too.
	toCompletion := spec.RestartPolicy == corev1.RestartPolicyNever || spec.RestartPolicy == corev1.RestartPolicyOnFailure
	running := func(c *corev1.Container) *containerRecord {
		p := newContainerProbes(c)
		p.resumeFrom(true, true)
		return &containerRecord{Name: c.Name, Running: true, StartedAt: at, Probes: p}
	}
	completed := func(c *corev1.Container) *containerRecord {
		t := &corev1.ContainerStateTerminated{ExitCode: 0, Reason: exitReason(0)}
		t.StartedAt.Time, t.FinishedAt.Time = at, at
		return &containerRecord{Name: c.Name, StartedAt: at, Terminated: t}
	}
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		if isSidecar(c) && !toCompletion {
			recs[c.Name] = running(c)
		} else {
			recs[c.Name] = completed(c)
		}
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		if toCompletion {
			recs[c.Name] = completed(c)
		} else {
			recs[c.Name] = running(c)
		}
	}
	return recs
}

// minLevel drops records below its level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.level}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.level}
}
