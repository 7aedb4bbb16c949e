package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"bosun/store"
)

const (
	// DefaultListen is the address served when Config.Listen is empty.
	DefaultListen = "127.0.0.1:5353"
	// DefaultDomain is the cluster domain when Config.Domain is empty.
	DefaultDomain = "cluster.local"
	// DefaultResolvConf is where default upstreams are read from.
	DefaultResolvConf = "/etc/resolv.conf"

	// maxUDPPayload caps the UDP replies we send whatever the client
	// advertises: 1232 avoids IP fragmentation (DNS flag day 2020).
	maxUDPPayload = 1232
	// readBufSize is the UDP read buffer: queries with EDNS options
	// (cookies, padding) may exceed 512 bytes.
	readBufSize = 4096
	// forwardTimeout bounds one upstream exchange.
	forwardTimeout = 2 * time.Second
	// resyncInterval re-reads the store even without a change
	// notification, bounding staleness if a notification was missed.
	resyncInterval = 30 * time.Second
	// retryInterval is the wait after a failed store read.
	retryInterval = time.Second
)

// Config configures a Server. The zero value serves cluster.local on
// 127.0.0.1:5353 and forwards to the resolvers of /etc/resolv.conf.
type Config struct {
	// Listen are the addresses served over both UDP and TCP. Default
	// [DefaultListen]. A port 0 picks a free port, the same for UDP and TCP
	// (see Server.Addrs).
	Listen []string
	// Domain is the cluster domain answered from the store. Default
	// DefaultDomain.
	Domain string
	// Upstreams (host:port; a bare host means port 53) receive queries for
	// names outside Domain, tried in order. Default: the nameservers of
	// /etc/resolv.conf (also when empty). Listen addresses are never used as
	// upstreams. With none, such queries get SERVFAIL.
	Upstreams []string
	// TTL of every answer, and of negative answers, but the weighted
	// answers of a headless Service (WeightedTTL). Default DefaultTTL.
	TTL uint32
	// Logger receives rebuild and lifecycle logs. Default: discarded.
	Logger *slog.Logger
	// Registerer receives the index metrics (bosun_dns_index_*); nil: not
	// exported.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() error {
	if len(c.Listen) == 0 {
		c.Listen = []string{DefaultListen}
	}
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	if _, ok := mdns.IsDomainName(c.Domain); !ok || mdns.Fqdn(c.Domain) == "." {
		return fmt.Errorf("dns config: domain %q: not a domain name", c.Domain)
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("component", "dns")
	if c.Upstreams == nil {
		cc, err := mdns.ClientConfigFromFile(DefaultResolvConf)
		if err != nil {
			c.Logger.Warn("no upstream resolvers: names outside the cluster domain will fail", "err", err)
		} else {
			c.Upstreams = cc.Servers
		}
	}
	// Never forward to ourselves: a host whose resolv.conf names this
	// server would loop every unknown name until it timed out.
	ups := c.Upstreams[:0]
	for _, u := range c.Upstreams {
		if _, _, err := net.SplitHostPort(u); err != nil {
			u = net.JoinHostPort(u, "53")
		}
		if slices.Contains(c.Listen, u) {
			c.Logger.Warn("upstream is one of our listen addresses; skipped", "upstream", u)
			continue
		}
		ups = append(ups, u)
	}
	c.Upstreams = ups
	return nil
}

// State is what the server reads services and pods from: in a replica the
// process's store.Cache (cheap snapshots, notifications without etcd
// reads); a *store.Store also serves (tests, tools).
type State interface {
	Snapshot(ctx context.Context) (*store.Snapshot, error)
	Changes(ctx context.Context, kinds ...string) <-chan int64
}

// Server answers the cluster domain from an Index kept current by watching the
// state, and forwards other names upstream. Create it with New, start it with
// Run.
type Server struct {
	cfg    Config
	st     State
	log    *slog.Logger
	domain string // canonical

	index   atomic.Pointer[Index]
	rev     int64    // revision of the current index; owned by Run's goroutine
	builder *Builder // owned by Run's goroutine

	ready chan struct{}
	addrs []string

	// fwdCtx is cancelled when Run ends so in-flight forwards stop.
	fwdCtx context.Context

	bufs sync.Pool // *[]byte pack buffers

	fwdSem chan struct{}  // bounds forwards in flight from the UDP loops
	fwdWG  sync.WaitGroup // forwards in flight from the UDP loops

	m indexMetrics
	q *queryMetrics // metrics.go
}

// indexMetrics follow the index's updates.
type indexMetrics struct {
	updates  *prometheus.CounterVec
	duration prometheus.Histogram
	names    prometheus.Gauge
	revision prometheus.Gauge
}

func newIndexMetrics(reg prometheus.Registerer) indexMetrics {
	m := indexMetrics{
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_dns_index_updates_total", Help: "Index updates after a change, by mode: incremental (only the Services whose inputs changed) or full.",
		}, []string{"mode"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bosun_dns_index_update_seconds", Help: "Time from a change notification to the new index answering (snapshot read and update).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		names:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "bosun_dns_index_names", Help: "Names the index answers."}),
		revision: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bosun_dns_index_revision", Help: "The etcd revision the index answers from."}),
	}
	if reg != nil {
		reg.MustRegister(m.updates, m.duration, m.names, m.revision)
	}
	return m
}

