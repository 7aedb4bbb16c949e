package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
)

// Config says which table to program where.
type Config struct {
	// Table is the nftables table's name, family ip; default "bosun".
	Table string
	// NetNS is the network namespace to program; 0 or -1 (netns.None()):
	// the current one.
	NetNS netns.NsHandle
	// MasqueradeMark is the packet mark bit that asks for masquerading;
	// default DefaultMasqueradeMark (0x4000).
	MasqueradeMark uint32
	// Logger; default discards.
	Logger *slog.Logger
}

// DefaultTable is the table bosun programs by default.
const DefaultTable = "bosun"

func (c *Config) defaults() error {
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if len(c.Table) > maxNameLen {
		return fmt.Errorf("proxy: table name %q is longer than %d bytes", c.Table, maxNameLen)
	}
	if c.MasqueradeMark == 0 {
		c.MasqueradeMark = DefaultMasqueradeMark
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

func (c *Config) nsFD() int {
	if c.NetNS <= 0 {
		return 0
	}
	return int(c.NetNS)
}

// SyncStats tells what a Sync did. Added, Changed and Removed count
// service ports (a full Sync counts every port it programmed as added);
// ConntrackFlushed counts the UDP conntrack entries deleted.
type SyncStats struct {
	Full                    bool
	Added, Changed, Removed int
	ConntrackFlushed        int
}

// Table programs bosun's nftables table. Its methods may be called from
// several goroutines; Syncs run one at a time.
type Table struct {
	cfg  Config
	log  *slog.Logger
	mu   sync.Mutex
	tr   *transport
	conn *nftables.Conn // records batches for tr
	ct   *conntrack
	// programmed holds the normalized service ports the kernel carries,
	// by key; the model is a function of them. nil until the first
	// successful Sync, and after a failed one: the next Sync rebuilds.
	programmed map[string]*ServicePort
	// last is what the kernel carried after the last successful Sync,
	// kept across a failure for the conntrack flush of removed endpoints.
	last   map[string]*ServicePort
	nextID uint32
}

// Open connects to netfilter in cfg.NetNS. It changes nothing: the first
// Sync builds the table.
func Open(cfg Config) (*Table, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	tr, err := newTransport(&cfg)
	if err != nil {
		return nil, err
	}
	conn, err := tr.conn()
	if err != nil {
		tr.nl.Close()
		return nil, err
	}
	ct, err := openConntrack(cfg.NetNS)
	if err != nil {
		tr.nl.Close()
		return nil, err
	}
	return &Table{cfg: cfg, log: cfg.Logger, tr: tr, conn: conn, ct: ct}, nil
}

// Close releases the netlink sockets; the table stays as it is.
func (t *Table) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return errors.Join(t.tr.nl.Close(), t.ct.close())
}

// Cleanup deletes cfg's table; nil when it is not there.
func Cleanup(cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	conn, err := nftables.New(nftables.WithNetNSFd(cfg.nsFD()))
	if err != nil {
		return fmt.Errorf("proxy: netfilter socket: %w", err)
	}
	// Adding the table first makes the delete succeed when it is absent,
	// in the same transaction.
	tbl := &nftables.Table{Name: cfg.Table, Family: nftables.TableFamilyIPv4}
	conn.AddTable(tbl)
	conn.DelTable(tbl)
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("proxy: delete table %s: %w", cfg.Table, err)
	}
	return nil
}

// Sync makes the table carry exactly ports. The first Sync after Open
// rebuilds the table from nothing (delete if present, create everything)
// in one transaction; later Syncs change only what differs from the last
// programmed state, also in one transaction. After a failed Sync the next
// one rebuilds. Invalid ports are refused before anything is changed.
// Removed UDP endpoints get their conntrack entries flushed.
func (t *Table) Sync(ports []ServicePort) (SyncStats, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	norm, err := normalize(ports, t.last)
	if err != nil {
		return SyncStats{}, fmt.Errorf("proxy: %w", err)
	}
	start := time.Now()
	b := &batch{conn: t.conn, table: &nftables.Table{Name: t.cfg.Table, Family: nftables.TableFamilyIPv4}, nextID: &t.nextID}
	mcfg := modelConfig{Table: t.cfg.Table, Mark: t.cfg.MasqueradeMark}
	next := make(map[string]*ServicePort, len(norm))
	for _, sp := range norm {
		next[sp.Key()] = sp
	}
	var st SyncStats
	if t.programmed == nil {
		st.Full = true
		st.Added = len(norm)
		err = rebuild(b, build(mcfg, norm))
	} else {
		st, err = t.update(b, mcfg, norm, next)
	}
	if err == nil {
		err = t.tr.flush(t.conn)
	} else if conn, cerr := t.tr.conn(); cerr == nil {
		// Drop what was queued before the error: nothing was sent.
		t.conn = conn
	}
	if err != nil {
		t.programmed = nil
		return SyncStats{Full: st.Full}, fmt.Errorf("proxy: sync table %s: %w", t.cfg.Table, err)
	}
	elapsed := time.Since(start)
	prev := t.last
	t.programmed, t.last = next, next
	st.ConntrackFlushed = t.flushConntrack(prev, next)
	t.log.Debug("synced", "full", st.Full, "added", st.Added, "changed", st.Changed, "removed", st.Removed,
		"conntrackFlushed", st.ConntrackFlushed, "ports", len(norm), "elapsed", elapsed)
	return st, nil
}

