package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The applier: turns the model's values into google/nftables calls, which
// queue netlink messages on a Conn until Flush sends them as one batch
// (one transaction). No rule text is ever built: every expression is a
// struct the library marshals.

var (
	typeAddrProtoPort = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	typeProtoPort     = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
)

// batch queues the messages of one transaction.
type batch struct {
	conn  *nftables.Conn
	table *nftables.Table
	// nextID numbers the sets created in a batch; the kernel resolves an
	// anonymous set by this id (google/nftables' own counter is a global
	// shared by every Conn of the process).
	nextID *uint32
}

func (b *batch) id() uint32 {
	*b.nextID++
	if *b.nextID == 0 {
		*b.nextID++
	}
	return *b.nextID
}

func (b *batch) chain(name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: b.table}
}

func (b *batch) set(s *Set) *nftables.Set {
	ns := &nftables.Set{Table: b.table, Name: s.Name, ID: b.id()}
	switch s.Key {
	case KeyAddrProtoPort:
		ns.KeyType = typeAddrProtoPort
	case KeyProtoPort:
		ns.KeyType = typeProtoPort
	case KeyAddr:
		ns.KeyType = nftables.TypeIPAddr
	case KeySlot:
		ns.KeyType = nftables.TypeInteger
		ns.KeyByteOrder = binaryutil.BigEndian
		ns.Interval = s.Interval
	}
	if s.Map {
		ns.IsMap = true
		ns.DataType = nftables.TypeVerdict
	}
	if s.Timeout > 0 {
		ns.HasTimeout = true
		ns.Dynamic = true
		ns.Timeout = s.Timeout
	}
	return ns
}

// setRef names an existing set (or one added earlier in the batch) for
// element changes.
func (b *batch) setRef(name string) *nftables.Set {
	return &nftables.Set{Table: b.table, Name: name}
}

func (b *batch) addSet(s *Set) error {
	if err := b.conn.AddSet(b.set(s), nil); err != nil {
		return fmt.Errorf("set %s: %w", s.Name, err)
	}
	return nil
}

func (b *batch) addChain(c *Chain) {
	nc := b.chain(c.Name)
	if c.Base != nil {
		nc.Type = nftables.ChainType(c.Base.Type)
		nc.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(c.Base.Priority))
		switch c.Base.Hook {
		case "prerouting":
			nc.Hooknum = nftables.ChainHookPrerouting
		case "input":
			nc.Hooknum = nftables.ChainHookInput
		case "forward":
			nc.Hooknum = nftables.ChainHookForward
		case "output":
			nc.Hooknum = nftables.ChainHookOutput
		case "postrouting":
			nc.Hooknum = nftables.ChainHookPostrouting
		}
	}
	b.conn.AddChain(nc)
}

func (b *batch) addRules(c *Chain) error {
	for i := range c.Rules {
		if err := b.addRule(c.Name, &c.Rules[i]); err != nil {
			return fmt.Errorf("chain %s rule %d: %w", c.Name, i, err)
		}
	}
	return nil
}

func (b *batch) elements(m string, elems []Element) []nftables.SetElement {
	out := make([]nftables.SetElement, len(elems))
	for i, e := range elems {
		out[i] = nftables.SetElement{Key: elementKey(e), VerdictData: verdictExpr(e.Verdict)}
	}
	return out
}

// maxElemBytes bounds the elements of one message: their list is one
// netlink attribute, whose length is 16 bits.
const maxElemBytes = 48 << 10

// elemChunks splits elements so that each chunk fits one message.
func elemChunks(elems []Element) [][]Element {
	var out [][]Element
	start, size := 0, 0
	for i, e := range elems {
		n := 64 + len(e.Verdict.Chain) // key, verdict and attribute headers
		if size+n > maxElemBytes && i > start {
			out = append(out, elems[start:i])
			start, size = i, 0
		}
		size += n
	}
	return append(out, elems[start:])
}

