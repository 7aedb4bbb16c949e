package store

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"

	"bosun/canary"
)

// Prefix is the root of every key bosun writes.
const Prefix = "/bosun/"

// Sub-prefixes under Prefix, usable with Changes.
const (
	NodesPrefix       = "nodes/"
	PodsPrefix        = "pods/"
	PodStatusPrefix   = "podstatus/"
	DeploymentsPrefix = "deployments/"
	ServicesPrefix    = "services/"
	syncKey           = "sync"
	electionPrefix    = "election/"
	historyPrefix     = "history/"
)

// requestTimeout bounds a single etcd request so a stalled cluster is an
// error, not a hang.
const requestTimeout = 10 * time.Second

// Store reads and writes bosun's state in etcd. It is safe for concurrent use.
type Store struct {
	cli  *clientv3.Client
	keys *Keyring // encrypts Secret data at rest; nil: none (see WithKeyring)
}

// New returns a Store on an etcd client. The caller keeps ownership of cli
// unless it calls Close.
func New(cli *clientv3.Client, opts ...Option) *Store {
	s := &Store{cli: cli}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Dial connects to an etcd cluster.
func Dial(endpoints []string) (*clientv3.Client, error) { return DialTLS(endpoints, nil) }

// DialTLS connects to an etcd cluster over TLS with tlsCfg (its client
// certificate is the identity etcd checks permissions against); nil is
// plain Dial.
func DialTLS(endpoints []string, tlsCfg *tls.Config) (*clientv3.Client, error) {
	return dial(endpoints, tlsCfg, 0)
}

// DialMembers is DialTLS for a server whose etcd member is one of several:
// the client dials every member's client URL (endpoints, then the member
// list, read again every memberSyncInterval), so that it works while its
// own member is down and a quorum remains.
func DialMembers(endpoints []string, tlsCfg *tls.Config) (*clientv3.Client, error) {
	cli, err := dial(endpoints, tlsCfg, memberSyncInterval)
	if err != nil {
		return nil, err
	}
	// At once too: a member that joined a moment ago may not know them all.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cli.Sync(ctx); err == nil && len(cli.Endpoints()) > 0 {
		// Sync replaces the endpoints with the members' client URLs.
		eps := cli.Endpoints()
		for _, e := range endpoints {
			if !slices.Contains(eps, e) {
				eps = append(eps, e)
			}
		}
		cli.SetEndpoints(eps...)
	}
	return cli, nil
}

// memberPing is how often DialMembers' clients ping each member.
const memberPing = time.Second

// memberSyncInterval is how often DialMembers' clients read the member list.
const memberSyncInterval = 10 * time.Second

func dial(endpoints []string, tlsCfg *tls.Config, autoSync time.Duration) (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:        endpoints,
		DialTimeout:      5 * time.Second,
		TLS:              tlsCfg,
		Logger:           quietZap(),
		AutoSyncInterval: autoSync,
	}
	if autoSync > 0 {
		// A member cut off by a partition drops packets: without pings,
		// its connection looks alive and requests sent on it hang until
		// their timeout. Pings find it dead within seconds, and requests
		// go to the other members (members of several accept pings this
		// often: EmbeddedConfig with a PeerURL).
		cfg.DialKeepAliveTime, cfg.DialKeepAliveTimeout, cfg.PermitWithoutStream = memberPing, memberPing/2, true
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("dial etcd %s: %w", strings.Join(endpoints, ","), err)
	}
	return cli, nil
}

// Client returns the underlying etcd client.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Close closes the etcd client.
func (s *Store) Close() error { return s.cli.Close() }

// PodStatus is what a node agent reports for one pod.
type PodStatus struct {
	UID  types.UID `json:"uid"`
	Node string    `json:"node"`
	// Owner is the pod's controller, "Kind/namespace/name" (see kube.OwnerOf), so
	// that a pod being torn down after its key was deleted can still be
	// told apart: a Recreate rollout waits for its old pods to be gone.
	Owner  string           `json:"owner,omitempty"`
	Status corev1.PodStatus `json:"status"`
}

