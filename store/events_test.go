package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"bosun/pki"
)

func TestCorrelator_aggregatesRepeatsWithinTheWindow(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	pod := ObjectRef{Kind: "Pod", Namespace: "default", Name: "web-1"}
	ev := func(reason, msg string) Event {
		return Event{Type: EventWarning, Reason: reason, Object: pod, Message: msg}
	}
	type step struct {
		ev     Event
		at     time.Duration
		repeat bool
		count  int32
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"same event thrice", []step{
			{ev("BackOff", "m"), 0, false, 1}, {ev("BackOff", "m"), time.Minute, true, 2}, {ev("BackOff", "m"), 2 * time.Minute, true, 3}}},
		{"other message is another event", []step{
			{ev("Unhealthy", "a"), 0, false, 1}, {ev("Unhealthy", "b"), time.Second, false, 1}, {ev("Unhealthy", "a"), 2 * time.Second, true, 2}}},
		{"other reason is another event", []step{
			{ev("Killing", "m"), 0, false, 1}, {ev("BackOff", "m"), time.Second, false, 1}}},
		{"window counts from the last repeat", []step{
			{ev("BackOff", "m"), 0, false, 1}, {ev("BackOff", "m"), 9 * time.Minute, true, 2}, {ev("BackOff", "m"), 18 * time.Minute, true, 3}}},
		{"after the window a new event", []step{
			{ev("BackOff", "m"), 0, false, 1}, {ev("BackOff", "m"), 11 * time.Minute, false, 1}}},
		{"other object is another event", []step{
			{ev("Started", "m"), 0, false, 1},
			{Event{Type: EventNormal, Reason: "Started", Object: ObjectRef{Kind: "Pod", Namespace: "default", Name: "web-2"}, Message: "m"}, 0, false, 1}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCorrelator(10 * time.Minute)
			var first Event
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				out, repeat := c.correlate(s.ev, now)
				if !repeat {
					c.setID(s.ev, fmt.Sprint("id", i))
					out.ID = fmt.Sprint("id", i)
				}
				if repeat != s.repeat || out.Count != s.count || !out.LastTime.Equal(now) {
					t.Fatalf("step %d: repeat %v count %d last %v, want %v %d %v", i, repeat, out.Count, out.LastTime, s.repeat, s.count, now)
				}
				if i == 0 {
					first = out
				}
				if repeat && s.ev.Reason == first.Reason && s.ev.Message == first.Message && (out.ID != first.ID || !out.FirstTime.Equal(first.FirstTime)) {
					t.Fatalf("step %d: repeat got id %q first %v, want %q %v", i, out.ID, out.FirstTime, first.ID, first.FirstTime)
				}
			}
		})
	}
}

