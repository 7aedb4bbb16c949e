package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// ErrNotLeader is returned by Leadership.Apply when the election key is gone:
// this replica was deposed and must stop deciding.
var ErrNotLeader = errors.New("not the leader any more")

// DefaultSessionTTL is the leader's session TTL. A leader that dies without
// resigning holds the election this long, so it is kept short.
const DefaultSessionTTL = 2 * time.Second

// maxOpsPerTxn stays under etcd's default --max-txn-ops (128), with the
// leader's stamp (LeaderStampKey).
const maxOpsPerTxn = 120

// LeaderStampKey is written by every fenced transaction of a leader, with
// the leader's id and its election key (LeaderStamp): whoever reads the
// history of etcd can tell which leadership made each write, and check
// that none landed after that leadership's election key was gone.
const LeaderStampKey = Prefix + "leaderstamp"

// LeaderStamp is the value of LeaderStampKey.
type LeaderStamp struct {
	Leader string `json:"leader"`
	// ElectionKey is the leadership's key under /bosun/election/.
	ElectionKey string `json:"electionKey"`
}

// maxBytesPerTxn stays under etcd's default request size limit (1.5 MiB).
const maxBytesPerTxn = 1 << 20

// Leadership is held by the replica that won the election.
type Leadership struct {
	s        *Store
	session  *concurrency.Session
	election *concurrency.Election
	key      string
	rev      int64
	lastRev  atomic.Int64 // revision of the last successful write
	ttl      time.Duration
	stamp    string // LeaderStamp JSON
	// deadline (unix nanoseconds) is the earliest time the session's lease
	// may expire in etcd: the send time of the last renewal etcd confirmed,
	// plus the TTL. Past it this replica stops acting (lost closes), even
	// when etcd, cut off from it, cannot say so.
	deadline atomic.Int64
	lost     chan struct{}
	stop     context.CancelFunc
	done     chan struct{} // closed when watch returns
	closed   sync.Once
}

// Campaign blocks until this replica (named id) is the leader, or ctx ends.
func (s *Store) Campaign(ctx context.Context, id string, ttl time.Duration) (*Leadership, error) {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	secs := int(ttl.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	// The lease is granted with ctx: without a quorum the grant waits,
	// and a shutdown must not wait with it.
	lease, err := s.cli.Grant(ctx, int64(secs))
	if err != nil {
		return nil, fmt.Errorf("campaign: grant the session's lease: %w", err)
	}
	session, err := concurrency.NewSession(s.cli, concurrency.WithTTL(secs), concurrency.WithLease(lease.ID))
	if err != nil {
		return nil, fmt.Errorf("campaign: new session: %w", err)
	}
	e := concurrency.NewElection(session, Prefix+electionPrefix)
	if err := e.Campaign(ctx, id); err != nil {
		session.Close()
		return nil, fmt.Errorf("campaign: %w", err)
	}
	// The leadership starts with a renewal confirmed now: its deadline
	// (see watch) is known from the first write on.
	sent := time.Now()
	rctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), requestTimeout)
	resp, err := s.cli.KeepAliveOnce(rctx, session.Lease())
	cancel()
	if err != nil {
		session.Close()
		return nil, fmt.Errorf("campaign: renew the session: %w", err)
	}
	wctx, stop := context.WithCancel(context.Background())
	l := &Leadership{s: s, session: session, election: e, key: e.Key(), rev: e.Rev(),
		ttl: time.Duration(secs) * time.Second, lost: make(chan struct{}), stop: stop, done: make(chan struct{})}
	b, _ := json.Marshal(LeaderStamp{Leader: id, ElectionKey: e.Key()})
	l.stamp = string(b)
	l.deadline.Store(sent.Add(time.Duration(resp.TTL) * time.Second).UnixNano())
	go l.watch(wctx)
	return l, nil
}

// watch renews the session's lease itself, besides the session's own
// keepalive, so that it knows when each renewal was sent: etcd's expiry
// of the lease is never before that send time plus the TTL. Once that
// deadline passes without a confirmed renewal (this replica's etcd member
// in the minority of a partition, or every member out of reach) it closes
// lost: the replica stops acting before another can be elected. The
// clientv3 keepalive alone closes its channel only a TTL after the last
// answer it received, up to half a second late, which is after the
// lease may have expired in etcd.
func (l *Leadership) watch(ctx context.Context) {
	defer close(l.done)
	every := l.ttl / 5
	for {
		sent := time.Now()
		rctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), l.ttl/2)
		resp, err := l.s.cli.KeepAliveOnce(rctx, l.session.Lease())
		cancel()
		if err == nil && resp.TTL > 0 {
			l.deadline.Store(sent.Add(time.Duration(resp.TTL) * time.Second).UnixNano())
		}
		wait := every
		if left := time.Until(l.Deadline()); left <= 0 {
			l.markLost()
			return
		} else if left < wait {
			wait = left
		}
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			l.markLost()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-l.session.Done():
			l.markLost()
			return
		case <-time.After(wait):
		}
	}
}

