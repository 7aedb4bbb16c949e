package nodes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"bosun/scheduler"
	"bosun/store"
)

// Agent runs the pods bound to one node. Create it with New and run it with
// Run; an Agent runs once.
type Agent struct {
	cfg Config
	// taints are cfg.Taints with the time NoExecute ones were added: when
	// Run first registered the node.
	taints []corev1.Taint
	st     *store.Store
	log    *slog.Logger
	client *client.Client // set by Run
	net    *network       // set by Run
	prober *prober
	// runner runs the node's pods: containerd (New) or a simulation.
	runner podRunner
	// running, when set, is called once Run has first registered the node
	// (its pods handed to their workers, stale ones stopped).
	running func()
	// registered is closed once Run has registered the node.
	registered chan struct{}
	m          *agentMetrics
	events     *store.Recorder // the node's events (events.go); nil: none
	// request is the pod subnet asked for (Config.PodCIDR as given; ""
	// asks the leader for one); waitSubnet makes Run wait for the
	// leader's record of it (simulated nodes do not).
	request    string
	waitSubnet bool
	// vols are the node's local volumes (claims.go).
	vols volumeSet
}

// New validates cfg, fills in its defaults and returns an agent that writes
// to st. It does not contact containerd or etcd.
func New(cfg Config, st *store.Store) (*Agent, error) {
	if st == nil {
		return nil, errors.New("nodes: store is nil")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("nodes: config: %w", err)
	}
	a := &Agent{cfg: cfg, st: st, log: cfg.Logger.With("component", "agent", "node", cfg.NodeName), prober: newProber(),
		registered: make(chan struct{}), m: newAgentMetrics(cfg.Registerer), request: cfg.PodCIDR, waitSubnet: true}
	a.runner = containerdRunner{a}
	a.vols = volumeSet{deleting: map[string]bool{}, m: newVolumeMetrics(cfg.Registerer)}
	a.events = newEventRecorder(cfg, st)
	return a, nil
}

// Registered is closed once Run has set up the node and registered it: what
// belongs to a running node (its Service rules) waits for it, so that an
// agent that refuses to start (a pod CIDR another node has) changes nothing
// on the machine.
func (a *Agent) Registered() <-chan struct{} { return a.registered }

// StateDir is the agent's state directory (absolute); the logs of this
// node's pods are under it (see WriteLogs).
func (a *Agent) StateDir() string { return a.cfg.StateDir }

// NodeName is the name this agent registers.
func (a *Agent) NodeName() string { return a.cfg.NodeName }

// DNSServer is the nameserver address pods on this node are given; the
// cluster DNS must listen there on port 53. Unless set in Config, it is
// the pod subnet's gateway, known once Registered is closed (before, ""
// when the node asks the leader for its subnet).
func (a *Agent) DNSServer() string { return a.cfg.DNSServer }

// PodCIDR is the node's pod subnet; it is known once Registered is closed
// (before, it is the subnet asked for, or "").
func (a *Agent) PodCIDR() string { return a.cfg.PodCIDR }

// BridgeName is the Linux bridge of the node's pod network.
func (a *Agent) BridgeName() string { return a.cfg.BridgeName }

// NodeIP is the address the node publishes (its InternalIP).
func (a *Agent) NodeIP() string { return a.cfg.NodeIP }

