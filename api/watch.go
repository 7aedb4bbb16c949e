package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"bosun/store"
)

// GET /api/v1/watch (ReadOnly) is the dashboard's live feed, a stream of
// Server-Sent Events: "ready" once every subscription below is in place
// (the page fetches after it, so that it misses no change), then
// "changed" with {"kinds": [...], "revision": N} naming the kinds of
// state that changed, at most one event per WatchCoalesce, and a comment
// line every WatchHeartbeat so that proxies and the browser keep the
// connection. It reads the replica's cache (Config.State, notified of
// each kind by its watch), and etcd watches for what the cache does not
// hold (history, events); it sends no object, only what to refetch. It
// ends when the client goes away or the server stops.

// The kinds a watch names, and the store sub-prefixes behind each.
var watchKinds = []struct {
	kind     string
	prefixes []string
	cached   bool // in the cache (Config.State), else watched in etcd
}{
	{"nodes", []string{store.NodesPrefix, store.NodeControlPrefix, store.NodeHealthPrefix}, true},
	{"pods", []string{store.PodsPrefix, store.PodStatusPrefix}, true},
	{"deployments", []string{store.DeploymentsPrefix}, true},
	{"services", []string{store.ServicesPrefix}, true},
	{"canaries", []string{store.CanariesPrefix}, true},
	{"sync", []string{"sync"}, true}, // the sync status key (store.SyncStatus)
	{"history", []string{"history/"}, false},
	{"events", []string{"events/"}, false},
}

// WatchKinds are the kinds GET /api/v1/watch names in its events.
func WatchKinds() []string {
	out := make([]string, len(watchKinds))
	for i, k := range watchKinds {
		out[i] = k.kind
	}
	return out
}

// Watch timing: heartbeats, and how long changes are gathered into one
// event (a rollout changes pods many times a second).
var (
	WatchHeartbeat = 15 * time.Second
	WatchCoalesce  = 100 * time.Millisecond
	// watchReadyWait bounds the wait for the subscriptions' first
	// notification before "ready" is sent anyway.
	watchReadyWait = 5 * time.Second
)

// changeSource is what the watch subscribes to: store.Cache and
// store.Store both have it.
type changeSource interface {
	Changes(ctx context.Context, kinds ...string) <-chan int64
}

type watchMetrics struct {
	streams    prometheus.Gauge
	events     *prometheus.CounterVec
	heartbeats prometheus.Counter
	duration   prometheus.Histogram
}

func newWatchMetrics(reg prometheus.Registerer) (*watchMetrics, error) {
	m := &watchMetrics{
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bosun_api_watch_streams", Help: "Open GET /api/v1/watch streams (dashboards watching).",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_api_watch_events_total", Help: "Changes sent on GET /api/v1/watch streams, by kind.",
		}, []string{"kind"}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_api_watch_heartbeats_total", Help: "Heartbeats sent on GET /api/v1/watch streams.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bosun_api_watch_stream_duration_seconds", Help: "How long GET /api/v1/watch streams stayed open.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8), // 1 s to 4.5 h
		}),
	}
	for _, c := range []prometheus.Collector{m.streams, m.events, m.heartbeats, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// WatchEvent is the data of a "changed" event.
type WatchEvent struct {
	Kinds    []string `json:"kinds"`
	Revision int64    `json:"revision"`
}

func (s *Server) watchChanges(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("streaming unsupported"))
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	start := time.Now()
	s.watchM.streams.Inc()
	defer func() {
		s.watchM.streams.Dec()
		s.watchM.duration.Observe(time.Since(start).Seconds())
	}()

	cached, _ := s.cfg.State.(changeSource)
	if cached == nil {
		cached = s.st
	}
	type change struct {
		kind string
		rev  int64
	}
	changed := make(chan change)
	var subscribed, done sync.WaitGroup
	for _, k := range watchKinds {
		src := changeSource(s.st)
		if k.cached {
			src = cached
		}
		ch := src.Changes(ctx, k.prefixes...)
		subscribed.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			// The first notification of a subscription is its start (the
			// cache's current revision, an etcd watch's creation), not a
			// change: "ready" waits for it, the page fetches after that.
			first := true
			defer func() {
				if first {
					subscribed.Done()
				}
			}()
			for rev := range ch {
				if first {
					first = false
					subscribed.Done()
					continue
				}
				select {
				case changed <- change{k.kind, rev}:
				case <-ctx.Done():
				}
			}
		}()
	}
	// The subscriptions' goroutines end when ctx does (their channels
	// close); waited for, so that none outlives the request.
	defer done.Wait()
	defer cancel()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()

	allIn := make(chan struct{})
	done.Add(1)
	go func() { defer done.Done(); subscribed.Wait(); close(allIn) }()
	readyTimer := time.NewTimer(watchReadyWait)
	defer readyTimer.Stop()
	select {
	case <-allIn:
	case <-readyTimer.C:
		s.log.Debug("watch: not every subscription started; ready anyway")
	case <-ctx.Done():
		return
	}
	if _, err := fmt.Fprintf(w, "retry: 2000\nevent: ready\ndata: {\"kinds\":%s}\n\n", mustJSON(WatchKinds())); err != nil {
		return
	}
	flusher.Flush()

	heartbeat := time.NewTicker(WatchHeartbeat)
	defer heartbeat.Stop()
	var flush <-chan time.Time // armed while changes are pending
	pending := map[string]bool{}
	var rev int64
	for {
		select {
		case c := <-changed:
			pending[c.kind] = true
			rev = max(rev, c.rev)
			if flush == nil {
				flush = time.After(WatchCoalesce)
			}
		case <-flush:
			flush = nil
			ev := WatchEvent{Revision: rev}
			for k := range pending {
				ev.Kinds = append(ev.Kinds, k)
				s.watchM.events.WithLabelValues(k).Inc()
			}
			slices.Sort(ev.Kinds)
			clear(pending)
			if _, err := fmt.Fprintf(w, "event: changed\ndata: %s\n\n", mustJSON(ev)); err != nil {
				return
			}
			flusher.Flush()
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
			flusher.Flush()
			s.watchM.heartbeats.Inc()
		case <-ctx.Done():
			return
		}
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
