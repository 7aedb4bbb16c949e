package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"bosun/canary"
)

// snapshotKinds are the sub-prefixes a Snapshot is made of (syncKey is a
// single key).
var snapshotKinds = []string{NodesPrefix, PodsPrefix, PodStatusPrefix, DeploymentsPrefix, ServicesPrefix,
	ConfigMapsPrefix, SecretsPrefix, NamespacesPrefix, JobsPrefix, CronJobsPrefix, CanariesPrefix, syncKey,
	NodeControlPrefix, NodeHealthPrefix, DaemonSetsPrefix, StatefulSetsPrefix, ClaimsPrefix, IngressesPrefix, IngressClassesPrefix}

// CacheConfig configures a Cache. The zero value caches everything a
// Snapshot holds.
type CacheConfig struct {
	// Prefixes are the sub-prefixes served (such as NodePodsPrefix(node)
	// for an agent); default every kind of a Snapshot. Keys outside them
	// are ignored.
	Prefixes []string
	// Registerer receives the cache's metrics (bosun_cache_*); nil
	// registers none. Name tells two caches of one process apart in the
	// "cache" label; default "state".
	Registerer prometheus.Registerer
	Name       string
	Logger     *slog.Logger
}

// Cache is a watch-fed, in-memory copy of the state under some prefixes,
// like client-go's informers: Run lists the prefixes once (one
// transaction, one revision), then watches from the next revision and
// applies each event to decoded, immutable objects. Readers take a
// Snapshot, which is the same object until something changes and is
// rebuilt only for the kinds that changed; they learn of changes from
// Changes and wait for a revision (such as their own write) with WaitFor.
// A compacted watch relists from scratch and swaps the new state in at
// once. Create one per process with NewCache and run it with Run.
type Cache struct {
	cli      *clientv3.Client
	keys     *Keyring // opens Secrets: they are decrypted here, once
	prefixes []string
	watch    string // the one prefix watched (a common prefix of prefixes)
	log      *slog.Logger
	m        *cacheMetrics

	synced chan struct{} // closed after the first list

	mu       sync.Mutex
	rev      int64 // revision applied; every event up to it is in the state
	state    *cacheState
	snap     *Snapshot     // last published; nil when something changed since
	advanced chan struct{} // closed and replaced whenever rev moves
	subs     map[*cacheSub]struct{}

	// Tests: watchGate runs before each watch is opened; restart breaks
	// the current watch.
	watchGate func(ctx context.Context)
	restart   chan struct{}
}

type cacheSub struct {
	ch    chan int64
	kinds map[string]bool // nil: every kind
}

// NewCache returns a cache of st's state; it is empty until Run has listed.
func NewCache(st *Store, cfg CacheConfig) *Cache {
	prefixes := cfg.Prefixes
	if len(prefixes) == 0 {
		prefixes = snapshotKinds
	}
	watch := Prefix
	if len(prefixes) == 1 {
		watch = Prefix + prefixes[0]
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := cfg.Name
	if name == "" {
		name = "state"
	}
	return &Cache{
		cli: st.cli, keys: st.keys, prefixes: slices.Clone(prefixes), watch: watch, log: log.With("component", "cache", "cache", name),
		m: newCacheMetrics(cfg.Registerer, name), synced: make(chan struct{}),
		state: newCacheState(), advanced: make(chan struct{}), subs: map[*cacheSub]struct{}{},
		restart: make(chan struct{}, 1),
	}
}

// Synced is closed once the first list is applied.
func (c *Cache) Synced() <-chan struct{} { return c.synced }

// Revision is the etcd revision the cache has applied.
func (c *Cache) Revision() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rev
}