// Run adopts the containers a previous agent left, stops those of pods no
// longer bound to the node, registers the node, then runs the pods bound to
// it until ctx ends. On return the node is deregistered but containers keep
// running: the next agent adopts them.
//
// The node registers (reports Ready) only after a fence: it lists the pods
// bound to it, from a revision read after it reached etcd, and waits until
// every local pod instance that is not bound there any more is torn down
// (planFence). Run fences at start and again whenever the node's lease is
// lost (the node was cut off from etcd for its TTL), so that a node whose
// pods were replaced elsewhere meanwhile never reports Ready with a second
// copy running. While it is cut off, pods keep running (see the package
// doc).
//
// Everything but running pods is shared by real and simulated nodes: the
// fence and the registration under a lease (and again when the lease is
// lost), the watch of the pods bound to the node, one worker per pod key,
// deregistration. How a pod runs is the runner's (containerd, or a
// simulation).
func (a *Agent) Run(ctx context.Context) error {
	ctx, runtimeVersion, err := a.runner.setUp(ctx)
	if err != nil {
		return err
	}
	defer a.runner.close()
	// Workers, the cache and the fence's listing end with Run, also when it
	// returns an error.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer a.runEvents(ctx)()

	a.taints = withTimeAdded(a.cfg.Taints, metav1.Now())
	var lease *store.NodeLease
	defer func() {
		if lease == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := lease.Close(cctx); err != nil {
			a.log.Warn("deregister node", "err", err)
		}
	}()
	// The pod subnet first: pods are set up and torn down in it.
	var subnetLost <-chan error
	if a.waitSubnet {
		cidr, err := a.acquireSubnet(ctx, runtimeVersion)
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped while waiting: nothing was set up
			}
			return err
		}
		a.useSubnet(cidr)
		subnetLost = a.watchSubnet(ctx, cidr)
	}
	if err := a.runner.startNetwork(ctx); err != nil {
		return err
	}

	// The pods bound to this node, and only those: a cache of the node's
	// own prefix, listed once and then fed by its watch, so the agent's
	// cost does not grow with the cluster's pod count.
	cctx, stopCache := context.WithCancel(ctx)
	pods := store.NewCache(a.st, store.CacheConfig{Prefixes: []string{store.NodePodsPrefix(a.cfg.NodeName)}, Name: "node", Logger: a.log})
	var cacheDone sync.WaitGroup
	cacheDone.Add(1)
	go func() {
		defer cacheDone.Done()
		pods.Run(cctx)
	}()
	defer cacheDone.Wait()
	defer stopCache()
	changes := pods.Changes(cctx)
	found, err := a.runner.discover(ctx)
	if err != nil {
		return err
	}
	// Only the statuses of the pods found here: a prior report tells an
	// adopted worker its restart counts and start times.
	keys := make([]string, 0, len(found))
	for key := range found {
		keys = append(keys, key)
	}
	prior, err := a.st.PodStatusesOf(ctx, a.cfg.NodeName, keys)
	if err != nil {
		return fmt.Errorf("read pod statuses: %w", err)
	}

	l := &loop{a: a, pods: pods, workers: map[string]podTask{}, unstarted: map[podTask]bool{}, done: make(chan podTask),
		local: map[string][]types.UID{}, listed: make(chan struct{})}
	defer func() {
		cancel()
		l.wg.Wait()
	}()
	for key, byUID := range found {
		w := l.spawn(ctx, key)
		var ps *store.PodStatus
		if p, ok := prior[key]; ok {
			ps = &p
		}
		w.adoptPrevious(byUID, ps)
		l.unstarted[w] = true
		for uid := range byUID {
			l.local[key] = append(l.local[key], types.UID(uid))
		}
	}
	// Adopted workers must know their pod before they start: a worker
	// without a pod tears its containers down. The cache's first list is
	// read from etcd now: it is the fence's list at start.
	start := time.Now()
	a.m.fencing.Set(1)
	if err := l.refresh(ctx); err != nil {
		return fmt.Errorf("list pods on node %s: %w", a.cfg.NodeName, err)
	}
	for _, w := range l.workers {
		if l.unstarted[w] {
			l.start(ctx, w)
		}
	}
	l.beginFence(start)

	resync := time.NewTicker(a.cfg.ResyncInterval)
	defer resync.Stop()
	var retryFence, cutOff <-chan time.Time
	var lostAt time.Time // when the lease was lost; zero once etcd answered again
	register := func() {
		if l.fence == nil || len(l.fence.pending) > 0 || l.listing {
			return
		}
		if lease, err = a.st.RegisterNode(ctx, a.nodeObject(runtimeVersion), a.cfg.LeaseTTL); err != nil {
			if ctx.Err() != nil {
				return
			}
			// Cut off again, perhaps: list again before the next try,
			// pods may have moved meanwhile.
			a.log.Warn("register node", "err", err)
			lease = nil
			retryFence = time.After(time.Second)
			return
		}
		took := time.Since(l.fence.start)
		a.m.fences.Observe(took.Seconds())
		a.m.fencing.Set(0)
		l.fence = nil
		node := a.nodeObject(runtimeVersion)
		a.log.Info("node registered", "runtime", runtimeVersion, "podCIDR", a.cfg.PodCIDR,
			"allocatable", resourceString(node.Status.Allocatable), "taints", len(node.Spec.Taints),
			"reservedPorts", node.Annotations[scheduler.AnnotationReservedHostPorts],
			"pods", len(l.workers), "fence", took.Round(time.Millisecond))
		select {
		case <-a.registered:
		default:
			close(a.registered)
			if a.running != nil {
				a.running()
			}
		}
	}
	register()
	for {
		var lost <-chan struct{}
		if lease != nil {
			lost = lease.Lost()
		}
		var listed <-chan struct{}
		if l.listing {
			listed = l.listed
		}
		select {
		case <-ctx.Done():
			a.log.Info("agent stopping; " + a.runner.leftRunning())
			return nil
		case _, ok := <-changes:
			if !ok {
				return nil
			}
			if err := l.refresh(ctx); err != nil {
				a.log.Warn("list pods", "err", err)
			}
		case <-resync.C:
			if err := l.refresh(ctx); err != nil {
				a.log.Warn("list pods", "err", err)
			}
			a.startCollect(ctx, &l.wg)
		case w := <-l.done:
			l.finished(ctx, w)
			register()
		case w := <-l.acks:
			l.acked(w)
			register()
		case err := <-subnetLost:
			if err != nil {
				a.log.Error("stopping", "err", err)
				return err
			}
			subnetLost = nil
		case <-lost:
			a.m.leaseLosses.Inc()
			a.m.fencing.Set(1)
			a.log.Warn("node lease lost: cut off from etcd for its TTL; listing the pods bound to the node before registering again")
			lease = nil
			lostAt = time.Now()
			if _, wait := cutOffStopDue(lostAt, lostAt, a.cfg.CutOffStopAfter); wait > 0 {
				cutOff = time.After(wait)
			}
			l.listBound(ctx)
		case <-cutOff:
			cutOff = nil
			if due, _ := cutOffStopDue(lostAt, time.Now(), a.cfg.CutOffStopAfter); due && l.listing {
				a.m.cutOffStops.Inc()
				a.log.Warn("cut off from etcd for --cut-off-stop-after: stopping every pod of the node (its pods are being replaced elsewhere)",
					"after", a.cfg.CutOffStopAfter, "pods", len(l.workers))
				l.cutOff = true
				if err := l.refresh(ctx); err != nil {
					a.log.Warn("list pods", "err", err)
				}
			}
		case <-retryFence:
			retryFence = nil
			l.listBound(ctx)
		case <-listed:
			l.listing = false
			l.cutOff, cutOff, lostAt = false, nil, time.Time{}
			// The cache holds at least what etcd held when the node
			// reached it again: what it lists is bound to the node now.
			if err := l.refresh(ctx); err != nil {
				a.log.Warn("list pods", "err", err)
				retryFence = time.After(time.Second)
				continue
			}
			l.beginFence(time.Now())
			register()
		}
	}
}