func (l *Leadership) markLost() { l.closed.Do(func() { close(l.lost) }) }

// Deadline is the earliest time etcd may expire this leadership's session
// without this replica having heard of it: the send time of the last
// confirmed renewal plus the TTL.
func (l *Leadership) Deadline() time.Time { return time.Unix(0, l.deadline.Load()) }

// Leader returns the id of the current leader, or "" when there is none.
func (s *Store) Leader(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, Prefix+electionPrefix, clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("read leader: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// Done is closed when the leadership's session expires, or may have
// expired in etcd (see Deadline): the leader must stop acting.
func (l *Leadership) Done() <-chan struct{} { return l.lost }

// Close ends a leadership that was lost: it stops the renewals (an orphan
// keepalive would keep the old election key, which a new campaign of this
// replica would wait behind) and revokes the lease when etcd answers.
func (l *Leadership) Close() {
	l.stop()
	<-l.done
	l.markLost()
	l.session.Close()
}

// Resign gives up leadership at once, so another replica takes over without
// waiting for the session TTL.
func (l *Leadership) Resign(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	l.stop()
	<-l.done
	l.markLost()
	err := l.election.Resign(ctx)
	if cerr := l.session.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("resign: %w", err)
	}
	return nil
}

// Op is one write of the leader, or a few that must land in the same
// transaction (a pod bound to a node moves from the unbound prefix to the
// node's: a delete and a put that Apply never splits).
type Op struct {
	key   string
	value []byte // nil: delete
	// with are further writes of the same transaction (no nesting).
	with []Op
}

func (o Op) String() string {
	s := "put " + o.key
	if o.value == nil {
		s = "delete " + o.key
	}
	for _, w := range o.with {
		s += " + " + w.String()
	}
	return s
}

// writes is the number of etcd operations of o.
func (o Op) writes() int { return 1 + len(o.with) }

// size is the bytes o adds to a transaction.
func (o Op) size() int {
	n := len(o.key) + len(o.value)
	for _, w := range o.with {
		n += len(w.key) + len(w.value)
	}
	return n
}

func putOp(key string, v any) (Op, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Op{}, fmt.Errorf("encode %s: %w", key, err)
	}
	return Op{key: key, value: b}, nil
}

// PutPod writes a pod (metadata and spec; the status is the agent's) under
// the node it is bound to.
func PutPod(p *corev1.Pod) (Op, error) {
	return putOp(PodKey(p.Spec.NodeName, p.Namespace, p.Name), p)
}

// MovePod writes a pod that was stored under node from (the unbound prefix
// when ""), deleting its old key in the same transaction when its node
// changed: binding a pod is one atomic write.
func MovePod(from string, p *corev1.Pod) (Op, error) {
	put, err := PutPod(p)
	if err != nil || from == p.Spec.NodeName {
		return put, err
	}
	// The delete comes first: a watcher that keys pods by name sees the
	// old key go, then the new one come.
	op := DeletePod(from, p.Namespace, p.Name)
	op.with = []Op{put}
	return op, nil
}

// DeletePod deletes a pod stored under node ("" when unbound); its node
// agent then stops it.
func DeletePod(node, namespace, name string) Op { return Op{key: PodKey(node, namespace, name)} }

// PutDeployment writes a deployment.
func PutDeployment(d *appsv1.Deployment) (Op, error) {
	return putOp(DeploymentKey(d.Namespace, d.Name), d)
}

// DeleteDeployment deletes a deployment.
func DeleteDeployment(namespace, name string) Op { return Op{key: DeploymentKey(namespace, name)} }

// PutService writes a service.
func PutService(svc *corev1.Service) (Op, error) {
	return putOp(ServiceKey(svc.Namespace, svc.Name), svc)
}

// DeleteService deletes a service.
func DeleteService(namespace, name string) Op { return Op{key: ServiceKey(namespace, name)} }

// PutSyncStatus writes the leader's sync report.
func PutSyncStatus(st *SyncStatus) (Op, error) { return putOp(Prefix+syncKey, st) }

