package podnet

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RouteProtocol marks the routes bosun installs (rtm_protocol 98; `ip
// route show proto 98`); with the realm of the agent's bridge, a Sync
// removes only routes it installed.
const RouteProtocol netlink.RouteProtocol = 98

// Defaults of Config.
const (
	DefaultVXLANDevice = "bosun.vxlan"
	DefaultVNI         = 1
	DefaultVXLANPort   = 8472
)

// Config says where this node is and what it owns.
type Config struct {
	// Node is this node's name, IP its InternalIP (the VXLAN local
	// address), PodCIDR its pod subnet. Required.
	Node    string
	IP      netip.Addr
	PodCIDR netip.Prefix
	// Bridge is the pod bridge (bosun0 by default in the agent): the
	// masquerade table (bosun-podnet-<bridge>) and the routes' realm
	// derive from it, so parallel agents on one machine never collide.
	// Required.
	Bridge string
	// VXLANDevice, VNI and VXLANPort configure the VXLAN backend; default
	// bosun.vxlan, 1 and 8472 (Linux's and flannel's port).
	VXLANDevice string
	VNI         int
	VXLANPort   int
	// NetNS is the network namespace to program; 0: the current one.
	NetNS netns.NsHandle
	// Logger; default discards.
	Logger *slog.Logger
}