// loop is Run's bookkeeping of pod workers; only Run's goroutine touches it.
type loop struct {
	a         *Agent
	pods      *store.Cache       // the pods bound to this node
	workers   map[string]podTask // by namespace/name
	unstarted map[podTask]bool   // adopted workers, started after the first refresh
	desired   map[string]*corev1.Pod
	done      chan podTask
	wg        sync.WaitGroup

	// local is, by key, the pod instances (UIDs) that may have containers
	// here: adopted ones and those handed to workers since.
	local map[string][]types.UID
	// fence is the fence in progress (nil: the node is registered, or
	// waits for etcd to list again).
	fence *fenceRound
	// acks receives the workers of the fence in progress once they run
	// nothing but their bound pod.
	acks chan podTask
	// listing is set while listBound waits for etcd; listed receives when
	// the cache holds a revision read after etcd answered.
	listing bool
	listed  chan struct{}
	// cutOff is set once the node has been cut off for
	// Config.CutOffStopAfter: no pod is desired until etcd answers again.
	cutOff bool
}

// fenceRound is one fence: the keys whose stale instances are still being
// stopped.
type fenceRound struct {
	start   time.Time
	pending map[string]bool
}

// beginFence plans the fence on the pods the cache lists now (l.desired,
// just refreshed) and asks every worker with a stale instance to report
// once it is gone. The node registers once none is pending.
func (l *loop) beginFence(start time.Time) {
	bound := make([]*corev1.Pod, 0, len(l.desired))
	for _, p := range l.desired {
		bound = append(bound, p)
	}
	plan := planFence(l.a.cfg.NodeName, l.local, bound)
	l.fence = &fenceRound{start: start, pending: map[string]bool{}}
	l.acks = make(chan podTask, len(plan.Stale))
	for key, uids := range plan.Stale {
		w := l.workers[key]
		if w == nil {
			delete(l.local, key)
			continue
		}
		l.fence.pending[key] = true
		w.whenClean(l.acks)
		l.a.log.Info("fencing: stopping a pod no longer bound to this node before registering", "pod", key, "uids", uids)
	}
	if n := len(l.fence.pending); n > 0 {
		l.a.m.fencedPods.Add(float64(plan.StaleCount()))
		l.a.log.Warn("fencing: stopping pods no longer bound to this node before it reports Ready", "stale", plan.StaleCount(), "keep", len(plan.Keep))
	}
}

