package proxy

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

func openIn(t testing.TB, ns netns.NsHandle) *Table {
	t.Helper()
	tbl, err := Open(Config{NetNS: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbl.Close() })
	return tbl
}

func mustSync(t testing.TB, tbl *Table, ports []ServicePort) SyncStats {
	t.Helper()
	st, err := tbl.Sync(ports)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestSync_kernelGolden programs each golden case into a fresh namespace
// and compares the kernel's own listing (nft -j, normalized) with
// testdata/kernel.
func TestSync_kernelGolden(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			ns := newNS(t)
			tbl := openIn(t, ns)
			st := mustSync(t, tbl, c.ports)
			if !st.Full || st.Added != len(c.ports) {
				t.Errorf("first Sync: %+v, want a full one adding %d ports", st, len(c.ports))
			}
			golden(t, filepath.Join("kernel", c.name+".json"), listTable(t, ns, "bosun"))
		})
	}
}

func TestCleanup_removesTableAndToleratesAbsence(t *testing.T) {
	ns := newNS(t)
	if err := Cleanup(Config{NetNS: ns}); err != nil {
		t.Fatalf("Cleanup without a table: %v", err)
	}
	tbl := openIn(t, ns)
	mustSync(t, tbl, goldenCases()[0].ports)
	if listTable(t, ns, "bosun") == "" {
		t.Fatal("no table after Sync")
	}
	if err := Cleanup(Config{NetNS: ns}); err != nil {
		t.Fatal(err)
	}
	if got := listTable(t, ns, "bosun"); got != "" {
		t.Fatalf("table still there after Cleanup:\n%s", got)
	}
}

// TestSync_incrementalEqualsRebuild walks through a series of states with
// one Table (incremental Syncs) and checks after each that the kernel
// carries exactly what a fresh Table's full rebuild of the same state
// programs.
func TestSync_incrementalEqualsRebuild(t *testing.T) {
	cases := goldenCases()
	var states [][]ServicePort
	var all []ServicePort
	for _, c := range cases[:7] {
		all = append(all, c.ports...)
		states = append(states, append([]ServicePort(nil), all...))
	}
	web := cases[0].ports[0]
	// One endpoint leaves, one comes, weights move, affinity and node
	// port toggle, everything goes.
	mutate := func(f func(ps []ServicePort)) {
		next := cloneState(states[len(states)-1])
		f(next)
		states = append(states, next)
	}
	mutate(func(ps []ServicePort) { ps[0].Groups[0].Endpoints = ps[0].Groups[0].Endpoints[1:] })
	mutate(func(ps []ServicePort) {
		ps[0].Groups[0].Endpoints = append(ps[0].Groups[0].Endpoints, ep("10.244.0.20", 8080))
	})
	mutate(func(ps []ServicePort) { ps[3].Groups[0].Weight, ps[3].Groups[1].Weight = 50, 50 })
	// Equal shares: the slot map turns from an interval map into a plain
	// one (recreated), and back.
	mutate(func(ps []ServicePort) { ps[3].Groups[0].Weight, ps[3].Groups[1].Weight = 0, 0 })
	mutate(func(ps []ServicePort) { ps[3].Groups[0].Weight, ps[3].Groups[1].Weight = 10, 90 })
	mutate(func(ps []ServicePort) { ps[4].AffinityTimeout = 10 * time.Second })
	mutate(func(ps []ServicePort) { ps[4].AffinityTimeout = 0 })
	mutate(func(ps []ServicePort) { ps[0].AffinityTimeout = time.Minute; ps[0].NodePort = 30001 })
	mutate(func(ps []ServicePort) { ps[0].Groups = nil })
	mutate(func(ps []ServicePort) { ps[0].Groups = web.Groups })
	states = append(states, []ServicePort{web}, nil)

	ns := newNS(t)
	tbl := openIn(t, ns)
	for i, s := range states {
		st := mustSync(t, tbl, s)
		if st.Full != (i == 0) {
			t.Errorf("state %d: Full = %v", i, st.Full)
		}
		got := listTable(t, ns, "bosun")
		ref := newNS(t)
		mustSync(t, openIn(t, ref), s)
		if want := listTable(t, ref, "bosun"); got != want {
			t.Fatalf("state %d (%+v): incremental differs from rebuild:\n%s", i, st, lineDiff(want, got))
		}
	}
}

