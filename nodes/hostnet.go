package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/pkg/oci"
	gocni "github.com/containerd/go-cni"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"bosun/atomicfile"
	"bosun/scheduler"
)

// Host networking, as kubelet and containerd's CRI plugin do it.
//
// A hostNetwork pod gets no network namespace and no CNI attachment: its
// containers join the host's network and UTS namespaces (no netns in the
// OCI spec, the node's hostname), its IP is the node's (Config.NodeIP),
// its /etc/hosts is the node's plus hostAliases, and dnsPolicy
// ClusterFirst means Default unless it says ClusterFirstWithHostNet.
//
// A hostPort of any other pod is a mapping <node>:hostPort ->
// <pod IP>:containerPort made by the CNI portmap plugin, chained after the
// bridge and given the mappings through go-cni's portMappings capability
// (what the CRI plugin does). Debian's portmap (containernetworking-plugins
// 1.1) writes iptables rules, through iptables-nft here, in its own
// CNI-HOSTPORT-* chains keyed by the attachment, so the rules stay with
// the attachment: an agent restart adopts them with the pod, and the CNI
// DEL of the attachment removes them. The mappings of an attachment are
// kept in a file beside the IPAM state (portMapsDir), because portmap's
// DEL needs them again and an orphan found at start-up has no spec left.
//
// Host port admission, as kubelet's: the scheduler keeps two pods it
// places from taking one host port of a node, but a pod bound by nodeName
// skips it, and a pod being deleted still holds its ports until its
// containers are gone. So a run takes its host ports (scheduler.
// HostPortsOf: a hostNetwork pod's container ports too) in the node's
// table before its network is set up, and gives them back once it is torn
// down; a pod whose (protocol, hostIP, port) another live run holds stays
// Pending saying "HostPort conflict" and who holds it, and starts once
// that run is gone. The ports a run holds are also kept in its pod
// directory (hostports.json), so that a restarted agent counts those of
// the runs it adopts, orphans included, before any new pod starts.

// isHostNetwork reports whether pod runs on the node's network.
func isHostNetwork(pod *corev1.Pod) bool { return pod != nil && pod.Spec.HostNetwork }

// isHostNetworkOrPort reports whether a pod with spec needs
// --allow-host-network: on the host's network, or with a hostPort. what
// names which.
func isHostNetworkOrPort(spec *corev1.PodSpec) (what string, ok bool) {
	switch {
	case spec.HostNetwork:
		return "hostNetwork", true
	case len(portMappings(spec)) > 0:
		return "hostPort", true
	}
	return "", false
}

// hostNetworkAllowed refuses, naming the flag, a pod on the host's network
// or with a hostPort when the agent runs without --allow-host-network.
func (w *podWorker) hostNetworkAllowed(spec *corev1.PodSpec) error {
	if what, ok := isHostNetworkOrPort(spec); ok && !w.a.cfg.AllowHostNetwork {
		return fmt.Errorf("%s: %w", what, errHostNetwork)
	}
	return nil
}

// portMappings lists the hostPort mappings of a pod with this spec for
// the portmap plugin (none for a hostNetwork pod, whose containers bind
// the node's ports themselves): init containers first, as the scheduler
// counts them.
func portMappings(spec *corev1.PodSpec) []gocni.PortMapping {
	if spec.HostNetwork {
		return nil
	}
	var out []gocni.PortMapping
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			for _, p := range cs[i].Ports {
				if p.HostPort <= 0 {
					continue
				}
				proto := p.Protocol
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				out = append(out, gocni.PortMapping{
					HostPort: p.HostPort, ContainerPort: p.ContainerPort,
					Protocol: strings.ToLower(string(proto)), HostIP: p.HostIP,
				})
			}
		}
	}
	return out
}

// dnsPolicyOf is the dnsPolicy the node carries out for spec, as kubelet
// does: on the host's network ClusterFirst falls back to Default, and
// ClusterFirstWithHostNet asks for the cluster's DNS (which it means
// anywhere).
func dnsPolicyOf(spec *corev1.PodSpec) corev1.DNSPolicy {
	switch p := spec.DNSPolicy; {
	case p == corev1.DNSClusterFirstWithHostNet:
		return corev1.DNSClusterFirst
	case spec.HostNetwork && (p == corev1.DNSClusterFirst || p == ""):
		return corev1.DNSDefault
	default:
		return p
	}
}