// TerminatingPod is a pod whose key is gone (or belongs to a newer pod of
// the same name) while its node has not finished tearing it down.
type TerminatingPod struct {
	Namespace, Name string
	UID             types.UID
	Node, Owner     string
}

// Revision describes one commit of the tracked repository.
type Revision struct {
	Commit  string    `json:"commit"`
	Author  string    `json:"author,omitempty"`
	Message string    `json:"message,omitempty"`
	Time    time.Time `json:"time,omitzero"`
	// Signer is what the trusted keys said of the commit's signature when
	// commits are verified (--verify-commits): who signed it ("Alice
	// <alice@example.com> (OpenPGP key 0123...)", "alice@example.com (SSH
	// key SHA256:... ed25519)"), or "unsigned", "untrusted <key>" or
	// "invalid signature" for a commit rejected for it. Empty when commits
	// are not verified.
	Signer string `json:"signer,omitempty"`
}

// SyncStatus is the leader's account of the last sync with Git.
type SyncStatus struct {
	Leader string `json:"leader,omitempty"`
	// Applied is the revision whose manifests the cluster runs.
	Applied *Revision `json:"applied,omitempty"`
	// Seen is the newest revision fetched; it differs from Applied when it
	// was rejected.
	Seen *Revision `json:"seen,omitempty"`
	// Errors lists every problem of the Seen revision when it was rejected.
	Errors     []string  `json:"errors,omitempty"`
	FetchError string    `json:"fetchError,omitempty"`
	LastFetch  time.Time `json:"lastFetch,omitzero"`
	UpdatedAt  time.Time `json:"updatedAt,omitzero"`
	// Branches are the canary branches the applied revision names, which
	// the leader follows, with their last fetch.
	Branches []BranchStatus `json:"branches,omitempty"`
	// Held is the revision a sync window holds (syncwindow.go), nil when
	// none is.
	Held *HeldStatus `json:"held,omitempty"`
}

