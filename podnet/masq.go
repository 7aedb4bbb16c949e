package podnet

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// masquerade owns one nftables table (family ip) whose postrouting chain
// masquerades this node's pod traffic to anywhere but the cluster: the
// cluster CIDR and every node's subnet keep their source address, so pods
// see each other's real addresses across nodes.
//
//	table ip bosun-podnet-<bridge> {
//		chain postrouting {
//			type nat hook postrouting priority srcnat;
//			ip saddr != <pod subnet> return
//			ip daddr <cluster CIDR> return
//			ip daddr <each node subnet outside it> return
//			masquerade
//		}
//	}
//
// The table is rewritten whole, in one netlink batch (add, delete, add:
// the kernel applies it atomically), only when what it should hold
// changes.
type masquerade struct {
	table string
	netns int // 0: current
}

func (m *masquerade) conn() (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if m.netns > 0 {
		opts = append(opts, nftables.WithNetNSFd(m.netns))
	}
	return nftables.New(opts...)
}

func (m *masquerade) exists() bool {
	c, err := m.conn()
	if err != nil {
		return false
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return false
	}
	for _, t := range tables {
		if t.Name == m.table {
			return true
		}
	}
	return false
}

func (m *masquerade) apply(pods netip.Prefix, keep []netip.Prefix) error {
	c, err := m.conn()
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: m.table, Family: nftables.TableFamilyIPv4}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	ch := c.AddChain(&nftables.Chain{
		Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: matchAddr(12, pods, true, &expr.Verdict{Kind: expr.VerdictReturn})})
	for _, p := range keep {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: matchAddr(16, p, false, &expr.Verdict{Kind: expr.VerdictReturn})})
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{&expr.Counter{}, &expr.Masq{}}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

func (m *masquerade) remove() error {
	if !m.exists() {
		return nil
	}
	c, err := m.conn()
	if err != nil {
		return err
	}
	c.DelTable(&nftables.Table{Name: m.table, Family: nftables.TableFamilyIPv4})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("remove nftables table %s: %w", m.table, err)
	}
	return nil
}

// matchAddr matches the IPv4 source (offset 12) or destination (16)
// address against p (negated: not in p), then v.
func matchAddr(offset uint32, p netip.Prefix, negate bool, v *expr.Verdict) []expr.Any {
	op := expr.CmpOpEq
	if negate {
		op = expr.CmpOpNeq
	}
	mask := net.CIDRMask(p.Bits(), 32)
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: op, Register: 1, Data: p.Masked().Addr().AsSlice()},
		v,
	}
}
