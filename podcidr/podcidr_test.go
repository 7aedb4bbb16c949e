package podcidr

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

var cfg16 = Config{ClusterCIDR: netip.MustParsePrefix("10.88.0.0/16"), MaskSize: 24}

func pfx(s string) netip.Prefix {
	if s == "" {
		return netip.Prefix{}
	}
	return netip.MustParsePrefix(s)
}

func TestPlan(t *testing.T) {
	small := Config{ClusterCIDR: pfx("10.88.0.0/23"), MaskSize: 24}
	cases := []struct {
		name   string
		cfg    Config
		nodes  []Node
		assign map[string]string
		refuse map[string]string // node -> a substring of the reason
		clear  []string
		drop   []string
		free   int
	}{
		{name: "first node gets the first subnet", cfg: cfg16,
			nodes:  []Node{{Name: "a", Registered: true}},
			assign: map[string]string{"a": "10.88.0.0/24"}, free: 255},
		{name: "next free skips recorded ones", cfg: cfg16,
			nodes: []Node{{Name: "a", Registered: true, Record: pfx("10.88.0.0/24")}, {Name: "b", Registered: true},
				{Name: "c", Record: pfx("10.88.1.0/24")}},
			assign: map[string]string{"b": "10.88.2.0/24"}, free: 253},
		{name: "a lapsed node keeps its subnet", cfg: cfg16,
			nodes: []Node{{Name: "a", Record: pfx("10.88.0.0/24")}},
			free:  255},
		{name: "a hand-given subnet inside the range is not given again", cfg: cfg16,
			nodes:  []Node{{Name: "a", Registered: true, Request: pfx("10.88.0.0/23")}, {Name: "b", Registered: true}},
			assign: map[string]string{"a": "10.88.0.0/23", "b": "10.88.2.0/24"}, free: 253},
		{name: "a hand-given subnet outside the range", cfg: cfg16,
			nodes:  []Node{{Name: "a", Registered: true, Request: pfx("192.168.7.0/24")}},
			assign: map[string]string{"a": "192.168.7.0/24"}, free: 256},
		{name: "an overlapping request is refused, naming the other node", cfg: cfg16,
			nodes: []Node{{Name: "a", Registered: true, Record: pfx("10.88.0.0/24")},
				{Name: "b", Registered: true, Request: pfx("10.88.0.128/25")}},
			refuse: map[string]string{"b": "overlaps the pod subnet of node a (10.88.0.0/24)"}, free: 255},
		{name: "two requests for one subnet: the first by name wins", cfg: cfg16,
			nodes:  []Node{{Name: "b", Registered: true, Request: pfx("10.9.0.0/24")}, {Name: "a", Registered: true, Request: pfx("10.9.0.0/24")}},
			assign: map[string]string{"a": "10.9.0.0/24"}, refuse: map[string]string{"b": "node a"}, free: 256},
		{name: "a request other than the record is refused", cfg: cfg16,
			nodes:  []Node{{Name: "a", Registered: true, Record: pfx("10.88.0.0/24"), Request: pfx("10.88.5.0/24")}},
			refuse: map[string]string{"a": "has 10.88.0.0/24 already"}, free: 255},
		{name: "asking for its own record is fine", cfg: cfg16,
			nodes: []Node{{Name: "a", Registered: true, Record: pfx("10.88.0.0/24"), Request: pfx("10.88.0.0/24")}},
			free:  255},
		{name: "the range exhausted", cfg: small,
			nodes: []Node{{Name: "a", Registered: true, Record: pfx("10.88.0.0/24")}, {Name: "b", Registered: true, Record: pfx("10.88.1.0/24")},
				{Name: "c", Registered: true}},
			refuse: map[string]string{"c": "no free /24 left in the cluster CIDR 10.88.0.0/23"}, free: 0},
		{name: "a refusal recorded already is not written again", cfg: small,
			nodes: []Node{{Name: "a", Registered: true, Record: pfx("10.88.0.0/23")},
				{Name: "c", Registered: true, Refused: "node c: no free /24 left in the cluster CIDR 10.88.0.0/23 (2 subnets, all taken): free one with `bosun node delete NAME`, or widen --cluster-cidr"}},
			free: 0},
		{name: "a refused node that is gone is dropped; its refusal held nothing", cfg: cfg16,
			nodes: []Node{{Name: "x", Refused: "whatever"}},
			drop:  []string{"x"}, free: 256},
		{name: "a refusal that no longer holds is cleared", cfg: cfg16,
			nodes: []Node{{Name: "a", Registered: true, Record: pfx("10.88.3.0/24"), Refused: "old", RefusedRequest: pfx("10.88.4.0/24")}},
			clear: []string{"a"}, free: 255},
		{name: "a refused request granted once the other node is gone", cfg: cfg16,
			nodes:  []Node{{Name: "b", Registered: true, Request: pfx("10.88.0.0/24"), Refused: "overlaps a", RefusedRequest: pfx("10.88.0.0/24")}},
			assign: map[string]string{"b": "10.88.0.0/24"}, free: 255},
		{name: "a record wider than the cluster CIDR holds it all", cfg: small,
			nodes:  []Node{{Name: "a", Record: pfx("10.0.0.0/8")}, {Name: "b", Registered: true}},
			refuse: map[string]string{"b": "no free"}, free: 0},
		{name: "a bad request", cfg: cfg16,
			nodes:  []Node{{Name: "a", Registered: true, Request: pfx("10.1.2.0/31")}},
			refuse: map[string]string{"a": "at most /30"}, free: 256},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := Plan(c.cfg, c.nodes)
			got := map[string]string{}
			for n, p := range res.Assign {
				got[n] = p.String()
			}
			if fmt.Sprint(got) != fmt.Sprint(orEmpty(c.assign)) {
				t.Errorf("assign %v, want %v", got, c.assign)
			}
			if len(res.Refuse) != len(c.refuse) {
				t.Errorf("refuse %v, want %v", res.Refuse, c.refuse)
			}
			for n, want := range c.refuse {
				if r, ok := res.Refuse[n]; !ok || !strings.Contains(r.Reason, want) {
					t.Errorf("refusal of %s: %q, want it to say %q", n, r.Reason, want)
				}
			}
			if fmt.Sprint(res.Clear) != fmt.Sprint(c.clear) || fmt.Sprint(res.Drop) != fmt.Sprint(c.drop) {
				t.Errorf("clear %v drop %v, want %v %v", res.Clear, res.Drop, c.clear, c.drop)
			}
			if res.Free != c.free {
				t.Errorf("free %d, want %d", res.Free, c.free)
			}
		})
	}
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{cfg16, ""},
		{Config{ClusterCIDR: pfx("10.88.0.0/16"), MaskSize: 8}, "--node-cidr-mask-size 8"},
		{Config{ClusterCIDR: pfx("10.88.0.0/16"), MaskSize: 31}, "--node-cidr-mask-size 31"},
		{Config{ClusterCIDR: pfx("10.0.0.0/8"), MaskSize: 28}, "more than 65536 subnets"},
		{Config{ClusterCIDR: pfx("10.88.1.0/16"), MaskSize: 24}, "host bits set"},
		{Config{ClusterCIDR: pfx("fd00::/64"), MaskSize: 80}, "want an IPv4 prefix"},
		{Config{MaskSize: 24}, "want an IPv4 prefix"},
	} {
		err := c.cfg.Validate()
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

// TestPlan_neverOverlaps registers and deletes nodes in random orders, some
// asking for subnets by hand, and applies each plan as the leader does:
// no two records ever overlap, a record stays its node's until the node is
// deleted, and a registered node that asks for nothing gets a subnet
// whenever one is free.
func TestPlan_neverOverlaps(t *testing.T) {
	cfg := Config{ClusterCIDR: pfx("10.88.0.0/20"), MaskSize: 24} // 16 subnets: exhaustion happens
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 7))
		nodes := map[string]*Node{}
		for step := range 60 {
			name := fmt.Sprintf("n%d", r.IntN(24))
			switch op := r.IntN(10); {
			case op < 5: // (re)register, maybe asking for a subnet
				n := nodes[name]
				if n == nil {
					n = &Node{Name: name}
					nodes[name] = n
				}
				n.Registered, n.Request = true, netip.Prefix{}
				if r.IntN(3) == 0 {
					n.Request = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 88, byte(r.IntN(20)), 0}), 23+r.IntN(3)).Masked()
				}
			case op < 8: // lease lapses
				if n := nodes[name]; n != nil {
					n.Registered = false
				}
			default: // bosun node delete
				delete(nodes, name)
			}
			list := make([]Node, 0, len(nodes))
			before := map[string]netip.Prefix{}
			for _, n := range nodes {
				list = append(list, *n)
				before[n.Name] = n.Record
			}
			res := Plan(cfg, list)
			for name, p := range res.Assign {
				if nodes[name].Record.IsValid() {
					t.Fatalf("seed %d step %d: %s reassigned from %s to %s", seed, step, name, nodes[name].Record, p)
				}
				nodes[name].Record, nodes[name].Refused = p, ""
			}
			for name, rf := range res.Refuse {
				nodes[name].Refused, nodes[name].RefusedRequest = rf.Reason, rf.Request
			}
			for _, name := range res.Clear {
				nodes[name].Refused = ""
			}
			for _, name := range res.Drop {
				if nodes[name].Record.IsValid() {
					t.Fatalf("seed %d step %d: dropped %s holding %s", seed, step, name, nodes[name].Record)
				}
				delete(nodes, name)
			}
			free := 0
			for i := range cfg.Size() {
				taken := false
				for _, n := range nodes {
					if n.Record.IsValid() && n.Record.Overlaps(cfg.subnet(i)) {
						taken = true
					}
				}
				if !taken {
					free++
				}
			}
			if free != res.Free {
				t.Fatalf("seed %d step %d: Free %d, counted %d", seed, step, res.Free, free)
			}
			for _, a := range nodes {
				if p := before[a.Name]; p.IsValid() && a.Record != p {
					t.Fatalf("seed %d step %d: %s's record moved from %s to %s", seed, step, a.Name, p, a.Record)
				}
				if a.Registered && !a.Request.IsValid() && !a.Record.IsValid() && free > 0 {
					t.Fatalf("seed %d step %d: %s has no subnet while %d are free", seed, step, a.Name, free)
				}
				for _, b := range nodes {
					if a.Name < b.Name && a.Record.IsValid() && b.Record.IsValid() && a.Record.Overlaps(b.Record) {
						t.Fatalf("seed %d step %d: %s %s overlaps %s %s", seed, step, a.Name, a.Record, b.Name, b.Record)
					}
				}
			}
		}
	}
}

func BenchmarkPlan_1kNodes(b *testing.B) {
	cfg := Config{ClusterCIDR: pfx("10.0.0.0/8"), MaskSize: 24}
	var nodes []Node
	for i := range 1000 {
		n := Node{Name: fmt.Sprintf("n%04d", i), Registered: true}
		if i%2 == 0 {
			n.Record = cfg.subnet(i)
		}
		nodes = append(nodes, n)
	}
	b.ReportAllocs()
	for b.Loop() {
		Plan(cfg, nodes)
	}
}
