package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"

	gocni "github.com/containerd/go-cni"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// network wires pod network namespaces to bosun's bridge through CNI.
type network struct {
	cni      gocni.CNI
	netnsDir string
	// portmap is whether the CNI portmap plugin is chained (its binary is
	// in binDirs): hostPort mappings need it (hostnet.go).
	portmap     bool
	binDirs     []string
	portMapsDir string
	// held is the host ports the node's pod runs hold (hostnet.go).
	held *hostPortTable
	log  *slog.Logger
}

// bridgeConfList is bosun's CNI network: a Linux bridge with host-local IPAM
// whose state lives in stateDir (so each node's allocations stay its own),
// and with portmap the portmap plugin chained for hostPorts (hostnet.go).
func bridgeConfList(bridge, cidr, ipamDir string, portmap bool) ([]byte, error) {
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, err
	}
	plugins := []any{
		map[string]any{
			"type":        "bridge",
			"bridge":      bridge,
			"isGateway":   true,
			"ipMasq":      false,
			"hairpinMode": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": prefix.String(), "gateway": gatewayOf(prefix).String()}}},
				"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
				"dataDir": ipamDir,
			},
		},
	}
	if portmap {
		plugins = append(plugins, map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true})
	}
	conf := map[string]any{"cniVersion": "1.0.0", "name": bridge, "plugins": plugins}
	return json.MarshalIndent(conf, "", "  ")
}

// podCIDRCheck decides about the nodes registered when this node (self,
// on the machine named host) starts with the pod addresses cidr. Two nodes
// handing out the same addresses give two pods one IP. On one machine that
// always breaks: they share the bridge (a new pod's probes go to the MAC of
// the stopped pod that had its address until the host's neighbour entry
// expires, 30 s and more) or route one subnet to two bridges; refuse is
// then the error to stop with. A node elsewhere with the same addresses
// breaks what crosses nodes: warn says so. It is the agent's own check when
// no leader is there to decide (podSubnet); the leader refuses any
// overlap, wherever the nodes are.
func podCIDRCheck(self, host, cidr string, nodes []corev1.Node) (refuse error, warn string) {
	mine, err := netip.ParsePrefix(cidr)
	if err != nil {
		return fmt.Errorf("pod CIDR %q: %w", cidr, err), ""
	}
	for _, n := range nodes {
		if n.Name == self {
			continue // this node, registered before a restart
		}
		for _, c := range append([]string{n.Spec.PodCIDR}, n.Spec.PodCIDRs...) {
			theirs, err := netip.ParsePrefix(c)
			if err != nil || !theirs.Overlaps(mine) {
				continue
			}
			msg := fmt.Sprintf("pod CIDR %s overlaps node %s's %s", mine, n.Name, theirs)
			for _, a := range n.Status.Addresses {
				if a.Type == corev1.NodeHostName && a.Address == host {
					return fmt.Errorf("%s, on this machine: pods of both would get the same addresses; give each node a pod CIDR (and a bridge) of its own", msg), ""
				}
			}
			if warn == "" {
				warn = msg + ": pods of both get the same addresses; give each node a pod CIDR of its own"
			}
		}
	}
	return nil, warn
}

func newNetwork(cfg *Config) (*network, error) {
	portmap := hasPlugin(cfg.CNIBinDirs, "portmap")
	conf, err := bridgeConfList(cfg.BridgeName, cfg.PodCIDR, filepath.Join(cfg.CNIConfDir, "networks"), portmap)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.CNIConfDir, 0o755); err != nil {
		return nil, fmt.Errorf("cni conf dir: %w", err)
	}
	// Written for operators to inspect; the agent loads it from memory.
	confPath := filepath.Join(cfg.CNIConfDir, "10-"+cfg.BridgeName+".conflist")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", confPath, err)
	}
	cni, err := gocni.New(
		gocni.WithPluginDir(cfg.CNIBinDirs),
		gocni.WithPluginConfDir(cfg.CNIConfDir),
		gocni.WithInterfacePrefix("eth"),
		gocni.WithMinNetworkCount(2),
	)
	if err != nil {
		return nil, fmt.Errorf("cni: %w", err)
	}
	// The bridge first: go-cni names interfaces by load order, and the pod's
	// interface must be eth0.
	if err := cni.Load(gocni.WithConfListBytes(conf), gocni.WithLoNetwork); err != nil {
		return nil, fmt.Errorf("cni load %s: %w", confPath, err)
	}
	// Before any pod is attached: pods must not reach the node's loopback
	// (localnet.go).
	if err := installLocalnetGuard(cfg.BridgeName); err != nil {
		return nil, fmt.Errorf("guard the node's loopback from pods: %w", err)
	}
	return &network{cni: cni, netnsDir: cfg.NetnsDir, portmap: portmap, binDirs: cfg.CNIBinDirs,
		portMapsDir: filepath.Join(cfg.CNIConfDir, "portmaps"), held: newHostPortTable(),
		log: cfg.Logger.With("component", "agent", "node", cfg.NodeName)}, nil
}