// runRecorder runs r until the test ends.
func runRecorder(t *testing.T, r *Recorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// waitEvents waits until f selects n events and returns them.
func waitEvents(t *testing.T, s *Store, f EventFilter, n int) []Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs, err := s.Events(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == n {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("events %+v: got %d, want %d: %+v", f, len(evs), n, evs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestRecorder_aggregatesRepeatsIntoOneKeyUnderALease(t *testing.T) {
	s := NewTest(t)
	clock := &fakeClock{now: time.Now()}
	r, err := NewRecorder(s, RecorderConfig{Source: "n1", TTL: time.Hour, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	runRecorder(t, r)
	pod := ObjectRef{Kind: "Pod", Namespace: "default", Name: "web-1"}
	for range 3 {
		r.Eventf(pod, EventWarning, "BackOff", "Back-off restarting failed container %s", "app")
		clock.Add(time.Second)
	}
	r.Eventf(pod, EventNormal, "Started", "Started container app")
	evs := waitEvents(t, s, EventFilter{}, 2)
	deadline := time.Now().Add(10 * time.Second)
	for evs[0].Count != 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		evs = waitEvents(t, s, EventFilter{}, 2)
	}
	back := evs[0]
	if back.Reason != "BackOff" || back.Count != 3 || back.Source != "n1" || back.Type != EventWarning ||
		back.Message != "Back-off restarting failed container app" || back.Object != pod {
		t.Fatalf("aggregated event %+v", back)
	}
	if d := back.LastTime.Sub(back.FirstTime); d != 2*time.Second {
		t.Errorf("lastTime - firstTime = %v, want 2s", d)
	}
	if evs[1].Reason != "Started" || evs[1].Count != 1 {
		t.Errorf("second event %+v", evs[1])
	}

	// One key per event, under n1's source, with a lease of TTL plus a
	// twentieth.
	resp, err := s.Client().Get(context.Background(), EventSourcePrefix("n1"), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 2 {
		t.Fatalf("%d keys, want 2", len(resp.Kvs))
	}
	for _, kv := range resp.Kvs {
		if !strings.HasPrefix(string(kv.Key), "/bosun/events/n1/default/web-1.") {
			t.Errorf("key %s", kv.Key)
		}
		if kv.Lease == 0 {
			t.Fatalf("key %s has no lease", kv.Key)
		}
		ttl, err := s.Client().TimeToLive(context.Background(), clientv3.LeaseID(kv.Lease))
		if err != nil {
			t.Fatal(err)
		}
		if ttl.GrantedTTL != 3780 || ttl.TTL < 3700 {
			t.Errorf("lease of %s: granted %d s, left %d s; want 3780 (1 h + 3 min)", kv.Key, ttl.GrantedTTL, ttl.TTL)
		}
		var ev Event
		if err := json.Unmarshal(kv.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(string(kv.Key), "/"+ev.ID) {
			t.Errorf("key %s holds id %s", kv.Key, ev.ID)
		}
	}
}

func TestRecorder_boundsTheSourceOldestDeleted(t *testing.T) {
	s := NewTest(t)
	// Another source's events are not counted nor touched.
	other, err := NewRecorder(s, RecorderConfig{Source: ServerEventSource})
	if err != nil {
		t.Fatal(err)
	}
	runRecorder(t, other)
	other.Eventf(ObjectRef{Kind: "Deployment", Namespace: "default", Name: "web"}, EventNormal, "RevisionApplied", "x")
	waitEvents(t, s, EventFilter{Kind: "Deployment"}, 1)

	// Two events stored before the recorder started (a restarted agent's).
	for i := range 2 {
		ev := Event{ID: fmt.Sprintf("old.%d", i), Type: EventNormal, Reason: "Old", Object: ObjectRef{Kind: "Pod", Namespace: "default", Name: "old"},
			Count: 1, FirstTime: time.Now().Add(-time.Hour + time.Duration(i)*time.Second), LastTime: time.Now().Add(-time.Hour + time.Duration(i)*time.Second)}
		b, _ := json.Marshal(ev)
		if _, err := s.Client().Put(context.Background(), EventKey("n1", "default", ev.ID), string(b)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := NewRecorder(s, RecorderConfig{Source: "n1", Max: 5})
	if err != nil {
		t.Fatal(err)
	}
	runRecorder(t, r)
	for i := range 8 {
		r.Eventf(ObjectRef{Kind: "Pod", Namespace: "default", Name: fmt.Sprintf("p%d", i)}, EventNormal, "Started", "Started container app")
		waitEvents(t, s, EventFilter{Name: fmt.Sprintf("p%d", i)}, 1)
	}
	evs := waitEvents(t, s, EventFilter{Kind: "Pod"}, 5)
	for i, ev := range evs {
		if want := fmt.Sprintf("p%d", i+3); ev.Object.Name != want {
			t.Errorf("event %d is %s's, want %s's (the newest five, oldest first)", i, ev.Object.Name, want)
		}
	}
	waitEvents(t, s, EventFilter{Kind: "Deployment"}, 1)
	if got := testutil.ToFloat64(r.m.trimmed); got != 5 {
		t.Errorf("trimmed %v, want 5 (2 old + 3 of the 8)", got)
	}
}

func TestRecorder_neverBlocksAndRateLimitsAFlappingObject(t *testing.T) {
	s := NewTest(t)
	reg := prometheus.NewRegistry()
	r, err := NewRecorder(s, RecorderConfig{Source: "n1", Buffer: 3, Burst: 2, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	pod := ObjectRef{Kind: "Pod", Namespace: "default", Name: "flap"}
	// Not running yet: the buffer takes three, the rest are dropped at once.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10 {
			r.Eventf(pod, EventWarning, "Unhealthy", "probe failed %d", i)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Eventf blocked")
	}
	if got := testutil.ToFloat64(r.m.dropped.WithLabelValues("buffer_full")); got != 7 {
		t.Errorf("dropped (buffer full) %v, want 7", got)
	}
	runRecorder(t, r)
	waitEvents(t, s, EventFilter{Name: "flap"}, 2)
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(r.m.dropped.WithLabelValues("rate_limited")) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("rate limited %v, want 1 (burst 2 of 3)", testutil.ToFloat64(r.m.dropped.WithLabelValues("rate_limited")))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Another object has its own bucket.
	r.Eventf(ObjectRef{Kind: "Pod", Namespace: "default", Name: "calm"}, EventNormal, "Started", "ok")
	waitEvents(t, s, EventFilter{Name: "calm"}, 1)
	if n, err := testutil.GatherAndCount(reg, "bosun_events_recorded_total", "bosun_events_dropped_total"); err != nil || n != 5 {
		t.Errorf("gathered %d series (%v), want 5", n, err)
	}
	// A second recorder on the same registry (a server's agent) reuses the metrics.
	if _, err := NewRecorder(s, RecorderConfig{Source: "n2", Registerer: reg}); err != nil {
		t.Fatal(err)
	}
}

func TestEvents_filtersOldestFirstAndLimit(t *testing.T) {
	s := NewTest(t)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	put := func(source string, ev Event) {
		b, _ := json.Marshal(ev)
		if _, err := s.Client().Put(context.Background(), EventKey(source, eventNamespace(ev.Object), ev.ID), string(b)); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(id, kind, ns, name string, at int) Event {
		return Event{ID: id, Type: EventNormal, Reason: "R", Object: ObjectRef{Kind: kind, Namespace: ns, Name: name}, Count: 1,
			FirstTime: t0, LastTime: t0.Add(time.Duration(at) * time.Second)}
	}
	put("n1", mk("a", "Pod", "default", "web-1", 3))
	put("n2", mk("b", "Pod", "default", "web-2", 1))
	put("-", mk("c", "Deployment", "default", "web", 2))
	put("-", mk("d", "Deployment", "shop", "cart", 5))
	put("-", mk("e", "Node", "", "n1", 4))
	s.Client().Put(context.Background(), EventKey("-", "default", "junk"), "{not json")
	ids := func(evs []Event) string {
		var out []string
		for _, e := range evs {
			out = append(out, e.ID)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		f    EventFilter
		want string
	}{
		{EventFilter{}, "b,c,a,e,d"},
		{EventFilter{Namespace: "default"}, "b,c,a,e"}, // a Node's events are kept in default
		{EventFilter{Namespace: "shop"}, "d"},
		{EventFilter{Kind: "pod"}, "b,a"},
		{EventFilter{Kind: "Pod", Name: "web-1"}, "a"},
		{EventFilter{Kind: "Node", Name: "n1"}, "e"},
		{EventFilter{Limit: 2}, "e,d"},
		{EventFilter{Namespace: "default", Limit: 10}, "b,c,a,e"},
		{EventFilter{Name: "nothing"}, ""},
	} {
		evs, err := s.Events(context.Background(), tc.f)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(evs); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.f, got, tc.want)
		}
	}
}

func TestRecorder_refusesABadSource(t *testing.T) {
	for _, src := range []string{"", "a/b"} {
		if _, err := NewRecorder(nil, RecorderConfig{Source: src}); err == nil {
			t.Errorf("source %q accepted", src)
		}
	}
	var r *Recorder
	r.Eventf(ObjectRef{}, EventNormal, "X", "nil recorder records nothing")
	r.Run(context.Background())
}

func TestEventf_capsTheMessage(t *testing.T) {
	r, err := NewRecorder(nil, RecorderConfig{Source: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	r.Eventf(ObjectRef{}, EventWarning, "Failed", "%s", strings.Repeat("é", 2000))
	ev := <-r.ch
	if len(ev.Message) > maxEventMessage || !strings.HasSuffix(ev.Message, "...") || !strings.HasPrefix(ev.Message, "é") {
		t.Errorf("message of %d bytes: %q...", len(ev.Message), ev.Message[:10])
	}
}

// In secure mode a node writes its own events and no other source's.
func TestAuth_nodesWriteOnlyTheirOwnEvents(t *testing.T) {
	ca, endpoints := tlsEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	root := clientAs(t, ca, endpoints, pki.RootCN)
	if err := EnableAuth(ctx, root); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"n1", "n2"} {
		if err := AllowNode(ctx, root, pki.NodeCN(n), n); err != nil {
			t.Fatal(err)
		}
	}
	n1 := New(clientAs(t, ca, endpoints, pki.NodeCN("n1")))
	rec, err := NewRecorder(n1, RecorderConfig{Source: "n1", Max: 2})
	if err != nil {
		t.Fatal(err)
	}
	runRecorder(t, rec)
	for i := range 3 { // the third trims the first: n1 deletes its own
		rec.Eventf(ObjectRef{Kind: "Pod", Namespace: "default", Name: fmt.Sprint("p", i)}, EventNormal, "Started", "Started container app")
		waitEvents(t, n1, EventFilter{Name: fmt.Sprint("p", i)}, 1)
	}
	waitEvents(t, n1, EventFilter{}, 2)

	// Through the recorder: another node's source, the servers' source.
	for _, src := range []string{"n2", ServerEventSource, "n1x"} {
		bad, err := NewRecorder(n1, RecorderConfig{Source: src})
		if err != nil {
			t.Fatal(err)
		}
		bad.write(ctx, Event{Type: EventNormal, Reason: "Forged", Object: ObjectRef{Kind: "Pod", Namespace: "default", Name: "x"}, Count: 1,
			FirstTime: time.Now(), LastTime: time.Now()})
		if got := testutil.ToFloat64(bad.m.dropped.WithLabelValues("write_failed")); got != 1 {
			t.Errorf("n1 writing %s's events: write_failed %v, want 1", src, got)
		}
	}
	for _, k := range []string{EventKey("n2", "default", "x"), EventKey(ServerEventSource, "default", "x"), EventKey("n1x", "default", "x")} {
		if _, err := n1.Client().Put(ctx, k, "{}"); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("n1 put %s: err %v, want permission denied", k, err)
		}
	}
	// Every event is readable by a node (describe on an agent host).
	n2 := New(clientAs(t, ca, endpoints, pki.NodeCN("n2")))
	if evs := waitEvents(t, n2, EventFilter{}, 2); evs[0].Source != "n1" {
		t.Errorf("n2 reads %+v", evs)
	}
	// The servers (root) write under "-".
	srv, err := NewRecorder(New(root), RecorderConfig{Source: ServerEventSource})
	if err != nil {
		t.Fatal(err)
	}
	runRecorder(t, srv)
	srv.Eventf(ObjectRef{Kind: "Node", Name: "n1"}, EventNormal, "NodeReady", "node n1 is ready")
	if evs := waitEvents(t, n1, EventFilter{Kind: "Node"}, 1); evs[0].Source != "leader" {
		t.Errorf("server event %+v", evs[0])
	}
}
