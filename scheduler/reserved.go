package scheduler

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// AnnotationReservedHostPorts, on a Node, lists the ports bosun itself
// listens on at that machine (its ingress proxy, DNS, API, etcd...): no
// pod is given one of them as a host port. The node's agent writes it at
// every registration, from its own configuration; the scheduler reads it
// through NodeOf. Its spelling is FormatReservedPorts'.
const AnnotationReservedHostPorts = "bosun.dev/reserved-host-ports"

// ReasonHostPortReserved is the status reason of a pod a node's agent
// refused for good because it asks one of the node's reserved ports (one
// bound there without the scheduler: by nodeName, or by an older leader).
const ReasonHostPortReserved = "HostPortReserved"

// ReservedPort is a port a listener of bosun takes on a node: HostPort
// (Protocol, HostIP with "0.0.0.0" for every address, Port) and Holder,
// a short name of what listens there ("ingress", "dns", "api"...).
type ReservedPort struct {
	HostPort
	Holder string
}

// String is the port's spelling in the annotation:
// PROTOCOL/ADDRESS:PORT=HOLDER, such as "TCP/0.0.0.0:80=ingress" or
// "UDP/[fd00::1]:53=dns" (no "=HOLDER" when Holder is empty).
func (r ReservedPort) String() string {
	h := r.HostPort.norm()
	addr := h.HostIP + ":" + strconv.Itoa(int(h.Port)) // not an address: ParseReservedPort refuses it
	if a, err := netip.ParseAddr(h.HostIP); err == nil && h.Port > 0 && h.Port <= 65535 {
		addr = netip.AddrPortFrom(a, uint16(h.Port)).String()
	}
	s := string(h.Protocol) + "/" + addr
	if r.Holder != "" {
		s += "=" + r.Holder
	}
	return s
}

// ParseReservedPort reads one listener's port as ReservedPort.String
// spells it, after checking it as ParseReservedPorts does.
func ParseReservedPort(s string) (ReservedPort, error) {
	protocol, rest, ok := strings.Cut(s, "/")
	if !ok {
		return ReservedPort{}, fmt.Errorf("%s: want PROTOCOL/ADDRESS:PORT[=HOLDER], like TCP/0.0.0.0:80=ingress", quoteShort(s))
	}
	switch corev1.Protocol(protocol) {
	case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
	default:
		return ReservedPort{}, fmt.Errorf("%s: protocol %s: want TCP, UDP or SCTP", quoteShort(s), quoteShort(protocol))
	}
	addrPort, holder, hasHolder := strings.Cut(rest, "=")
	ap, err := netip.ParseAddrPort(addrPort)
	if err != nil {
		return ReservedPort{}, fmt.Errorf("%s: %s: want ADDRESS:PORT, an IP address ([brackets] around IPv6) and a port", quoteShort(s), quoteShort(addrPort))
	}
	if ap.Addr().Zone() != "" {
		return ReservedPort{}, fmt.Errorf("%s: address %s: no zone allowed", quoteShort(s), quoteShort(ap.Addr().String()))
	}
	if ap.Port() == 0 {
		return ReservedPort{}, fmt.Errorf("%s: port 0: want 1 to 65535", quoteShort(s))
	}
	if hasHolder {
		if err := checkHolder(holder); err != nil {
			return ReservedPort{}, fmt.Errorf("%s: %w", quoteShort(s), err)
		}
	}
	hp := HostPort{Protocol: corev1.Protocol(protocol), HostIP: ap.Addr().String(), Port: int32(ap.Port())}
	return ReservedPort{HostPort: hp.norm(), Holder: holder}, nil
}

// checkHolder accepts a holder name: 1 to 63 lower-case letters, digits
// and '-', as a DNS label.
func checkHolder(h string) error {
	if h == "" || len(h) > 63 {
		return fmt.Errorf("holder %s: want 1 to 63 of a-z, 0-9 and -", quoteShort(h))
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("holder %s: want 1 to 63 of a-z, 0-9 and -", quoteShort(h))
		}
	}
	return nil
}

// CheckReservedPort checks a port as the annotation takes it (a known
// protocol, "" meaning TCP; an IP address, "" meaning every one; a port
// of 1 to 65535; a holder name) and returns it normalized (HostPort's
// defaults and spelling).
func CheckReservedPort(r ReservedPort) (ReservedPort, error) {
	if r.Port <= 0 || r.Port > 65535 {
		return ReservedPort{}, fmt.Errorf("%s listener: port %d: want 1 to 65535", r.Holder, r.Port)
	}
	if r.HostIP != "" {
		if a, err := netip.ParseAddr(r.HostIP); err != nil || a.Zone() != "" {
			return ReservedPort{}, fmt.Errorf("%s listener: address %s: not an IP address", r.Holder, quoteShort(r.HostIP))
		}
	}
	r.HostPort = r.HostPort.norm()
	return ParseReservedPort(r.String())
}

// FormatReservedPorts is the annotation's value for ports: their String
// forms, sorted, each once, comma-separated ("" for none). Sorted so that
// the same listeners always give the same value.
func FormatReservedPorts(ports []ReservedPort) string {
	out := make([]string, 0, len(ports))
	for _, p := range ports {
		out = append(out, p.String())
	}
	slices.Sort(out)
	return strings.Join(slices.Compact(out), ",")
}

// The annotation's limits: a value past them is an error (the node that
// wrote it is then unreadable, which keeps hostPort pods off that node
// only), so a node cannot make every scheduling pass parse megabytes.
const (
	MaxReservedPorts      = 256     // entries
	MaxReservedPortsBytes = 8 << 10 // bytes of the value
)

// ParseReservedPorts reads the annotation's value strictly: entries as
// ReservedPort.String spells them, comma-separated, no spaces, at most
// MaxReservedPorts of them in at most MaxReservedPortsBytes; "" is none.
// The error names the entry (by its position) and what is wrong; it
// quotes at most 64 bytes of it.
func ParseReservedPorts(s string) ([]ReservedPort, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) > MaxReservedPortsBytes {
		return nil, fmt.Errorf("%s: %d bytes: at most %d", AnnotationReservedHostPorts, len(s), MaxReservedPortsBytes)
	}
	if n := strings.Count(s, ",") + 1; n > MaxReservedPorts {
		return nil, fmt.Errorf("%s: %d entries: at most %d", AnnotationReservedHostPorts, n, MaxReservedPorts)
	}
	entries := strings.Split(s, ",")
	out := make([]ReservedPort, 0, len(entries))
	for i, e := range entries {
		r, err := ParseReservedPort(e)
		if err != nil {
			return nil, fmt.Errorf("%s: entry %d: %w", AnnotationReservedHostPorts, i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// ReservedPortsOf reads the node's AnnotationReservedHostPorts (none when
// absent).
func ReservedPortsOf(n *corev1.Node) ([]ReservedPort, error) {
	v, ok := n.Annotations[AnnotationReservedHostPorts]
	if !ok {
		return nil, nil
	}
	ports, err := ParseReservedPorts(v)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	return ports, nil
}

// ReservedConflict returns the first of ports that a pod's host port p
// conflicts with (HostPort.Conflicts); ok false when none does.
func ReservedConflict(ports []ReservedPort, p HostPort) (ReservedPort, bool) {
	for _, r := range ports {
		if p.Conflicts(r.HostPort) {
			return r, true
		}
	}
	return ReservedPort{}, false
}

// quoteShort quotes s, cut to 64 bytes: an error about a malformed value
// stays readable however long the value is.
func quoteShort(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}
