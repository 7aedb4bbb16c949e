package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"bosun/store"
)

// releaser gives the memory of a burst of writes back to the kernel once
// the cluster is quiet again. A revision that creates or rolls thousands
// of pods grows the heap for a minute (decoded events, plans, transactions);
// afterwards nothing allocates, so the Go runtime would keep that memory
// until its next forced collection, minutes later. After at least writes
// etcd revisions followed by quiet without one, it collects and returns
// what is free at once.
type releaser struct {
	writes   int64
	quiet    time.Duration
	free     func()
	log      *slog.Logger
	releases prometheus.Counter
}

func newReleaser(log *slog.Logger, reg prometheus.Registerer) *releaser {
	r := &releaser{writes: 10000, quiet: 10 * time.Second, free: debug.FreeOSMemory, log: log,
		releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_memory_releases_total",
			Help: "Times the server returned the memory of a burst of writes to the kernel once the cluster was quiet again.",
		})}
	reg.MustRegister(r.releases)
	return r
}

// run follows the cache's revisions until ctx ends.
func (r *releaser) run(ctx context.Context, cache *store.Cache) error {
	changes := cache.Changes(ctx)
	var base, last int64
	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case rev, ok := <-changes:
			if !ok {
				return nil
			}
			if base == 0 {
				base = rev
			}
			last = rev
			if last-base >= r.writes {
				quiet.Reset(r.quiet)
			}
		case <-quiet.C:
			start := time.Now()
			r.free()
			r.releases.Inc()
			r.log.Info("returned the memory of a burst of writes to the kernel", "writes", last-base, "took", time.Since(start))
			base = last
		}
	}
}
