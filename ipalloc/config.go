package ipalloc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Defaults, as in Kubernetes (kube-apiserver's --service-cluster-ip-range
// as kubeadm sets it, and --service-node-port-range).
var (
	DefaultServiceCIDR = netip.MustParsePrefix("10.96.0.0/16")
	DefaultNodePorts   = PortRange{First: 30000, Last: 32767}
)

// minServiceCIDRBits bounds the size of the service CIDR as the Kubernetes
// API server does (a /12 at most: about a million addresses).
const minServiceCIDRBits = 12

// maxServiceCIDRBits leaves at least one address to give once the network,
// first and broadcast addresses are set aside (a /30 has one).
const maxServiceCIDRBits = 30

// Config is the ranges the leader allocates from. The zero Config uses
// the defaults.
type Config struct {
	// ServiceCIDR is where ClusterIPs come from (--service-cidr); default
	// DefaultServiceCIDR. IPv4, between a /12 and a /30.
	ServiceCIDR netip.Prefix
	// NodePorts is where node ports come from (--node-port-range); default
	// DefaultNodePorts.
	NodePorts PortRange
}

// WithDefaults fills the zero fields with the defaults.
func (c Config) WithDefaults() Config {
	if !c.ServiceCIDR.IsValid() {
		c.ServiceCIDR = DefaultServiceCIDR
	}
	if c.NodePorts == (PortRange{}) {
		c.NodePorts = DefaultNodePorts
	}
	return c
}

// Validate checks a Config after WithDefaults.
func (c Config) Validate() error {
	p := c.ServiceCIDR
	switch {
	case !p.IsValid():
		return errors.New("service CIDR: not set")
	case !p.Addr().Is4():
		return fmt.Errorf("service CIDR %s: must be IPv4 (bosun serves IPv4 Services only)", p)
	case p != p.Masked():
		return fmt.Errorf("service CIDR %s: not a network address; did you mean %s?", p, p.Masked())
	case p.Bits() < minServiceCIDRBits:
		return fmt.Errorf("service CIDR %s: too large; a /%d at most, as in Kubernetes", p, minServiceCIDRBits)
	case p.Bits() > maxServiceCIDRBits:
		return fmt.Errorf("service CIDR %s: too small; a /%d at least", p, maxServiceCIDRBits)
	}
	r := c.NodePorts
	if r.First < 1 || r.Last > 65535 || r.First > r.Last {
		return fmt.Errorf("node port range %s: want FIRST-LAST within 1-65535", r)
	}
	return nil
}

// ParseServiceCIDR reads --service-cidr.
func ParseServiceCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("service CIDR %q: want an IPv4 network such as %s", s, DefaultServiceCIDR)
	}
	return p, Config{ServiceCIDR: p, NodePorts: DefaultNodePorts}.Validate()
}

// PortRange is an inclusive range of ports.
type PortRange struct{ First, Last int32 }

// ParsePortRange reads "FIRST-LAST", as Kubernetes' --service-node-port-range.
func ParsePortRange(s string) (PortRange, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	first, err1 := strconv.ParseInt(a, 10, 32)
	last, err2 := strconv.ParseInt(b, 10, 32)
	r := PortRange{First: int32(first), Last: int32(last)}
	if !ok || err1 != nil || err2 != nil || r.First < 1 || r.Last > 65535 || r.First > r.Last {
		return PortRange{}, fmt.Errorf("node port range %q: want FIRST-LAST within 1-65535, such as %s", s, DefaultNodePorts)
	}
	return r, nil
}

// String renders "FIRST-LAST".
func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// Contains reports whether p is in the range.
func (r PortRange) Contains(p int32) bool { return p >= r.First && p <= r.Last }

// size is how many ports the range holds.
func (r PortRange) size() int { return int(r.Last-r.First) + 1 }

// The addresses of the service CIDR that are never given: its network
// address, its broadcast address (as Kubernetes' allocator sets both aside
// for IPv4), and its first address, which Kubernetes gives to the
// `kubernetes` Service (the API server). bosun has no such Service today;
// keeping the address free lets one come without moving anyone, and keeps
// manifests written for Kubernetes from taking an address no Kubernetes
// cluster would give them. The usable addresses are network+2 to
// broadcast-1.
const reservedLow = 2 // network and first address

// pool is the usable addresses of a service CIDR as offsets: address(o)
// for o in [0, n).
type pool struct {
	base uint32 // network address + reservedLow
	n    uint32
}

func newPool(p netip.Prefix) pool {
	b := p.Addr().As4()
	size := uint64(1) << (32 - p.Bits())
	return pool{base: binary.BigEndian.Uint32(b[:]) + reservedLow, n: uint32(size - reservedLow - 1)}
}

func (pl pool) addr(o uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], pl.base+o)
	return netip.AddrFrom4(b)
}

// check says why a can never be a ClusterIP under cfg, or "".
func (c Config) check(a netip.Addr) string {
	p := c.ServiceCIDR
	switch {
	case !a.Is4():
		return "must be an IPv4 address"
	case !p.Contains(a):
		return fmt.Sprintf("%s is outside the service CIDR %s (--service-cidr)", a, p)
	case a == p.Addr():
		return fmt.Sprintf("%s is the network address of the service CIDR %s; it is never given", a, p)
	case a == p.Addr().Next():
		return fmt.Sprintf("%s is reserved: the first address of the service CIDR %s is kept free, as Kubernetes keeps it for the kubernetes Service", a, p)
	case a == lastAddr(p):
		return fmt.Sprintf("%s is the broadcast address of the service CIDR %s; it is never given", a, p)
	}
	return ""
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	v := binary.BigEndian.Uint32(b[:]) | (uint32(1)<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}