func cloneState(ps []ServicePort) []ServicePort {
	out := append([]ServicePort(nil), ps...)
	for i := range out {
		out[i].Groups = append([]Group(nil), out[i].Groups...)
		for g := range out[i].Groups {
			out[i].Groups[g].Endpoints = append([]Endpoint(nil), out[i].Groups[g].Endpoints...)
		}
	}
	return out
}

// TestSync_reopenRebuildsTheSameTable: an agent restart (Close, Open,
// Sync of the same state) leaves the kernel with the same table, rebuilt.
func TestSync_reopenRebuildsTheSameTable(t *testing.T) {
	ns := newNS(t)
	var all []ServicePort
	for _, c := range goldenCases()[:7] {
		all = append(all, c.ports...)
	}
	tbl, err := Open(Config{NetNS: ns})
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, tbl, all)
	before := listTable(t, ns, "bosun")
	if err := tbl.Close(); err != nil {
		t.Fatal(err)
	}
	if after := listTable(t, ns, "bosun"); after != before {
		t.Fatal("Close changed the table")
	}
	tbl = openIn(t, ns)
	if st := mustSync(t, tbl, all); !st.Full {
		t.Errorf("first Sync after Open: %+v, want a full rebuild", st)
	}
	if after := listTable(t, ns, "bosun"); after != before {
		t.Fatalf("table after restart differs:\n%s", lineDiff(before, after))
	}
}

// TestSync_failureThenRebuild: when a Sync fails (here: someone deleted the
// table behind the engine's back), it says so, and the next Sync rebuilds.
func TestSync_failureThenRebuild(t *testing.T) {
	ns := newNS(t)
	tbl := openIn(t, ns)
	cases := goldenCases()
	mustSync(t, tbl, cases[0].ports)
	run(t, ns, "nft", "delete", "table", "ip", "bosun")
	if _, err := tbl.Sync(cases[1].ports); err == nil {
		t.Fatal("Sync on a table that is gone succeeded")
	} else {
		t.Logf("failed Sync: %v", err)
	}
	st := mustSync(t, tbl, cases[1].ports)
	if !st.Full {
		t.Errorf("Sync after a failure: %+v, want a full rebuild", st)
	}
	ref := newNS(t)
	mustSync(t, openIn(t, ref), cases[1].ports)
	if got, want := listTable(t, ns, "bosun"), listTable(t, ref, "bosun"); got != want {
		t.Fatalf("rebuilt table differs:\n%s", lineDiff(want, got))
	}
}

// TestSync_badInputChangesNothing: an invalid port is refused with an
// error naming it, and the kernel keeps the previous table.
func TestSync_badInputChangesNothing(t *testing.T) {
	ns := newNS(t)
	tbl := openIn(t, ns)
	good := goldenCases()[0].ports
	mustSync(t, tbl, good)
	before := listTable(t, ns, "bosun")
	bad := cloneState(good)
	bad = append(bad, bad[0])
	bad[1].Name = "other"
	_, err := tbl.Sync(bad)
	if err == nil || !strings.Contains(err.Error(), "default/other/http/TCP") {
		t.Fatalf("err = %v, want one naming default/other/http/TCP", err)
	}
	if after := listTable(t, ns, "bosun"); after != before {
		t.Fatal("a refused Sync changed the table")
	}
	if st := mustSync(t, tbl, good); st.Full || st.Added+st.Changed+st.Removed != 0 {
		t.Errorf("Sync of the unchanged state after a refusal: %+v, want an empty incremental one", st)
	}
}
