package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Option configures a Store.
type Option func(*Store)

// WithKeyring gives a Store the keys that encrypt Secret data at rest:
// without one it reads plain values only, and refuses to write Secret
// data.
func WithKeyring(k *Keyring) Option { return func(s *Store) { s.keys = k } }

// Keyring is the Store's keyring (nil without one).
func (s *Store) Keyring() *Keyring { return s.keys }

// encrypted reports whether the value of an etcd key carries Secret data,
// and so is encrypted at rest: the Secrets, the last good revision's
// objects (they hold its Secrets) and the cluster key (it keys the hashes
// of Secrets put on pod templates).
func encrypted(key string) bool {
	return strings.HasPrefix(key, Prefix+SecretsPrefix) || key == Prefix+desiredKey || key == Prefix+clusterKeyKey ||
		key == Prefix+heldKey // a revision held by a sync window (syncwindow.go)
}

// open returns the plain value read at key.
func (s *Store) open(key string, value []byte) ([]byte, error) {
	if !encrypted(key) {
		return value, nil
	}
	return s.keys.open(key, value)
}

// seal returns the value to store at key.
func (s *Store) seal(key string, value []byte) ([]byte, error) {
	if !encrypted(key) {
		return value, nil
	}
	return s.keys.seal(key, value)
}

// sealOps returns ops with the values of encrypted keys sealed; ops itself
// is left alone (a caller may apply it again).
func (s *Store) sealOps(ops []Op) ([]Op, error) {
	if !slices.ContainsFunc(ops, needsSeal) {
		return ops, nil
	}
	out := make([]Op, len(ops))
	for i, o := range ops {
		if o.value != nil && encrypted(o.key) {
			v, err := s.keys.seal(o.key, o.value)
			if err != nil {
				return nil, err
			}
			o.value = v
		}
		if len(o.with) > 0 {
			with, err := s.sealOps(o.with)
			if err != nil {
				return nil, err
			}
			o.with = with
		}
		out[i] = o
	}
	return out, nil
}

// needsSeal reports whether o writes a value that is encrypted at rest.
func needsSeal(o Op) bool {
	return o.value != nil && encrypted(o.key) || slices.ContainsFunc(o.with, needsSeal)
}

// encryptedValues reads, in one transaction, every value that is
// encrypted at rest.
func (s *Store) encryptedValues(ctx context.Context) ([]keyValue, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(Prefix+SecretsPrefix, clientv3.WithPrefix()),
		clientv3.OpGet(Prefix+desiredKey),
		clientv3.OpGet(Prefix+clusterKeyKey),
		clientv3.OpGet(Prefix+heldKey),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("read encrypted values: %w", err)
	}
	var out []keyValue
	for _, r := range resp.Responses {
		for _, kv := range r.GetResponseRange().Kvs {
			out = append(out, keyValue{key: string(kv.Key), value: kv.Value})
		}
	}
	return out, nil
}

type keyValue struct {
	key   string
	value []byte
}

// KeysInUse counts the values encrypted at rest by the name of the key
// each is encrypted with: "" counts those stored in plain text (by a bosun
// that did not encrypt), and "?" those that are no envelope bosun reads.
// It decrypts nothing, so a Store without a keyring can tell which keys a
// cluster needs.
func (s *Store) KeysInUse(ctx context.Context) (map[string]int, error) {
	kvs, err := s.encryptedValues(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, kv := range kvs {
		name, _, err := envelopeKey(kv.value)
		if err != nil {
			name = "?"
		}
		out[name]++
	}
	return out, nil
}

// Reencrypted is what Leadership.Reencrypt did.
type Reencrypted struct {
	// Key is the primary key, which every value now uses but Unreadable.
	Key string
	// From counts the values rewritten by the key they were encrypted
	// with ("" for plain text).
	From map[string]int
	// Unreadable are the values that could not be decrypted (they need a
	// key the keyring does not hold); they are left as they are.
	Unreadable []error
}

// Rewritten is the number of values rewritten.
func (r Reencrypted) Rewritten() int {
	n := 0
	for _, c := range r.From {
		n += c
	}
	return n
}

// Reencrypt rewrites, with the primary key, every value encrypted at rest
// that is stored in plain text (by an older bosun) or encrypted with
// another key of the keyring, in fenced transactions: a leader runs it
// when it takes over, before its first plan, so that once it has run an
// older key can be removed from the key file. The values it rewrites are
// written by the leader only, so nothing writes them meanwhile. A value it
// cannot decrypt is reported in Unreadable and left alone; errors are
// etcd's and ErrNotLeader.
func (l *Leadership) Reencrypt(ctx context.Context) (Reencrypted, error) {
	var r Reencrypted
	if l.s.keys == nil {
		return r, fmt.Errorf("re-encrypt: the Store has no keyring")
	}
	r.Key = l.s.keys.Primary()
	r.From = map[string]int{}
	kvs, err := l.s.encryptedValues(ctx)
	if err != nil {
		return r, err
	}
	var ops []Op
	from := map[string]int{}
	for _, kv := range kvs {
		name, _, _ := envelopeKey(kv.value)
		if name == r.Key {
			continue
		}
		plain, err := l.s.keys.open(kv.key, kv.value)
		if err != nil {
			r.Unreadable = append(r.Unreadable, err)
			continue
		}
		ops = append(ops, Op{key: kv.key, value: plain})
		from[name]++
	}
	if err := l.Apply(ctx, ops); err != nil {
		return r, fmt.Errorf("re-encrypt: %w", err)
	}
	r.From = from
	return r, nil
}
