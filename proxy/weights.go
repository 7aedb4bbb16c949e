package proxy

import (
	"cmp"
	"math/big"
	"slices"
)

// MaxModulus bounds the numgen modulus of a weighted service port. Below it
// the split is exact (each endpoint's share is exactly its weight's fraction);
// above it, shares are apportioned over MaxModulus slots by largest
// remainder, a resolution of 1/MaxModulus (6e-8) of the traffic.
const MaxModulus = 1 << 24

// share is an endpoint's part of a service port's new connections: Slots
// out of the port's modulus.
type share struct {
	Endpoint Endpoint
	Slots    uint32
}

// split divides a service port's new connections among its endpoints: it
// returns the numgen modulus and, in group then endpoint order, the
// endpoints that get a share and their slot counts, which sum to the
// modulus.
//
// When no non-empty group has a weight, every endpoint gets one slot of
// len(endpoints) (equal shares, exactly). Otherwise a non-empty group g
// with weight w_g gets w_g/W of the connections (W sums the weights of the
// non-empty groups), split equally among its endpoints; groups without
// endpoints or without weight get nothing. The modulus is W times the
// least common multiple of the weighted groups' sizes, reduced by the
// greatest common divisor of the slot counts, so the split is exact; when
// that exceeds MaxModulus the shares are apportioned over MaxModulus slots
// (largest remainder, ties to the earlier endpoint) and every endpoint of a
// weighted group keeps at least one slot.
func split(groups []Group) (modulus uint32, shares []share) {
	var total int
	var weight uint64
	lcm := uint64(1)
	exact := true
	for _, g := range groups {
		total += len(g.Endpoints)
		if g.Weight <= 0 || len(g.Endpoints) == 0 {
			continue
		}
		weight += uint64(g.Weight)
		if exact {
			n := uint64(len(g.Endpoints))
			lcm = lcm / gcd(lcm, n) * n
			if lcm > MaxModulus {
				exact = false
			}
		}
	}
	if total == 0 {
		return 0, nil
	}
	if weight == 0 {
		shares = make([]share, 0, total)
		for _, g := range groups {
			for _, ep := range g.Endpoints {
				shares = append(shares, share{Endpoint: ep, Slots: 1})
			}
		}
		return uint32(total), shares
	}
	if exact && weight*lcm <= MaxModulus {
		var d uint64
		for _, g := range groups {
			if g.Weight <= 0 || len(g.Endpoints) == 0 {
				continue
			}
			slots := uint64(g.Weight) * lcm / uint64(len(g.Endpoints))
			for _, ep := range g.Endpoints {
				shares = append(shares, share{Endpoint: ep, Slots: uint32(slots)})
			}
			d = gcd(d, slots)
		}
		for i := range shares {
			shares[i].Slots /= uint32(d)
		}
		return uint32(weight * lcm / d), shares
	}
	return MaxModulus, apportion(groups, weight)
}

// apportion splits MaxModulus slots by largest remainder: endpoint e of
// group g is owed MaxModulus*w_g/(W*n_g) slots.
func apportion(groups []Group, weight uint64) []share {
	type owed struct {
		i   int
		rem *big.Rat // fractional part of what the endpoint is owed
	}
	var shares []share
	var rems []owed
	var given uint64
	for _, g := range groups {
		if g.Weight <= 0 || len(g.Endpoints) == 0 {
			continue
		}
		q := new(big.Rat).SetFrac(
			new(big.Int).SetUint64(uint64(g.Weight)*MaxModulus),
			new(big.Int).SetUint64(weight*uint64(len(g.Endpoints))))
		whole := new(big.Int).Quo(q.Num(), q.Denom())
		rem := new(big.Rat).Sub(q, new(big.Rat).SetInt(whole))
		for _, ep := range g.Endpoints {
			rems = append(rems, owed{i: len(shares), rem: rem})
			shares = append(shares, share{Endpoint: ep, Slots: uint32(whole.Uint64())})
			given += whole.Uint64()
		}
	}
	slices.SortStableFunc(rems, func(a, b owed) int { return b.rem.Cmp(a.rem) })
	for k := 0; given < MaxModulus; k++ {
		shares[rems[k%len(rems)].i].Slots++
		given++
	}
	// Every endpoint of a weighted group keeps a share: a slot comes from
	// the endpoint with the most (the first of them on a tie).
	for i := range shares {
		if shares[i].Slots > 0 {
			continue
		}
		most := 0
		for j := range shares {
			if cmp.Compare(shares[j].Slots, shares[most].Slots) > 0 {
				most = j
			}
		}
		shares[most].Slots--
		shares[i].Slots++
	}
	return shares
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
