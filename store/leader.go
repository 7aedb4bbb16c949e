package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// ErrNotLeader is returned by Leadership.Apply when the election key is gone:
// this replica was deposed and must stop deciding.
var ErrNotLeader = errors.New("not the leader any more")

// DefaultSessionTTL is the leader's session TTL. A leader that dies without
// resigning holds the election this long, so it is kept short.
const DefaultSessionTTL = 2 * time.Second

// maxOpsPerTxn stays under etcd's default --max-txn-ops (128).
const maxOpsPerTxn = 120

// maxBytesPerTxn stays under etcd's default request size limit (1.5 MiB).
const maxBytesPerTxn = 1 << 20

// Leadership is held by the replica that won the election.
type Leadership struct {
	s        *Store
	session  *concurrency.Session
	election *concurrency.Election
	key      string
	rev      int64
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
	session, err := concurrency.NewSession(s.cli, concurrency.WithTTL(secs))
	if err != nil {
		return nil, fmt.Errorf("campaign: new session: %w", err)
	}
	e := concurrency.NewElection(session, Prefix+electionPrefix)
	if err := e.Campaign(ctx, id); err != nil {
		session.Close()
		return nil, fmt.Errorf("campaign: %w", err)
	}
	return &Leadership{s: s, session: session, election: e, key: e.Key(), rev: e.Rev()}, nil
}

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

// Done is closed when the leadership's session expires.
func (l *Leadership) Done() <-chan struct{} { return l.session.Done() }

// Resign gives up leadership at once, so another replica takes over without
// waiting for the session TTL.
func (l *Leadership) Resign(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	err := l.election.Resign(ctx)
	if cerr := l.session.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("resign: %w", err)
	}
	return nil
}

// Op is one write of the leader.
type Op struct {
	key   string
	value []byte // nil: delete
}

func (o Op) String() string {
	if o.value == nil {
		return "delete " + o.key
	}
	return "put " + o.key
}

func putOp(key string, v any) (Op, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Op{}, fmt.Errorf("encode %s: %w", key, err)
	}
	return Op{key: key, value: b}, nil
}

// PutPod writes a pod (metadata and spec; the status is the agent's).
func PutPod(p *corev1.Pod) (Op, error) { return putOp(PodKey(p.Namespace, p.Name), p) }

// DeletePod deletes a pod; its node agent then stops it.
func DeletePod(namespace, name string) Op { return Op{key: PodKey(namespace, name)} }

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
// operations and bytes of one); a plan cut short by a lost leadership is
// finished by the next leader's plan, which starts from what was written.
//
// A key written more than once keeps its last write (a pod recreated under
// its name is a delete then a put): etcd refuses a transaction that names a
// key twice, and the last write is what the sequence would leave anyway.
func (l *Leadership) Apply(ctx context.Context, ops []Op) error {
	ops = lastWrites(ops)
	for len(ops) > 0 {
		n, size := 0, 0
		for n < len(ops) && n < maxOpsPerTxn && (n == 0 || size+len(ops[n].value) < maxBytesPerTxn) {
			size += len(ops[n].value) + len(ops[n].key)
			n++
		}
		if err := l.txn(ctx, ops[:n]); err != nil {
			return err
		}
		ops = ops[n:]
	}
	return nil
}

// lastWrites drops every op that a later op on the same key supersedes,
// keeping the order of the others.
func lastWrites(ops []Op) []Op {
	last := make(map[string]int, len(ops))
	for i, o := range ops {
		last[o.key] = i
	}
	if len(last) == len(ops) {
		return ops
	}
	out := make([]Op, 0, len(last))
	for i, o := range ops {
		if last[o.key] == i {
			out = append(out, o)
		}
	}
	return out
}

func (l *Leadership) txn(ctx context.Context, ops []Op) error {
	eops := make([]clientv3.Op, len(ops))
	for i, o := range ops {
		if o.value == nil {
			eops[i] = clientv3.OpDelete(o.key)
		} else {
			eops[i] = clientv3.OpPut(o.key, string(o.value))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := l.s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.rev)).
		Then(eops...).
		Commit()
	if err != nil {
		return fmt.Errorf("apply %d writes: %w", len(ops), err)
	}
	if !resp.Succeeded {
		return ErrNotLeader
	}
	return nil
}
