package nodes

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/scheduler"
	"bosun/store"
)

// Ports bosun itself listens on, at this node (issue 13): a hostPort is a
// DNAT rule of the CNI portmap plugin, which runs before the local socket,
// so a pod given one of them would take that listener's traffic (a
// hostPort 53/UDP pod would answer every pod's DNS). The agent publishes
// them on its Node (scheduler.AnnotationReservedHostPorts), where the
// scheduler counts them as taken, and refuses a pod bound here with one
// anyway (one placed by an older leader, or by spec.nodeName).

// Holder names of bosun's listeners, as the reserved ports carry them.
const (
	HolderIngress    = "ingress"     // --ingress-listen
	HolderIngressTLS = "ingress-tls" // --ingress-tls-listen
	HolderDNS        = "dns"         // --dns-listen
	HolderPodDNS     = "pod-dns"     // the pods' nameserver (Config.PodDNS)
	HolderAPI        = "api"         // --api-listen
	HolderWebhook    = "webhook"     // --webhook-listen
	HolderEtcd       = "etcd"        // --etcd-listen
	HolderEtcdPeer   = "etcd-peer"   // --etcd-peer-listen
	HolderAgent      = "agent"       // the agent's --listen (logs, metrics)
	HolderPprof      = "pprof"       // --pprof-listen
)

// holderNames say what each holder is, for a refused pod's message.
var holderNames = map[string]string{
	HolderIngress:    "bosun's ingress listener (--ingress-listen)",
	HolderIngressTLS: "bosun's ingress TLS listener (--ingress-tls-listen)",
	HolderDNS:        "bosun's cluster DNS (--dns-listen)",
	HolderPodDNS:     "bosun's cluster DNS for this node's pods (their nameserver)",
	HolderAPI:        "bosun's API (--api-listen)",
	HolderWebhook:    "bosun's webhook listener (--webhook-listen)",
	HolderEtcd:       "bosun's etcd client listener (--etcd-listen)",
	HolderEtcdPeer:   "bosun's etcd peer listener (--etcd-peer-listen)",
	HolderAgent:      "bosun agent's logs and metrics listener (--listen)",
	HolderPprof:      "bosun's profiling listener (--pprof-listen)",
}

func holderName(h string) string {
	if n, ok := holderNames[h]; ok {
		return n
	}
	return "bosun's " + h + " listener"
}