// Apply writes ops in transactions fenced on the leadership: each succeeds
// only while this replica's election key exists, so a deposed leader cannot
// write. Large plans are split into several transactions (etcd limits the
// operations and bytes of one: --max-txn-ops, 128 by default, and the
// request size); the writes of one Op always share a transaction. A plan
// cut short by a lost leadership is finished by the next leader's plan,
// which starts from what was written. The revision of the last transaction
// is recorded (Revision), so the leader can wait for its cache to have
// applied its own writes before planning again.
//
// The values of keys that carry Secret data (Secrets, the desired state,
// the cluster key) are encrypted here with the Store's keyring; without
// one, such a write is refused and nothing is written.
//
// A key written more than once keeps its last write (a pod recreated under
// its name is a delete then a put): etcd refuses a transaction that names a
// key twice, and the last write is what the sequence would leave anyway.
//
// Consecutive transactions that write only pods (a revision creating or
// rolling thousands of them) are independent of one another and run up to
// txnsInFlight at a time, so etcd commits several in one disk write;
// everything else keeps its order.
func (l *Leadership) Apply(ctx context.Context, ops []Op) error {
	ops, err := l.s.sealOps(ops)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	bs := batches(lastWrites(ops))
	for len(bs) > 0 {
		n := 1
		for n < len(bs) && n < txnsInFlight && podsOnly(bs[0]) && podsOnly(bs[n]) {
			n++
		}
		if err := l.txns(ctx, bs[:n]); err != nil {
			return err
		}
		bs = bs[n:]
	}
	return nil
}

// txnsInFlight bounds the pod-only transactions Apply sends at once.
var txnsInFlight = 4

// podsOnly reports whether every write of batch is to a pod key.
func podsOnly(batch []Op) bool {
	for _, o := range batch {
		if !strings.HasPrefix(o.key, Prefix+PodsPrefix) {
			return false
		}
		for _, w := range o.with {
			if !strings.HasPrefix(w.key, Prefix+PodsPrefix) {
				return false
			}
		}
	}
	return true
}

// txns runs independent transactions at once and returns the first error
// (ErrNotLeader before any other: it ends the leadership).
func (l *Leadership) txns(ctx context.Context, bs [][]Op) error {
	if len(bs) == 1 {
		return l.txn(ctx, bs[0])
	}
	errs := make([]error, len(bs))
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.txn(ctx, b)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if errors.Is(err, ErrNotLeader) {
			return err
		}
	}
	return errors.Join(errs...)
}

// batches cuts ops, in order, into transactions of at most maxOpsPerTxn
// etcd operations and (unless one Op alone is larger) maxBytesPerTxn bytes,
// never splitting an Op's writes.
func batches(ops []Op) [][]Op {
	var out [][]Op
	for len(ops) > 0 {
		n, writes, size := 0, 0, 0
		for n < len(ops) && writes+ops[n].writes() <= maxOpsPerTxn && (n == 0 || size+ops[n].size() < maxBytesPerTxn) {
			writes += ops[n].writes()
			size += ops[n].size()
			n++
		}
		out = append(out, ops[:n])
		ops = ops[n:]
	}
	return out
}

// Revision is the etcd revision of the leader's last successful write (0
// before the first).
func (l *Leadership) Revision() int64 { return l.lastRev.Load() }

// lastWrites drops every write that a later write on the same key
// supersedes, keeping the order of the others and the grouping of an Op's
// writes.
func lastWrites(ops []Op) []Op {
	last := make(map[string]int, len(ops))
	total := 0
	for i, o := range ops {
		last[o.key] = i
		for _, w := range o.with {
			last[w.key] = i
		}
		total += o.writes()
	}
	if len(last) == total {
		return ops
	}
	out := make([]Op, 0, len(ops))
	for i, o := range ops {
		var keep []Op
		if last[o.key] == i {
			keep = append(keep, Op{key: o.key, value: o.value})
		}
		for _, w := range o.with {
			if last[w.key] == i {
				keep = append(keep, w)
			}
		}
		if len(keep) > 0 {
			op := keep[0]
			op.with = keep[1:]
			out = append(out, op)
		}
	}
	return out
}

