package ingress

import (
	"context"
	"slices"
	"time"

	"bosun/store"
)

// CachePrefixes are the store prefixes a route table is built from; a
// cache that serves the ingress proxy must hold them.
var CachePrefixes = []string{store.IngressesPrefix, store.IngressClassesPrefix, store.ServicesPrefix,
	store.PodsPrefix, store.PodStatusPrefix, store.SecretsPrefix}

// Follow keeps the server's route table equal to the cache's state until
// ctx ends: it waits for the first list, then rebuilds the table on every
// change of Ingresses, IngressClasses, Services, pods, pod statuses or
// Secrets, and swaps it in. A new set of warnings (conflicts, missing
// Secrets) is logged once.
func (s *Server) Follow(ctx context.Context, cache *store.Cache) {
	changes := cache.Changes(ctx, CachePrefixes...)
	certs := NewCertCache()
	var warned []string
	var lastRev int64
	for {
		select {
		case <-ctx.Done():
			return
		case rev, ok := <-changes:
			if !ok {
				return
			}
			if rev <= lastRev {
				continue
			}
		}
		snap, err := cache.Snapshot(ctx)
		if err != nil {
			return // only when ctx ended
		}
		lastRev = snap.Revision
		start := time.Now()
		t := Build(Input{Ingresses: snap.Ingresses, IngressClasses: snap.IngressClasses, Services: snap.Services,
			Pods: snap.Pods, Secrets: snap.Secrets}, certs)
		s.m.buildSeconds.Observe(time.Since(start).Seconds())
		s.m.builds.Inc()
		s.SetTable(t)
		if !slices.Equal(t.Warnings, warned) {
			warned = t.Warnings
			for _, w := range warned {
				s.log.Warn("ingress route left out", "problem", w)
			}
		}
		s.log.Debug("route table built", "revision", snap.Revision, "ingresses", t.Ingresses, "routes", t.Routes, "took", time.Since(start))
	}
}

// Run listens on the configured addresses, follows cache (which the
// caller runs) and serves until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context, cache *store.Cache) error {
	httpLn, tlsLn, err := s.Listen()
	if err != nil {
		return err
	}
	fctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Follow(fctx, cache)
	}()
	err = s.Serve(ctx, httpLn, tlsLn)
	stop()
	<-done
	return err
}