// New checks cfg and returns a Server that serves st once Run is called.
func New(cfg Config, st State) (*Server, error) {
	if st == nil {
		return nil, errors.New("dns: nil store")
	}
	return newServer(cfg, st)
}

func newServer(cfg Config, st State) (*Server, error) {
	cfg.Upstreams = append([]string(nil), cfg.Upstreams...)
	if len(cfg.Upstreams) == 0 {
		cfg.Upstreams = nil // nil means "read resolv.conf"
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:    cfg,
		st:     st,
		log:    cfg.Logger,
		domain: mdns.CanonicalName(cfg.Domain),
		ready:  make(chan struct{}),
		fwdCtx: context.Background(),
		fwdSem: make(chan struct{}, maxForwards),
		m:      newIndexMetrics(cfg.Registerer),
		q:      newQueryMetrics(),
	}
	s.q.register(cfg.Registerer)
	s.builder = NewBuilder(s.domain, WithTTL(cfg.TTL))
	s.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	return s, nil
}

// Ready is closed once every address is listening and the first index is
// loaded.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addrs returns the bound addresses (host:port, the same for UDP and TCP) in
// the order of Config.Listen; valid once Ready is closed.
func (s *Server) Addrs() []string { return s.addrs }

// Index returns the index currently served (nil before the first load).
func (s *Server) Index() *Index { return s.index.Load() }

// Run binds every listen address (failing at once, naming the address, if
// one cannot be bound), loads the index from a store snapshot, serves, and
// rebuilds the index on every change of services, pods or pod statuses. It
// returns nil when ctx ends, after every listener and handler has stopped.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.fwdCtx = ctx

	// Watch before the first read so that no change after it is missed.
	changes := s.st.Changes(ctx, store.ServicesPrefix, store.PodsPrefix, store.PodStatusPrefix)

	var servers []*mdns.Server
	var loops []*udpLoop
	closeAll := func() {
		for _, srv := range servers {
			closeUnstarted(srv)
		}
		for _, l := range loops {
			l.conn.Close()
		}
	}
	for _, addr := range s.cfg.Listen {
		pc, ln, err := listen(addr)
		if err != nil {
			closeAll()
			cancel()
			drain(changes)
			return err
		}
		s.addrs = append(s.addrs, ln.Addr().String())
		if wantsBatchLoop(pc) {
			loops = append(loops, newUDPLoop(s, pc.(*net.UDPConn)))
		} else {
			servers = append(servers, &mdns.Server{PacketConn: pc, Handler: s, UDPSize: readBufSize})
		}
		servers = append(servers, &mdns.Server{Listener: ln, Handler: s, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
	}

	// Each server and loop reports on errc when it stops serving for a
	// reason other than shutdown. Shutdown must not race a miekg/dns
	// server's start (it refuses to shut down a server not yet started,
	// which would then serve forever), so each is waited for until it
	// started or failed.
	errc := make(chan error, len(servers)+len(loops))
	var wg sync.WaitGroup
	for _, srv := range servers {
		up, done := make(chan struct{}), make(chan struct{})
		srv.NotifyStartedFunc = func() { close(up) }
		srv.MsgAcceptFunc = mdns.DefaultMsgAcceptFunc
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done)
			if err := srv.ActivateAndServe(); err != nil {
				errc <- fmt.Errorf("dns serve %s: %w", serverAddr(srv), err)
			}
		}()
		select {
		case <-up:
		case <-done:
		}
	}
	for _, l := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.run(); err != nil {
				errc <- fmt.Errorf("dns serve udp %s: %w", l.conn.LocalAddr(), err)
			}
		}()
	}
	s.log.Info("dns listening", "addrs", s.addrs, "domain", s.domain, "upstreams", s.cfg.Upstreams)

	err := s.watch(ctx, changes, errc)

	cancel() // aborts forwards in flight
	for _, l := range loops {
		l.conn.Close()
	}
	for _, srv := range servers {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		if serr := srv.ShutdownContext(sctx); serr != nil && err == nil {
			// A server that already failed has reported on errc; this
			// is a timeout waiting for handlers.
			s.log.Warn("dns shutdown", "addr", serverAddr(srv), "err", serr)
		}
		scancel()
	}
	wg.Wait()
	s.fwdWG.Wait()
	drain(changes)
	return err
}