// Run lists and watches until ctx ends; it returns nil then. Failures to
// list or watch are logged and retried.
func (c *Cache) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if err := c.relist(ctx); err != nil {
			if ctx.Err() != nil {
				break
			}
			c.log.Warn("list failed; retrying", "err", err, "in", backoff)
			sleepCtx(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		reason := c.watchFrom(ctx)
		if ctx.Err() != nil {
			break
		}
		c.m.relists.WithLabelValues(reason).Inc()
		c.log.Warn("relisting", "reason", reason, "revision", c.Revision())
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// relist reads every served prefix in one transaction and swaps the new
// state in.
func (c *Cache) relist(ctx context.Context) error {
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	gets := make([]clientv3.Op, len(c.prefixes))
	for i, p := range c.prefixes {
		if p == syncKey {
			gets[i] = clientv3.OpGet(Prefix + p)
		} else {
			gets[i] = clientv3.OpGet(Prefix+p, clientv3.WithPrefix())
		}
	}
	resp, err := c.cli.Txn(rctx).Then(gets...).Commit()
	if err != nil {
		return fmt.Errorf("list %s: %w", strings.Join(c.prefixes, ","), err)
	}
	st := newCacheState()
	for _, r := range resp.Responses {
		for _, kv := range r.GetResponseRange().Kvs {
			c.apply(st, string(kv.Key), kv.Value, false)
		}
	}
	c.mu.Lock()
	c.state = st
	c.snap = nil
	c.setRev(resp.Header.Revision)
	c.notify(nil)
	counts := st.counts()
	c.mu.Unlock()
	c.m.setCounts(counts)
	select {
	case <-c.synced:
	default:
		close(c.synced)
	}
	c.log.Debug("listed", "revision", resp.Header.Revision, "took", time.Since(start))
	return nil
}

// watchFrom watches from the revision after the applied one, and applies
// events until the watch cannot go on; it returns why a relist is needed.
// A watch that breaks without a compaction is resumed from the applied
// revision, which needs no relist.
func (c *Cache) watchFrom(ctx context.Context) string {
	for ctx.Err() == nil {
		if c.watchGate != nil {
			c.watchGate(ctx)
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := c.cli.Watch(wctx, c.watch, clientv3.WithPrefix(), clientv3.WithRev(c.Revision()+1))
		reason := c.consume(ctx, wch)
		cancel()
		for range wch { // let the watcher close
		}
		if reason != "" {
			return reason
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	return ""
}

// consume applies watch responses until the watch ends; it returns a
// reason to relist, or "" to resume watching.
func (c *Cache) consume(ctx context.Context, wch clientv3.WatchChan) string {
	for {
		select {
		case <-ctx.Done():
			return ""
		case <-c.restart:
			return ""
		case resp, ok := <-wch:
			if !ok {
				return ""
			}
			if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
				return "compacted"
			}
			if err := resp.Err(); err != nil {
				c.log.Debug("watch broke; resuming", "err", err)
				return ""
			}
			c.applyEvents(resp)
		}
	}
}

// applyEvents applies one watch response: decoding happens before the
// lock is taken.
func (c *Cache) applyEvents(resp clientv3.WatchResponse) {
	type decoded struct {
		key   string
		value []byte
		del   bool
	}
	rev := int64(0)
	if resp.IsProgressNotify() {
		rev = resp.Header.Revision
	}
	kinds := map[string]bool{}
	var evs []decoded
	for _, ev := range resp.Events {
		rev = max(rev, ev.Kv.ModRevision)
		key := string(ev.Kv.Key)
		if c.served(key) == "" {
			continue
		}
		evs = append(evs, decoded{key: key, value: ev.Kv.Value, del: ev.Type == mvccpb.DELETE})
		kinds[c.served(key)] = true
	}
	c.mu.Lock()
	for _, ev := range evs {
		c.apply(c.state, ev.key, ev.value, ev.del)
	}
	if len(evs) > 0 {
		c.snap = nil
	}
	var counts map[string]int
	if rev > c.rev {
		c.setRev(rev)
		if len(kinds) > 0 {
			c.notify(kinds)
			counts = c.state.counts()
		}
	}
	c.mu.Unlock()
	if counts != nil {
		c.m.setCounts(counts)
	}
}

// served returns the kind (sub-prefix) of key when the cache serves it.
func (c *Cache) served(key string) string {
	rest, ok := strings.CutPrefix(key, Prefix)
	if !ok {
		return ""
	}
	for _, p := range c.prefixes {
		if p == syncKey && rest == syncKey || p != syncKey && strings.HasPrefix(rest, p) {
			return kindOfKey(rest)
		}
	}
	return ""
}

// kindOfKey is the snapshot kind of a key relative to Prefix.
func kindOfKey(rest string) string {
	for _, k := range snapshotKinds {
		if k == syncKey && rest == syncKey || k != syncKey && strings.HasPrefix(rest, k) {
			return k
		}
	}
	return ""
}

// apply puts (or deletes) one key in st, decrypting a Secret. A value that
// does not decrypt or decode is logged (its key and, for a Secret, the
// encryption key it needs; never the value) and left out, like a deleted
// key.
func (c *Cache) apply(st *cacheState, key string, value []byte, del bool) {
	var err error
	if !del && encrypted(key) {
		value, err = c.keys.open(key, value)
	}
	if err == nil {
		err = st.apply(key, value, del)
	}
	if err != nil {
		c.m.decodeErrors.Inc()
		c.log.Warn("cannot decode; left out", "key", key, "err", err)
		st.apply(key, nil, true)
	}
}

// setRev moves the applied revision and wakes WaitFor; c.mu is held.
func (c *Cache) setRev(rev int64) {
	c.rev = rev
	close(c.advanced)
	c.advanced = make(chan struct{})
	c.m.revision.Set(float64(rev))
}

// notify tells every subscriber interested in one of kinds (nil: all) of
// the new revision; c.mu is held.
func (c *Cache) notify(kinds map[string]bool) {
	for s := range c.subs {
		if s.kinds != nil && kinds != nil && !intersects(s.kinds, kinds) {
			continue
		}
		sendLatest(s.ch, c.rev)
	}
}

func intersects(a, b map[string]bool) bool {
	for k := range b {
		if a[k] {
			return true
		}
	}
	return false
}

// sendLatest sends rev on a channel of capacity one, replacing a pending
// older notification.
func sendLatest(ch chan int64, rev int64) {
	select {
	case ch <- rev:
	default:
		select {
		case <-ch:
		default:
		}
		ch <- rev
	}
}

// Changes sends the cache's revision after every change of the given kinds
// (sub-prefixes such as PodsPrefix; every kind when none), after a relist,
// and once at once when the cache has listed, so that a reader that
// snapshots on every notification misses nothing. Notifications coalesce:
// a slow reader sees the newest revision, never a backlog. The channel is
// closed when ctx ends.
func (c *Cache) Changes(ctx context.Context, kinds ...string) <-chan int64 {
	s := &cacheSub{ch: make(chan int64, 1)}
	if len(kinds) > 0 {
		s.kinds = map[string]bool{}
		for _, k := range kinds {
			if kk := kindOfKey(k); kk != "" {
				s.kinds[kk] = true
			}
		}
	}
	c.mu.Lock()
	c.subs[s] = struct{}{}
	select {
	case <-c.synced:
		sendLatest(s.ch, c.rev)
	default:
	}
	c.mu.Unlock()
	go func() {
		<-ctx.Done()
		c.mu.Lock()
		delete(c.subs, s)
		close(s.ch)
		c.mu.Unlock()
	}()
	return s.ch
}

// WaitFor blocks until the cache has applied revision rev (a write's
// revision: the cache then shows it), or ctx ends. A cache serving only
// some prefixes sees only their revisions.
func (c *Cache) WaitFor(ctx context.Context, rev int64) error {
	select {
	case <-c.synced:
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		c.mu.Lock()
		if c.rev >= rev {
			c.mu.Unlock()
			return nil
		}
		ch := c.advanced
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for revision %d: %w", rev, ctx.Err())
		}
	}
}

// Snapshot returns the cached state, waiting for the first list. It is the
// same *Snapshot until something changes; a change rebuilds only the lists
// of the kinds that changed. The snapshot and everything it points to are
// shared and immutable: readers must not modify them (copy first).
func (c *Cache) Snapshot(ctx context.Context) (*Snapshot, error) {
	select {
	case <-c.synced:
	case <-ctx.Done():
		return nil, fmt.Errorf("read cached state: %w", ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap == nil {
		start := time.Now()
		c.snap = c.state.snapshot(c.rev)
		c.m.rebuild.Observe(time.Since(start).Seconds())
	}
	return c.snap, nil
}

// cacheState is the decoded state. Objects are never modified once
// decoded: a change replaces them. Lists are rebuilt only for kinds that
// changed since the last snapshot.
type cacheState struct {
	nodes       table[corev1.Node]
	deployments table[appsv1.Deployment]
	services    table[corev1.Service]
	configMaps  table[corev1.ConfigMap]
	secrets     table[corev1.Secret]
	namespaces  table[corev1.Namespace]
	jobs        table[batchv1.Job]
	cronJobs    table[batchv1.CronJob]
	canaries    table[canary.State]
	daemonSets  table[appsv1.DaemonSet]
	statefuls   table[appsv1.StatefulSet]
	claims      table[corev1.PersistentVolumeClaim]
	ingresses   table[networkingv1.Ingress]
	ingClasses  table[networkingv1.IngressClass]
	sync        SyncStatus
	// nodeControls and nodeHealth: see nodecontrol.go.
	nodeControls table[NodeControl]
	nodeHealth   table[NodeHealth]

	// pods by etcd key, the names they answer to, statuses by
	// namespace/name and then by the node that reported them, and each pod
	// merged with the status its own node reported.
	pods     map[string]*corev1.Pod
	names    map[string][]string // namespace/name -> pod keys (one, but for a moment two)
	statuses map[string]map[string]*PodStatus
	nstatus  int
	merged   map[string]*corev1.Pod // by pod key
	// terminating are the status keys (node/namespace/name) of statuses no
	// pod of the same UID on the same node claims.
	terminating map[string]bool
	podOrder    []string        // pod keys sorted by namespace/name; nil until built
	podPos      map[string]int  // pod key -> index in podOrder and podList
	podChanged  map[string]bool // pod keys merged anew since podList
	podAdded    map[string]bool // pod keys not in podOrder yet
	podRemoved  map[string]bool // pod keys in podOrder that are gone
	podList     []*corev1.Pod
	podsDirty   bool
	termList    []TerminatingPod
	termDirty   bool
}

func newCacheState() *cacheState {
	return &cacheState{
		nodes: newTable[corev1.Node](), deployments: newTable[appsv1.Deployment](), services: newTable[corev1.Service](),
		configMaps: newTable[corev1.ConfigMap](), secrets: newTable[corev1.Secret](), namespaces: newTable[corev1.Namespace](),
		jobs: newTable[batchv1.Job](), cronJobs: newTable[batchv1.CronJob](), canaries: newTable[canary.State](),
		nodeControls: newTable[NodeControl](), nodeHealth: newTable[NodeHealth](),
		daemonSets: newTable[appsv1.DaemonSet](), statefuls: newTable[appsv1.StatefulSet](),
		claims: newTable[corev1.PersistentVolumeClaim](), ingresses: newTable[networkingv1.Ingress](),
		ingClasses: newTable[networkingv1.IngressClass](),
		pods:       map[string]*corev1.Pod{}, names: map[string][]string{}, statuses: map[string]map[string]*PodStatus{},
		merged: map[string]*corev1.Pod{}, terminating: map[string]bool{}, podChanged: map[string]bool{},
		podAdded: map[string]bool{}, podRemoved: map[string]bool{}, podsDirty: true, termDirty: true,
	}
}

func (st *cacheState) counts() map[string]int {
	return map[string]int{"nodes": len(st.nodes.objs), "pods": len(st.pods), "podstatus": st.nstatus,
		"deployments": len(st.deployments.objs), "services": len(st.services.objs), "configmaps": len(st.configMaps.objs),
		"secrets": len(st.secrets.objs), "namespaces": len(st.namespaces.objs), "jobs": len(st.jobs.objs), "cronjobs": len(st.cronJobs.objs),
		"canaries": len(st.canaries.objs), "nodecontrols": len(st.nodeControls.objs), "nodehealth": len(st.nodeHealth.objs),
		"daemonsets": len(st.daemonSets.objs), "statefulsets": len(st.statefuls.objs), "persistentvolumeclaims": len(st.claims.objs),
		"ingresses": len(st.ingresses.objs), "ingressclasses": len(st.ingClasses.objs)}
}

// apply puts (value) or deletes (del) one key.
func (st *cacheState) apply(key string, value []byte, del bool) error {
	rest := strings.TrimPrefix(key, Prefix)
	switch kind := kindOfKey(rest); kind {
	case NodesPrefix:
		return st.nodes.apply(rest, value, del)
	case DeploymentsPrefix:
		return st.deployments.apply(rest, value, del)
	case ServicesPrefix:
		return st.services.apply(rest, value, del)
	case ConfigMapsPrefix:
		return st.configMaps.apply(rest, value, del)
	case SecretsPrefix:
		return st.secrets.apply(rest, value, del)
	case NamespacesPrefix:
		return st.namespaces.apply(rest, value, del)
	case JobsPrefix:
		return st.jobs.apply(rest, value, del)
	case CronJobsPrefix:
		return st.cronJobs.apply(rest, value, del)
	case CanariesPrefix:
		return st.canaries.apply(rest, value, del)
	case NodeControlPrefix:
		return st.nodeControls.apply(rest, value, del)
	case NodeHealthPrefix:
		return st.nodeHealth.apply(rest, value, del)
	case DaemonSetsPrefix:
		return st.daemonSets.apply(rest, value, del)
	case StatefulSetsPrefix:
		return st.statefuls.apply(rest, value, del)
	case ClaimsPrefix:
		return st.claims.apply(rest, value, del)
	case IngressesPrefix:
		return st.ingresses.apply(rest, value, del)
	case IngressClassesPrefix:
		return st.ingClasses.apply(rest, value, del)
	case syncKey:
		st.sync = SyncStatus{}
		if del {
			return nil
		}
		return json.Unmarshal(value, &st.sync)
	case PodsPrefix:
		return st.applyPod(rest, value, del)
	case PodStatusPrefix:
		return st.applyStatus(strings.TrimPrefix(rest, PodStatusPrefix), value, del)
	}
	return nil
}

func (st *cacheState) applyPod(key string, value []byte, del bool) error {
	_, ns, name, _, ok := parsePodKey(strings.TrimPrefix(key, PodsPrefix))
	if !ok {
		return nil // not a pod key: nothing bosun writes
	}
	nn := nsName(ns, name)
	var p *corev1.Pod
	if !del {
		p = new(corev1.Pod)
		if err := json.Unmarshal(value, p); err != nil {
			return err
		}
	}
	_, had := st.pods[key]
	switch {
	case p == nil && had:
		delete(st.pods, key)
		delete(st.merged, key)
		st.names[nn] = slices.DeleteFunc(slices.Clone(st.names[nn]), func(k string) bool { return k == key })
		if len(st.names[nn]) == 0 {
			delete(st.names, nn)
		}
		st.orderRemove(key)
	case p != nil:
		st.pods[key] = p
		if !had {
			st.names[nn] = append(slices.Clone(st.names[nn]), key)
			st.orderAdd(key)
		}
	case p == nil:
		return nil // deleting what was never there
	}
	st.podsDirty = true
	st.remerge(nn)
	return nil
}

// applyStatus applies a status key's change. rest is node/namespace/name:
// the node is the key's, whatever the value says, because a node can
// write only under its own name (see Store.AllowNode). Keys of another
// shape (the old namespace/name layout) are not read.
func (st *cacheState) applyStatus(rest string, value []byte, del bool) error {
	node, nn, ok := parseStatusKey(rest)
	if !ok {
		return nil
	}
	var s *PodStatus
	if !del {
		s = new(PodStatus)
		if err := json.Unmarshal(value, s); err != nil {
			return err
		}
		s.Node = node
	}
	byNode := st.statuses[nn]
	if s == nil {
		if _, ok := byNode[node]; !ok {
			return nil
		}
		delete(byNode, node)
		st.nstatus--
		if len(byNode) == 0 {
			delete(st.statuses, nn)
		}
		if st.terminating[rest] {
			delete(st.terminating, rest)
			st.termDirty = true
		}
	} else {
		if byNode == nil {
			byNode = map[string]*PodStatus{}
			st.statuses[nn] = byNode
		}
		if _, had := byNode[node]; !had {
			st.nstatus++
		}
		byNode[node] = s
	}
	st.podsDirty = true
	st.remerge(nn)
	return nil
}

// parseStatusKey splits node/namespace/name.
func parseStatusKey(rest string) (node, nn string, ok bool) {
	node, nn, _ = strings.Cut(rest, "/")
	ns, name, _ := strings.Cut(nn, "/")
	return node, nn, node != "" && ns != "" && name != "" && !strings.Contains(name, "/")
}

// remerge recomputes the merged pods of one name and which of its
// statuses are terminating pods'.
func (st *cacheState) remerge(nn string) {
	byNode := st.statuses[nn]
	var claimed []string
	for _, key := range st.names[nn] {
		p := st.pods[key]
		if s := byNode[p.Spec.NodeName]; s != nil && p.Spec.NodeName != "" && s.UID == p.UID {
			m := *p
			mergeStatus(&m, s.Status)
			st.merged[key] = &m
			claimed = append(claimed, p.Spec.NodeName)
		} else {
			st.merged[key] = p
		}
		st.podChanged[key] = true
	}
	for node := range byNode {
		sk := node + "/" + nn
		term := !slices.Contains(claimed, node)
		if term || st.terminating[sk] {
			st.termDirty = true // its value may have changed too
		}
		if term {
			st.terminating[sk] = true
		} else {
			delete(st.terminating, sk)
		}
	}
}

// snapshot publishes the state at rev, rebuilding the lists that changed.
func (st *cacheState) snapshot(rev int64) *Snapshot {
	s := newSnapshot()
	s.Revision = rev
	s.Nodes = st.nodes.list()
	s.Deployments = st.deployments.list()
	s.Services = st.services.list()
	s.ConfigMaps = st.configMaps.list()
	s.Secrets = st.secrets.list()
	s.Namespaces = st.namespaces.list()
	s.Jobs = st.jobs.list()
	s.CronJobs = st.cronJobs.list()
	s.Canaries = st.canaries.list()
	s.NodeControls = st.nodeControls.list()
	s.NodeHealth = st.nodeHealth.list()
	s.DaemonSets = st.daemonSets.list()
	s.StatefulSets = st.statefuls.list()
	s.Claims = st.claims.list()
	s.Ingresses = st.ingresses.list()
	s.IngressClasses = st.ingClasses.list()
	s.Sync = st.sync
	if st.podsDirty {
		st.podList = st.buildPods()
		st.podsDirty = false
		clear(st.podChanged)
	}
	s.Pods = st.podList
	if st.termDirty {
		st.termList = nil
		for sk := range st.terminating {
			node, nn, _ := parseStatusKey(sk)
			ps := st.statuses[nn][node]
			ns, name, _ := strings.Cut(nn, "/")
			st.termList = append(st.termList, TerminatingPod{Namespace: ns, Name: name, UID: ps.UID, Node: ps.Node, Owner: ps.Owner})
		}
		sortTerminating(st.termList)
		st.termList = slices.Clip(st.termList)
		st.termDirty = false
	}
	s.Terminating = st.termList
	return s
}

// orderAdd and orderRemove note a pod key that came or went since podOrder
// was built, for buildPods to merge in.
func (st *cacheState) orderAdd(key string) {
	if st.podOrder == nil {
		return // the first build sorts every key
	}
	if st.podRemoved[key] {
		delete(st.podRemoved, key) // back where it was
	} else {
		st.podAdded[key] = true
	}
}

func (st *cacheState) orderRemove(key string) {
	if st.podOrder == nil {
		return
	}
	if st.podAdded[key] {
		delete(st.podAdded, key)
	} else {
		st.podRemoved[key] = true
	}
}

// podKeyLess orders pod keys by namespace/name, then key (a pod moving to
// its node has two keys for a moment).
func (st *cacheState) podKeyLess(x, y string) bool {
	a, b := st.pods[x], st.pods[y]
	if a.Namespace != b.Namespace || a.Name != b.Name {
		return podLess(a, b)
	}
	return x < y
}

// buildPods publishes the merged pods in order, as pointers to the merged
// pods themselves (immutable, shared by every snapshot until they change).
// When no pod came or went, the order is kept: the last list of pointers
// is copied (240 kB at 30,000 pods) and only the pods merged anew are
// replaced, without sorting. When a few came or went (a rollout's plan),
// only those are sorted and merged into the order.
func (st *cacheState) buildPods() []*corev1.Pod {
	defer func() { clear(st.podAdded); clear(st.podRemoved) }()
	switch {
	case st.podOrder != nil && len(st.podAdded)+len(st.podRemoved) == 0:
		out := slices.Clone(st.podList)
		st.replaceChanged(out)
		return slices.Clip(out)
	case st.podOrder != nil && len(st.podAdded)+len(st.podRemoved) <= len(st.podOrder)/8:
		return st.mergePods()
	}
	st.podOrder = make([]string, 0, len(st.pods))
	for k := range st.pods {
		st.podOrder = append(st.podOrder, k)
	}
	sort.Slice(st.podOrder, func(i, j int) bool { return st.podKeyLess(st.podOrder[i], st.podOrder[j]) })
	st.indexOrder()
	if len(st.podOrder) == 0 {
		return nil
	}
	out := make([]*corev1.Pod, len(st.podOrder))
	for i, k := range st.podOrder {
		out[i] = st.merged[k]
	}
	return out
}

// mergePods merges the sorted added keys into podOrder, dropping the
// removed ones, and publishes the list.
func (st *cacheState) mergePods() []*corev1.Pod {
	added := make([]string, 0, len(st.podAdded))
	for k := range st.podAdded {
		added = append(added, k)
	}
	sort.Slice(added, func(i, j int) bool { return st.podKeyLess(added[i], added[j]) })
	removed := make([]int, 0, len(st.podRemoved))
	for k := range st.podRemoved {
		removed = append(removed, st.podPos[k])
	}
	slices.Sort(removed)
	// Where each added key goes: a binary search of the old order, whose
	// pods (removed ones too) are st.podList's.
	at := make([]int, len(added))
	for j, k := range added {
		a := st.pods[k]
		at[j] = sort.Search(len(st.podOrder), func(i int) bool {
			b := st.podList[i]
			if a.Namespace != b.Namespace || a.Name != b.Name {
				return podLess(a, b)
			}
			return k < st.podOrder[i]
		})
	}
	n := len(st.podOrder) + len(added) - len(removed)
	order := make([]string, 0, n)
	out := make([]*corev1.Pod, 0, n)
	j := 0
	for i, k := range st.podOrder {
		for ; j < len(added) && at[j] == i; j++ {
			order, out = append(order, added[j]), append(out, st.merged[added[j]])
		}
		if len(removed) > 0 && removed[0] == i {
			removed = removed[1:]
			continue
		}
		order, out = append(order, k), append(out, st.podList[i])
	}
	for ; j < len(added); j++ {
		order, out = append(order, added[j]), append(out, st.merged[added[j]])
	}
	st.podOrder = order
	st.indexOrder()
	st.replaceChanged(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

// indexOrder rebuilds podPos from podOrder.
func (st *cacheState) indexOrder() {
	if st.podPos == nil {
		st.podPos = make(map[string]int, len(st.podOrder))
	}
	clear(st.podPos)
	for i, k := range st.podOrder {
		st.podPos[k] = i
	}
}

// replaceChanged puts the pods merged anew in out, which is in podOrder.
func (st *cacheState) replaceChanged(out []*corev1.Pod) {
	for key := range st.podChanged {
		if i, ok := st.podPos[key]; ok {
			out[i] = st.merged[key]
		}
	}
}

// table holds the decoded objects of one kind by key, and the list last
// published, which is rebuilt only after a change.
type table[T any] struct {
	objs  map[string]*T
	order []string // keys sorted; nil when stale
	out   []T
	dirty bool
}

func newTable[T any]() table[T] { return table[T]{objs: map[string]*T{}, dirty: true} }

func (t *table[T]) apply(key string, value []byte, del bool) error {
	if del {
		if _, ok := t.objs[key]; ok {
			delete(t.objs, key)
			t.order, t.dirty = nil, true
		}
		return nil
	}
	v := new(T)
	if err := json.Unmarshal(value, v); err != nil {
		return err
	}
	if _, ok := t.objs[key]; !ok {
		t.order = nil
	}
	t.objs[key] = v
	t.dirty = true
	return nil
}

// list returns the objects in key order (the order of a range read), a
// clipped slice so that a reader's append never writes into it.
func (t *table[T]) list() []T {
	if !t.dirty {
		return t.out
	}
	if t.order == nil {
		t.order = make([]string, 0, len(t.objs))
		for k := range t.objs {
			t.order = append(t.order, k)
		}
		sort.Strings(t.order)
	}
	t.out = nil
	if len(t.order) > 0 {
		t.out = make([]T, len(t.order))
		for i, k := range t.order {
			t.out[i] = *t.objs[k]
		}
	}
	t.dirty = false
	return t.out
}

// cacheMetrics are a cache's Prometheus metrics.
type cacheMetrics struct {
	relists      *prometheus.CounterVec
	decodeErrors prometheus.Counter
	revision     prometheus.Gauge
	objects      *prometheus.GaugeVec
	rebuild      prometheus.Histogram
}

func newCacheMetrics(reg prometheus.Registerer, name string) *cacheMetrics {
	labels := prometheus.Labels{"cache": name}
	m := &cacheMetrics{
		relists: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_cache_relists_total", Help: "Times the cache listed its prefixes again after its watch could not resume, by reason (compacted).",
			ConstLabels: labels,
		}, []string{"reason"}),
		decodeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_cache_decode_errors_total", Help: "Values the cache could not decode and left out.", ConstLabels: labels,
		}),
		revision: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bosun_cache_revision", Help: "The etcd revision the cache has applied.", ConstLabels: labels,
		}),
		objects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bosun_cache_objects", Help: "Objects in the cache, by kind.", ConstLabels: labels,
		}, []string{"kind"}),
		rebuild: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bosun_cache_snapshot_rebuild_seconds", Help: "Time to publish a new snapshot after a change (the kinds that changed are rebuilt).",
			ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.relists, m.decodeErrors, m.revision, m.objects, m.rebuild)
	}
	return m
}

func (m *cacheMetrics) setCounts(counts map[string]int) {
	for k, n := range counts {
		m.objects.WithLabelValues(k).Set(float64(n))
	}
}
