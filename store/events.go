package store

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/time/rate"
)

// EventsPrefix holds events (see Event), under Prefix.
const EventsPrefix = "events/"

// ServerEventSource is the source segment of the keys of events written by
// servers (the leader); agents write under their node's name. "-" is never
// a node name.
const ServerEventSource = "-"

// Event types, as Kubernetes'.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// Event is something that happened to an object, as a Kubernetes event
// says it: stored as JSON under EventKey and served as is by the API.
// Repeats of the same event (same object, type, reason and message) within
// the recorder's window are one Event whose Count and LastTime grow.
type Event struct {
	ID      string    `json:"id"`
	Type    string    `json:"type"`   // EventNormal or EventWarning
	Reason  string    `json:"reason"` // CamelCase: Scheduled, Pulled, Started, Unhealthy, RevisionRejected...
	Object  ObjectRef `json:"object"`
	Message string    `json:"message"`
	// Source is who saw it: a node's name, or "leader".
	Source    string    `json:"source"`
	Count     int32     `json:"count"`
	FirstTime time.Time `json:"firstTime"`
	LastTime  time.Time `json:"lastTime"`
}

// ObjectRef names the object an event is about. Namespace is "" for
// cluster-scoped objects (a Node); their events are kept in namespace
// "default", as Kubernetes does.
type ObjectRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// eventNamespace is the namespace an event about obj is kept in.
func eventNamespace(obj ObjectRef) string {
	if obj.Namespace == "" {
		return "default"
	}
	return obj.Namespace
}

// EventKey is where an event of source (a node name or ServerEventSource)
// is stored.
func EventKey(source, namespace, id string) string {
	return Prefix + EventsPrefix + source + "/" + namespace + "/" + id
}

// EventSourcePrefix holds every event of one source; a node's etcd role
// may write only its own (AllowNode).
func EventSourcePrefix(source string) string { return Prefix + EventsPrefix + source + "/" }

// EventFilter selects events; zero fields select everything.
type EventFilter struct {
	Namespace string // "" = all namespaces
	Kind      string // case-insensitive: pod, Pod
	Name      string
	// Limit keeps the newest Limit events; 0: all.
	Limit int
}

// Events reads the events of every source that match f, oldest first (by
// LastTime).
func (s *Store) Events(ctx context.Context, f EventFilter) ([]Event, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, Prefix+EventsPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	var out []Event
	for _, kv := range resp.Kvs {
		var ev Event
		if err := json.Unmarshal(kv.Value, &ev); err != nil {
			continue // written by bosun only; one bad value hides nothing else
		}
		// Who wrote it is the key's source, whatever the value says: a
		// node may write only under its own source, and cannot pass its
		// events off as the leader's or another node's.
		if src, _, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), Prefix+EventsPrefix), "/"); src == ServerEventSource {
			ev.Source = "leader"
		} else {
			ev.Source = src
		}
		if f.matches(&ev) {
			out = append(out, ev)
		}
	}
	sortEvents(out)
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[len(out)-f.Limit:]
	}
	return out, nil
}

func (f EventFilter) matches(ev *Event) bool {
	return (f.Namespace == "" || eventNamespace(ev.Object) == f.Namespace) &&
		(f.Kind == "" || strings.EqualFold(ev.Object.Kind, f.Kind)) &&
		(f.Name == "" || ev.Object.Name == f.Name)
}

