package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
)

// DefaultNodeTTL is how long a node outlives its agent's last heartbeat.
const DefaultNodeTTL = 10 * time.Second

// NodeLease keeps a node registered: its key lives under an etcd lease that
// a goroutine keeps alive until Close, or until etcd loses it.
type NodeLease struct {
	s      *Store
	name   string
	lease  clientv3.LeaseID
	cancel context.CancelFunc
	lost   chan struct{}
	wg     sync.WaitGroup
}

// RegisterNode puts node under a new lease of ttl (DefaultNodeTTL when zero)
// and keeps the lease alive.
func (s *Store) RegisterNode(ctx context.Context, node *corev1.Node, ttl time.Duration) (*NodeLease, error) {
	if ttl <= 0 {
		ttl = DefaultNodeTTL
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	grant, err := s.cli.Grant(rctx, int64(ttl.Seconds()+0.5))
	if err != nil {
		return nil, fmt.Errorf("register node %s: grant lease: %w", node.Name, err)
	}
	l := &NodeLease{s: s, name: node.Name, lease: grant.ID, lost: make(chan struct{})}
	if err := l.Update(ctx, node); err != nil {
		s.cli.Revoke(context.WithoutCancel(ctx), grant.ID)
		return nil, err
	}
	kctx, kcancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = kcancel
	ka, err := s.cli.KeepAlive(kctx, grant.ID)
	if err != nil {
		kcancel()
		return nil, fmt.Errorf("register node %s: keep lease alive: %w", node.Name, err)
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for range ka {
		}
		// The channel closes when kctx ends (Close) or the lease is gone.
		if kctx.Err() == nil {
			close(l.lost)
		}
	}()
	return l, nil
}

// Update rewrites the node object (capacity, conditions) under the lease.
func (l *NodeLease) Update(ctx context.Context, node *corev1.Node) error {
	b, err := json.Marshal(node)
	if err != nil {
		return fmt.Errorf("encode node %s: %w", node.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := l.s.cli.Put(ctx, NodeKey(node.Name), string(b), clientv3.WithLease(l.lease)); err != nil {
		return fmt.Errorf("put node %s: %w", node.Name, err)
	}
	return nil
}

// Lost is closed when the lease expired or could not be kept alive; the
// agent must register again.
func (l *NodeLease) Lost() <-chan struct{} { return l.lost }

// Close revokes the lease, which deletes the node key.
func (l *NodeLease) Close(ctx context.Context) error {
	l.cancel()
	l.wg.Wait()
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := l.s.cli.Revoke(ctx, l.lease); err != nil {
		return fmt.Errorf("deregister node %s: %w", l.name, err)
	}
	return nil
}
