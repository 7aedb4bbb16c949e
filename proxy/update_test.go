package proxy

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// batchOf returns the messages of the incremental transaction from prev
// to next, as Sync would send them, and the Sync's counts.
func batchOf(t *testing.T, prev, next []ServicePort) ([]netlink.Message, SyncStats) {
	t.Helper()
	before, err := normalize(prev, nil)
	if err != nil {
		t.Fatal(err)
	}
	mcfg := modelConfig{Table: "bosun", Mark: DefaultMasqueradeMark}
	_, counts := buildCounting(mcfg, before.ports)
	tbl := &Table{programmed: before.byKey, hairpin: counts}
	norm, err := normalize(next, tbl.programmed)
	if err != nil {
		t.Fatal(err)
	}
	ds := changes(tbl.programmed, norm)
	tr := recorder()
	conn, err := tr.conn()
	if err != nil {
		t.Fatal(err)
	}
	var id uint32
	b := &batch{conn: conn, table: &nftables.Table{Name: "bosun", Family: nftables.TableFamilyIPv4}, nextID: &id}
	st, _, err := tbl.update(b, mcfg, ds)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	return tr.batch, st
}

// setOf names the set an element message changes.
func setOf(t *testing.T, m netlink.Message) string {
	t.Helper()
	attrs, err := netlink.UnmarshalAttributes(m.Data[4:]) // after the nfgenmsg header
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range attrs {
		if a.Type == unix.NFTA_SET_ELEM_LIST_SET {
			return strings.TrimRight(string(a.Data), "\x00")
		}
	}
	t.Fatal("element message without a set name")
	return ""
}

// TestUpdate_endpointChangesAreMapElementsOnly pins what makes an
// endpoint change cheap: without session affinity, a port gaining or
// losing endpoints (down to none and back) changes elements of its
// backends map and of the hairpin set, and nothing else: no chain, no
// rule, no verdict, so the kernel has no reason to validate the table at
// commit. Not even a port losing its last endpoint touches the sets the
// filter chains look up (they hold every service port, with endpoints or
// not), so whether a connection is refused is decided by the one
// generation of rules the nat chain saw.
func TestUpdate_endpointChangesAreMapElementsOnly(t *testing.T) {
	web := goldenCases()[0].ports[0]
	web.NodePort = 30080
	other := goldenCases()[1].ports[0]
	with := func(eps ...Endpoint) []ServicePort {
		w := web
		w.Groups = nil
		if len(eps) > 0 {
			w.Groups = []Group{{Endpoints: eps}}
		}
		return []ServicePort{w, other}
	}
	a, b, c := ep("10.244.0.2", 8080), ep("10.244.0.3", 8080), ep("10.244.0.4", 8080)
	// A port of two groups whose weighted group loses its last endpoint.
	split := func(canary ...Endpoint) []ServicePort {
		w := web
		w.Groups = []Group{{Name: "canary", Weight: 10, Endpoints: canary}, {Name: "stable", Weight: 90, Endpoints: []Endpoint{a}}}
		return []ServicePort{w, other}
	}
	steps := []struct {
		name       string
		prev, next []ServicePort
	}{
		{"one endpoint more", with(a, b), with(a, b, c)},
		{"one endpoint less", with(a, b, c), with(a, c)},
		{"endpoint replaced", with(a, b), with(a, c)},
		{"last endpoint leaves", with(a), with()},
		{"first endpoint comes", with(), with(b)},
		{"all endpoints leave at once", with(a, b, c), with()},
		{"all come back at once", with(), with(a, b, c)},
		{"a group's last endpoint leaves", split(b), split()},
		{"target port changes", with(a), with(ep("10.244.0.2", 9090))},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			msgs, st := batchOf(t, s.prev, s.next)
			if st.Changed != 1 || st.Added+st.Removed != 0 {
				t.Errorf("stats %+v, want one changed port", st)
			}
			n := 0
			for _, m := range msgs[1 : len(msgs)-1] { // inside begin .. end
				switch typ := int(m.Header.Type) & 0xff; typ {
				case unix.NFT_MSG_NEWSETELEM, unix.NFT_MSG_DELSETELEM:
					set := setOf(t, m)
					if !strings.HasPrefix(set, prefixBackends) && set != setHairpin {
						t.Errorf("elements of %s changed", set)
					}
					n++
				default:
					t.Errorf("message %s in the batch, want only element changes", msgName(m.Header.Type))
				}
			}
			if n == 0 {
				t.Error("empty batch")
			}
		})
	}
}

