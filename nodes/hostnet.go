package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/pkg/oci"
	gocni "github.com/containerd/go-cni"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
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

// isHostNetwork reports whether pod runs on the node's network.
func isHostNetwork(pod *corev1.Pod) bool { return pod != nil && pod.Spec.HostNetwork }

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
	if (spec.HostNetwork || len(portMappings(spec)) > 0) && !w.a.cfg.AllowHostNetwork {
		what := "hostPort"
		if spec.HostNetwork {
			what = "hostNetwork"
		}
		return "", "", fmt.Errorf("%s: %w", what, errHostNetwork)
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
	if err := os.WriteFile(n.portMapsPath(name), b, 0o644); err != nil {
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
