package store

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// DeletePodNow deletes one pod at an operator's request (`bosun delete
// pod`), as kubectl delete pod asks the API server: its node stops it with
// its grace period, and its controller (or Git, for a standalone Pod)
// starts it again. The pod is deleted only while the stored one is the
// incarnation uid (when given) and has not changed since it was read, so a
// request never deletes a pod that replaced the one the operator saw. It
// reports whether a pod was deleted.
func (s *Store) DeletePodNow(ctx context.Context, node, namespace, name string, uid types.UID) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	key := PodKey(node, namespace, name)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("read pod %s/%s: %w", namespace, name, err)
	}
	if len(resp.Kvs) == 0 {
		return false, nil
	}
	kv := resp.Kvs[0]
	if uid != "" {
		var p corev1.Pod
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			return false, fmt.Errorf("decode pod %s/%s: %w", namespace, name, err)
		}
		if p.UID != uid {
			return false, nil
		}
	}
	txn, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
		Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return false, fmt.Errorf("delete pod %s/%s: %w", namespace, name, err)
	}
	return txn.Succeeded, nil
}