// TestUpdate_hairpinCountsSharedEndpoints: an address stays in the hairpin
// set while any port sends to it.
func TestUpdate_hairpinCountsSharedEndpoints(t *testing.T) {
	a := ep("10.244.0.2", 8080)
	p1 := port("default", "one", "", corev1.ProtocolTCP, "10.96.0.1", 80, Group{Endpoints: []Endpoint{a}})
	p2 := port("default", "two", "", corev1.ProtocolTCP, "10.96.0.2", 80, Group{Endpoints: []Endpoint{a}})
	p2none := p2
	p2none.Groups = nil
	p1none := p1
	p1none.Groups = nil
	hairpinMsgs := func(msgs []netlink.Message) (add, del int) {
		for _, m := range msgs[1 : len(msgs)-1] {
			if typ := int(m.Header.Type) & 0xff; (typ == unix.NFT_MSG_NEWSETELEM || typ == unix.NFT_MSG_DELSETELEM) && setOf(t, m) == setHairpin {
				if typ == unix.NFT_MSG_NEWSETELEM {
					add++
				} else {
					del++
				}
			}
		}
		return add, del
	}
	if add, del := hairpinMsgs(first(batchOf(t, []ServicePort{p1, p2}, []ServicePort{p1, p2none}))); add+del != 0 {
		t.Errorf("one of two ports leaves the endpoint: %d adds, %d deletes of hairpin elements, want none", add, del)
	}
	if add, del := hairpinMsgs(first(batchOf(t, []ServicePort{p1, p2none}, []ServicePort{p1none, p2none}))); add != 0 || del != 1 {
		t.Errorf("the last port leaves the endpoint: %d adds, %d deletes, want 1 delete", add, del)
	}
	if add, del := hairpinMsgs(first(batchOf(t, []ServicePort{p1none, p2}, []ServicePort{p1, p2}))); add+del != 0 {
		t.Errorf("a second port gets the endpoint: %d adds, %d deletes, want none", add, del)
	}
}

func first[A, B any](a A, _ B) A { return a }

// TestSameKeys_agreesWithNormalize: when the fast path of an incremental
// Sync applies (same ports in the same order, only endpoints or affinity
// changed), it finds the same changes as the general path.
func TestSameKeys_agreesWithNormalize(t *testing.T) {
	var base []ServicePort
	for _, c := range goldenCases()[:7] { // the last repeats ports
		base = append(base, c.ports...)
	}
	prev, err := normalize(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(8, 1))
	fastCases := 0
	nodePort := uint16(31000)
	for i := range 500 {
		next := cloneState(base)
		for range r.IntN(3) + 1 {
			sp := &next[r.IntN(len(next))]
			switch r.IntN(6) {
			case 0: // an endpoint more
				sp.Groups = append(sp.Groups, Group{Name: "extra", Endpoints: []Endpoint{{IP: netip.AddrFrom4([4]byte{10, 9, 0, byte(r.IntN(200) + 1)}), Port: 80}}})
			case 1: // endpoints gone
				sp.Groups = nil
			case 2: // affinity
				sp.AffinityTimeout = time.Duration(r.IntN(3)) * time.Minute
			case 3: // endpoints listed in another order: no change
				for _, g := range sp.Groups {
					r.Shuffle(len(g.Endpoints), func(a, b int) { g.Endpoints[a], g.Endpoints[b] = g.Endpoints[b], g.Endpoints[a] })
				}
			case 4: // a new node port: not the fast path
				nodePort++
				sp.NodePort = nodePort
			case 5: // a weight
				if len(sp.Groups) > 0 {
					sp.Groups[0].Weight = int32(r.IntN(100))
				}
			}
		}
		want, err := normalize(next, prev.byKey)
		if err != nil {
			t.Fatal(err)
		}
		wantDs := changes(prev.byKey, want)
		gotDs, order, ok, err := sameKeys(next, prev.order)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		fastCases++
		if len(gotDs) != len(wantDs) {
			t.Fatalf("case %d: %d changes, want %d", i, len(gotDs), len(wantDs))
		}
		for k := range gotDs {
			g, w := gotDs[k], wantDs[k]
			if g.old != w.old || !equalPorts(g.new, w.new) {
				t.Fatalf("case %d: change %d: %+v, want %+v", i, k, g, w)
			}
		}
		for k := range order {
			if !equalPorts(order[k], want.order[k]) {
				t.Fatalf("case %d: port %d of the new order differs", i, k)
			}
		}
	}
	if fastCases < 100 {
		t.Errorf("only %d of 500 cases took the fast path", fastCases)
	}
}
