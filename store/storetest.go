package store

import (
	"context"
	"testing"
	"time"
)

// NewTest starts an embedded etcd (with fast ticks) in a temporary
// directory and returns a Store on it, with a keyring of one fresh key
// (Secret data is encrypted as a server stores it); both are closed when
// the test ends.
func NewTest(t testing.TB) *Store {
	t.Helper()
	return NewTestWith(t, EmbeddedConfig{FastTicks: true})
}

// NewTestWith is NewTest with the embedded etcd configured by cfg (its Dir
// is a temporary directory when empty).
func NewTestWith(t testing.TB, cfg EmbeddedConfig) *Store {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	e, err := StartEmbedded(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := Dial(e.Endpoints())
	if err != nil {
		e.Close()
		t.Fatal(err)
	}
	key, err := GenerateKey("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := NewKeyring("test keyring", key)
	if err != nil {
		t.Fatal(err)
	}
	s := New(cli, WithKeyring(keys))
	t.Cleanup(func() {
		s.Close()
		e.Close()
	})
	return s
}

// RunTestCache starts a Cache on s and stops it (waiting for its Run to
// return) when the test ends.
func RunTestCache(t testing.TB, s *Store, cfg CacheConfig) *Cache {
	t.Helper()
	c := NewCache(s, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return c
}
