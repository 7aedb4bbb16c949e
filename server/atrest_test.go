package server

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/store"
)

// TestOpenKeyring_createsOnFirstStartAndRefusesToForgetAKey: the first
// start of a cluster creates the key file (0600); later starts load it; a
// start whose file is missing, or lacks a key values are encrypted with,
// is refused with the key's name, and creates nothing.
func TestOpenKeyring_createsOnFirstStartAndRefusesToForgetAKey(t *testing.T) {
	ctx := context.Background()
	st := store.NewTest(t)
	cli := st.Client()
	dir := t.TempDir()
	file := filepath.Join(dir, "secrets.key")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	keys, err := openKeyring(ctx, cli, file, log)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
	}
	if !strings.Contains(logs.String(), "created the encryption key") {
		t.Errorf("no log of the key's creation: %s", logs.String())
	}
	again, err := openKeyring(ctx, cli, file, log)
	if err != nil || again.Primary() != keys.Primary() {
		t.Fatalf("second start: %v, %v; want the same key", again, err)
	}

	// The cluster's Secrets are written with that key.
	s := store.New(cli, store.WithKeyring(keys))
	lead, err := s.Campaign(ctx, "r1", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer lead.Resign(ctx)
	op, err := store.PutSecret(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db"}, Data: map[string][]byte{"p": []byte("planted-secret-x")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := lead.Apply(ctx, []store.Op{op}); err != nil {
		t.Fatal(err)
	}

	other := filepath.Join(dir, "other", "secrets.key")
	if _, err := openKeyring(ctx, cli, other, log); err == nil || !strings.Contains(err.Error(), keys.Primary()) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("start without the key file: %v; want a refusal naming key %s", err, keys.Primary())
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Error("a start that was refused created a key file")
	}
	if _, err := store.CreateKeyFile(other, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, err = openKeyring(ctx, cli, other, log)
	if err == nil || !strings.Contains(err.Error(), keys.Primary()+" (1 values)") || !strings.Contains(err.Error(), other) {
		t.Errorf("start with another key file: %v; want a refusal naming key %s and the file", err, keys.Primary())
	}
}

// TestOpenKeyring_warnsOfPlainValues: values an older bosun stored in plain
// text are reported at start (the leader encrypts them).
func TestOpenKeyring_warnsOfPlainValues(t *testing.T) {
	ctx := context.Background()
	st := store.NewTest(t)
	if _, err := st.Client().Put(ctx, store.SecretKey("default", "db"), `{"metadata":{"name":"db"}}`); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	if _, err := openKeyring(ctx, st.Client(), filepath.Join(t.TempDir(), "secrets.key"), slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "plain text") || !strings.Contains(logs.String(), "values=1") {
		t.Errorf("no warning of the plain value: %s", logs.String())
	}
}