func (c *Config) defaults() error {
	if c.Node == "" || c.Bridge == "" {
		return errors.New("podnet: node name and bridge are required")
	}
	if !c.IP.Is4() {
		return fmt.Errorf("podnet: node %s: address %q: want an IPv4 address (--node-ip)", c.Node, c.IP)
	}
	if !c.PodCIDR.IsValid() || !c.PodCIDR.Addr().Is4() {
		return fmt.Errorf("podnet: node %s: pod subnet %q: want an IPv4 prefix", c.Node, c.PodCIDR)
	}
	c.PodCIDR = c.PodCIDR.Masked()
	if c.VXLANDevice == "" {
		c.VXLANDevice = DefaultVXLANDevice
	}
	if len(c.VXLANDevice) > 15 {
		return fmt.Errorf("podnet: VXLAN device name %q: longer than 15 characters", c.VXLANDevice)
	}
	if c.VNI == 0 {
		c.VNI = DefaultVNI
	}
	if c.VXLANPort == 0 {
		c.VXLANPort = DefaultVXLANPort
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// TableName is the nftables table (family ip) that masquerades the pod
// traffic of the agent whose bridge is bridge.
func TableName(bridge string) string { return "bosun-podnet-" + bridge }

// Stats says what a Sync found and changed.
type Stats struct {
	Routes         int // routes to other nodes' subnets the kernel carries
	Added, Removed int // routes added or replaced, removed
	Local          int // nodes on this machine (no route needed)
}

// Syncer programs one node's routes, VXLAN device and masquerade table.
// Its methods are not safe for concurrent use.
type Syncer struct {
	cfg   Config
	log   *slog.Logger
	h     *netlink.Handle
	realm int
	masq  *masquerade
	// lastMasq is what the masquerade table holds (nil: unknown).
	lastMasq []netip.Prefix
}

// NewSyncer opens netlink in the configured namespace.
func NewSyncer(cfg Config) (*Syncer, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	var h *netlink.Handle
	var err error
	if cfg.NetNS > 0 {
		h, err = netlink.NewHandleAt(cfg.NetNS)
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("podnet: netlink: %w", err)
	}
	return &Syncer{cfg: cfg, log: cfg.Logger, h: h, realm: realmOf(cfg.Bridge),
		masq: &masquerade{table: TableName(cfg.Bridge), netns: int(cfg.NetNS)}}, nil
}

// Close releases the netlink handle; the kernel state stays.
func (s *Syncer) Close() { s.h.Close() }

// Sync makes the kernel carry c's routes, VXLAN entries and masquerade
// rules for this node, and removes the routes, entries and device of
// nodes no longer there. It is idempotent. The error joins what failed;
// everything else is done.
func (s *Syncer) Sync(c Cluster) (Stats, error) {
	plan, errs := Decide(s.cfg.Node, s.cfg.PodCIDR, c, s.isLocal)
	var st Stats
	st.Local = len(plan.Local)
	if err := s.forwarding(); err != nil {
		errs = append(errs, err)
	}
	var vx netlink.Link
	if plan.Backend == VXLAN {
		var err error
		if vx, err = s.ensureVXLAN(); err != nil {
			return st, errors.Join(append(errs, err)...)
		}
	} else if plan.Backend != HostGW {
		return st, fmt.Errorf("podnet: backend %q: want %s or %s", plan.Backend, HostGW, VXLAN)
	}
	want := map[netip.Prefix]Route{}
	for _, r := range plan.Routes {
		if plan.Backend == HostGW {
			if err := s.onLink(r); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		want[r.Dst] = r
	}
	installed, err := s.routes()
	if err != nil {
		return st, errors.Join(append(errs, err)...)
	}
	// Entries of the VXLAN device first, routes after: a route never
	// points at a VTEP the kernel cannot resolve.
	if vx != nil {
		if err := s.syncVXLANEntries(vx, plan.Routes); err != nil {
			errs = append(errs, err)
		}
	}
	for dst, r := range want {
		nr := s.route(r, vx)
		if cur, ok := installed[dst]; ok && sameRoute(cur, nr) {
			st.Routes++
			continue
		}
		if err := s.checkForeign(dst); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := s.h.RouteReplace(nr); err != nil {
			errs = append(errs, fmt.Errorf("node %s: route %s via %s: %w", r.Node, dst, r.Via, err))
			continue
		}
		st.Routes++
		st.Added++
		s.log.Info("route to a node's pods", "node", r.Node, "podCIDR", dst, "via", r.Via, "backend", plan.Backend)
	}
	keep := map[netip.Prefix]bool{}
	for _, p := range plan.Keep {
		keep[p] = true
	}
	for dst, cur := range installed {
		if _, ok := want[dst]; ok {
			continue
		}
		if keep[dst] {
			st.Routes++
			continue
		}
		if err := s.h.RouteDel(&cur); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("remove route %s: %w", dst, err))
			continue
		}
		st.Removed++
		s.log.Info("route removed: its node is gone", "podCIDR", dst)
	}
	if plan.Backend == HostGW {
		if err := s.removeVXLAN(); err != nil {
			errs = append(errs, err)
		}
	}
	if !slicesEqual(s.lastMasq, plan.NoMasquerade) || !s.masq.exists() {
		if err := s.masq.apply(s.cfg.PodCIDR, plan.NoMasquerade); err != nil {
			errs = append(errs, fmt.Errorf("masquerade table %s: %w", s.masq.table, err))
			s.lastMasq = nil
		} else {
			s.lastMasq = plan.NoMasquerade
		}
	}
	return st, errors.Join(errs...)
}

// Cleanup removes everything Sync installed: routes, the VXLAN device and
// the masquerade table. Missing pieces are not an error.
func (s *Syncer) Cleanup() error {
	var errs []error
	installed, err := s.routes()
	if err != nil {
		errs = append(errs, err)
	}
	for dst, r := range installed {
		if err := s.h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("remove route %s: %w", dst, err))
		}
	}
	if err := s.removeVXLAN(); err != nil {
		errs = append(errs, err)
	}
	if err := s.masq.remove(); err != nil {
		errs = append(errs, err)
	}
	s.lastMasq = nil
	return errors.Join(errs...)
}

