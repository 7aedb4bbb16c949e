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
	const m = Modulus
	for _, c := range []struct {
		name   string
		groups []Group
		slots  []uint32
	}{
		{"unweighted: equal", []Group{{Endpoints: eps(3, 0)}}, []uint32{m / 3, m / 3, m / 3}},
		{"unweighted groups share equally", []Group{{Name: "a", Endpoints: eps(1, 0)}, {Name: "b", Endpoints: eps(2, 1)}}, []uint32{m / 3, m / 3, m / 3}},
		{"16 endpoints: exact", []Group{{Endpoints: eps(16, 0)}}, repeat(m/16, 16)},
		{"17 endpoints: largest remainder, ties to the first", []Group{{Endpoints: eps(17, 0)}},
			append([]uint32{m/17 + 1, m/17 + 1}, repeat(m/17, 15)...)},
		{"90/10, one endpoint each", []Group{{Weight: 90, Endpoints: eps(1, 0)}, {Weight: 10, Endpoints: eps(1, 1)}}, []uint32{m / 10 * 9, m / 10}},
		{"90/10 over 3 and 1", []Group{{Weight: 90, Endpoints: eps(3, 0)}, {Weight: 10, Endpoints: eps(1, 1)}}, []uint32{m / 10 * 3, m / 10 * 3, m / 10 * 3, m / 10}},
		{"95/5 over 2 and 3", []Group{{Weight: 95, Endpoints: eps(2, 0)}, {Weight: 5, Endpoints: eps(3, 1)}}, []uint32{m / 200 * 95, m / 200 * 95, m / 300 * 5, m / 300 * 5, m / 300 * 5}},
		{"a tiny weight keeps one slot", []Group{{Weight: 1 << 30, Endpoints: eps(1, 0)}, {Weight: 1, Endpoints: eps(1, 1)}}, []uint32{m - 1, 1}},
		{"empty weighted group drops out", []Group{{Weight: 90, Endpoints: nil}, {Weight: 10, Endpoints: eps(2, 1)}}, []uint32{m / 2, m / 2}},
		{"group without weight gets nothing", []Group{{Weight: 0, Endpoints: eps(2, 0)}, {Weight: 10, Endpoints: eps(1, 1)}}, []uint32{m}},
		{"no weighted group with endpoints: equal", []Group{{Weight: 100, Endpoints: nil}, {Weight: 0, Endpoints: eps(2, 1)}}, []uint32{m / 2, m / 2}},
		{"no endpoints", []Group{{Weight: 100}}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := slots(split(c.groups)); !reflect.DeepEqual(got, c.slots) {
				t.Errorf("split = %v, want %v", got, c.slots)
			}
		})
	}
}

func repeat(v uint32, n int) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = v
	}
	return out
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
		shares := split(gs)
		var total uint64
		for _, s := range shares {
			total += uint64(s.Slots)
			if s.Slots == 0 {
				t.Fatalf("case %d %+v: an endpoint with a share of 0 slots", i, gs)
			}
		}
		if len(shares) > 0 && total != Modulus {
			t.Fatalf("case %d %+v: slots sum to %d, not Modulus", i, gs, total)
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
		// Exact when every share is a whole number of slots; within
		// 1/Modulus (plus the slot an endpoint may have been lent)
		// otherwise.
		type owed struct{ got, exact *big.Rat }
		var all2 []owed
		exact := true
		k := 0
		for _, g := range gs {
			if weight > 0 && (g.Weight <= 0 || len(g.Endpoints) == 0) {
				continue
			}
			for range g.Endpoints {
				got := new(big.Rat).SetFrac64(int64(shares[k].Slots), Modulus)
				var e *big.Rat
				if weight == 0 {
					e = big.NewRat(1, int64(all))
				} else {
					e = new(big.Rat).SetFrac(big.NewInt(int64(g.Weight)), new(big.Int).SetUint64(weight*uint64(len(g.Endpoints))))
				}
				if !new(big.Rat).Mul(e, big.NewRat(Modulus, 1)).IsInt() {
					exact = false
				}
				all2 = append(all2, owed{got, e})
				k++
			}
		}
		for k, o := range all2 {
			diff := new(big.Rat).Sub(o.got, o.exact)
			if exact && diff.Sign() != 0 {
				t.Fatalf("case %d %+v: endpoint %d gets %v, exactly %v", i, gs, k, o.got, o.exact)
			}
			if diff.Abs(diff).Cmp(big.NewRat(int64(len(shares))+1, Modulus)) > 0 {
				t.Fatalf("case %d %+v: endpoint %d gets %v, want %v within resolution", i, gs, k, o.got, o.exact)
			}
		}
		// Deterministic.
		if shares2 := split(gs); !reflect.DeepEqual(shares, shares2) {
			t.Fatalf("case %d: split is not deterministic", i)
		}
	}
}
