package nodes

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"bosun/scheduler"
)

// Config configures an Agent. The zero value of every field but NodeName and
// StateDir has a working default, given in its comment.
type Config struct {
	NodeName string            // required; a DNS subdomain
	Labels   map[string]string // node labels; kubernetes.io/hostname=NodeName is added

	ContainerdAddress string // default /run/containerd/containerd.sock
	Namespace         string // containerd namespace, default "bosun"
	Snapshotter       string // default "overlayfs"
	// InsecureRegistries are registries (host or host:port) pulled from
	// over plain HTTP. Registries on localhost always are, as Docker does.
	InsecureRegistries []string

	// StateDir holds per-node data: logs/<ns>_<pod>/<container>.log,
	// pods/<uid>/{hosts,resolv.conf}, cni/ (conflist, IPAM state). Required.
	StateDir string
	// NetnsDir is where pod network namespaces are bind-mounted, so that
	// `ip netns` sees them. Default /run/netns.
	NetnsDir string

	CNIBinDirs []string // default /usr/lib/cni, /opt/cni/bin
	CNIConfDir string   // where bosun writes its conflist, default StateDir/cni
	// PodCIDR is the node's pod subnet asked for by hand (--pod-cidr);
	// empty (the default): the leader gives one from the cluster CIDR. Run
	// waits for the leader's record either way (see podSubnet); the
	// bridge's gateway is the subnet's first address.
	PodCIDR    string
	BridgeName string // Linux bridge and CNI network name, default "bosun0"
	// DNSServer is the nameserver in pods' resolv.conf, default the bridge
	// gateway address (known once the node has its pod subnet).
	DNSServer string
	// ClusterDomain for the resolv.conf search path, default cluster.local.
	ClusterDomain string
	// ResolvConf is the node's resolv.conf, given to pods with dnsPolicy
	// Default. Default /etc/resolv.conf.
	ResolvConf string

	// AllowHostPath lists the host directories under which pods may mount
	// hostPath volumes (the agent flag --allow-host-path); empty: none.
	AllowHostPath []string
	// AllowPrivileged lets containers run privileged (the agent flag
	// --allow-privileged). Default false.
	AllowPrivileged bool
	// AllowHostNetwork lets pods use the node's network (hostNetwork) or
	// take its ports (hostPort) (the agent flag --allow-host-network).
	// Default false: such a pod stays Pending saying so.
	AllowHostNetwork bool
	// ReservedPorts are the ports bosun's own listeners take on this
	// machine (cmd/bosun gives them from its flags: the ingress proxy, the
	// API, etcd, --dns-listen...; ListenerPorts reads a listen address):
	// published on the Node as scheduler.AnnotationReservedHostPorts, so
	// the scheduler gives none of them to a pod as a host port, and
	// refused to a pod bound here all the same (reserved.go). Default:
	// none.
	ReservedPorts []scheduler.ReservedPort
	// PodDNS says the cluster DNS answers this node's pods at DNSServer,
	// port 53, UDP and TCP (a server's node always; an agent's with --dns):
	// that port is reserved too, once the address is known.
	PodDNS bool
	// HostsFile is the node's hosts file, a hostNetwork pod's /etc/hosts.
	// Default /etc/hosts.
	HostsFile string

	// RestartBackoff is the delay before the second restart of a crashing
	// container; it doubles per restart up to MaxRestartBackoff and resets
	// after a run of 2*MaxRestartBackoff (kubelet: 10s, 5m, 10m).
	RestartBackoff    time.Duration // default 10s
	MaxRestartBackoff time.Duration // default 5m
	// ResyncInterval bounds how long a pod worker sleeps without an event
	// (it retries failed operations such as image pulls). Default 10s.
	ResyncInterval time.Duration

	Capacity corev1.ResourceList // default: the machine's CPUs and memory, MaxPods pods
	// VolumeCapacity is how many bytes of local volumes (claims) the node
	// takes, published as its bosun.dev/local-storage capacity (the agent
	// flag --volume-capacity). Default 0: the size of the filesystem
	// holding StateDir; negative: no limit (none published).
	VolumeCapacity int64
	// MaxPods is how many pods the node takes: its pods capacity, which the
	// scheduler enforces. Default: Capacity's pods, else 110.
	MaxPods int
	// SystemReserved (cpu, memory) is kept back for the system: the node
	// publishes Allocatable = Capacity - SystemReserved, which is what the
	// scheduler places pods against. Default: nothing.
	SystemReserved corev1.ResourceList
	// Taints go on the node (Node.Spec.Taints): pods that do not tolerate a
	// NoSchedule taint are not placed here, a PreferNoSchedule one is
	// avoided, and a NoExecute one also evicts running pods. A NoExecute
	// taint's TimeAdded is when this agent first registers it.
	Taints []corev1.Taint
	NodeIP string // address published in node status, default: detected
	// LogPort is the port on NodeIP where this node serves its pods' logs
	// (LogHandler), published so servers can proxy `bosun logs`; 0: none.
	LogPort int32
	// LeaseTTL of the node registration. Default 10s.
	LeaseTTL time.Duration
	// CutOffStopAfter, when positive, stops every pod of the node once its
	// lease has been lost (etcd unreachable) for that long, so that a
	// partition longer than the servers' --node-grace-period does not
	// leave the replacements and the old copies running at once; give it
	// that grace period. Default 0: pods keep running while the node is
	// cut off, as kubelet's do (see the package doc for why).
	CutOffStopAfter time.Duration

	Logger *slog.Logger // default: discard
	// Registerer receives the agent's metrics (bosun_agent_*: lease
	// losses, fenced pods); nil registers none.
	Registerer prometheus.Registerer

	allocatable corev1.ResourceList // Capacity - SystemReserved, set by setDefaults
}