// acked notes that w runs nothing but its bound pod.
func (l *loop) acked(w podTask) {
	key := w.podKey()
	if l.workers[key] != w {
		return
	}
	if p := l.desired[key]; p != nil {
		l.local[key] = []types.UID{p.UID}
	}
	if l.fence != nil {
		delete(l.fence.pending, key)
	}
}

// listBound reads etcd's revision (a linearizable read: it answers only
// once the node reaches etcd's majority again) and waits until the cache
// holds it, retrying every second; then it signals l.listed.
func (l *loop) listBound(ctx context.Context) {
	if l.listing {
		return
	}
	l.listing = true
	l.fence = nil // a new fence begins once listed
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for ctx.Err() == nil {
			rev, err := l.a.st.Revision(ctx)
			if err == nil {
				err = l.waitCache(ctx, rev)
				if err == nil {
					select {
					case l.listed <- struct{}{}:
					case <-ctx.Done():
					}
					return
				}
			}
			if ctx.Err() != nil {
				return
			}
			l.a.log.Debug("fencing: etcd not reachable yet", "err", err)
			sleepCtx(ctx, time.Second)
		}
	}()
}

// waitCache waits until the cache holds rev. Its watch hears of nothing
// when nothing under the node's prefix changed since: a progress
// notification, asked for every half second, brings its revision up. The
// request goes to the watch streams of the context's metadata: the cache
// watches with WithRequireLeader on Run's context, and so does it.
func (l *loop) waitCache(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	waited := make(chan error, 1)
	go func() { waited <- l.pods.WaitFor(wctx, rev) }()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := l.a.st.Client().RequestProgress(clientv3.WithRequireLeader(wctx)); err != nil {
			l.a.log.Debug("fencing: request watch progress", "err", err)
		}
		select {
		case err := <-waited:
			return err
		case <-tick.C:
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// refresh reads the pods bound to this node and hands each worker its pod
// (nil when the pod is gone), starting workers for new pods.
func (l *loop) refresh(ctx context.Context) error {
	snap, err := l.pods.Snapshot(ctx)
	if err != nil {
		return err
	}
	desired := make(map[string]*corev1.Pod, len(snap.Pods))
	for i := range snap.Pods {
		if l.cutOff {
			break // stop everything until etcd says what is bound here
		}
		// The snapshot is shared and immutable; workers get their own copy.
		p := snap.Pods[i].DeepCopy()
		if p.Spec.NodeName != l.a.cfg.NodeName {
			continue // a key under the wrong node: not this node's to run
		}
		desired[p.Namespace+"/"+p.Name] = p
	}
	l.desired = desired
	for key, p := range desired {
		if !slices.Contains(l.local[key], p.UID) {
			l.local[key] = append(l.local[key], p.UID)
		}
		w := l.workers[key]
		if w == nil {
			w = l.spawn(ctx, key)
			w.set(p)
			l.start(ctx, w)
			continue
		}
		w.set(p)
	}
	for key, w := range l.workers {
		if desired[key] == nil {
			w.set(nil)
		}
	}
	return nil
}

func (l *loop) spawn(ctx context.Context, key string) podTask {
	w := l.a.runner.newWorker(key, l.done)
	l.workers[key] = w
	return w
}

func (l *loop) start(ctx context.Context, w podTask) {
	delete(l.unstarted, w)
	w.launch(ctx, &l.wg)
}

// useSubnet makes cidr the node's pod subnet.
func (a *Agent) useSubnet(cidr string) {
	p := netip.MustParsePrefix(cidr).Masked()
	a.cfg.PodCIDR = p.String()
	if a.cfg.DNSServer == "" {
		a.cfg.DNSServer = gatewayOf(p).String()
	}
}

// finished forgets a worker whose pod is gone, and starts a new one if a pod
// of that name was bound again meanwhile.
func (l *loop) finished(ctx context.Context, w podTask) {
	key := w.podKey()
	if l.workers[key] == w {
		delete(l.workers, key)
		delete(l.local, key)
		if l.fence != nil {
			delete(l.fence.pending, key)
		}
	}
	if p := l.desired[key]; p != nil {
		nw := l.spawn(ctx, key)
		nw.set(p)
		l.start(ctx, nw)
		l.local[key] = []types.UID{p.UID}
	}
}

// nodeObject describes this node for the store; runtimeVersion is its
// NodeInfo.ContainerRuntimeVersion ("containerd://1.6.20").
func (a *Agent) nodeObject(runtimeVersion string) *corev1.Node {
	labels := map[string]string{}
	for k, v := range a.cfg.Labels {
		labels[k] = v
	}
	labels["kubernetes.io/hostname"] = a.cfg.NodeName
	labels["kubernetes.io/os"] = runtime.GOOS
	labels["kubernetes.io/arch"] = runtime.GOARCH
	now := metav1.Now()
	n := &corev1.Node{
		TypeMeta:   metav1.TypeMeta{Kind: "Node", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Labels: labels, CreationTimestamp: now},
		Spec:       corev1.NodeSpec{PodCIDR: a.cfg.PodCIDR, Taints: slices.Clone(a.taints)},
		Status: corev1.NodeStatus{
			Capacity:    a.cfg.Capacity.DeepCopy(),
			Allocatable: a.cfg.allocatable.DeepCopy(),
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "AgentReady",
				Message: "bosun agent is running", LastHeartbeatTime: now, LastTransitionTime: now,
			}},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: a.cfg.LogPort}},
			NodeInfo: corev1.NodeSystemInfo{
				ContainerRuntimeVersion: runtimeVersion,
				KubeletVersion:          "bosun",
				OperatingSystem:         runtime.GOOS,
				Architecture:            runtime.GOARCH,
			},
		},
	}
	if a.cfg.PodCIDR != "" {
		n.Spec.PodCIDRs = []string{a.cfg.PodCIDR}
	}
	if hn, err := os.Hostname(); err == nil {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: hn})
	}
	if a.cfg.NodeIP != "" {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a.cfg.NodeIP})
	}
	a.annotateReservedPorts(n) // reserved.go
	return n
}

// withTimeAdded copies taints, stamping NoExecute ones with at, as the API
// server does when a taint is added.
func withTimeAdded(taints []corev1.Taint, at metav1.Time) []corev1.Taint {
	out := slices.Clone(taints)
	for i := range out {
		if out[i].Effect == corev1.TaintEffectNoExecute && out[i].TimeAdded == nil {
			out[i].TimeAdded = &at
		}
	}
	return out
}

// resourceString renders cpu, memory and pods for a log line.
func resourceString(r corev1.ResourceList) string {
	return fmt.Sprintf("cpu=%s memory=%s pods=%s", r.Cpu(), r.Memory(), r.Pods())
}

// hostIP guesses the node's address: the source address of the default
// route, else the first global unicast IPv4 address of an interface.
func hostIP() string {
	if c, err := net.Dial("udp4", "192.0.2.1:9"); err == nil {
		defer c.Close()
		if ua, ok := c.LocalAddr().(*net.UDPAddr); ok && !ua.IP.IsLoopback() {
			return ua.IP.String()
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, ad := range addrs {
		if ipn, ok := ad.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
			return ipn.IP.String()
		}
	}
	return ""
}