func (l *Leadership) txn(ctx context.Context, ops []Op) error {
	eops := make([]clientv3.Op, 0, len(ops))
	add := func(o Op) {
		if o.value == nil {
			eops = append(eops, clientv3.OpDelete(o.key))
		} else {
			eops = append(eops, clientv3.OpPut(o.key, string(o.value)))
		}
	}
	for _, o := range ops {
		add(o)
		for _, w := range o.with {
			add(w)
		}
	}
	eops = append(eops, clientv3.OpPut(LeaderStampKey, l.stamp))
	resp, err := l.commit(ctx, eops)
	if err != nil {
		return fmt.Errorf("apply %d writes: %w", len(ops), err)
	}
	if !resp.Succeeded {
		return ErrNotLeader
	}
	for {
		prev := l.lastRev.Load()
		if resp.Header.Revision <= prev || l.lastRev.CompareAndSwap(prev, resp.Header.Revision) {
			return nil
		}
	}
}

// retryPause is the pause between attempts of a fenced write that etcd
// refused for a passing reason (a raft leader change, a member gone).
const retryPause = 100 * time.Millisecond

// commit sends one fenced transaction. It waits for an answer no longer
// than the leadership is sure to last (Deadline), and asks for a member
// with a raft leader, so that a member cut off from its quorum answers at
// once instead of holding the write. A transient refusal (no leader, leader
// changed, a member unreachable) is tried again while the leadership lasts:
// every write is idempotent (a put or delete of whole values), and the
// election key's compare, checked when etcd applies the transaction, keeps
// a write that arrives after the leadership ended from landing.
func (l *Leadership) commit(ctx context.Context, eops []clientv3.Op) (*clientv3.TxnResponse, error) {
	for {
		if isClosed(l.lost) || !time.Now().Before(l.Deadline()) {
			return nil, fmt.Errorf("%w: the session's lease was not renewed within its TTL (%s): etcd unreachable or without quorum", ErrNotLeader, l.ttl)
		}
		deadline := l.Deadline()
		if d := time.Now().Add(requestTimeout); d.Before(deadline) {
			deadline = d
		}
		tctx, cancel := context.WithDeadline(clientv3.WithRequireLeader(ctx), deadline)
		resp, err := l.s.cli.Txn(tctx).
			If(clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.rev)).
			Then(eops...).
			Commit()
		cancel()
		if err == nil || ctx.Err() != nil || (!Transient(err) && !errors.Is(err, context.DeadlineExceeded)) {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-l.lost:
		case <-time.After(retryPause):
		}
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Transient says whether an etcd error passes by itself while a quorum
// exists: no raft leader yet, the leader changed under the request, a
// member unreachable or still a learner. A write refused so may be sent
// again.
func Transient(err error) bool {
	for _, e := range []error{rpctypes.ErrNoLeader, rpctypes.ErrLeaderChanged, rpctypes.ErrTimeout,
		rpctypes.ErrTimeoutDueToLeaderFail, rpctypes.ErrTimeoutDueToConnectionLost, rpctypes.ErrNotCapable,
		rpctypes.ErrGRPCNotSupportedForLearner, rpctypes.ErrGRPCNoLeader, rpctypes.ErrGRPCLeaderChanged, rpctypes.ErrUnhealthy} {
		if errors.Is(err, e) {
			return true
		}
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unavailable {
		return true
	}
	return false
}

// MigratePodKeys moves pods stored in the layout before pods were grouped
// by node (/bosun/pods/<ns>/<name>) to their node's prefix, in fenced
// transactions: a leader runs it once when it takes over a cluster written
// by an older bosun. Until then readers (Cache, Snapshot) read such keys
// transparently, but agents, which watch only their node's prefix, do not
// see them. It reads only keys, then the values of old-layout keys.
func (l *Leadership) MigratePodKeys(ctx context.Context) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	resp, err := l.s.cli.Get(rctx, Prefix+PodsPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	cancel()
	if err != nil {
		return 0, fmt.Errorf("list pod keys: %w", err)
	}
	var ops []Op
	for _, kv := range resp.Kvs {
		_, _, _, legacy, ok := parsePodKey(strings.TrimPrefix(string(kv.Key), Prefix+PodsPrefix))
		if !ok || !legacy {
			continue
		}
		var p corev1.Pod
		found, err := l.s.get(ctx, string(kv.Key), &p)
		if err != nil {
			return 0, err
		}
		if !found {
			continue
		}
		put, err := PutPod(&p)
		if err != nil {
			return 0, err
		}
		ops = append(ops, Op{key: string(kv.Key), with: []Op{put}})
	}
	if err := l.Apply(ctx, ops); err != nil {
		return 0, fmt.Errorf("migrate pod keys: %w", err)
	}
	return len(ops), nil
}