func (c *Config) setDefaults() error {
	if errs := validation.IsDNS1123Subdomain(c.NodeName); len(errs) > 0 {
		return fmt.Errorf("node name %q: %v", c.NodeName, errs)
	}
	if c.StateDir == "" {
		return fmt.Errorf("state dir is empty")
	}
	abs, err := filepath.Abs(c.StateDir)
	if err != nil {
		return fmt.Errorf("state dir %q: %w", c.StateDir, err)
	}
	c.StateDir = abs
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.ContainerdAddress, "/run/containerd/containerd.sock")
	def(&c.Namespace, "bosun")
	def(&c.Snapshotter, "overlayfs")
	def(&c.NetnsDir, "/run/netns")
	def(&c.CNIConfDir, filepath.Join(c.StateDir, "cni"))
	def(&c.BridgeName, "bosun0")
	def(&c.ClusterDomain, "cluster.local")
	def(&c.ResolvConf, "/etc/resolv.conf")
	def(&c.HostsFile, "/etc/hosts")
	c.AllowHostPath = slices.Clone(c.AllowHostPath)
	for i, p := range c.AllowHostPath {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("allowed host path %q: not an absolute path", p)
		}
		c.AllowHostPath[i] = filepath.Clean(p)
	}
	if len(c.CNIBinDirs) == 0 {
		c.CNIBinDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}
	}
	if c.PodCIDR != "" {
		prefix, err := netip.ParsePrefix(c.PodCIDR)
		if err != nil || !prefix.Addr().Is4() || prefix.Bits() > 30 {
			return fmt.Errorf("pod CIDR %q: want an IPv4 prefix of at most /30", c.PodCIDR)
		}
		c.PodCIDR = prefix.Masked().String()
		def(&c.DNSServer, gatewayOf(prefix).String())
	}
	if len(c.BridgeName) > 15 {
		return fmt.Errorf("bridge name %q: longer than 15 characters", c.BridgeName)
	}
	if _, err := netip.ParseAddr(c.DNSServer); c.DNSServer != "" && err != nil {
		return fmt.Errorf("DNS server %q: %w", c.DNSServer, err)
	}
	durDef := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	durDef(&c.RestartBackoff, 10*time.Second)
	durDef(&c.MaxRestartBackoff, 5*time.Minute)
	if c.MaxRestartBackoff < c.RestartBackoff {
		c.MaxRestartBackoff = c.RestartBackoff
	}
	if err := c.setNodeDefaults(); err != nil {
		return err
	}
	return c.setVolumeDefaults()
}