// watch loads the index, marks the server ready, and rebuilds on changes
// until ctx ends or a listener fails.
func (s *Server) watch(ctx context.Context, changes <-chan int64, errc <-chan error) error {
	var retry <-chan time.Time
	resync := time.NewTicker(resyncInterval)
	defer resync.Stop()
	rebuild := func(want int64, full bool) {
		if err := s.rebuild(ctx, want, full); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("dns index rebuild failed; retrying", "err", err)
				retry = time.After(retryInterval)
			}
			return
		}
		retry = nil
		select {
		case <-s.ready:
		default:
			close(s.ready)
		}
	}
	rebuild(0, true)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case rev, ok := <-changes:
			if !ok {
				changes = nil // ctx ended; Done fires next
				continue
			}
			rebuild(rev, false)
		case <-retry:
			rebuild(0, true)
		case <-resync.C:
			// Incremental too: an update compares every Service and pod
			// with the index's, so it catches a missed notification, and
			// it does not hold answers up for a full rebuild (117 ms at
			// 30,000 pods) every resyncInterval.
			rebuild(0, false)
		}
	}
}

// rebuild reads a snapshot and swaps in its index, unless the current index
// is already at least as new as want. With full, the index is computed from
// nothing (first load, retry after a failure); otherwise only the
// names of Services whose inputs changed are (see Builder).
func (s *Server) rebuild(ctx context.Context, want int64, full bool) error {
	if want != 0 && s.index.Load() != nil && s.rev >= want {
		return nil
	}
	start := time.Now()
	snap, err := s.st.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("read store snapshot: %w", err)
	}
	if s.index.Load() != nil && snap.Revision == s.rev {
		return nil
	}
	if full {
		s.builder.Reset()
	}
	ix, stats := s.builder.Update(snap.Services, snap.Pods)
	s.index.Store(ix)
	s.rev = snap.Revision
	if stats.Full {
		for _, sk := range ix.Skipped {
			s.log.Debug("dns skipped object", "reason", sk)
		}
	}
	mode := "incremental"
	if stats.Full {
		mode = "full"
	}
	s.m.updates.WithLabelValues(mode).Inc()
	s.m.duration.Observe(time.Since(start).Seconds())
	s.m.names.Set(float64(ix.Len()))
	s.m.revision.Set(float64(snap.Revision))
	s.log.Debug("dns index updated", "revision", snap.Revision, "full", stats.Full,
		"services", stats.Services, "recomputed", stats.Recomputed, "podsChanged", stats.PodsChanged,
		"pods", len(snap.Pods), "names", ix.Len(), "skipped", len(ix.Skipped), "took", time.Since(start))
	return nil
}

// ServeDNS answers one query; it is the handler of the TCP listeners (and
// of UDP on a wildcard address).
func (s *Server) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	tcp := isTCP(w)
	var reply *mdns.Msg
	switch {
	case len(req.Question) != 1:
		reply = new(mdns.Msg)
		reply.SetRcode(req, mdns.RcodeFormatError)
	case inDomain(lower(req.Question[0].Name), s.domain):
		reply = s.answer(req)
	default:
		reply = s.forward(req, tcp)
	}
	bp := s.bufs.Get().(*[]byte)
	if b := s.finishAndPack(req, reply, tcp, *bp); b != nil {
		if _, err := w.Write(b); err != nil {
			s.log.Debug("dns write failed", "err", err)
		}
		if cap(b) <= 64*1024 {
			*bp = b[:0]
		}
	}
	s.bufs.Put(bp)
}

// answer is the reply to an in-domain query from the current index.
func (s *Server) answer(req *mdns.Msg) *mdns.Msg {
	if ix := s.index.Load(); ix != nil {
		return ix.Answer(req)
	}
	reply := new(mdns.Msg) // not loaded yet: say so rather than deny
	reply.SetRcode(req, mdns.RcodeServerFailure)
	return reply
}

