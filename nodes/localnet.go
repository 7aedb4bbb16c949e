package nodes

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The node's loopback addresses, guarded from its pods (CVE-2020-8558's
// class, kube-proxy's mitigation).
//
// The CNI portmap plugin, chained with snat for hostPorts (hostnet.go),
// sets net.ipv4.conf.<bridge>.route_localnet=1 so that a connection from
// the node to 127.0.0.1:<hostPort>, DNATed to a pod, can leave through
// the bridge and its replies come back. It never resets it, and with it
// the kernel also routes to the host a packet that arrives on the bridge
// for 127.0.0.0/8: a pod that forges one (CAP_NET_RAW, or a route of its
// own) reaches whatever listens only on the node's loopback (etcd's
// plain-text client port, the API). The agent therefore owns one nftables
// table per bridge, installed whenever it builds its bridge network
// (newNetwork), hostPorts or not, and kept across agent restarts (pods
// keep running):
//
//	table ip bosun-localnet-<bridge> {
//		chain prerouting {
//			type filter hook prerouting priority filter;
//			iifname "<bridge>" ip daddr 127.0.0.0/8 ct status dnat accept
//			iifname "<bridge>" ip daddr 127.0.0.0/8 counter drop
//		}
//	}
//
// At priority filter the NAT of prerouting is done: a pod's packet to
// 127.0.0.1:<hostPort> has been DNATed to its pod already (it no longer
// goes to 127/8), and the reply to the node's own connection to
// 127.0.0.1:<hostPort> (portmap's masquerade undone) goes to 127.0.0.1 on
// a connection that was DNATed: accepted. Anything else from the bridge
// to 127/8, untracked packets included, is dropped. Hairpin traffic goes
// to the node's or the pod's address, never to 127/8. `bosun reset` and
// `bosun agent --cleanup` remove the table (CleanupLocalnet).

// LocalnetTable is the nftables table (family ip) guarding the node's
// 127.0.0.0/8 from the pods on bridge.
func LocalnetTable(bridge string) string { return "bosun-localnet-" + bridge }

// ipsDstNAT is the conntrack status bit of a DNATed connection
// (IPS_DST_NAT).
const ipsDstNAT = 1 << 5

// installLocalnetGuard writes the table for bridge, whole and in one
// batch (add, delete, add: the kernel applies it atomically).
func installLocalnetGuard(bridge string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Name: LocalnetTable(bridge), Family: nftables.TableFamilyIPv4}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	ch := c.AddChain(&nftables.Chain{
		Name: "prerouting", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityFilter,
	})
	fromBridgeToLoopback := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(bridge)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{127, 0, 0, 0}},
	}
	dnat := append(append([]expr.Any{}, fromBridgeToLoopback...),
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Verdict{Kind: expr.VerdictAccept},
	)
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: dnat})
	drop := append(append([]expr.Any{}, fromBridgeToLoopback...), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: drop})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table %s: %w", t.Name, err)
	}
	return nil
}

// CleanupLocalnet removes the table guarding the node's loopback from the
// pods on bridge (none: nothing to do). Only for a node that is reset:
// while its pods live, the table must stay.
func CleanupLocalnet(bridge string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return fmt.Errorf("nftables: list tables: %w", err)
	}
	name := LocalnetTable(bridge)
	for _, t := range tables {
		if t.Name == name {
			c.DelTable(t)
			if err := c.Flush(); err != nil {
				return fmt.Errorf("remove nftables table %s: %w", name, err)
			}
			return nil
		}
	}
	return nil
}

// ifname is an interface name as nftables compares it (IFNAMSIZ bytes,
// zero-padded).
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}