func (b *batch) addElements(m string, elems []Element) error {
	if len(elems) == 0 {
		return nil
	}
	for _, c := range elemChunks(elems) {
		if err := b.conn.SetAddElements(b.setRef(m), b.elements(m, c)); err != nil {
			return fmt.Errorf("map %s: %w", m, err)
		}
	}
	return nil
}

func (b *batch) deleteElements(m string, elems []Element) error {
	if len(elems) == 0 {
		return nil
	}
	for _, c := range elemChunks(elems) {
		if err := b.conn.SetDeleteElements(b.setRef(m), b.elements(m, c)); err != nil {
			return fmt.Errorf("map %s: %w", m, err)
		}
	}
	return nil
}

// elementKey lays an element's key out as the kernel compares it: each
// part of a concatenation padded to 4 bytes, ports in network order.
func elementKey(e Element) []byte {
	var k []byte
	if e.Addr.IsValid() {
		a := e.Addr.As4()
		k = append(k, a[:]...)
	}
	k = append(k, byte(e.Proto), 0, 0, 0)
	k = binary.BigEndian.AppendUint16(k, e.Port)
	return append(k, 0, 0)
}

func verdictExpr(v Verdict) *expr.Verdict {
	switch v.Kind {
	case VerdictJump:
		return &expr.Verdict{Kind: expr.VerdictJump, Chain: v.Chain}
	case VerdictGoto:
		return &expr.Verdict{Kind: expr.VerdictGoto, Chain: v.Chain}
	default:
		return &expr.Verdict{Kind: expr.VerdictReturn}
	}
}

// Registers as nft uses them: reg 1 is the first 16-byte register, reg32
// 9 and 10 the 4-byte registers after its first 4 bytes (so that a
// concatenated key is laid out contiguously from reg 1).
const (
	reg1  = unix.NFT_REG_1
	reg9  = unix.NFT_REG32_01
	reg10 = unix.NFT_REG32_02
)

func native32(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }

func loadDaddr(reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
}

func loadSaddr(reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
}

func loadDport(reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
}

func ip4(a netip.Addr) []byte { b := a.As4(); return b[:] }

func (b *batch) addRule(chain string, r *Rule) error {
	var ex []expr.Any
	if r.CTStateNew {
		ex = append(ex,
			&expr.Ct{Register: reg1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native32(expr.CtStateBitNEW), Xor: native32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: native32(0)})
	}
	if r.FibDaddrLocal {
		ex = append(ex,
			&expr.Fib{Register: reg1, ResultADDRTYPE: true, FlagDADDR: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: native32(unix.RTN_LOCAL)},
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: []byte{127}})
	}
	if r.L4Proto != 0 {
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{byte(r.L4Proto)}})
	}
	if r.SaddrIs.IsValid() {
		ex = append(ex, loadSaddr(reg1), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: ip4(r.SaddrIs)})
	}
	if r.DaddrIsNot.IsValid() {
		ex = append(ex, loadDaddr(reg1), &expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: ip4(r.DaddrIsNot)})
	}
	if r.SaddrInSet != "" {
		ex = append(ex, loadSaddr(reg1), &expr.Lookup{SourceRegister: reg1, SetName: r.SaddrInSet})
	}
	if r.MarkClear != 0 {
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native32(r.MarkClear), Xor: native32(0)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: native32(0)})
	}

	actions := 0
	if r.Verdict != nil {
		actions++
		ex = append(ex, verdictExpr(*r.Verdict))
	}
	if r.VMap != nil {
		actions++
		switch r.VMap.Key {
		case KeyAddrProtoPort:
			ex = append(ex, loadDaddr(reg1), &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg9}, loadDport(reg10))
		case KeyProtoPort:
			ex = append(ex, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}, loadDport(reg9))
		default:
			return fmt.Errorf("vmap key %q not supported", r.VMap.Key)
		}
		ex = append(ex, &expr.Lookup{SourceRegister: reg1, SetName: r.VMap.Map, IsDestRegSet: true, DestRegister: unix.NFT_REG_VERDICT})
	}
	if r.Numgen != nil {
		actions++
		e, err := b.numgen(r.Numgen)
		if err != nil {
			return err
		}
		ex = append(ex, e...)
	}
	if r.MarkOr != 0 {
		actions++
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native32(^r.MarkOr), Xor: native32(r.MarkOr)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1})
	}
	if r.MarkXor != 0 {
		actions++
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native32(^uint32(0)), Xor: native32(r.MarkXor)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1})
	}
	if r.Masquerade {
		actions++
		ex = append(ex, &expr.Masq{FullyRandom: true})
	}
	if r.Reject != "" {
		actions++
		switch r.Reject {
		case RejectTCPReset:
			ex = append(ex, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
		case RejectPortUnreachable:
			ex = append(ex, &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 3 /* port unreachable */})
		default:
			return fmt.Errorf("reject %q not supported", r.Reject)
		}
	}
	if r.UpdateSet != "" {
		actions++
		ex = append(ex, loadSaddr(reg1), &expr.Dynset{SrcRegKey: reg1, SetName: r.UpdateSet, Operation: unix.NFT_DYNSET_OP_UPDATE})
	}
	if r.DNAT.IsValid() {
		actions++
		ex = append(ex,
			&expr.Immediate{Register: reg1, Data: ip4(r.DNAT.Addr())},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(r.DNAT.Port())},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1, RegProtoMin: 2, Specified: true})
	}
	if actions != 1 {
		return errors.New("a rule needs exactly one action")
	}
	b.conn.AddRule(&nftables.Rule{Table: b.table, Chain: b.chain(chain), Exprs: ex})
	return nil
}