// hostNetworkHostsFile is a hostNetwork pod's /etc/hosts: the node's, then
// the pod's hostAliases, as kubelet writes it.
func hostNetworkHostsFile(nodeHosts string, aliases []corev1.HostAlias) string {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file (host network, bosun).\n")
	b.WriteString(nodeHosts)
	if nodeHosts != "" && !strings.HasSuffix(nodeHosts, "\n") {
		b.WriteString("\n")
	}
	if len(aliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range aliases {
			if len(a.Hostnames) == 0 {
				continue
			}
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	return b.String()
}

// namespaceOpts puts a container in its pod's network namespace, with the
// pod's hostname; with no namespace path (a hostNetwork pod) in the
// host's network and UTS namespaces instead.
func namespaceOpts(p containerPlan) []oci.SpecOpts {
	if p.NetnsPath == "" {
		return []oci.SpecOpts{oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostNamespace(specs.UTSNamespace)}
	}
	return []oci.SpecOpts{
		oci.WithHostname(p.Hostname),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: p.NetnsPath}),
	}
}

// errHostNetwork keeps a pod this node may not run on its network Pending.
var errHostNetwork = errors.New("not allowed on this node (agent flag --allow-host-network)")

// podNetwork gives the run its network: the host's for a hostNetwork pod
// (no sandbox, the node's IP), else a namespace on the bridge with the
// pod's host ports mapped. It returns the namespace path ("" for the
// host's) and the pod IP.
func (w *podWorker) podNetwork(ctx context.Context, r *podRun) (netns, ip string, err error) {
	spec := &r.pod.Spec
	if err := w.hostNetworkAllowed(spec); err != nil {
		return "", "", err
	}
	if err := w.holdHostPorts(r); err != nil {
		return "", "", err
	}
	if spec.HostNetwork {
		if w.a.cfg.NodeIP == "" {
			return "", "", fmt.Errorf("hostNetwork: the node has no address (--node-ip)")
		}
		r.sandbox = ""
		return "", w.a.cfg.NodeIP, nil
	}
	return w.a.net.setup(ctx, r.sandbox, portMappings(spec))
}

// adoptedOnHostNetwork reports whether an adopted run of the bound pod ran
// on the host's network as the pod says and still has its address: it
// has no namespace to check.
func (w *podWorker) adoptedOnHostNetwork(r *podRun, desired *corev1.Pod) bool {
	return isHostNetwork(desired) && r.netns == "" && r.sandbox == "" && r.podIP != "" && r.podIP == w.a.cfg.NodeIP
}

// portMapsPath is where the host port mappings of attachment name are kept.
func (n *network) portMapsPath(name string) string {
	return filepath.Join(n.portMapsDir, name+".json")
}

// savePortMaps records the mappings of attachment name before they are
// made, so that a teardown (of a failed setup too) removes them.
func (n *network) savePortMaps(name string, maps []gocni.PortMapping) error {
	if len(maps) == 0 {
		return nil
	}
	if !n.portmap {
		return fmt.Errorf("hostPort: the CNI portmap plugin is not in %s", strings.Join(n.binDirs, ", "))
	}
	if err := os.MkdirAll(n.portMapsDir, 0o755); err != nil {
		return fmt.Errorf("port mappings dir: %w", err)
	}
	b, err := json.Marshal(maps)
	if err != nil {
		return err
	}
	// Whole or absent: a torn file would leave teardown without them.
	if err := atomicfile.Write(n.portMapsPath(name), b, 0o644); err != nil {
		return fmt.Errorf("port mappings of %s: %w", name, err)
	}
	return nil
}

// loadPortMaps returns the mappings recorded for attachment name (none
// when there are none).
func (n *network) loadPortMaps(name string) ([]gocni.PortMapping, error) {
	b, err := os.ReadFile(n.portMapsPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("port mappings of %s: %w", name, err)
	}
	var maps []gocni.PortMapping
	if err := json.Unmarshal(b, &maps); err != nil {
		return nil, fmt.Errorf("port mappings of %s: %w", name, err)
	}
	return maps, nil
}

// unknownPortMapping stands for the mappings of an attachment whose file
// could not be read: portmap's DEL removes the attachment's rules by its
// ID whatever mappings it is given, but skips an attachment given none.
var unknownPortMapping = gocni.PortMapping{HostPort: 1, ContainerPort: 1, Protocol: "tcp"}

// portMapOpts passes mappings to the CNI plugins (none: no option).
func portMapOpts(maps []gocni.PortMapping) []gocni.NamespaceOpts {
	if len(maps) == 0 {
		return nil
	}
	return []gocni.NamespaceOpts{gocni.WithCapabilityPortMap(maps)}
}

// hasPlugin reports whether a CNI plugin binary is in one of dirs.
func hasPlugin(dirs []string, name string) bool {
	for _, d := range dirs {
		if st, err := os.Stat(filepath.Join(d, name)); err == nil && !st.IsDir() {
			return true
		}
	}
	return false
}