// BranchStatus is a followed canary branch as last fetched.
type BranchStatus struct {
	Name string `json:"name"`
	// Commit is its head, "" until fetched or while missing; Error why it
	// is missing or why its last fetch failed (redacted).
	Commit string `json:"commit,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Key helpers.

func nsName(namespace, name string) string { return namespace + "/" + name }

// UnboundNode is the node segment of the key of a pod not yet bound to a
// node. No node can be named "-": node names are DNS subdomains.
const UnboundNode = "-"

// PodKey is the etcd key of a pod bound to node ("" for an unbound pod):
// /bosun/pods/<node>/<ns>/<name>. A node's agent watches only
// NodePodsPrefix(node).
func PodKey(node, namespace, name string) string {
	return Prefix + NodePodsPrefix(node) + nsName(namespace, name)
}

// NodePodsPrefix is the sub-prefix (for Changes and CacheConfig.Prefixes)
// of the pods bound to node, or of the unbound pods when node is "".
func NodePodsPrefix(node string) string {
	if node == "" {
		node = UnboundNode
	}
	return PodsPrefix + node + "/"
}

// legacyPodKey is a pod's key in the layout before pods were grouped by
// node; Leadership.MigratePodKeys moves such keys.
func legacyPodKey(namespace, name string) string {
	return Prefix + PodsPrefix + nsName(namespace, name)
}

// parsePodKey splits the part of a pod key after Prefix+PodsPrefix. The
// node is "" for an unbound pod; legacy is true for a key of the old layout
// (<ns>/<name>, no node segment).
func parsePodKey(rest string) (node, namespace, name string, legacy bool, ok bool) {
	parts := strings.Split(rest, "/")
	switch len(parts) {
	case 2:
		return "", parts[0], parts[1], true, parts[0] != "" && parts[1] != ""
	case 3:
		node = parts[0]
		if node == UnboundNode {
			node = ""
		}
		return node, parts[1], parts[2], false, parts[0] != "" && parts[1] != "" && parts[2] != ""
	}
	return "", "", "", false, false
}

// PodStatusKey is the etcd key of the status node reports for a pod.
func PodStatusKey(node, namespace, name string) string {
	return Prefix + PodStatusPrefix + node + "/" + nsName(namespace, name)
}

// DeploymentKey is the etcd key of a deployment.
func DeploymentKey(namespace, name string) string {
	return Prefix + DeploymentsPrefix + nsName(namespace, name)
}

// ServiceKey is the etcd key of a service.
func ServiceKey(namespace, name string) string {
	return Prefix + ServicesPrefix + nsName(namespace, name)
}

// NodeKey is the etcd key of a node.
func NodeKey(name string) string { return Prefix + NodesPrefix + name }

// Snapshot is the whole cluster state at one etcd revision.
type Snapshot struct {
	Revision int64
	Nodes    []corev1.Node
	// Pods point at decoded, status-merged pods shared by every snapshot
	// that has not seen them change: read only (DeepCopy to modify).
	Pods        []*corev1.Pod
	Deployments []appsv1.Deployment
	Services    []corev1.Service
	ConfigMaps  []corev1.ConfigMap
	Secrets     []corev1.Secret
	Namespaces  []corev1.Namespace
	Jobs        []batchv1.Job
	CronJobs    []batchv1.CronJob
	// DaemonSets, StatefulSets, Claims (PersistentVolumeClaims),
	// Ingresses and IngressClasses are as the leader stored them.
	DaemonSets     []appsv1.DaemonSet
	StatefulSets   []appsv1.StatefulSet
	Claims         []corev1.PersistentVolumeClaim
	Ingresses      []networkingv1.Ingress
	IngressClasses []networkingv1.IngressClass
	// Canaries are the Deployments' canaries, as the leader stored them.
	Canaries []canary.State
	// NodeControls are operators' cordons and drains, NodeHealth the
	// leader's record of each known node's health; both by node name.
	NodeControls []NodeControl
	NodeHealth   []NodeHealth
	Sync         SyncStatus
	// Terminating are pods deleted from the store that their node still
	// reports (it is stopping them).
	Terminating []TerminatingPod

	index *snapIndex // see Pod, PodsOnNode, PodsOwnedBy
}

// Snapshot reads the cluster state in one consistent request.
func (s *Store) Snapshot(ctx context.Context) (*Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	// One transaction of several range reads is one consistent revision,
	// without reading the history and the desired revision every time.
	var gets []clientv3.Op
	for _, p := range []string{NodesPrefix, PodsPrefix, PodStatusPrefix, DeploymentsPrefix, ServicesPrefix,
		ConfigMapsPrefix, SecretsPrefix, NamespacesPrefix, JobsPrefix, CronJobsPrefix, CanariesPrefix, NodeControlPrefix, NodeHealthPrefix,
		DaemonSetsPrefix, StatefulSetsPrefix, ClaimsPrefix, IngressesPrefix, IngressClassesPrefix} {
		gets = append(gets, clientv3.OpGet(Prefix+p, clientv3.WithPrefix()))
	}
	gets = append(gets, clientv3.OpGet(Prefix+syncKey))
	resp, err := s.cli.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var kvs []*mvccpb.KeyValue
	for _, r := range resp.Responses {
		kvs = append(kvs, r.GetResponseRange().Kvs...)
	}
	snap := newSnapshot()
	snap.Revision = resp.Header.Revision
	statuses := map[string]PodStatus{}
	for _, kv := range kvs {
		key := strings.TrimPrefix(string(kv.Key), Prefix)
		var err error
		switch {
		case strings.HasPrefix(key, NodesPrefix):
			var n corev1.Node
			if err = json.Unmarshal(kv.Value, &n); err == nil {
				snap.Nodes = append(snap.Nodes, n)
			}
		case strings.HasPrefix(key, PodsPrefix):
			p := new(corev1.Pod)
			if err = json.Unmarshal(kv.Value, p); err == nil {
				snap.Pods = append(snap.Pods, p)
			}
		case strings.HasPrefix(key, PodStatusPrefix):
			rest := strings.TrimPrefix(key, PodStatusPrefix)
			node, _, ok := parseStatusKey(rest)
			var st PodStatus
			if err = json.Unmarshal(kv.Value, &st); err == nil && ok {
				st.Node = node
				statuses[rest] = st
			}
		case strings.HasPrefix(key, DeploymentsPrefix):
			var d appsv1.Deployment
			if err = json.Unmarshal(kv.Value, &d); err == nil {
				snap.Deployments = append(snap.Deployments, d)
			}
		case strings.HasPrefix(key, ServicesPrefix):
			var svc corev1.Service
			if err = json.Unmarshal(kv.Value, &svc); err == nil {
				snap.Services = append(snap.Services, svc)
			}
		case strings.HasPrefix(key, ConfigMapsPrefix):
			err = appendDecoded(kv.Value, &snap.ConfigMaps)
		case strings.HasPrefix(key, SecretsPrefix):
			var v []byte
			if v, err = s.open(string(kv.Key), kv.Value); err == nil {
				err = appendDecoded(v, &snap.Secrets)
			}
		case strings.HasPrefix(key, NamespacesPrefix):
			err = appendDecoded(kv.Value, &snap.Namespaces)
		case strings.HasPrefix(key, JobsPrefix):
			err = appendDecoded(kv.Value, &snap.Jobs)
		case strings.HasPrefix(key, CronJobsPrefix):
			err = appendDecoded(kv.Value, &snap.CronJobs)
		case strings.HasPrefix(key, CanariesPrefix):
			err = appendDecoded(kv.Value, &snap.Canaries)
		case strings.HasPrefix(key, DaemonSetsPrefix):
			err = appendDecoded(kv.Value, &snap.DaemonSets)
		case strings.HasPrefix(key, StatefulSetsPrefix):
			err = appendDecoded(kv.Value, &snap.StatefulSets)
		case strings.HasPrefix(key, ClaimsPrefix):
			err = appendDecoded(kv.Value, &snap.Claims)
		case strings.HasPrefix(key, IngressesPrefix):
			err = appendDecoded(kv.Value, &snap.Ingresses)
		case strings.HasPrefix(key, IngressClassesPrefix):
			err = appendDecoded(kv.Value, &snap.IngressClasses)
		case strings.HasPrefix(key, NodeControlPrefix):
			err = appendDecoded(kv.Value, &snap.NodeControls)
		case strings.HasPrefix(key, NodeHealthPrefix):
			err = appendDecoded(kv.Value, &snap.NodeHealth)
		case key == syncKey:
			err = json.Unmarshal(kv.Value, &snap.Sync)
		}
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
	}
	for _, p := range snap.Pods {
		key := p.Spec.NodeName + "/" + nsName(p.Namespace, p.Name)
		if st, ok := statuses[key]; ok && p.Spec.NodeName != "" && st.UID == p.UID {
			mergeStatus(p, st.Status)
			delete(statuses, key)
		}
	}
	for key, st := range statuses {
		_, nn, _ := parseStatusKey(key)
		ns, name, _ := strings.Cut(nn, "/")
		snap.Terminating = append(snap.Terminating, TerminatingPod{Namespace: ns, Name: name, UID: st.UID, Node: st.Node, Owner: st.Owner})
	}
	sortTerminating(snap.Terminating)
	// etcd returns keys in byte order, which is namespace/name order within
	// a prefix; nodes are sorted by name likewise. Pods' keys start with
	// their node, so they are sorted here. Keep the contract explicit.
	sort.SliceStable(snap.Nodes, func(i, j int) bool { return snap.Nodes[i].Name < snap.Nodes[j].Name })
	sort.SliceStable(snap.Pods, func(i, j int) bool { return podLess(snap.Pods[i], snap.Pods[j]) })
	return snap, nil
}

// appendDecoded decodes one value onto the end of list.
func appendDecoded[T any](value []byte, list *[]T) error {
	var v T
	if err := json.Unmarshal(value, &v); err != nil {
		return err
	}
	*list = append(*list, v)
	return nil
}

// mergeStatus lays the agent's report over the pod's stored status, keeping
// the leader's PodScheduled condition when the agent did not report one.
func mergeStatus(p *corev1.Pod, st corev1.PodStatus) {
	sched := p.Status.Conditions
	p.Status = st
	// The reported conditions may be shared with other readers: an append
	// must reallocate, never write into their backing array.
	p.Status.Conditions = slices.Clip(p.Status.Conditions)
	for _, c := range sched {
		if c.Type != corev1.PodScheduled {
			continue
		}
		found := false
		for _, have := range p.Status.Conditions {
			found = found || have.Type == corev1.PodScheduled
		}
		if !found {
			p.Status.Conditions = append(p.Status.Conditions, c)
		}
	}
}

// podLess orders pods by namespace, then name.
func podLess(a, b *corev1.Pod) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// PodsOnNode lists the pods bound to node, without their status. It reads
// only that node's prefix, so its cost does not grow with the cluster.
func (s *Store) PodsOnNode(ctx context.Context, node string) ([]corev1.Pod, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, Prefix+NodePodsPrefix(node), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("list pods of node %s: %w", node, err)
	}
	var pods []corev1.Pod
	for _, kv := range resp.Kvs {
		var p corev1.Pod
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			return nil, 0, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		pods = append(pods, p)
	}
	return pods, resp.Header.Revision, nil
}

// Nodes lists the registered nodes, sorted by name.
func (s *Store) Nodes(ctx context.Context) ([]corev1.Node, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, Prefix+NodesPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var nodes []corev1.Node
	for _, kv := range resp.Kvs {
		if err := appendDecoded(kv.Value, &nodes); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
	}
	return nodes, nil
}

// PodStatuses returns every reported pod status, keyed "namespace/name"
// (a name reported by two nodes, for the moment a pod moves, gives one of
// them). It reads the whole prefix: tools and tests only; an agent reads
// the statuses of its own pods with PodStatusesOf.
func (s *Store) PodStatuses(ctx context.Context) (map[string]PodStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, Prefix+PodStatusPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list pod statuses: %w", err)
	}
	out := make(map[string]PodStatus, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		node, nn, ok := parseStatusKey(strings.TrimPrefix(string(kv.Key), Prefix+PodStatusPrefix))
		if !ok {
			continue
		}
		var st PodStatus
		if err := json.Unmarshal(kv.Value, &st); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		st.Node = node
		out[nn] = st
	}
	return out, nil
}

// PodStatusesOf reads the statuses node reported for the pods named by
// keys ("namespace/name"), in transactions of at most maxOpsPerTxn reads;
// pods without a status are absent from the result.
func (s *Store) PodStatusesOf(ctx context.Context, node string, keys []string) (map[string]PodStatus, error) {
	out := make(map[string]PodStatus, len(keys))
	prefix := Prefix + PodStatusPrefix + node + "/"
	for len(keys) > 0 {
		n := min(len(keys), maxOpsPerTxn)
		gets := make([]clientv3.Op, n)
		for i, k := range keys[:n] {
			gets[i] = clientv3.OpGet(prefix + k)
		}
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		resp, err := s.cli.Txn(rctx).Then(gets...).Commit()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("read pod statuses: %w", err)
		}
		for _, r := range resp.Responses {
			for _, kv := range r.GetResponseRange().Kvs {
				var st PodStatus
				if err := json.Unmarshal(kv.Value, &st); err != nil {
					return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
				}
				out[strings.TrimPrefix(string(kv.Key), prefix)] = st
			}
		}
		keys = keys[n:]
	}
	return out, nil
}

// PutPodStatus records a node agent's report for a pod, under the key of
// st.Node, the reporting node.
func (s *Store) PutPodStatus(ctx context.Context, namespace, name string, st PodStatus) error {
	if st.Node == "" {
		return fmt.Errorf("put status of pod %s/%s: no node", namespace, name)
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode status of pod %s/%s: %w", namespace, name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := s.cli.Put(ctx, PodStatusKey(st.Node, namespace, name), string(b)); err != nil {
		return fmt.Errorf("put status of pod %s/%s: %w", namespace, name, err)
	}
	return nil
}

// DeletePodStatus removes the status node reported for a pod once it has
// torn the pod down, but only while the status still describes the pod
// instance uid: the pod may meanwhile have been recreated under the same
// name on the same node.
func (s *Store) DeletePodStatus(ctx context.Context, node, namespace, name string, uid types.UID) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	key := PodStatusKey(node, namespace, name)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("read status of pod %s/%s: %w", namespace, name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	var st PodStatus
	if err := json.Unmarshal(resp.Kvs[0].Value, &st); err == nil && st.UID != uid {
		return nil
	}
	_, err = s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("delete status of pod %s/%s: %w", namespace, name, err)
	}
	return nil
}

// Revision is etcd's current revision: a reader that waits for its cache
// to reach it sees every write made before the call.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, Prefix+syncKey, clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("read revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// SyncStatus reads the leader's last sync report.
func (s *Store) SyncStatus(ctx context.Context) (SyncStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var st SyncStatus
	resp, err := s.cli.Get(ctx, Prefix+syncKey)
	if err != nil {
		return st, fmt.Errorf("read sync status: %w", err)
	}
	if len(resp.Kvs) == 1 {
		if err := json.Unmarshal(resp.Kvs[0].Value, &st); err != nil {
			return st, fmt.Errorf("decode sync status: %w", err)
		}
	}
	return st, nil
}

// Changes sends the etcd revision after any change under the given
// sub-prefixes (all of bosun's keys when none are given). It also sends one
// as soon as each watch is established, so a reader that snapshots on every
// notification misses no change made before the watch began. Notifications
// coalesce: a slow reader sees the newest revision, never a backlog. The
// channel is closed when ctx ends. A compacted or broken watch is restarted
// and signalled, since the reader re-reads everything anyway.
func (s *Store) Changes(ctx context.Context, prefixes ...string) <-chan int64 {
	out := make(chan int64, 1)
	if len(prefixes) == 0 {
		prefixes = []string{""}
	}
	go func() {
		defer close(out)
		notify := func(rev int64) {
			select {
			case out <- rev:
			default:
				// A notification is pending; replace it with the newer one.
				select {
				case <-out:
				default:
				}
				out <- rev
			}
		}
		for ctx.Err() == nil {
			wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			merged := make(chan int64)
			done := make(chan struct{})
			for _, p := range prefixes {
				wch := s.cli.Watch(wctx, Prefix+p, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
				go func() {
					defer func() { done <- struct{}{} }()
					for resp := range wch {
						if resp.Err() != nil {
							return
						}
						select {
						case merged <- resp.Header.Revision:
						case <-wctx.Done():
							return
						}
					}
				}()
			}
			running := len(prefixes)
			for running > 0 {
				select {
				case rev := <-merged:
					notify(rev)
				case <-done:
					running--
					cancel() // one watch broke: restart them all
				}
			}
			cancel()
			if ctx.Err() == nil {
				notify(0)
				select {
				case <-time.After(500 * time.Millisecond):
				case <-ctx.Done():
				}
			}
		}
	}()
	return out
}

// sortTerminating orders terminating pods by namespace, name and node.
func sortTerminating(list []TerminatingPod) {
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.Namespace+"/"+a.Name != b.Namespace+"/"+b.Name {
			return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
		}
		return a.Node < b.Node
	})
}
