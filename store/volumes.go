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
	// Made: the directory was made (the agent writes the record first,
	// then makes the directory, then says Made). A directory that is
	// missing while its record says Made is never made again, empty: the
	// data disk may not be mounted, or the data dir changed.
	Made bool `json:"made,omitempty"`
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

// PutVolumeIfClaim writes a node's record of a volume only while the key
// of its claim (rec.Namespace, rec.Claim) is at mod revision claimRev, the
// one the record was made from (ClaimRevision; 0: the claim does not
// exist): a record is never written from a claim that has changed since it
// was read (its reclaim policy may have, and the leader may have deleted
// the claim trusting the record that said the new one). It reports whether
// it wrote; on false the caller reads the claim again.
func (s *Store) PutVolumeIfClaim(ctx context.Context, rec VolumeRecord, claimRev int64) (bool, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return false, fmt.Errorf("encode volume record: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	key := VolumeKey(rec.Node, rec.Namespace, rec.VolumeName)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(ClaimKey(rec.Namespace, rec.Claim)), "=", claimRev)).
		Then(clientv3.OpPut(key, string(b))).
		Commit()
	if err != nil {
		return false, fmt.Errorf("put %s: %w", key, err)
	}
	return resp.Succeeded, nil
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
// node is "", sorted by node, namespace and volume name, leaving out those
// it cannot decode (VolumeList says which).
func (s *Store) Volumes(ctx context.Context, node string) ([]VolumeRecord, error) {
	l, err := s.VolumeList(ctx, node)
	return l.Records, err
}

// VolumeList is a listing of volume records.
type VolumeList struct {
	Records []VolumeRecord
	// Skipped says, for each record left out, its key and why: one record
	// a reader cannot decode does not hide the others.
	Skipped []error
}

// VolumeList lists the volume records of one node, or of every node when
// node is "", sorted by node, namespace and volume name. A record's Node
// is the one its key names, whatever its value says: a node writes only
// under its own key (AllowNode), so the key is what can be trusted. A
// record that does not decode, or whose key is not a volume's, is left
// out and said in Skipped.
func (s *Store) VolumeList(ctx context.Context, node string) (VolumeList, error) {
	prefix := Prefix + VolumesPrefix
	if node != "" {
		prefix = VolumeNodePrefix(node)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return VolumeList{}, fmt.Errorf("list %s: %w", strings.TrimSuffix(prefix, "/"), err)
	}
	out := VolumeList{Records: make([]VolumeRecord, 0, len(resp.Kvs))}
	for _, kv := range resp.Kvs {
		rec, err := decodeVolumeRecord(string(kv.Key), kv.Value)
		if err != nil {
			out.Skipped = append(out.Skipped, err)
			continue
		}
		out.Records = append(out.Records, rec)
	}
	return out, nil
}

// decodeVolumeRecord decodes the record at key, its node taken from key.
func decodeVolumeRecord(key string, value []byte) (VolumeRecord, error) {
	rest, ok := strings.CutPrefix(key, Prefix+VolumesPrefix)
	node, _, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || node == "" {
		return VolumeRecord{}, fmt.Errorf("%s: not a volume record key (volumes/<node>/<namespace>/<volume>)", key)
	}
	var rec VolumeRecord
	if err := json.Unmarshal(value, &rec); err != nil {
		return VolumeRecord{}, fmt.Errorf("decode %s: %w", key, err)
	}
	rec.Node = node
	return rec, nil
}

// Volume reads a node's record of a volume; nil (and no error) when there
// is none.
func (s *Store) Volume(ctx context.Context, node, namespace, volumeName string) (*VolumeRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	key := VolumeKey(node, namespace, volumeName)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	rec, err := decodeVolumeRecord(key, resp.Kvs[0].Value)
	if err != nil {
		return nil, err
	}
	return &rec, nil
}

// ClaimRevision reads one PersistentVolumeClaim and the mod revision of
// its key, for PutVolumeIfClaim; nil and 0 (and no error) when there is
// none.
func (s *Store) ClaimRevision(ctx context.Context, namespace, name string) (*corev1.PersistentVolumeClaim, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	key := ClaimKey(namespace, name)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	value, err := s.open(key, resp.Kvs[0].Value)
	if err != nil {
		return nil, 0, fmt.Errorf("read %w", err)
	}
	var c corev1.PersistentVolumeClaim
	if err := json.Unmarshal(value, &c); err != nil {
		return nil, 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return &c, resp.Kvs[0].ModRevision, nil
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
