package podnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ensureVXLAN creates (or fixes) this node's VXLAN device: VNI, port,
// this node's address as local, learning off, the MAC derived from the
// address, its VTEP address (the pod subnet's network address, /32), up.
// A device of that name with other settings is replaced.
func (s *Syncer) ensureVXLAN() (netlink.Link, error) {
	parent, err := s.linkOf(s.cfg.IP)
	if err != nil {
		return nil, err
	}
	mac := VTEPMAC(s.cfg.IP)
	want := &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: s.cfg.VXLANDevice, HardwareAddr: mac, MTU: parent.Attrs().MTU - 50},
		VxlanId:   s.cfg.VNI, VtepDevIndex: parent.Attrs().Index, SrcAddr: net.IP(s.cfg.IP.AsSlice()),
		Port: s.cfg.VXLANPort, Learning: false,
	}
	cur, err := s.h.LinkByName(s.cfg.VXLANDevice)
	if err == nil {
		v, ok := cur.(*netlink.Vxlan)
		if !ok || v.VxlanId != want.VxlanId || v.Port != want.Port || !v.SrcAddr.Equal(want.SrcAddr) ||
			v.VtepDevIndex != want.VtepDevIndex || v.Learning || v.HardwareAddr.String() != mac.String() {
			s.log.Info("replacing the VXLAN device: its settings changed", "device", s.cfg.VXLANDevice)
			if err := s.h.LinkDel(cur); err != nil {
				return nil, fmt.Errorf("remove the VXLAN device %s: %w", s.cfg.VXLANDevice, err)
			}
			cur = nil
		}
	} else {
		cur = nil
	}
	if cur == nil {
		if err := s.h.LinkAdd(want); err != nil {
			return nil, fmt.Errorf("create the VXLAN device %s: %w", s.cfg.VXLANDevice, err)
		}
		if cur, err = s.h.LinkByName(s.cfg.VXLANDevice); err != nil {
			return nil, fmt.Errorf("VXLAN device %s: %w", s.cfg.VXLANDevice, err)
		}
		s.log.Info("VXLAN device created", "device", s.cfg.VXLANDevice, "vni", s.cfg.VNI, "port", s.cfg.VXLANPort,
			"local", s.cfg.IP, "mac", mac.String(), "parent", parent.Attrs().Name)
	}
	addr := &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(vtepAddr(s.cfg.PodCIDR), 32))}
	if err := s.h.AddrReplace(cur, addr); err != nil {
		return nil, fmt.Errorf("VXLAN device %s: address %s: %w", s.cfg.VXLANDevice, addr.IPNet, err)
	}
	// Any other address (a previous pod subnet) goes.
	if addrs, err := s.h.AddrList(cur, unix.AF_INET); err == nil {
		for _, a := range addrs {
			if !a.IPNet.IP.Equal(addr.IPNet.IP) {
				s.h.AddrDel(cur, &a)
			}
		}
	}
	if cur.Attrs().Flags&net.FlagUp == 0 {
		if err := s.h.LinkSetUp(cur); err != nil {
			return nil, fmt.Errorf("VXLAN device %s: up: %w", s.cfg.VXLANDevice, err)
		}
	}
	return cur, nil
}

// linkOf is the interface that carries ip.
func (s *Syncer) linkOf(ip netip.Addr) (netlink.Link, error) {
	links, err := s.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		addrs, err := s.h.AddrList(l, unix.AF_INET)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if a.IP.Equal(net.IP(ip.AsSlice())) {
				return l, nil
			}
		}
	}
	return nil, fmt.Errorf("node %s: no interface has its address %s (--node-ip): the VXLAN device needs it as local address", s.cfg.Node, ip)
}

// syncVXLANEntries makes the device's permanent neighbour entries (VTEP
// address -> MAC) and FDB entries (MAC -> node address) those of routes,
// and removes the others.
func (s *Syncer) syncVXLANEntries(vx netlink.Link, routes []Route) error {
	var errs []error
	idx := vx.Attrs().Index
	wantNeigh := map[string]string{} // ip -> mac
	wantFDB := map[string]string{}   // mac -> remote ip
	for _, r := range routes {
		mac := r.MAC.String()
		wantNeigh[r.Via.String()] = mac
		wantFDB[mac] = r.Remote.String()
		if err := s.h.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
			Type: unix.RTN_UNICAST, IP: net.IP(r.Via.AsSlice()), HardwareAddr: r.MAC}); err != nil {
			errs = append(errs, fmt.Errorf("node %s: neighbour %s %s: %w", r.Node, r.Via, mac, err))
		}
		if err := s.h.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
			Flags: netlink.NTF_SELF, IP: net.IP(r.Remote.AsSlice()), HardwareAddr: r.MAC}); err != nil {
			errs = append(errs, fmt.Errorf("node %s: fdb %s dst %s: %w", r.Node, mac, r.Remote, err))
		}
	}
	neighs, err := s.h.NeighList(idx, unix.AF_INET)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list neighbours of %s: %w", s.cfg.VXLANDevice, err))...)
	}
	for _, n := range neighs {
		if n.IP == nil || wantNeigh[n.IP.String()] != "" {
			continue
		}
		if err := s.h.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove neighbour %s: %w", n.IP, err))
		}
	}
	fdb, err := s.h.NeighList(idx, unix.AF_BRIDGE)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list fdb of %s: %w", s.cfg.VXLANDevice, err))...)
	}
	for _, n := range fdb {
		if n.IP == nil || wantFDB[n.HardwareAddr.String()] == n.IP.String() {
			continue
		}
		if err := s.h.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove fdb %s: %w", n.HardwareAddr, err))
		}
	}
	return errors.Join(errs...)
}

// removeVXLAN deletes the VXLAN device, if there is one (the backend is
// host-gw now, or cleanup); its routes, neighbours and FDB go with it.
func (s *Syncer) removeVXLAN() error {
	l, err := s.h.LinkByName(s.cfg.VXLANDevice)
	if err != nil {
		return nil
	}
	if _, ok := l.(*netlink.Vxlan); !ok {
		return nil // not ours
	}
	if err := s.h.LinkDel(l); err != nil {
		return fmt.Errorf("remove the VXLAN device %s: %w", s.cfg.VXLANDevice, err)
	}
	s.log.Info("VXLAN device removed", "device", s.cfg.VXLANDevice)
	return nil
}
