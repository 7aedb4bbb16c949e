package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

const (
	desiredKey     = "desired"
	syncRequestKey = "syncrequest"
	clusterKeyKey  = "clusterkey"
)

// SyncRequestPrefix is the sub-prefix to watch (with Changes) for requests
// to fetch the repository now.
const SyncRequestPrefix = syncRequestKey

// Desired is the last good revision's objects, as the leader applies them.
// It is kept in etcd so that a new leader (or a restarted server whose Git
// head is invalid) goes on from the last good revision, and so that any
// replica can preview a change against it.
type Desired struct {
	Revision    Revision            `json:"revision"`
	Pods        []corev1.Pod        `json:"pods,omitempty"`
	Deployments []appsv1.Deployment `json:"deployments,omitempty"`
	Services    []corev1.Service    `json:"services,omitempty"`
	ConfigMaps  []corev1.ConfigMap  `json:"configMaps,omitempty"`
	Secrets     []corev1.Secret     `json:"secrets,omitempty"`
	Namespaces  []corev1.Namespace  `json:"namespaces,omitempty"`
	Jobs        []batchv1.Job       `json:"jobs,omitempty"`
	CronJobs    []batchv1.CronJob   `json:"cronJobs,omitempty"`

	DaemonSets             []appsv1.DaemonSet             `json:"daemonSets,omitempty"`
	StatefulSets           []appsv1.StatefulSet           `json:"statefulSets,omitempty"`
	PersistentVolumeClaims []corev1.PersistentVolumeClaim `json:"persistentVolumeClaims,omitempty"`
	Ingresses              []networkingv1.Ingress         `json:"ingresses,omitempty"`
	IngressClasses         []networkingv1.IngressClass    `json:"ingressClasses,omitempty"`
}

// PutDesired records the applied revision's objects, gzipped: a revision of
// thousands of objects stays well under etcd's request size limit.
func PutDesired(d *Desired) (Op, error) {
	return putGzipJSON(desiredKey, "desired state", d)
}

// putGzipJSON is the Op that puts v under key as gzipped JSON (what names
// v in errors).
func putGzipJSON(key, what string, v any) (Op, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(v); err != nil {
		return Op{}, fmt.Errorf("encode %s: %w", what, err)
	}
	if err := zw.Close(); err != nil {
		return Op{}, fmt.Errorf("compress %s: %w", what, err)
	}
	return Op{key: Prefix + key, value: buf.Bytes()}, nil
}

// Desired reads the applied revision's objects; nil when none was applied.
func (s *Store) Desired(ctx context.Context) (*Desired, error) {
	var d Desired
	if ok, err := s.getGzipJSON(ctx, desiredKey, "desired state", &d); !ok {
		return nil, err
	}
	return &d, nil
}

// getGzipJSON reads the gzipped JSON under key into v, opening it if it is
// encrypted at rest; false when the key is absent or on an error.
func (s *Store) getGzipJSON(ctx context.Context, key, what string, v any) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, Prefix+key)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", what, err)
	}
	if len(resp.Kvs) == 0 {
		return false, nil
	}
	value, err := s.open(Prefix+key, resp.Kvs[0].Value)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", what, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(value))
	if err != nil {
		return false, fmt.Errorf("read %s: %w", what, err)
	}
	if err := json.NewDecoder(io.LimitReader(zr, 256<<20)).Decode(v); err != nil {
		return false, fmt.Errorf("decode %s: %w", what, err)
	}
	return true, nil
}

// RequestSync asks the leader to fetch the repository now. Any replica may
// call it (the API does, for `bosun sync` and webhooks); the leader watches
// SyncRequestPrefix.
func (s *Store) RequestSync(ctx context.Context, reason string) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	b, _ := json.Marshal(map[string]any{"reason": reason, "at": time.Now()})
	if err := s.retry(ctx, func(ctx context.Context) error {
		_, err := s.cli.Put(ctx, Prefix+syncRequestKey, string(b))
		return err
	}); err != nil {
		return fmt.Errorf("request sync: %w", err)
	}
	return nil
}

// retry runs an idempotent request again while etcd refuses it for a
// passing reason (Transient: a raft leader change, a member just lost) and
// ctx lasts, so that the loss of one member of several is no error users
// see. Each attempt asks for a member with a raft leader: a member cut off
// from its quorum refuses at once, and the next attempt may reach another.
func (s *Store) retry(ctx context.Context, do func(context.Context) error) error {
	return s.retryEvery(ctx, 2*time.Second, do)
}

// retryEvery is retry with attempts of at most attempt each: one sent to a
// member cut off by a partition, whose connection is not yet found dead,
// hangs only that long.
func (s *Store) retryEvery(ctx context.Context, attempt time.Duration, do func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), attempt)
		err := do(actx)
		cancel()
		if err == nil || ctx.Err() != nil || (!Transient(err) && !errors.Is(err, context.DeadlineExceeded)) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(retryPause):
		}
	}
}