// netnsPath is where the named network namespace is mounted.
func (n *network) netnsPath(name string) string { return filepath.Join(n.netnsDir, name) }

// setup creates the named network namespace and attaches it to the bridge;
// it returns the namespace path and the pod IP. ports are the pod's host
// port mappings (hostnet.go). Leftovers of an earlier attempt under the
// same name (a namespace, an attachment) are removed first, and a failed
// attempt cleans up after itself.
func (n *network) setup(ctx context.Context, name string, ports []gocni.PortMapping) (path, ip string, err error) {
	path = n.netnsPath(name)
	if isNetns(path) {
		if err := n.teardown(ctx, name, path); err != nil {
			return "", "", fmt.Errorf("remove stale network of %s: %w", name, err)
		}
	}
	if err := n.savePortMaps(name, ports); err != nil {
		return "", "", err
	}
	if err := createNetns(path); err != nil {
		return "", "", err
	}
	defer func() {
		if err != nil {
			if terr := n.teardown(context.WithoutCancel(ctx), name, path); terr != nil {
				err = fmt.Errorf("%w (and cleaning up: %w)", err, terr)
			}
		}
	}()
	res, err := n.cni.Setup(ctx, name, path, portMapOpts(ports)...)
	if err != nil {
		return "", "", fmt.Errorf("cni setup %s: %w", name, err)
	}
	if iface := res.Interfaces["eth0"]; iface != nil {
		for _, ipc := range iface.IPConfigs {
			if v4 := ipc.IP.To4(); v4 != nil {
				return path, v4.String(), nil
			}
		}
	}
	return "", "", fmt.Errorf("cni setup %s: no IPv4 address on eth0", name)
}

// teardown detaches the namespace from the bridge (freeing its IP) and
// removes it. Missing pieces are not an error.
func (n *network) teardown(ctx context.Context, name, path string) error {
	if path == "" {
		path = n.netnsPath(name)
	}
	nsPath := path
	if _, err := os.Stat(path); err != nil {
		nsPath = "" // let the plugins release IPAM state without a namespace
	}
	ports, err := n.loadPortMaps(name)
	if err != nil {
		// Unreadable (a torn or corrupt file): the attachment must go all
		// the same. portmap removes an attachment's rules by its ID,
		// whatever mappings it is given, but does nothing given none.
		n.log.Warn("port mappings unreadable; removing the attachment's mappings without them", "sandbox", name, "err", err)
		ports = []gocni.PortMapping{unknownPortMapping}
	}
	if err := n.cni.Remove(ctx, name, nsPath, portMapOpts(ports)...); err != nil {
		return fmt.Errorf("cni remove %s: %w", name, err)
	}
	if err := os.Remove(n.portMapsPath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("port mappings of %s: %w", name, err)
	}
	return removeNetns(path)
}

// createNetns creates a network namespace bind-mounted at path, unless one is
// already mounted there.
func createNetns(path string) (err error) {
	if isNetns(path) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("netns dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o444)
	if err != nil {
		return fmt.Errorf("netns %s: %w", path, err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		// The thread enters the new namespace and is never unlocked: Go
		// ends a locked thread when its goroutine exits, so no other
		// goroutine ever runs in the new namespace.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind mount: %w", err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return fmt.Errorf("netns %s: %w", path, err)
	}
	return nil
}

// isNetns reports whether a network namespace is mounted at path.
func isNetns(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

func removeNetns(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	return nil
}