// sortEvents orders events oldest first: by LastTime, then FirstTime, then
// ID.
func sortEvents(evs []Event) {
	slices.SortStableFunc(evs, func(a, b Event) int {
		if c := a.LastTime.Compare(b.LastTime); c != 0 {
			return c
		}
		if c := a.FirstTime.Compare(b.FirstTime); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// RecorderConfig configures a Recorder. Every field but Source has a
// working default, given in its comment.
type RecorderConfig struct {
	// Source is the key segment the recorder writes under: the node's name
	// (an agent), or ServerEventSource. Required.
	Source string
	// Name is the events' Source field; default Source, "leader" for
	// ServerEventSource.
	Name string
	// TTL is how long an event outlives its last write (its etcd lease);
	// default 1 h. Leases are shared by the writes of a twentieth of the
	// TTL (as the Kubernetes API server's lease manager does), so an event
	// lives from TTL to TTL*1.05 after its last write.
	TTL time.Duration
	// Max bounds the events of the source: beyond it, the oldest (by last
	// write) is deleted with the write of a new one. Default 1000.
	Max int
	// Window is how long after an event's last write a repeat of it (same
	// object, type, reason and message) increments its count instead of
	// making a new event. Default 10 min (Kubernetes' correlator's).
	Window time.Duration
	// Buffer is how many events wait for their write; Record drops beyond
	// it (counted). Default 1000.
	Buffer int
	// Burst and Refill rate limit each object's events of each reason, as
	// Kubernetes' spam filter does: Burst events at once, then one per
	// Refill.
	// Defaults 25 and 5 min.
	Burst  int
	Refill time.Duration
	// Registerer receives bosun_events_* with recorder="agent" or "server";
	// nil registers none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger     // default: discard
	Now        func() time.Time // default time.Now
}

func (c *RecorderConfig) setDefaults() {
	if c.Name == "" {
		c.Name = c.Source
		if c.Source == ServerEventSource {
			c.Name = "leader"
		}
	}
	if c.TTL <= 0 {
		c.TTL = time.Hour
	}
	if c.Max <= 0 {
		c.Max = 1000
	}
	if c.Window <= 0 {
		c.Window = 10 * time.Minute
	}
	if c.Buffer <= 0 {
		c.Buffer = 1000
	}
	if c.Burst <= 0 {
		c.Burst = 25
	}
	if c.Refill <= 0 {
		c.Refill = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// maxEventMessage bounds an event's message, in bytes (Kubernetes' note
// limit is 1 kB).
const maxEventMessage = 1024

// Recorder writes one source's events to etcd. Record never blocks: events
// wait in a buffer for Run, which writes them one at a time, aggregating
// repeats, bounding the source's events and rate limiting each object. A
// nil *Recorder records nothing.
type Recorder struct {
	st  *Store
	cfg RecorderConfig
	log *slog.Logger
	ch  chan Event
	m   *eventMetrics

	// Owned by Run's goroutine.
	corr    *correlator
	limits  map[limitKey]*rate.Limiter
	order   *list.List               // of *storedEvent, oldest write first
	byKey   map[string]*list.Element // by etcd key
	lease   clientv3.LeaseID
	leaseAt time.Time
	lastID  int64
	// warnedAt is when a failed write was last logged.
	warnedAt time.Time
}

// storedEvent is one key of the source, as the recorder last wrote (or
// listed) it.
type storedEvent struct {
	key  string
	last time.Time
}

// NewRecorder returns a recorder for cfg.Source; Run writes what it records.
func NewRecorder(st *Store, cfg RecorderConfig) (*Recorder, error) {
	if cfg.Source == "" || strings.Contains(cfg.Source, "/") {
		return nil, fmt.Errorf("event recorder: source %q: want a node name or %q", cfg.Source, ServerEventSource)
	}
	cfg.setDefaults()
	return &Recorder{st: st, cfg: cfg, log: cfg.Logger.With("events", cfg.Source), ch: make(chan Event, cfg.Buffer),
		m: newEventMetrics(cfg.Registerer, cfg.Source), corr: newCorrelator(cfg.Window),
		limits: map[limitKey]*rate.Limiter{}, order: list.New(), byKey: map[string]*list.Element{}}, nil
}

// Eventf records an event about obj; typ is EventNormal or EventWarning.
// It never blocks: when the buffer is full the event is dropped and
// counted in bosun_events_dropped_total{reason="buffer_full"}. The
// message must carry no secret (a Secret's value, a token).
func (r *Recorder) Eventf(obj ObjectRef, typ, reason, format string, args ...any) {
	if r == nil {
		return
	}
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	if len(msg) > maxEventMessage {
		cut := maxEventMessage - 3
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "..."
	}
	now := r.cfg.Now()
	ev := Event{Type: typ, Reason: reason, Object: obj, Message: msg, Source: r.cfg.Name, Count: 1, FirstTime: now, LastTime: now}
	select {
	case r.ch <- ev:
	default:
		r.m.dropped.WithLabelValues("buffer_full").Inc()
	}
}

// Run writes the recorded events until ctx ends. It first lists the
// source's events already stored (a restarted agent's), so that the bound
// counts them.
func (r *Recorder) Run(ctx context.Context) {
	if r == nil {
		return
	}
	if err := r.load(ctx); err != nil && ctx.Err() == nil {
		r.log.Warn("list stored events; the bound counts only new ones", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-r.ch:
			r.write(ctx, ev)
		}
	}
}

// load reads the source's stored events into the bound's order.
func (r *Recorder) load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := r.st.cli.Get(ctx, EventSourcePrefix(r.cfg.Source), clientv3.WithPrefix())
	if err != nil {
		return err
	}
	stored := make([]storedEvent, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var ev Event
		if json.Unmarshal(kv.Value, &ev) != nil {
			ev.LastTime = time.Time{} // undecodable: the oldest
		}
		stored = append(stored, storedEvent{key: string(kv.Key), last: ev.LastTime})
	}
	slices.SortStableFunc(stored, func(a, b storedEvent) int { return a.last.Compare(b.last) })
	for _, s := range stored {
		r.byKey[s.key] = r.order.PushBack(&storedEvent{key: s.key, last: s.last})
	}
	return nil
}

// write stores one recorded event: a new key, or the update of the one it
// repeats.
func (r *Recorder) write(ctx context.Context, ev Event) {
	now := ev.LastTime
	if !r.allow(limitKey{ev.Object, ev.Reason}, now) {
		r.m.dropped.WithLabelValues("rate_limited").Inc()
		return
	}
	out, repeat := r.corr.correlate(ev, now)
	if repeat && r.byKey[EventKey(r.cfg.Source, eventNamespace(out.Object), out.ID)] == nil {
		// Deleted meanwhile (the bound, the TTL): a new event.
		r.corr.forget(ev)
		out, repeat = r.corr.correlate(ev, now)
	}
	if !repeat {
		out.ID = r.newID(ev.Object.Name, now)
		r.corr.setID(ev, out.ID)
	}
	key := EventKey(r.cfg.Source, eventNamespace(out.Object), out.ID)
	value, err := json.Marshal(out)
	if err != nil {
		r.corr.forget(ev)
		return
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	lease, err := r.leaseFor(wctx, now)
	if err == nil {
		ops := []clientv3.Op{clientv3.OpPut(key, string(value), clientv3.WithLease(lease))}
		var trimmed []string
		if !repeat {
			trimmed = r.trim(now)
			for _, k := range trimmed {
				ops = append(ops, clientv3.OpDelete(k))
			}
		}
		_, err = r.st.cli.Txn(wctx).Then(ops...).Commit()
		if err == nil {
			r.m.trimmed.Add(float64(len(trimmed)))
			for _, k := range trimmed {
				r.untrack(k)
			}
		}
	}
	r.m.writeSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		r.corr.forget(ev)
		r.m.dropped.WithLabelValues("write_failed").Inc()
		if ctx.Err() == nil && now.Sub(r.warnedAt) >= time.Minute {
			// Once a minute at most: etcd down (or a node whose etcd role
			// predates events) must not flood the log.
			r.warnedAt = now
			r.log.Warn("write event (further failures within a minute are only counted)", "reason", ev.Reason,
				"object", ev.Object.Kind+"/"+ev.Object.Name, "err", err)
		}
		return
	}
	if repeat {
		r.m.recorded.WithLabelValues("aggregated").Inc()
		el := r.byKey[key]
		el.Value.(*storedEvent).last = now
		r.order.MoveToBack(el)
		return
	}
	r.m.recorded.WithLabelValues("created").Inc()
	r.byKey[key] = r.order.PushBack(&storedEvent{key: key, last: now})
	r.m.stored.Set(float64(r.order.Len()))
}

// trim returns the keys to delete with the write of a new event: those
// whose lease has surely expired are forgotten, and the oldest beyond
// Max-1 deleted.
func (r *Recorder) trim(now time.Time) []string {
	expired := r.cfg.TTL + r.cfg.TTL/20 + time.Second
	for el := r.order.Front(); el != nil; {
		next := el.Next()
		if s := el.Value.(*storedEvent); !s.last.IsZero() && now.Sub(s.last) > expired {
			r.untrack(s.key)
		}
		el = next
	}
	var keys []string
	for el := r.order.Front(); el != nil && r.order.Len()-len(keys) >= r.cfg.Max; el = el.Next() {
		keys = append(keys, el.Value.(*storedEvent).key)
	}
	return keys
}

func (r *Recorder) untrack(key string) {
	if el := r.byKey[key]; el != nil {
		r.order.Remove(el)
		delete(r.byKey, key)
		r.corr.forgetKey(key, r.cfg.Source)
	}
}

// leaseFor returns the lease for a write at now: the current one while it
// is younger than a twentieth of the TTL, else a new one of TTL plus that.
func (r *Recorder) leaseFor(ctx context.Context, now time.Time) (clientv3.LeaseID, error) {
	reuse := r.cfg.TTL / 20
	if r.lease != 0 && now.Sub(r.leaseAt) < reuse && !now.Before(r.leaseAt) {
		return r.lease, nil
	}
	ttl := int64(math.Ceil((r.cfg.TTL + reuse).Seconds()))
	resp, err := r.st.cli.Grant(ctx, ttl)
	if err != nil {
		return 0, fmt.Errorf("grant event lease: %w", err)
	}
	r.lease, r.leaseAt = resp.ID, now
	return r.lease, nil
}

// newID names a new event as Kubernetes does: the object's name and the
// time in hexadecimal nanoseconds, made unique per recorder.
func (r *Recorder) newID(name string, now time.Time) string {
	n := max(now.UnixNano(), r.lastID+1)
	r.lastID = n
	if name == "" {
		name = "-"
	}
	return name + "." + strconv.FormatInt(n, 16)
}

// limitKey is what a token bucket is for: one object's events of one
// reason, so that a flapping probe does not silence its pod's other events.
type limitKey struct {
	obj    ObjectRef
	reason string
}

// allow is the token bucket of an object's reason (Kubernetes' spam
// filter): Burst events, then one per Refill. Buckets that are full again
// are forgotten when there are many.
func (r *Recorder) allow(k limitKey, now time.Time) bool {
	l := r.limits[k]
	if l == nil {
		if len(r.limits) >= 4096 {
			for k, b := range r.limits {
				if b.TokensAt(now) >= float64(r.cfg.Burst) {
					delete(r.limits, k)
				}
			}
		}
		l = rate.NewLimiter(rate.Every(r.cfg.Refill), r.cfg.Burst)
		r.limits[k] = l
	}
	return l.AllowN(now, 1)
}

// correlator aggregates repeats, as Kubernetes' event correlator does:
// an event equal to one written within the window (same object, type,
// reason and message) is that event again, its count one more. It does
// no I/O and reads no clock.
type correlator struct {
	window time.Duration
	seen   map[corrKey]Event
	pruned time.Time
}

type corrKey struct {
	obj                  ObjectRef
	typ, reason, message string
}

func newCorrelator(window time.Duration) *correlator {
	return &correlator{window: window, seen: map[corrKey]Event{}}
}

func keyOf(ev Event) corrKey {
	return corrKey{obj: ev.Object, typ: ev.Type, reason: ev.Reason, message: ev.Message}
}

// correlate returns the event to write for ev seen at now, and whether it
// repeats one written before (then it keeps that one's ID and FirstTime).
// The caller gives a new event its ID; correlate remembers what it returns.
func (c *correlator) correlate(ev Event, now time.Time) (Event, bool) {
	if now.Sub(c.pruned) > c.window/10 {
		for k, e := range c.seen {
			if now.Sub(e.LastTime) > c.window {
				delete(c.seen, k)
			}
		}
		c.pruned = now
	}
	k := keyOf(ev)
	prev, ok := c.seen[k]
	if ok && now.Sub(prev.LastTime) <= c.window && !now.Before(prev.FirstTime) {
		prev.Count++
		prev.LastTime = now
		c.seen[k] = prev
		return prev, true
	}
	ev.Count, ev.FirstTime, ev.LastTime = 1, now, now
	ev.ID = ""
	c.seen[k] = ev
	return ev, false
}

// setID records the ID the caller gave the event correlate just returned.
func (c *correlator) setID(ev Event, id string) {
	k := keyOf(ev)
	if e, ok := c.seen[k]; ok {
		e.ID = id
		c.seen[k] = e
	}
}

// forget drops what correlate remembers of ev (its write failed).
func (c *correlator) forget(ev Event) { delete(c.seen, keyOf(ev)) }

// forgetKey drops the event stored under key (deleted to keep the bound).
func (c *correlator) forgetKey(key, source string) {
	for k, e := range c.seen {
		if e.ID != "" && EventKey(source, eventNamespace(e.Object), e.ID) == key {
			delete(c.seen, k)
			return
		}
	}
}

type eventMetrics struct {
	recorded     *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	trimmed      prometheus.Counter
	stored       prometheus.Gauge
	writeSeconds prometheus.Histogram
}

func newEventMetrics(reg prometheus.Registerer, source string) *eventMetrics {
	who := "agent"
	if source == ServerEventSource {
		who = "server"
	}
	labels := prometheus.Labels{"recorder": who}
	m := &eventMetrics{
		recorded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_events_recorded_total", ConstLabels: labels,
			Help: "Events written to etcd, by outcome: created (a new event) or aggregated (a repeat counted on an event within the window).",
		}, []string{"outcome"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_events_dropped_total", ConstLabels: labels,
			Help: "Events not written, by reason: buffer_full (the writer fell behind), rate_limited (an object's events over its rate), write_failed (etcd refused or was unreachable).",
		}, []string{"reason"}),
		trimmed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_events_trimmed_total", ConstLabels: labels,
			Help: "Events deleted before their TTL to keep the source's events within its bound.",
		}),
		stored: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bosun_events_stored", ConstLabels: labels,
			Help: "Events of this recorder's source it knows to be stored (at most the bound).",
		}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bosun_events_write_duration_seconds", ConstLabels: labels,
			Help:    "Time to write one event to etcd (lease grant included when a new lease is needed).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
	if reg != nil {
		m.recorded = registerOrReuse(reg, m.recorded)
		m.dropped = registerOrReuse(reg, m.dropped)
		m.trimmed = registerOrReuse(reg, m.trimmed)
		m.stored = registerOrReuse(reg, m.stored)
		m.writeSeconds = registerOrReuse(reg, m.writeSeconds)
	}
	for _, o := range []string{"created", "aggregated"} {
		m.recorded.WithLabelValues(o)
	}
	for _, r := range []string{"buffer_full", "rate_limited", "write_failed"} {
		m.dropped.WithLabelValues(r)
	}
	return m
}

// registerOrReuse registers c, or returns the collector registered before
// under the same description (several recorders of one process, such as a
// server's and its agent's, share theirs by their label).
func registerOrReuse[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if prev, ok := are.ExistingCollector.(C); ok {
				return prev
			}
		}
	}
	return c
}