// hostPortHolder is a run holding host ports on the node.
type hostPortHolder struct {
	key   string // namespace/name
	ports []scheduler.HostPort
}

// hostPortTable is the host ports the node's pod runs hold, by pod UID.
// Pod workers share it.
type hostPortTable struct {
	mu   sync.Mutex
	held map[types.UID]hostPortHolder
}

func newHostPortTable() *hostPortTable {
	return &hostPortTable{held: map[types.UID]hostPortHolder{}}
}

// hostPortConflict finds the first of want that one of held (other than
// uid) holds already, by Kubernetes' rule (scheduler.HostPort.Conflicts);
// ok false when none does. Holders are looked at in key order, so the
// answer does not depend on map order.
func hostPortConflict(held map[types.UID]hostPortHolder, uid types.UID, want []scheduler.HostPort) (port scheduler.HostPort, by hostPortHolder, byUID types.UID, ok bool) {
	uids := make([]types.UID, 0, len(held))
	for u := range held {
		if u != uid {
			uids = append(uids, u)
		}
	}
	sort.Slice(uids, func(i, j int) bool {
		if held[uids[i]].key != held[uids[j]].key {
			return held[uids[i]].key < held[uids[j]].key
		}
		return uids[i] < uids[j]
	})
	for _, p := range want {
		for _, u := range uids {
			for _, h := range held[u].ports {
				if p.Conflicts(h) {
					return p, held[u], u, true
				}
			}
		}
	}
	return scheduler.HostPort{}, hostPortHolder{}, "", false
}

// errHostPortConflict keeps a pod whose host port another run holds
// Pending (kubelet's admission failure "HostPort conflict").
var errHostPortConflict = errors.New("HostPort conflict")

// acquire makes uid (pod key) hold ports, unless another run holds one of
// them: then it says which and who holds it.
func (t *hostPortTable) acquire(key string, uid types.UID, ports []scheduler.HostPort) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, by, byUID, ok := hostPortConflict(t.held, uid, ports); ok {
		return fmt.Errorf("%w: host port %d/%s (hostIP %s) is held by pod %s (uid %s) on this node; the pod starts once that one is gone",
			errHostPortConflict, p.Port, p.Protocol, p.HostIP, by.key, byUID)
	}
	t.held[uid] = hostPortHolder{key: key, ports: ports}
	return nil
}

// hold records ports as held by uid whatever else holds them (an adopted
// run: it runs already).
func (t *hostPortTable) hold(key string, uid types.UID, ports []scheduler.HostPort) (conflict bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, _, _, conflict = hostPortConflict(t.held, uid, ports)
	t.held[uid] = hostPortHolder{key: key, ports: ports}
	return conflict
}

// release gives back what uid holds.
func (t *hostPortTable) release(uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.held, uid)
}

// hostPortsFile is where a run's held host ports are kept.
func (w *podWorker) hostPortsFile(uid types.UID) string {
	return filepath.Join(w.podDir(uid), "hostports.json")
}

// holdHostPorts admits the run's host ports (none: nothing to hold) and
// records them in the pod's directory. Ports bosun itself listens on were
// refused before (admit, reserved.go).
func (w *podWorker) holdHostPorts(r *podRun) error {
	ports := scheduler.HostPortsOf(&r.pod.Spec)
	if len(ports) == 0 {
		return nil
	}
	if err := w.a.net.held.acquire(w.key, r.uid, ports); err != nil {
		return err
	}
	b, err := json.Marshal(ports)
	if err == nil {
		if err = os.MkdirAll(w.podDir(r.uid), 0o755); err == nil {
			err = atomicfile.Write(w.hostPortsFile(r.uid), b, 0o644)
		}
	}
	if err != nil {
		w.a.net.held.release(r.uid)
		return fmt.Errorf("host ports: %w", err)
	}
	return nil
}

// holdAdoptedHostPorts counts the host ports of the runs found at
// start-up (as their pod directories say), before any worker starts.
func (w *podWorker) holdAdoptedHostPorts(uids []string) {
	for _, u := range uids {
		uid := types.UID(u)
		b, err := os.ReadFile(w.hostPortsFile(uid))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		var ports []scheduler.HostPort
		if err == nil {
			err = json.Unmarshal(b, &ports)
		}
		if err != nil {
			w.log.Warn("host ports of an adopted pod unreadable; not counted", "uid", uid, "err", err)
			continue
		}
		if w.a.net.held.hold(w.key, uid, ports) {
			w.log.Warn("adopted pod holds a host port another adopted pod holds too", "uid", uid)
		}
	}
}

// releaseHostPorts gives back the run's host ports once it is torn down.
func (w *podWorker) releaseHostPorts(r *podRun) {
	if w.a.net != nil {
		w.a.net.held.release(r.uid)
	}
}
