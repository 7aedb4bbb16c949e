package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
)

// VolumesPrefix holds the records of the local volumes on each node:
// volumes/<node>/<namespace>/<volume name>, written by that node's agent only
// (AllowNode grants it its own node's records).
const VolumesPrefix = "volumes/"

// Volume states in VolumeRecord.State.
const (
	// VolumeBound: the claim the volume was made for is stored and bound
	// to it.
	VolumeBound = "Bound"
	// VolumeReleased: the claim is gone and its reclaim policy was Retain;
	// the data stays on the node, and a claim of the same namespace and
	// name is bound to it again.
	VolumeReleased = "Released"
)

// VolumeRecord is a node agent's record of one local volume it holds: a
// directory under its data dir. The leader reads them to bind a claim
// that comes back to its retained data, and to count the capacity the
// node's volumes take.
type VolumeRecord struct {
	Node      string `json:"node"`
	Namespace string `json:"namespace"`
	Claim     string `json:"claim"`
	// VolumeName is the claim's spec.volumeName, "pvc-<uid>".
	VolumeName string `json:"volumeName"`
	// Size is the storage the claim requests, in bytes.
	Size int64 `json:"size"`
	// ReclaimPolicy is the claim's bosun.dev/reclaim-policy as the agent
	// last saw it: Delete or Retain.
	ReclaimPolicy string `json:"reclaimPolicy"`
	State         string `json:"state"`
	// Path is the directory on the node.
	Path string `json:"path"`
}

// VolumeKey is the etcd key of a node's record of a volume. Keyed by
// the volume, not the claim: a claim deleted and made again while its
// retained volume is out of reach gets a volume of its own, and both are
// recorded.
func VolumeKey(node, namespace, volumeName string) string {
	return VolumeNodePrefix(node) + nsName(namespace, volumeName)
}

// VolumeNodePrefix is the prefix of one node's volume records.
func VolumeNodePrefix(node string) string { return Prefix + VolumesPrefix + node + "/" }

// PutVolume writes a node's record of a volume. Agents call it for their
// own node (their etcd role allows nothing else).
func (s *Store) PutVolume(ctx context.Context, rec VolumeRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode volume record: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	key := VolumeKey(rec.Node, rec.Namespace, rec.VolumeName)
	if _, err := s.cli.Put(ctx, key, string(b)); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// DeleteVolume removes a node's record of a volume.
func (s *Store) DeleteVolume(ctx context.Context, node, namespace, volumeName string) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	key := VolumeKey(node, namespace, volumeName)
	if _, err := s.cli.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// Volumes lists the volume records of one node, or of every node when
// node is "", sorted by node, namespace and volume name.
func (s *Store) Volumes(ctx context.Context, node string) ([]VolumeRecord, error) {
	prefix := Prefix + VolumesPrefix
	if node != "" {
		prefix = VolumeNodePrefix(node)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", strings.TrimSuffix(prefix, "/"), err)
	}
	out := make([]VolumeRecord, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var rec VolumeRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// Claim reads one PersistentVolumeClaim; nil (and no error) when there is
// none.
func (s *Store) Claim(ctx context.Context, namespace, name string) (*corev1.PersistentVolumeClaim, error) {
	var c corev1.PersistentVolumeClaim
	ok, err := s.get(ctx, ClaimKey(namespace, name), &c)
	if !ok || err != nil {
		return nil, err
	}
	return &c, nil
}
