package proxy

import (
	"math/big"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
)

func TestSplit_examples(t *testing.T) {
	eps := func(n int, base byte) []Endpoint {
		var out []Endpoint
		for i := range n {
			out = append(out, Endpoint{IP: netip.AddrFrom4([4]byte{10, 0, base, byte(i + 1)}), Port: 80})
		}
		return out
	}
	slots := func(shares []share) []uint32 {
		var out []uint32
		for _, s := range shares {
			out = append(out, s.Slots)
		}
		return out
	}
	for _, c := range []struct {
		name   string
		groups []Group
		mod    uint32
		slots  []uint32
	}{
		{"unweighted: one slot each", []Group{{Endpoints: eps(3, 0)}}, 3, []uint32{1, 1, 1}},
		{"unweighted groups share equally", []Group{{Name: "a", Endpoints: eps(1, 0)}, {Name: "b", Endpoints: eps(2, 1)}}, 3, []uint32{1, 1, 1}},
		{"90/10, one endpoint each", []Group{{Weight: 90, Endpoints: eps(1, 0)}, {Weight: 10, Endpoints: eps(1, 1)}}, 10, []uint32{9, 1}},
		{"90/10 over 3 and 1", []Group{{Weight: 90, Endpoints: eps(3, 0)}, {Weight: 10, Endpoints: eps(1, 1)}}, 10, []uint32{3, 3, 3, 1}},
		{"95/5 over 2 and 3", []Group{{Weight: 95, Endpoints: eps(2, 0)}, {Weight: 5, Endpoints: eps(3, 1)}}, 120, []uint32{57, 57, 2, 2, 2}},
		{"empty weighted group drops out", []Group{{Weight: 90, Endpoints: nil}, {Weight: 10, Endpoints: eps(2, 1)}}, 2, []uint32{1, 1}},
		{"group without weight gets nothing", []Group{{Weight: 0, Endpoints: eps(2, 0)}, {Weight: 10, Endpoints: eps(1, 1)}}, 1, []uint32{1}},
		{"no weighted group with endpoints: equal", []Group{{Weight: 100, Endpoints: nil}, {Weight: 0, Endpoints: eps(2, 1)}}, 2, []uint32{1, 1}},
		{"no endpoints", []Group{{Weight: 100}}, 0, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			mod, shares := split(c.groups)
			if mod != c.mod || !reflect.DeepEqual(slots(shares), c.slots) {
				t.Errorf("split = %d %v, want %d %v", mod, slots(shares), c.mod, c.slots)
			}
		})
	}
}

// randomGroups makes up to 4 groups of up to 12 endpoints, weights often
// 0, sometimes huge.
func randomGroups(r *rand.Rand) []Group {
	var gs []Group
	ip := byte(1)
	for range r.IntN(4) + 1 {
		g := Group{}
		switch r.IntN(4) {
		case 0:
		case 1:
			g.Weight = int32(r.IntN(100) + 1)
		case 2:
			g.Weight = int32(r.IntN(1 << 30))
		case 3:
			g.Weight = int32(r.IntN(7))
		}
		for range r.IntN(13) {
			g.Endpoints = append(g.Endpoints, Endpoint{IP: netip.AddrFrom4([4]byte{10, 0, 0, ip}), Port: 80})
			ip++
		}
		gs = append(gs, g)
	}
	return gs
}

func TestSplit_properties(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 2026))
	for i := range 20000 {
		gs := randomGroups(r)
		mod, shares := split(gs)
		var total uint64
		for _, s := range shares {
			total += uint64(s.Slots)
			if s.Slots == 0 {
				t.Fatalf("case %d %+v: an endpoint with a share of 0 slots", i, gs)
			}
		}
		if total != uint64(mod) {
			t.Fatalf("case %d %+v: slots sum to %d, modulus %d", i, gs, total, mod)
		}
		if mod > MaxModulus {
			t.Fatalf("case %d: modulus %d over MaxModulus", i, mod)
		}
		// Who gets a share: every endpoint of a non-empty weighted group,
		// or every endpoint when no such group exists.
		var weight uint64
		want := 0
		all := 0
		for _, g := range gs {
			all += len(g.Endpoints)
			if g.Weight > 0 && len(g.Endpoints) > 0 {
				weight += uint64(g.Weight)
				want += len(g.Endpoints)
			}
		}
		if weight == 0 {
			want = all
		}
		if len(shares) != want {
			t.Fatalf("case %d %+v: %d endpoints with a share, want %d", i, gs, len(shares), want)
		}
		// Exact when the modulus is not MaxModulus; within 1/MaxModulus
		// (plus the slot an endpoint may have been lent) otherwise.
		k := 0
		for _, g := range gs {
			if weight > 0 && (g.Weight <= 0 || len(g.Endpoints) == 0) {
				continue
			}
			for range g.Endpoints {
				got := new(big.Rat).SetFrac64(int64(shares[k].Slots), int64(mod))
				var exact *big.Rat
				if weight == 0 {
					exact = big.NewRat(1, int64(all))
				} else {
					exact = new(big.Rat).SetFrac(big.NewInt(int64(g.Weight)), new(big.Int).SetUint64(weight*uint64(len(g.Endpoints))))
				}
				diff := new(big.Rat).Sub(got, exact)
				if mod != MaxModulus && diff.Sign() != 0 {
					t.Fatalf("case %d %+v: endpoint %d gets %v, exactly %v", i, gs, k, got, exact)
				}
				if diff.Abs(diff).Cmp(big.NewRat(int64(len(shares))+1, MaxModulus)) > 0 {
					t.Fatalf("case %d %+v: endpoint %d gets %v, want %v within resolution", i, gs, k, got, exact)
				}
				k++
			}
		}
		// Deterministic.
		mod2, shares2 := split(gs)
		if mod2 != mod || !reflect.DeepEqual(shares, shares2) {
			t.Fatalf("case %d: split is not deterministic", i)
		}
	}
}
