package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options are a Notifier's collaborators; the zero value works.
type Options struct {
	// Logger receives delivery logs (default: discarded).
	Logger *slog.Logger
	// Client sends the requests (default: one that follows no redirect,
	// so a token never goes where it was not configured to).
	Client *http.Client
	// Now and Rand are the clock and the jitter (default: time.Now and
	// math/rand/v2); tests fix them.
	Now  func() time.Time
	Rand func() float64
}

// Notifier delivers events to the configured sinks: one bounded queue and
// one worker per sink, while Run runs. Notify never blocks.
type Notifier struct {
	conf  *Config
	log   *slog.Logger
	m     *metrics
	cli   *http.Client
	now   func() time.Time
	rand  func() float64
	sinks []*sink
}

// sink is one sink's queue; mu guards queue and running.
type sink struct {
	conf    SinkConfig
	mu      sync.Mutex
	queue   []item
	running bool
	wake    chan struct{} // one pending signal
}

type item struct {
	e        Event
	enqueued time.Time
}

// New returns a notifier of c.
func New(c *Config, o Options) *Notifier {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Client == nil {
		o.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	n := &Notifier{conf: c, log: o.Logger, cli: o.Client, now: o.Now, rand: o.Rand, m: newMetrics()}
	for _, s := range c.Sinks {
		n.sinks = append(n.sinks, &sink{conf: s, wake: make(chan struct{}, 1)})
		for _, v := range []*prometheus.CounterVec{n.m.sent, n.m.failed, n.m.dropped, n.m.retries} {
			v.WithLabelValues(s.Name) // present at 0
		}
		n.m.queue.WithLabelValues(s.Name).Set(0)
	}
	return n
}

// Register adds the notifier's metrics to r, once.
func (n *Notifier) Register(r prometheus.Registerer) error {
	if n == nil {
		return nil
	}
	return n.m.register(r)
}

// Run delivers events until ctx ends: one worker per sink. Events queued
// but not delivered when it returns are dropped (counted): only a running
// notifier (the leader's) sends.
func (n *Notifier) Run(ctx context.Context) {
	wait := n.Start(ctx)
	<-ctx.Done()
	wait()
}

// Start is Run in the background: events are taken from its return on,
// and the function it returns waits, once ctx has ended, for the workers.
// A notifier runs once at a time.
func (n *Notifier) Start(ctx context.Context) (wait func()) {
	if n == nil {
		return func() {}
	}
	var wg sync.WaitGroup
	for _, s := range n.sinks {
		s.mu.Lock()
		s.running = true
		s.mu.Unlock()
		wg.Go(func() { n.work(ctx, s) })
	}
	return func() {
		wg.Wait()
		n.stopped()
	}
}

// stopped drops what the workers left.
func (n *Notifier) stopped() {
	for _, s := range n.sinks {
		s.mu.Lock()
		left := len(s.queue)
		s.queue, s.running = nil, false
		s.mu.Unlock()
		n.m.queue.WithLabelValues(s.conf.Name).Set(0)
		if left > 0 {
			n.m.dropped.WithLabelValues(s.conf.Name).Add(float64(left))
			n.log.Warn("notifications not delivered: the notifier stopped (leadership ended)", "sink", s.conf.Name, "dropped", left)
		}
	}
}

// Notify queues e for every sink whose filter takes it. It never blocks:
// a full queue drops its oldest event. Nothing is queued while Run is not
// running.
func (n *Notifier) Notify(e Event) { n.notify(e, false) }

// NotifyStatus queues e for the commit status sinks only: a new leader
// sends the newest revision's status again (statuses are idempotent; a
// webhook or Slack message is not).
func (n *Notifier) NotifyStatus(e Event) { n.notify(e, true) }

func (n *Notifier) notify(e Event, statusOnly bool) {
	if n == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = n.now()
	}
	for _, s := range n.sinks {
		if statusOnly && !s.conf.isStatus() || !matches(s.conf.Events, e.Type) {
			continue
		}
		s.mu.Lock()
		if !s.running {
			s.mu.Unlock()
			continue
		}
		var dropped *item
		if len(s.queue) >= n.conf.Delivery.QueueSize {
			d := s.queue[0]
			dropped, s.queue = &d, s.queue[1:]
		}
		s.queue = append(s.queue, item{e: e, enqueued: n.now()})
		l := len(s.queue)
		s.mu.Unlock()
		n.m.queue.WithLabelValues(s.conf.Name).Set(float64(l))
		if dropped != nil {
			n.m.dropped.WithLabelValues(s.conf.Name).Inc()
			n.log.Warn("notification queue full; dropped the oldest notification", "sink", s.conf.Name,
				"type", dropped.e.Type, "commit", short(dropped.e.Commit), "queue", n.conf.Delivery.QueueSize)
		}
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// work delivers s's queue, oldest first, until ctx ends.
func (n *Notifier) work(ctx context.Context, s *sink) {
	for {
		s.mu.Lock()
		var it item
		ok := len(s.queue) > 0
		if ok {
			it, s.queue = s.queue[0], s.queue[1:]
		}
		l := len(s.queue)
		s.mu.Unlock()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
				continue
			}
		}
		n.m.queue.WithLabelValues(s.conf.Name).Set(float64(l))
		n.deliver(ctx, s.conf, it)
		if ctx.Err() != nil {
			return
		}
	}
}

