package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func secret(ns, name, value string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"password": []byte(value)},
	}
}

// rawValues reads every value under /bosun/ as etcd stores it.
func rawValues(t testing.TB, s *Store) map[string][]byte {
	t.Helper()
	resp, err := s.cli.Get(context.Background(), Prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = kv.Value
	}
	return out
}

// writeSecretData writes what carries Secret data: a Secret, the desired
// state holding it, and the cluster key.
func writeSecretData(t testing.TB, s *Store, lead *Leadership, secrets ...*corev1.Secret) {
	t.Helper()
	ctx := context.Background()
	var ops []Op
	d := &Desired{Revision: Revision{Commit: "c1"}}
	for _, sec := range secrets {
		ops = append(ops, mustOp(PutSecret(sec)))
		d.Secrets = append(d.Secrets, *sec)
	}
	ops = append(ops, mustOp(PutDesired(d)), mustOp(PutPod(pod("default", "web", "u1", "n1"))))
	if err := lead.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClusterKey(ctx); err != nil {
		t.Fatal(err)
	}
}

// readAll reads the planted Secret back through every reader: Store.Secret,
// Snapshot, Desired and a Cache.
func readAll(t testing.TB, s *Store, ns, name string) {
	t.Helper()
	ctx := context.Background()
	sec, err := s.Secret(ctx, ns, name)
	if err != nil || sec == nil || string(sec.Data["password"]) != planted {
		t.Errorf("Store.Secret = %v, %v; want the planted value", sec != nil, err)
	}
	snap, err := s.Snapshot(ctx)
	if err != nil || len(snap.Secrets) != 1 || string(snap.Secrets[0].Data["password"]) != planted {
		t.Errorf("Store.Snapshot secrets = %d, %v; want the planted value", len(snap.Secrets), err)
	}
	d, err := s.Desired(ctx)
	if err != nil || d == nil || len(d.Secrets) != 1 || string(d.Secrets[0].Data["password"]) != planted {
		t.Errorf("Store.Desired = %v; want the planted value", err)
	}
	c := RunTestCache(t, s, CacheConfig{})
	cs, err := c.Snapshot(ctx)
	if err != nil || len(cs.Secrets) != 1 || string(cs.Secrets[0].Data["password"]) != planted {
		t.Errorf("Cache secrets = %d, %v; want the planted value", len(cs.Secrets), err)
	}
}

// TestSecretsAtRest_encryptedInEtcdAndReadBack: a Secret, the desired
// state and the cluster key are envelopes in etcd that show neither the
// value nor its base64; every reader (Secret, Snapshot, Desired, Cache,
// ClusterKey) reads the plain value; other kinds stay plain JSON.
func TestSecretsAtRest_encryptedInEtcdAndReadBack(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	lead := leadFor(t, s)
	key1, err := s.ClusterKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	writeSecretData(t, s, lead, secret("default", "db", planted))
	raw := rawValues(t, s)
	for _, k := range []string{SecretKey("default", "db"), Prefix + desiredKey, Prefix + clusterKeyKey} {
		if !bytes.HasPrefix(raw[k], []byte("k8s:enc:aesgcm:v1:"+s.keys.Primary()+":")) {
			t.Errorf("%s is stored as %q..., want an aesgcm envelope of key %s", k, raw[k][:min(len(raw[k]), 20)], s.keys.Primary())
		}
	}
	for k, v := range raw {
		noLeak(t, k, string(v))
	}
	if !bytes.HasPrefix(raw[PodKey("n1", "default", "web")], []byte("{")) {
		t.Errorf("a pod is stored as %q, want plain JSON", raw[PodKey("n1", "default", "web")])
	}
	readAll(t, s, "default", "db")
	key2, err := s.ClusterKey(ctx)
	if err != nil || !bytes.Equal(key1, key2) || len(key2) != 32 {
		t.Errorf("ClusterKey changed or is not 32 bytes: %v", err)
	}
	inUse, err := s.KeysInUse(ctx)
	if err != nil || len(inUse) != 1 || inUse[s.keys.Primary()] != 3 {
		t.Errorf("KeysInUse = %v, %v; want 3 values of %s", inUse, err, s.keys.Primary())
	}
}

