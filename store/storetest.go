package store

import (
	"context"
	"testing"
)

// NewTest starts an embedded etcd in a temporary directory and returns a
// Store on it; both are closed when the test ends.
func NewTest(t testing.TB) *Store {
	t.Helper()
	e, err := StartEmbedded(context.Background(), EmbeddedConfig{Dir: t.TempDir(), FastTicks: true})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := Dial(e.Endpoints())
	if err != nil {
		e.Close()
		t.Fatal(err)
	}
	s := New(cli)
	t.Cleanup(func() {
		s.Close()
		e.Close()
	})
	return s
}