// setNodeDefaults fills in and checks what real and simulated nodes share:
// the node object (capacity, taints, address), the lease and the resync.
func (c *Config) setNodeDefaults() error {
	durDef := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	durDef(&c.ResyncInterval, 10*time.Second)
	durDef(&c.LeaseTTL, 10*time.Second)
	if c.Capacity == nil {
		c.Capacity = corev1.ResourceList{
			corev1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
			corev1.ResourceMemory: *resource.NewQuantity(memTotal(), resource.BinarySI),
		}
	}
	c.Capacity = c.Capacity.DeepCopy()
	switch _, ok := c.Capacity[corev1.ResourcePods]; {
	case c.MaxPods < 0:
		return fmt.Errorf("max pods %d: must not be negative", c.MaxPods)
	case c.MaxPods > 0:
		c.Capacity[corev1.ResourcePods] = *resource.NewQuantity(int64(c.MaxPods), resource.DecimalSI)
	case !ok:
		c.Capacity[corev1.ResourcePods] = *resource.NewQuantity(110, resource.DecimalSI)
	}
	if err := validateTaints(c.Taints); err != nil {
		return err
	}
	if err := c.checkReservedPorts(); err != nil {
		return err
	}
	alloc, err := allocatable(c.Capacity, c.SystemReserved)
	if err != nil {
		return err
	}
	c.allocatable = alloc
	if c.NodeIP == "" {
		c.NodeIP = hostIP()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// gatewayOf returns the first host address of the prefix (x.y.z.1).
func gatewayOf(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// memTotal reads MemTotal from /proc/meminfo in bytes (0 if unreadable).
func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var kb int64
	for _, line := range splitLines(string(b)) {
		if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
			return kb * 1024
		}
	}
	return 0
}

// validateTaints checks taints as the Kubernetes API does: a qualified
// name as key, a label value as value, a known effect, each key and
// effect once.
func validateTaints(taints []corev1.Taint) error {
	seen := map[string]bool{}
	for _, t := range taints {
		if errs := validation.IsQualifiedName(t.Key); len(errs) > 0 {
			return fmt.Errorf("taint key %q: %s", t.Key, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(t.Value); len(errs) > 0 {
			return fmt.Errorf("taint %s value %q: %s", t.Key, t.Value, strings.Join(errs, "; "))
		}
		switch t.Effect {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			return fmt.Errorf("taint %s: effect %q: must be NoSchedule, PreferNoSchedule or NoExecute", t.Key, t.Effect)
		}
		if k := t.Key + ":" + string(t.Effect); seen[k] {
			return fmt.Errorf("taint %s: listed twice", k)
		} else {
			seen[k] = true
		}
	}
	return nil
}

// allocatable is capacity less what is reserved for the system, as kubelet
// computes it. Only cpu and memory can be reserved, and no more than there
// is.
func allocatable(capacity, reserved corev1.ResourceList) (corev1.ResourceList, error) {
	out := capacity.DeepCopy()
	for _, name := range slices.Sorted(maps.Keys(reserved)) {
		q := reserved[name]
		if name != corev1.ResourceCPU && name != corev1.ResourceMemory {
			return nil, fmt.Errorf("system reserved %s: only cpu and memory can be reserved", name)
		}
		if q.Sign() < 0 {
			return nil, fmt.Errorf("system reserved %s %s: must not be negative", name, q.String())
		}
		have := out[name]
		if q.Cmp(have) > 0 {
			return nil, fmt.Errorf("system reserved %s %s: more than the node's capacity %s", name, q.String(), have.String())
		}
		have.Sub(q)
		out[name] = have
	}
	return out, nil
}