// SyncRequest returns the reason of the last sync request and the etcd
// revision it was written at; 0 and "" when there was none. The leader
// compares the revision with the last one it took, since a watch of
// SyncRequestPrefix also fires when it starts.
func (s *Store) SyncRequest(ctx context.Context) (reason string, rev int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, Prefix+syncRequestKey)
	if err != nil {
		return "", 0, fmt.Errorf("read sync request: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", 0, nil
	}
	var req struct {
		Reason string `json:"reason"`
	}
	_ = json.Unmarshal(resp.Kvs[0].Value, &req) // a request without a reason is still one
	return req.Reason, resp.Kvs[0].ModRevision, nil
}

// History results.
const (
	ResultProgressing   = "progressing"
	ResultApplied       = "applied"
	ResultRejected      = "rejected"
	ResultSuperseded    = "superseded"
	ResultRolloutFailed = "rollout failed"
	// Canary entries (HistoryEntry.Canary set): the commit is the canary
	// branch's.
	ResultCanaryStarted  = "canary started"
	ResultCanaryStepped  = "canary stepped"
	ResultCanaryAborted  = "canary aborted"
	ResultCanaryFailed   = "canary failed"
	ResultCanaryPromoted = "canary promoted"
	ResultCanaryEnded    = "canary ended"
)

// ObjectChange is one line of a revision's change summary.
type ObjectChange struct {
	// Op is "+" (created), "~" (changed) or "-" (deleted).
	Op        string `json:"op"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (c ObjectChange) String() string {
	return c.Op + c.Kind + "/" + c.Namespace + "/" + c.Name
}

// HistoryEntry is one revision bosun saw.
type HistoryEntry struct {
	Seq      int64     `json:"seq"`
	Revision           // commit, author, message, time
	SeenAt   time.Time `json:"seenAt"`
	Result   string    `json:"result"`
	// Errors are a rejected revision's problems, or why a rollout failed.
	Errors  []string       `json:"errors,omitempty"`
	Changes []ObjectChange `json:"changes,omitempty"`
	// ReadyAfter is how long it took from SeenAt until every pod of the
	// revision was ready; zero until then.
	ReadyAfter Duration `json:"readyAfter,omitzero"`
	// AppliedAt is when a revision held by a sync window was applied at
	// last (ReadyAfter counts from then); zero for the others, applied as
	// they were seen.
	AppliedAt time.Time `json:"appliedAt,omitzero"`
	// Canary names the Deployment ("<ns>/<name>") of a canary entry, Branch
	// its branch and Detail what happened (the weights of a step, the
	// reason of an abort).
	Canary string `json:"canary,omitempty"`
	Branch string `json:"branch,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Duration is a time.Duration that reads and writes as a string ("1.5s").
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

func historyKey(seq int64) string { return fmt.Sprintf("%s%s%020d", Prefix, historyPrefix, seq) }

// PutHistory writes a history entry.
func PutHistory(e *HistoryEntry) (Op, error) { return putOp(historyKey(e.Seq), e) }

// DeleteHistory removes a history entry.
func DeleteHistory(seq int64) Op { return Op{key: historyKey(seq)} }

// History returns the recorded revisions, newest first.
func (s *Store) History(ctx context.Context) ([]HistoryEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, Prefix+historyPrefix, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	out := make([]HistoryEntry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var e HistoryEntry
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		if seq, err := strconv.ParseInt(strings.TrimPrefix(string(kv.Key), Prefix+historyPrefix), 10, 64); err == nil {
			e.Seq = seq
		}
		out = append(out, e)
	}
	return out, nil
}

// ClusterKey returns the cluster's secret key, creating it on first use:
// 32 random bytes kept in etcd, the same for every replica and every
// leader. It keys the configuration hashes put on pod templates, so that a
// hash of a Secret reveals nothing of its value; it is encrypted at rest
// like the Secrets, and a Store without a keyring may read a plain one but
// creates none.
func (s *Store) ClusterKey(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	key := Prefix + clusterKeyKey
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("cluster key: %w", err)
	}
	// A Store without a keyring may read the key, never create it.
	var create []clientv3.Op
	sealed, serr := s.seal(key, fresh)
	if serr == nil {
		create = append(create, clientv3.OpPut(key, string(sealed)))
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(create...).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("cluster key: %w", err)
	}
	if resp.Succeeded {
		if serr != nil {
			return nil, fmt.Errorf("cluster key: %w", serr)
		}
		return fresh, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 {
		return nil, fmt.Errorf("cluster key: stored key is empty")
	}
	value, err := s.open(key, kvs[0].Value)
	if err != nil {
		return nil, fmt.Errorf("cluster key: %w", err)
	}
	if len(value) == 0 {
		return nil, fmt.Errorf("cluster key: stored key is empty")
	}
	return value, nil
}
