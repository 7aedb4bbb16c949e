package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"bosun/store"
)

// TestReleaser_freesOnceAfterABurstGoesQuiet: memory is released once a
// burst of at least `writes` revisions is followed by quiet, not for a few
// writes, and not again until the next burst.
func TestReleaser_freesOnceAfterABurstGoesQuiet(t *testing.T) {
	st := store.NewTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cache := store.NewCache(st, store.CacheConfig{})
	go cache.Run(ctx)
	var freed atomic.Int32
	r := newReleaser(slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	r.writes, r.quiet, r.free = 20, 300*time.Millisecond, func() { freed.Add(1) }
	done := make(chan error, 1)
	go func() { done <- r.run(ctx, cache) }()
	put := func(n int) {
		for i := range n {
			name := fmt.Sprintf("cm-%d-%d", n, i)
			cm := fmt.Sprintf(`{"metadata":{"name":%q,"namespace":"default"}}`, name)
			if _, err := st.Client().Put(ctx, store.ConfigMapKey("default", name), cm); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(3)
	time.Sleep(time.Second)
	if n := freed.Load(); n != 0 {
		t.Fatalf("released after 3 writes: %d times", n)
	}
	put(25)
	deadline := time.Now().Add(5 * time.Second)
	for freed.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := freed.Load(); n != 1 {
		t.Fatalf("released %d times after a burst of 25 writes, want 1", n)
	}
	put(3)
	time.Sleep(time.Second)
	if got := testutil.ToFloat64(r.releases); got != 1 {
		t.Errorf("bosun_memory_releases_total = %v, want 1", got)
	}
	if n := freed.Load(); n != 1 {
		t.Fatalf("released again after 3 more writes: %d times", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