// routes lists the routes this agent installed (protocol and realm), by
// destination.
func (s *Syncer) routes() (map[netip.Prefix]netlink.Route, error) {
	list, err := s.h.RouteListFiltered(unix.AF_INET, &netlink.Route{Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	out := map[netip.Prefix]netlink.Route{}
	for _, r := range list {
		if r.Realm != s.realm || r.Dst == nil {
			continue
		}
		if p, ok := prefixOf(r.Dst); ok {
			out[p] = r
		}
	}
	return out, nil
}

// route is the netlink route of r.
func (s *Syncer) route(r Route, vx netlink.Link) *netlink.Route {
	nr := &netlink.Route{
		Dst: ipNet(r.Dst), Gw: net.IP(r.Via.AsSlice()), Protocol: RouteProtocol, Realm: s.realm,
		Table: unix.RT_TABLE_MAIN, Scope: netlink.SCOPE_UNIVERSE,
	}
	if vx != nil {
		nr.LinkIndex = vx.Attrs().Index
		nr.Flags = int(netlink.FLAG_ONLINK)
	}
	return nr
}

func sameRoute(cur netlink.Route, want *netlink.Route) bool {
	return cur.Gw.Equal(want.Gw) && (want.LinkIndex == 0 || cur.LinkIndex == want.LinkIndex) &&
		(want.LinkIndex != 0 || cur.Flags&int(netlink.FLAG_ONLINK) == 0)
}

// onLink checks that a host-gw next hop is on one of this machine's
// segments: a route via it would need a router, which does not know the
// pod subnets.
func (s *Syncer) onLink(r Route) error {
	got, err := s.h.RouteGet(net.IP(r.Via.AsSlice()))
	if err != nil {
		return fmt.Errorf("node %s: no route to its address %s: %w", r.Node, r.Via, err)
	}
	for _, g := range got {
		if g.Gw != nil {
			return fmt.Errorf("node %s: its address %s is not on this node's network (reached through the router %s): the host-gw backend routes pod subnets only to nodes on one L2 segment; start the servers with --backend vxlan",
				r.Node, r.Via, g.Gw)
		}
	}
	return nil
}

// checkForeign refuses to replace a route to dst that is not bosun's (a
// connected route of another bridge, an operator's route).
func (s *Syncer) checkForeign(dst netip.Prefix) error {
	list, err := s.h.RouteListFiltered(unix.AF_INET, &netlink.Route{Dst: ipNet(dst), Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("list routes to %s: %w", dst, err)
	}
	for _, r := range list {
		if r.Protocol != RouteProtocol || r.Realm != s.realm {
			return fmt.Errorf("a route to %s that bosun did not install is there (%s): not replacing it", dst, r)
		}
	}
	return nil
}

// isLocal reports whether ip is one of this machine's addresses (a node
// on this machine: its bridge is here).
func (s *Syncer) isLocal(ip netip.Addr) bool {
	if ip.IsLoopback() {
		return true
	}
	got, err := s.h.RouteGet(net.IP(ip.AsSlice()))
	if err != nil {
		return false
	}
	for _, r := range got {
		if r.Type == unix.RTN_LOCAL {
			return true
		}
	}
	return false
}

// forwarding turns on net.ipv4.ip_forward in the namespace: nodes forward
// their pods' traffic.
func (s *Syncer) forwarding() error {
	return s.inNetns(func() error {
		const path = "/proc/sys/net/ipv4/ip_forward"
		b, err := os.ReadFile(path)
		if err == nil && strings.TrimSpace(string(b)) == "1" {
			return nil
		}
		if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("enable net.ipv4.ip_forward: %w", err)
		}
		s.log.Info("enabled net.ipv4.ip_forward")
		return nil
	})
}

// inNetns runs f on a thread in the configured namespace (when there is
// one). The thread is thrown away after: it is never returned to Go's
// pool in another namespace.
func (s *Syncer) inNetns(f func() error) error {
	if s.cfg.NetNS <= 0 {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := netns.Set(s.cfg.NetNS); err != nil {
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func slicesEqual(a, b []netip.Prefix) bool {
	if a == nil || len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// CleanupNode removes what the agent whose pod bridge is bridge installed
// in the current network namespace (`bosun agent --cleanup`): its routes,
// the VXLAN device (default name when "") and its masquerade table.
func CleanupNode(bridge, vxlanDevice string) error {
	if vxlanDevice == "" {
		vxlanDevice = DefaultVXLANDevice
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("podnet: netlink: %w", err)
	}
	defer h.Close()
	s := &Syncer{cfg: Config{Bridge: bridge, VXLANDevice: vxlanDevice}, log: slog.New(slog.DiscardHandler), h: h,
		realm: realmOf(bridge), masq: &masquerade{table: TableName(bridge)}}
	return s.Cleanup()
}