// finishAndPack adds EDNS0 to reply when the query had it, truncates UDP
// replies to what the client accepts, and packs the reply into buf (grown if
// needed). It returns nil if the reply cannot be packed.
func (s *Server) finishAndPack(req, reply *mdns.Msg, tcp bool, buf []byte) []byte {
	size := mdns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = min(max(int(opt.UDPSize()), mdns.MinMsgSize), maxUDPPayload)
		ropt := reply.IsEdns0()
		if ropt == nil {
			ropt = &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
			reply.Extra = append(reply.Extra, ropt)
		}
		ropt.SetUDPSize(maxUDPPayload)
		ropt.SetDo(opt.Do())
		if opt.Version() != 0 {
			ropt.SetVersion(0)
			reply.Rcode = mdns.RcodeBadVers
			reply.Answer, reply.Ns = nil, nil
			reply.Extra = []mdns.RR{ropt}
		}
	} else if ropt := reply.IsEdns0(); ropt != nil {
		// An upstream added EDNS0 the client did not ask for.
		reply.Extra = removeOPT(reply.Extra)
	}
	if tcp {
		size = mdns.MaxMsgSize
	}
	reply.Truncate(size)
	s.q.answered(req, reply.Rcode)
	b, err := reply.PackBuffer(buf)
	if err != nil {
		s.log.Debug("dns pack reply failed", "err", err)
		return nil
	}
	return b
}

func removeOPT(rrs []mdns.RR) []mdns.RR {
	out := rrs[:0:0]
	for _, rr := range rrs {
		if rr.Header().Rrtype != mdns.TypeOPT {
			out = append(out, rr)
		}
	}
	return out
}

// forward sends req to each upstream in turn and returns the first reply,
// or SERVFAIL when none answers. The reply keeps the client's id.
func (s *Server) forward(req *mdns.Msg, tcp bool) *mdns.Msg {
	c := &mdns.Client{Net: "udp", Timeout: forwardTimeout}
	if tcp {
		c.Net = "tcp"
	}
	for _, up := range s.cfg.Upstreams {
		if s.fwdCtx.Err() != nil {
			break
		}
		start := time.Now()
		r, err := exchangeUpstream(s.fwdCtx, c, req, up)
		s.q.exchanged(start, err)
		if err != nil {
			continue
		}
		r.Id = req.Id
		return r
	}
	m := new(mdns.Msg)
	m.SetRcode(req, mdns.RcodeServerFailure)
	m.RecursionAvailable = true
	return m
}

// exchangeUpstream is one query to one upstream, abandoned at once when ctx ends
// (miekg/dns's Client only honours a context's deadline, not its
// cancellation, so the connection is closed under it).
func exchangeUpstream(ctx context.Context, c *mdns.Client, req *mdns.Msg, upstream string) (*mdns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	co, err := c.DialContext(ctx, upstream)
	if err != nil {
		return nil, fmt.Errorf("dial upstream %s: %w", upstream, err)
	}
	defer co.Close()
	stop := context.AfterFunc(ctx, func() { co.Close() })
	defer stop()
	r, _, err := c.ExchangeWithConnContext(ctx, req, co)
	if err != nil {
		return nil, fmt.Errorf("exchange with upstream %s: %w", upstream, err)
	}
	return r, nil
}

func isTCP(w mdns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}

// freeBind lets a socket bind an address no interface holds yet (Linux
// IP_FREEBIND): the pod bridge's gateway address appears only when the node
// agent sets up the first pod network, and DNS must already listen there.
var freeBind = net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
	// Best effort: without it, binding an absent address fails with a
	// clear error naming the address.
	return c.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
	})
}}

// listen binds addr over UDP and TCP on the same port; with port 0 it
// retries until the port picked for UDP is also free for TCP.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns listen %q: %w", addr, err)
	}
	for attempt := 0; ; attempt++ {
		pc, err := freeBind.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns listen udp %s: %w", addr, err)
		}
		_, p, _ := net.SplitHostPort(pc.LocalAddr().String())
		ln, err := freeBind.Listen(context.Background(), "tcp", net.JoinHostPort(host, p))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || attempt >= 10 {
			return nil, nil, fmt.Errorf("dns listen tcp %s: %w", net.JoinHostPort(host, p), err)
		}
	}
}

// closeUnstarted releases the sockets of a server that was never started.
func closeUnstarted(srv *mdns.Server) {
	if srv.PacketConn != nil {
		srv.PacketConn.Close()
	}
	if srv.Listener != nil {
		srv.Listener.Close()
	}
}

func serverAddr(srv *mdns.Server) string {
	if srv.PacketConn != nil {
		return "udp " + srv.PacketConn.LocalAddr().String()
	}
	return "tcp " + srv.Listener.Addr().String()
}

func drain(ch <-chan int64) {
	for range ch {
	}
}