// TestSecretsAtRest_plainLegacyValuesAreReadAndReencrypted: values an
// older bosun wrote in plain text are read as they are, and the leader's
// Reencrypt rewrites them encrypted, keeping their content.
func TestSecretsAtRest_plainLegacyValuesAreReadAndReencrypted(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	// What an older bosun wrote: plain JSON, a plain gzip, 32 raw bytes.
	b, _ := json.Marshal(secret("default", "db", planted))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	json.NewEncoder(zw).Encode(&Desired{Revision: Revision{Commit: "old"}, Secrets: []corev1.Secret{*secret("default", "db", planted)}})
	zw.Close()
	clusterKey := bytes.Repeat([]byte{0xab}, 32)
	for k, v := range map[string][]byte{SecretKey("default", "db"): b, Prefix + desiredKey: gz.Bytes(), Prefix + clusterKeyKey: clusterKey} {
		if _, err := s.cli.Put(ctx, k, string(v)); err != nil {
			t.Fatal(err)
		}
	}
	readAll(t, s, "default", "db")
	if inUse, err := s.KeysInUse(ctx); err != nil || inUse[""] != 3 {
		t.Errorf("KeysInUse = %v, %v; want 3 plain values", inUse, err)
	}
	r, err := leadFor(t, s).Reencrypt(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rewritten() != 3 || r.From[""] != 3 || len(r.Unreadable) != 0 || r.Key != s.keys.Primary() {
		t.Errorf("Reencrypt = %+v, want 3 plain values rewritten with %s", r, s.keys.Primary())
	}
	for k, v := range rawValues(t, s) {
		if encrypted(k) && !bytes.HasPrefix(v, []byte(aesgcmPrefix)) {
			t.Errorf("%s is still plain after Reencrypt", k)
		}
		noLeak(t, k, string(v))
	}
	readAll(t, s, "default", "db")
	if got, err := s.ClusterKey(ctx); err != nil || !bytes.Equal(got, clusterKey) {
		t.Errorf("ClusterKey after Reencrypt = %x, %v; want the old key", got, err)
	}
	if inUse, _ := s.KeysInUse(ctx); len(inUse) != 1 || inUse[s.keys.Primary()] != 3 {
		t.Errorf("KeysInUse after Reencrypt = %v", inUse)
	}
}

// TestSecretsAtRest_rotation: with a new primary key before the old one,
// everything still reads; Reencrypt rewrites what the old key encrypted;
// then a keyring without the old key reads everything.
func TestSecretsAtRest_rotation(t *testing.T) {
	ctx := context.Background()
	old, oldKeys := testKeyring(t, "old")
	_, newKeys := testKeyring(t, "new")
	s := New(NewTest(t).cli, WithKeyring(old))
	lead := leadFor(t, s)
	writeSecretData(t, s, lead, secret("default", "db", planted), secret("other", "api", planted))
	rotated, err := NewKeyring("rotated", newKeys[0], oldKeys[0])
	if err != nil {
		t.Fatal(err)
	}
	s2 := New(s.cli, WithKeyring(rotated))
	readAllN(t, s2, 2)
	lead.Resign(ctx)
	lead2 := leadFor(t, s2)
	r, err := lead2.Reencrypt(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Key != "new" || r.From["old"] != 4 || r.Rewritten() != 4 || len(r.Unreadable) != 0 {
		t.Errorf("Reencrypt = %+v, want 4 values (2 Secrets, desired, cluster key) moved from old to new", r)
	}
	if inUse, _ := s2.KeysInUse(ctx); len(inUse) != 1 || inUse["new"] != 4 {
		t.Errorf("KeysInUse = %v, want only new", inUse)
	}
	// A second run has nothing to do.
	if r, err := lead2.Reencrypt(ctx); err != nil || r.Rewritten() != 0 {
		t.Errorf("Reencrypt again = %+v, %v; want nothing rewritten", r, err)
	}
	onlyNew, _ := NewKeyring("only new", newKeys[0])
	readAllN(t, New(s.cli, WithKeyring(onlyNew)), 2)
	if _, err := New(s.cli, WithKeyring(old)).Secret(ctx, "default", "db"); !errors.Is(err, ErrCannotDecrypt) {
		t.Errorf("the old key alone still reads a rotated Secret: %v", err)
	}
}

func readAllN(t testing.TB, s *Store, secrets int) {
	t.Helper()
	ctx := context.Background()
	snap, err := s.Snapshot(ctx)
	if err != nil || len(snap.Secrets) != secrets {
		t.Fatalf("Snapshot secrets = %d, %v; want %d", len(snap.Secrets), err, secrets)
	}
	for _, sec := range snap.Secrets {
		if string(sec.Data["password"]) != planted {
			t.Errorf("Secret %s/%s lost its value", sec.Namespace, sec.Name)
		}
	}
	if d, err := s.Desired(ctx); err != nil || len(d.Secrets) != secrets {
		t.Errorf("Desired = %v", err)
	}
	if _, err := s.ClusterKey(ctx); err != nil {
		t.Errorf("ClusterKey: %v", err)
	}
}

// TestSecretsAtRest_wrongKeyIsAnErrorNeverAnEmptySecret: a process whose
// keyring lacks the key gets errors naming the etcd key and the key it
// needs, from every reader; the Cache leaves the Secret out, logs why and
// counts it; nothing shows the value.
func TestSecretsAtRest_wrongKeyIsAnErrorNeverAnEmptySecret(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	first := leadFor(t, s)
	writeSecretData(t, s, first, secret("default", "db", planted))
	first.Resign(ctx)
	need := s.keys.Primary()
	other, _ := testKeyring(t, "other")
	for name, wrong := range map[string]*Store{"other key": New(s.cli, WithKeyring(other)), "no keyring": New(s.cli)} {
		t.Run(name, func(t *testing.T) {
			var errs []error
			sec, err := wrong.Secret(ctx, "default", "db")
			if sec != nil {
				t.Error("Secret returned a Secret it could not decrypt")
			}
			errs = append(errs, err)
			_, err = wrong.Snapshot(ctx)
			errs = append(errs, err)
			_, err = wrong.Desired(ctx)
			errs = append(errs, err)
			_, err = wrong.ClusterKey(ctx)
			errs = append(errs, err)
			for i, err := range errs {
				if !errors.Is(err, ErrCannotDecrypt) || !strings.Contains(err.Error(), "key "+need) || !strings.Contains(err.Error(), "/bosun/") {
					t.Errorf("reader %d: %v; want ErrCannotDecrypt naming the etcd key and key %s", i, err, need)
					continue
				}
				noLeak(t, "the error", err.Error())
			}
			if !strings.Contains(errs[0].Error(), SecretKey("default", "db")) {
				t.Errorf("Secret's error %q does not name %s", errs[0], SecretKey("default", "db"))
			}

			var logs syncBuffer
			reg := prometheus.NewRegistry()
			c := RunTestCache(t, wrong, CacheConfig{Registerer: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			snap, err := c.Snapshot(ctx)
			if err != nil || len(snap.Secrets) != 0 || len(snap.Pods) != 1 {
				t.Errorf("cache: %d secrets, %d pods, %v; want the Secret left out, the rest there", len(snap.Secrets), len(snap.Pods), err)
			}
			if got := testutil.ToFloat64(c.m.decodeErrors); got != 1 {
				t.Errorf("bosun_cache_decode_errors_total = %v, want 1", got)
			}
			if l := logs.String(); !strings.Contains(l, SecretKey("default", "db")) || !strings.Contains(l, "key "+need) {
				t.Errorf("cache log does not say which Secret and key: %s", l)
			}
			noLeak(t, "the cache's log", logs.String())
			if name == "other key" {
				lead := leadFor(t, wrong)
				r, err := lead.Reencrypt(ctx)
				lead.Resign(ctx)
				if err != nil || r.Rewritten() != 0 || len(r.Unreadable) != 3 {
					t.Errorf("Reencrypt = %+v, %v; want 3 unreadable values left alone", r, err)
				}
			}
		})
	}
}

// TestSecretsAtRest_movedValueDoesNotOpen: a Secret's envelope copied to
// another Secret's key (by someone with etcd access) does not decrypt
// there: the etcd key is authenticated.
func TestSecretsAtRest_movedValueDoesNotOpen(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	writeSecretData(t, s, leadFor(t, s), secret("default", "db", planted))
	raw := rawValues(t, s)[SecretKey("default", "db")]
	if _, err := s.cli.Put(ctx, SecretKey("default", "public"), string(raw)); err != nil {
		t.Fatal(err)
	}
	sec, err := s.Secret(ctx, "default", "public")
	if sec != nil || !errors.Is(err, ErrCannotDecrypt) || !strings.Contains(err.Error(), SecretKey("default", "public")) {
		t.Errorf("moved value: %v, %v; want ErrCannotDecrypt naming the key it was moved to", sec, err)
	}
}

// TestSecretsAtRest_keylessStoreWritesNoSecret: a Store without a keyring
// refuses a plan that writes Secret data, and writes none of it.
func TestSecretsAtRest_keylessStoreWritesNoSecret(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	keyless := New(s.cli)
	lead := leadFor(t, keyless)
	err := lead.Apply(ctx, []Op{mustOp(PutPod(pod("default", "web", "u1", "n1"))), mustOp(PutSecret(secret("default", "db", planted)))})
	if err == nil || !strings.Contains(err.Error(), SecretKey("default", "db")) {
		t.Fatalf("Apply = %v, want a refusal naming the Secret", err)
	}
	noLeak(t, "the error", err.Error())
	if raw := rawValues(t, s); len(raw) != 1 { // the election key
		t.Errorf("etcd holds %d keys after a refused plan, want only the election key", len(raw))
	}
	if _, err := keyless.ClusterKey(ctx); err == nil {
		t.Error("a keyless Store created a plain cluster key")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// BenchmarkLeadershipApply_1kSecrets is the leader's write of a revision
// of 1,000 Secrets (two keys of 64 and 1,024 bytes each) and the desired
// state holding them, in plain text and encrypted, on an embedded etcd
// with its default ticks and fsync, as a server runs it.
func BenchmarkLeadershipApply_1kSecrets(b *testing.B) {
	s := NewTestWith(b, EmbeddedConfig{})
	ctx := context.Background()
	d := &Desired{Revision: Revision{Commit: "c1"}}
	var ops, remove []Op
	for i := range 1000 {
		sec := secret("default", fmt.Sprintf("secret-%04d", i), strings.Repeat("p", 64))
		sec.Data["cert.pem"] = bytes.Repeat([]byte("c"), 1024)
		ops = append(ops, mustOp(PutSecret(sec)))
		remove = append(remove, DeleteSecret(sec.Namespace, sec.Name))
		d.Secrets = append(d.Secrets, *sec)
	}
	ops = append(ops, mustOp(PutDesired(d)))
	for _, mode := range []struct {
		name string
		keys *Keyring
	}{{"plain", &Keyring{plain: true, names: []string{"plain"}}}, {"aesgcm", s.keys}} {
		b.Run(mode.name, func(b *testing.B) {
			st := New(s.cli, WithKeyring(mode.keys))
			lead := leadFor(b, st)
			defer lead.Resign(ctx)
			for range b.N {
				if err := lead.Apply(ctx, ops); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := lead.Apply(ctx, remove); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "secrets/s")
		})
	}
}

// BenchmarkKeyring is the cost of one seal and one open of a 1 KiB value.
func BenchmarkKeyring(b *testing.B) {
	kr, _ := testKeyring(b, "k1")
	value := bytes.Repeat([]byte("v"), 1024)
	sealed, _ := kr.seal("/bosun/secrets/default/db", value)
	b.Run("seal-1KiB", func(b *testing.B) {
		b.SetBytes(1024)
		for range b.N {
			kr.seal("/bosun/secrets/default/db", value)
		}
	})
	b.Run("open-1KiB", func(b *testing.B) {
		b.SetBytes(1024)
		for range b.N {
			kr.open("/bosun/secrets/default/db", sealed)
		}
	})
}

// BenchmarkSealOps_1kSecrets is the CPU cost of encryption alone in the
// leader's write of BenchmarkLeadershipApply_1kSecrets' plan: sealing its
// 1,000 Secrets and the desired state.
func BenchmarkSealOps_1kSecrets(b *testing.B) {
	kr, _ := testKeyring(b, "k1")
	s := &Store{keys: kr}
	d := &Desired{Revision: Revision{Commit: "c1"}}
	var ops []Op
	for i := range 1000 {
		sec := secret("default", fmt.Sprintf("secret-%04d", i), strings.Repeat("p", 64))
		sec.Data["cert.pem"] = bytes.Repeat([]byte("c"), 1024)
		ops = append(ops, mustOp(PutSecret(sec)))
		d.Secrets = append(d.Secrets, *sec)
	}
	ops = append(ops, mustOp(PutDesired(d)))
	size := 0
	for _, o := range ops {
		size += len(o.value)
	}
	b.SetBytes(int64(size))
	for range b.N {
		if _, err := s.sealOps(ops); err != nil {
			b.Fatal(err)
		}
	}
}