// ListenerPorts are the ports a listener of bosun on addr (host:port, as
// its flag takes it) reserves, one per protocol (TCP when none is given).
// An empty host, an unspecified address or a host name reserves the port
// on every address (a name may stand for any of them); port 0 (the system
// picks one) reserves nothing.
func ListenerPorts(holder, addr string, protocols ...corev1.Protocol) ([]scheduler.ReservedPort, error) {
	if addr == "" {
		return nil, nil
	}
	host, portS, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener %q: %w", holder, addr, err)
	}
	port, err := strconv.ParseUint(portS, 10, 16)
	if err != nil {
		p, lerr := net.LookupPort("tcp", portS)
		if lerr != nil {
			return nil, fmt.Errorf("%s listener %q: port %q: %w", holder, addr, portS, lerr)
		}
		port = uint64(p)
	}
	if port == 0 {
		return nil, nil
	}
	if a, err := netip.ParseAddr(host); err != nil || a.Zone() != "" {
		host = "" // a name, or a zone: every address
	}
	if len(protocols) == 0 {
		protocols = []corev1.Protocol{corev1.ProtocolTCP}
	}
	out := make([]scheduler.ReservedPort, 0, len(protocols))
	for _, p := range protocols {
		r, err := scheduler.CheckReservedPort(scheduler.ReservedPort{
			HostPort: scheduler.HostPort{Protocol: p, HostIP: host, Port: int32(port)}, Holder: holder})
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// checkReservedPorts checks and normalizes Config.ReservedPorts.
func (c *Config) checkReservedPorts() error {
	c.ReservedPorts = slices.Clone(c.ReservedPorts)
	for i, r := range c.ReservedPorts {
		n, err := scheduler.CheckReservedPort(r)
		if err != nil {
			return fmt.Errorf("reserved ports: %w", err)
		}
		c.ReservedPorts[i] = n
	}
	// What the node publishes must read back (the scheduler's limits,
	// which a handful of listeners are far from).
	if _, err := scheduler.ParseReservedPorts(scheduler.FormatReservedPorts(c.ReservedPorts)); err != nil {
		return fmt.Errorf("reserved ports: %d listener ports: %w", len(c.ReservedPorts), err)
	}
	return nil
}

// reservedPorts are the ports bosun listens on at this node: the
// configured ones, and the pods' nameserver's port 53 once its address is
// known (Config.PodDNS).
func (a *Agent) reservedPorts() []scheduler.ReservedPort {
	out := slices.Clone(a.cfg.ReservedPorts)
	if a.cfg.PodDNS && a.cfg.DNSServer != "" {
		for _, p := range []corev1.Protocol{corev1.ProtocolUDP, corev1.ProtocolTCP} {
			out = append(out, scheduler.ReservedPort{
				HostPort: scheduler.HostPort{Protocol: p, HostIP: a.cfg.DNSServer, Port: 53}, Holder: HolderPodDNS})
		}
	}
	return out
}

// annotateReservedPorts writes the node's reserved ports on n (nothing
// when there are none).
func (a *Agent) annotateReservedPorts(n *corev1.Node) {
	v := scheduler.FormatReservedPorts(a.reservedPorts())
	if v == "" {
		return
	}
	if n.Annotations == nil {
		n.Annotations = map[string]string{}
	}
	n.Annotations[scheduler.AnnotationReservedHostPorts] = v
}

// ReasonHostPortReserved is the status reason of a pod refused for a
// host port bosun itself listens on at this node (admitReservedPorts).
const ReasonHostPortReserved = scheduler.ReasonHostPortReserved

// admissionError refuses a pod for good on this node, as kubelet's
// admission does: the pod can never start here, so it fails (phase
// Failed, with Reason) instead of waiting, and its owner replaces it.
type admissionError struct {
	Reason  string
	Message string
}

func (e *admissionError) Error() string { return e.Reason + ": " + e.Message }

// admitReservedPorts refuses ports of which one is bosun's own at this
// node, saying which and what listens there. That listener does not go
// away while the agent runs, so the refusal is for good.
func (a *Agent) admitReservedPorts(ports []scheduler.HostPort) *admissionError {
	reserved := a.reservedPorts()
	if len(reserved) == 0 {
		return nil
	}
	for _, p := range ports {
		if r, ok := scheduler.ReservedConflict(reserved, p); ok {
			return &admissionError{Reason: ReasonHostPortReserved, Message: fmt.Sprintf(
				"port %d/%s is %s on this node (%s): not given to pods (the pod asks host port %d/%s on %s); choose another port",
				r.Port, r.Protocol, holderName(r.Holder), scheduler.ReservedPort{HostPort: r.HostPort}, p.Port, p.Protocol, p.HostIP)}
		}
	}
	return nil
}

// admit runs the node's permanent admission checks on a pod with spec:
// on a new run before anything of it is set up (volumes, sandbox,
// network), and on a run adopted at start-up (adoptAll). nil admits.
func (w *podWorker) admit(spec *corev1.PodSpec) *admissionError {
	return w.a.admitReservedPorts(scheduler.HostPortsOf(spec))
}

// reject fails the run for good (its status says Failed, e.Reason and
// "Pod was rejected: " e.Message, as kubelet's rejectPod writes it); the
// worker sets nothing of it up, and tears it down when the pod goes.
func (w *podWorker) reject(r *podRun, e *admissionError) {
	r.rejected, r.message = e.Reason, "Pod was rejected: "+e.Message
	r.took = time.Time{} // not a start (metrics.go)
	w.log.Warn("pod rejected", "uid", r.uid, "reason", e.Reason, "err", e.Message)
	w.event(store.EventWarning, e.Reason, "%s", e.Message)
}