// numgen encodes `numgen random mod N vmap @slots-<port>`. The number is
// converted to network order before the lookup, as nft does for interval
// maps (their keys compare as big-endian bytes).
//
// The slot map is a named map of the service port rather than an anonymous
// one written inside the rule as kube-proxy does: the kernel binds each
// anonymous set to its rule by scanning the whole transaction, which made
// a full rebuild at 1,000 Services quadratic (78% of its time).
func (b *batch) numgen(n *Numgen) ([]expr.Any, error) {
	if n.Modulus == 0 || n.Map == "" {
		return nil, errors.New("numgen without modulus or map")
	}
	return []expr.Any{
		&expr.Numgen{Register: reg1, Modulus: n.Modulus, Type: unix.NFT_NG_RANDOM},
		&expr.Byteorder{SourceRegister: reg1, DestRegister: reg1, Op: expr.ByteorderHton, Len: 4, Size: 4},
		&expr.Lookup{SourceRegister: reg1, SetName: n.Map, IsDestRegSet: true, DestRegister: unix.NFT_REG_VERDICT},
	}, nil
}

// addSlots adds a slot map's elements: each slot's first value and, in an
// interval map, the value after its last (flagged as the interval's end,
// as nft writes a named interval map).
func (b *batch) addSlots(s *Set) error {
	if len(s.Slots) == 0 {
		return nil
	}
	elems := make([]nftables.SetElement, 0, 2*len(s.Slots))
	for _, sl := range s.Slots {
		elems = append(elems, nftables.SetElement{Key: binaryutil.BigEndian.PutUint32(sl.From), VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: sl.Goto}})
		if s.Interval {
			elems = append(elems, nftables.SetElement{Key: binaryutil.BigEndian.PutUint32(sl.To + 1), IntervalEnd: true})
		}
	}
	for start := 0; start < len(elems); {
		// Keep each message's element list under the 64 KiB attribute
		// limit (the end element carries no chain).
		n, size := 0, 0
		for start+n < len(elems) && (n == 0 || size+elemSize(&elems[start+n]) <= maxElemBytes) {
			size += elemSize(&elems[start+n])
			n++
		}
		if err := b.conn.SetAddElements(b.setRef(s.Name), elems[start:start+n]); err != nil {
			return fmt.Errorf("map %s: %w", s.Name, err)
		}
		start += n
	}
	return nil
}

func elemSize(e *nftables.SetElement) int {
	if e.VerdictData == nil {
		return 64
	}
	return 64 + len(e.VerdictData.Chain)
}
