package proxy

import (
	"cmp"
	"math/big"
	"slices"
)

// Modulus is the numgen modulus of every service port: a new connection
// draws a number in [0, Modulus) and goes to the endpoint whose range of
// slots holds it. It is one constant, rather than a function of the
// endpoints, so that the rule that draws never changes: an endpoint
// change only rewrites the elements of the port's map.
//
// 720,720,000 is lcm(1..16) x 1,000, so the split is exact (every share
// an integer number of slots) for equal shares over any number of
// endpoints that divides it (every count up to 16, and 18, 20, 24, ...),
// and for weights that sum to a divisor of 1,000 (percentages, per mille)
// over groups of up to 16 endpoints. Otherwise shares are apportioned by
// largest remainder: each within 1/Modulus (1.4e-9) of its exact value.
// The kernel maps its 32-bit random number onto [0, Modulus) by
// multiplication (reciprocal_scale), which adds an error below 2^-32 to
// every share.
const Modulus = 720_720_000

// share is an endpoint's part of a service port's new connections: Slots
// out of Modulus.
type share struct {
	Endpoint Endpoint
	Slots    uint32
}

// split divides a service port's new connections among its endpoints: it
// returns, in group then endpoint order, the endpoints that get a share
// and their slot counts, which sum to Modulus (nil without endpoints).
//
// When no non-empty group has a weight, every endpoint gets an equal
// share. Otherwise a non-empty group g with weight w_g gets w_g/W of the
// connections (W sums the weights of the non-empty groups), split equally
// among its endpoints; groups without endpoints or without weight get
// nothing. Every endpoint that gets a share gets at least one slot.
func split(groups []Group) []share {
	var total int
	var weight uint64
	for _, g := range groups {
		total += len(g.Endpoints)
		if g.Weight > 0 && len(g.Endpoints) > 0 {
			weight += uint64(g.Weight)
		}
	}
	if total == 0 {
		return nil
	}
	// Without weights every group weighs its size: 1/total each.
	weightOf := func(g Group) uint64 {
		if weight == 0 {
			return uint64(len(g.Endpoints))
		}
		return uint64(max(g.Weight, 0))
	}
	sum := weight
	if sum == 0 {
		sum = uint64(total)
	}
	shares := make([]share, 0, total)
	exact := true
	var given uint64
	for _, g := range groups {
		w := weightOf(g)
		if w == 0 || len(g.Endpoints) == 0 {
			continue
		}
		// Slots per endpoint: Modulus*w / (sum*n), when that divides.
		num, den := Modulus*w, sum*uint64(len(g.Endpoints))
		if w > 1<<32 || sum > 1<<32 || num%den != 0 {
			exact = false
		}
		for _, ep := range g.Endpoints {
			shares = append(shares, share{Endpoint: ep, Slots: uint32(num / den)})
			given += num / den
		}
	}
	if exact && given == Modulus {
		return shares
	}
	return apportion(groups, shares, weightOf, sum)
}

// apportion splits Modulus slots by largest remainder among the endpoints
// of shares (in the order split listed them): endpoint e of group g is
// owed Modulus*w_g/(sum*n_g) slots.
func apportion(groups []Group, shares []share, weightOf func(Group) uint64, sum uint64) []share {
	type owed struct {
		i   int
		rem *big.Rat // fractional part of what the endpoint is owed
	}
	var rems []owed
	var given uint64
	i := 0
	for _, g := range groups {
		w := weightOf(g)
		if w == 0 || len(g.Endpoints) == 0 {
			continue
		}
		q := new(big.Rat).SetFrac(
			new(big.Int).Mul(big.NewInt(Modulus), new(big.Int).SetUint64(w)),
			new(big.Int).Mul(new(big.Int).SetUint64(sum), big.NewInt(int64(len(g.Endpoints)))))
		whole := new(big.Int).Quo(q.Num(), q.Denom())
		rem := new(big.Rat).Sub(q, new(big.Rat).SetInt(whole))
		for range g.Endpoints {
			rems = append(rems, owed{i: i, rem: rem})
			shares[i].Slots = uint32(whole.Uint64())
			given += whole.Uint64()
			i++
		}
	}
	slices.SortStableFunc(rems, func(a, b owed) int { return b.rem.Cmp(a.rem) })
	for k := 0; given < Modulus; k++ {
		shares[rems[k%len(rems)].i].Slots++
		given++
	}
	// Every endpoint keeps a share: a slot comes from the endpoint with
	// the most (the first of them on a tie).
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