// rebuild queues a transaction that replaces the table by rs.
func rebuild(b *batch, rs *Ruleset) error {
	b.conn.AddTable(b.table)
	b.conn.DelTable(b.table)
	b.conn.AddTable(b.table)
	for i := range rs.Sets {
		if err := b.addSet(&rs.Sets[i]); err != nil {
			return err
		}
	}
	for i := range rs.Chains {
		b.addChain(&rs.Chains[i])
	}
	for i := range rs.Chains {
		if err := b.addRules(&rs.Chains[i]); err != nil {
			return err
		}
	}
	for i := range rs.Sets {
		s := &rs.Sets[i]
		if err := b.addElements(s.Name, s.Elements); err != nil {
			return err
		}
		if err := b.addSlots(s); err != nil {
			return err
		}
	}
	return nil
}

// update queues a transaction that turns the programmed ports into next.
// Order matters inside the transaction: chains are created before
// anything refers to them and deleted only after nothing does (their map
// elements are deleted and the chains that jump to them flushed first).
func (t *Table) update(b *batch, mcfg modelConfig, norm []*ServicePort, next map[string]*ServicePort) (SyncStats, error) {
	var st SyncStats
	var d diff
	for _, sp := range norm {
		old, ok := t.programmed[sp.Key()]
		switch {
		case old == sp: // unchanged, shared by normalize
		case !ok:
			st.Added++
			d.port(nil, ptrFragment(fragmentOf(mcfg, sp)))
		case !equalPorts(old, sp):
			st.Changed++
			d.port(ptrFragment(fragmentOf(mcfg, old)), ptrFragment(fragmentOf(mcfg, sp)))
		}
	}
	keys := make([]string, 0)
	for k := range t.programmed {
		if _, ok := next[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		st.Removed++
		d.port(ptrFragment(fragmentOf(mcfg, t.programmed[k])), nil)
	}
	return st, d.queue(b)
}

func ptrFragment(f fragment) *fragment { return &f }

// diff collects the changes of one transaction.
type diff struct {
	addChains, rewriteChains, deleteChains []*Chain
	addSets, deleteSets                    []*Set
	// fillSlots are new slot maps; refillSlots are slot maps whose
	// elements are replaced (flushed, then added again).
	fillSlots, refillSlots []*Set
	addElems, deleteElems  map[string][]Element
}

// port adds the changes from old to new (either may be nil) of one
// service port's fragment.
func (d *diff) port(old, new *fragment) {
	if d.addElems == nil {
		d.addElems, d.deleteElems = map[string][]Element{}, map[string][]Element{}
	}
	oldChains, newChains := chainsByName(old), chainsByName(new)
	oldSets, newSets := setsByName(old), setsByName(new)
	// A set whose properties change is deleted and created again; every
	// chain of the port that refers to it is rewritten with it.
	setsChanged := false
	for name, s := range oldSets {
		if n, ok := newSets[name]; !ok || !sameSetKind(n, s) {
			d.deleteSets = append(d.deleteSets, s)
			setsChanged = setsChanged || ok
		}
	}
	for name, s := range newSets {
		o, ok := oldSets[name]
		switch {
		case !ok || !sameSetKind(o, s):
			d.addSets = append(d.addSets, s)
			if len(s.Slots) > 0 {
				d.fillSlots = append(d.fillSlots, s)
			}
		case !slices.Equal(o.Slots, s.Slots):
			d.refillSlots = append(d.refillSlots, s)
		}
	}
	if new != nil {
		for i := range new.Chains {
			c := &new.Chains[i]
			o, ok := oldChains[c.Name]
			switch {
			case !ok:
				d.addChains = append(d.addChains, c)
			case setsChanged || !equalRules(o.Rules, c.Rules):
				d.rewriteChains = append(d.rewriteChains, c)
			}
		}
	}
	if old != nil {
		for i := range old.Chains {
			if _, ok := newChains[old.Chains[i].Name]; !ok {
				d.deleteChains = append(d.deleteChains, &old.Chains[i])
			}
		}
	}
	oldElems, newElems := elemsOf(old), elemsOf(new)
	for k, e := range oldElems {
		if n, ok := newElems[k]; !ok || n.Verdict != e.Verdict {
			d.deleteElems[e.Map] = append(d.deleteElems[e.Map], e.Element)
		}
	}
	for k, e := range newElems {
		if o, ok := oldElems[k]; !ok || o.Verdict != e.Verdict {
			d.addElems[e.Map] = append(d.addElems[e.Map], e.Element)
		}
	}
}

type elemKey struct {
	Map string
	Key Element // Verdict zeroed
}

func elemsOf(f *fragment) map[elemKey]mapElement {
	if f == nil {
		return nil
	}
	m := make(map[elemKey]mapElement, len(f.Elements))
	for _, e := range f.Elements {
		k := e.Element
		k.Verdict = Verdict{}
		m[elemKey{e.Map, k}] = e
	}
	return m
}

func chainsByName(f *fragment) map[string]*Chain {
	if f == nil {
		return nil
	}
	m := make(map[string]*Chain, len(f.Chains))
	for i := range f.Chains {
		m[f.Chains[i].Name] = &f.Chains[i]
	}
	return m
}

func setsByName(f *fragment) map[string]*Set {
	if f == nil {
		return nil
	}
	m := make(map[string]*Set, len(f.Sets))
	for i := range f.Sets {
		m[f.Sets[i].Name] = &f.Sets[i]
	}
	return m
}

// sameSetKind reports whether a set can stay as it is (only its elements
// may change).
func sameSetKind(a, b *Set) bool {
	return a.Key == b.Key && a.Map == b.Map && a.Timeout == b.Timeout && a.Interval == b.Interval
}

func equalRules(a, b []Rule) bool {
	return slices.EqualFunc(a, b, func(x, y Rule) bool {
		if (x.Numgen == nil) != (y.Numgen == nil) || (x.Numgen != nil && *x.Numgen != *y.Numgen) {
			return false
		}
		if (x.Verdict == nil) != (y.Verdict == nil) || (x.Verdict != nil && *x.Verdict != *y.Verdict) {
			return false
		}
		if (x.VMap == nil) != (y.VMap == nil) || (x.VMap != nil && *x.VMap != *y.VMap) {
			return false
		}
		x.Numgen, y.Numgen, x.Verdict, y.Verdict, x.VMap, y.VMap = nil, nil, nil, nil, nil, nil
		return x == y
	})
}

// mapOrder is the order element changes are queued in, for a
// deterministic batch.
var mapOrder = []string{mapNoEndpointNodePort, mapNoEndpointServices, mapServiceIPs, mapServiceNodePorts}

func (d *diff) queue(b *batch) error {
	for _, c := range d.addChains {
		b.addChain(c)
	}
	for _, m := range mapOrder {
		if err := b.deleteElements(m, d.deleteElems[m]); err != nil {
			return err
		}
	}
	for _, s := range d.refillSlots {
		b.conn.FlushSet(b.setRef(s.Name))
	}
	for _, c := range d.rewriteChains {
		b.conn.FlushChain(b.chain(c.Name))
	}
	for _, c := range d.deleteChains {
		b.conn.FlushChain(b.chain(c.Name))
	}
	for _, s := range d.deleteSets {
		b.conn.DelSet(b.setRef(s.Name))
	}
	for _, s := range d.addSets {
		if err := b.addSet(s); err != nil {
			return err
		}
	}
	for _, c := range append(slices.Clip(d.addChains), d.rewriteChains...) {
		if err := b.addRules(c); err != nil {
			return err
		}
	}
	for _, m := range mapOrder {
		if err := b.addElements(m, d.addElems[m]); err != nil {
			return err
		}
	}
	for _, s := range append(slices.Clip(d.fillSlots), d.refillSlots...) {
		if err := b.addSlots(s); err != nil {
			return err
		}
	}
	for _, c := range d.deleteChains {
		b.conn.DelChain(b.chain(c.Name))
	}
	return nil
}