// deliver sends one event, retrying with backoff.
func (n *Notifier) deliver(ctx context.Context, s SinkConfig, it item) {
	d := n.conf.Delivery
	log := n.log.With("sink", s.Name, "type", it.e.Type, "commit", short(it.e.Commit))
	for attempt := 1; ; attempt++ {
		start := n.now()
		retryAfter, err := n.send(ctx, s, it.e)
		n.m.duration.WithLabelValues(s.Name).Observe(n.now().Sub(start).Seconds())
		if err == nil {
			n.m.sent.WithLabelValues(s.Name).Inc()
			n.m.latency.WithLabelValues(s.Name).Observe(n.now().Sub(it.enqueued).Seconds())
			log.Debug("notification sent", "attempt", attempt)
			return
		}
		if ctx.Err() != nil {
			n.m.dropped.WithLabelValues(s.Name).Inc()
			return
		}
		var perm *permanentError
		if errors.As(err, &perm) || attempt >= d.MaxAttempts {
			n.m.failed.WithLabelValues(s.Name).Inc()
			log.Error("notification failed; giving up", "attempts", attempt, "err", err)
			return
		}
		wait := Backoff(attempt, d.InitialBackoff, d.MaxBackoff, n.rand())
		if retryAfter > 0 {
			wait = min(retryAfter, d.MaxRetryAfter)
		}
		n.m.retries.WithLabelValues(s.Name).Inc()
		log.Warn("notification failed; retrying", "attempt", attempt, "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			n.m.dropped.WithLabelValues(s.Name).Inc()
			return
		case <-t.C:
		}
	}
}

// permanentError is a failure that no retry fixes (a 4xx other than 408
// and 429, a missing token file is not one: it may be written soon).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// send makes one attempt. Its error never holds a secret: not the token,
// not the URL (the http client's errors quote it), not the HMAC key.
func (n *Notifier) send(ctx context.Context, s SinkConfig, e Event) (retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, n.conf.Delivery.Timeout)
	defer cancel()
	req, secrets, err := n.conf.request(ctx, s, e)
	if err != nil {
		return 0, err
	}
	resp, err := n.cli.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return 0, fmt.Errorf("POST to sink %s: %s", s.Name, redact(err.Error(), secrets))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // reuse the connection
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return 0, nil
	}
	err = fmt.Errorf("sink %s answered %s: %s", s.Name, resp.Status, redact(strings.TrimSpace(string(snippet)), secrets))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		return RetryAfter(resp.Header.Get("Retry-After"), n.now()), err
	case resp.StatusCode == http.StatusForbidden && resp.Header.Get("Retry-After") != "":
		// GitHub's secondary rate limits are 403s with Retry-After.
		return RetryAfter(resp.Header.Get("Retry-After"), n.now()), err
	default:
		return 0, &permanentError{err}
	}
}

// redact replaces every secret in s. The URL's path and query, a token
// of its own in them, are replaced too.
func redact(s string, secrets []string) string {
	for _, v := range secrets {
		if v == "" {
			continue
		}
		s = strings.ReplaceAll(s, v, "[redacted]")
		if u, err := url.Parse(v); err == nil && u.Host != "" && len(u.Path) > 1 {
			s = strings.ReplaceAll(s, u.Path, "[redacted]")
			if u.RawQuery != "" {
				s = strings.ReplaceAll(s, u.RawQuery, "[redacted]")
			}
		}
	}
	return s
}

// Backoff is the wait before attempt+1, with full jitter: a random point
// (r in [0,1)) of initial*2^(attempt-1), capped at max; at least a tenth
// of the cap so that retries never spin.
func Backoff(attempt int, initial, max time.Duration, r float64) time.Duration {
	d := initial
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	w := time.Duration(r * float64(d))
	if w < d/10 {
		w = d / 10
	}
	return w
}

// RetryAfter reads a Retry-After header (seconds or an HTTP date) at now;
// 0 when absent or unreadable.
func RetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
