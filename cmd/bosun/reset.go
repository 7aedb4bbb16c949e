package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
	"github.com/spf13/cobra"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"bosun/podnet"
	"bosun/proxy"
)

// resetOpts are the flags of `bosun reset`: what bosun set up on this
// machine, as the server and agent flags named it.
type resetOpts struct {
	dataDir, stateDir  string
	containerd, ns     string
	netnsDir, bridge   string
	proxyTable, cniDir string
	data, yes, force   bool
	procDir            string // /proc; tests give another
}

func newResetCmd() *cobra.Command {
	o := resetOpts{procDir: "/proc"}
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Stop this machine's pods and remove what bosun set up on it",
		Long: `Reset undoes what bosun did to this machine, as k3s' killall and uninstall
scripts do: it stops and deletes every container of bosun's containerd
namespace (the pods of this node), removes the pods' network namespaces,
the pod bridge, the routes to other nodes' pods and the VXLAN device, bosun's
nftables tables (the Service proxy's and the pod network's masquerade
table) and the mounts bosun made under its directories (pods' volumes).
With --data it also removes the data directory (etcd, the clone, tokens,
keys: the cluster is gone if this was its only server) and the node's state
directory.

Reset refuses while a bosun server or agent runs on this machine (stop it
first: it would start the pods again), unless --force. It asks before it
starts unless --yes. Give the same --bridge, --proxy-table, --netns-dir and
directories the server or agent was started with, if not the defaults.`,
		Example: `  bosun reset
  bosun reset --yes --data
  bosun reset --data-dir /srv/bosun --bridge bosun1 --proxy-table bosun1 --yes`,
		Args: cobra.NoArgs,
	}
	fs := cmd.Flags()
	fs.StringVar(&o.dataDir, "data-dir", "/var/lib/bosun", "the server's data directory")
	fs.StringVar(&o.stateDir, "state-dir", "", "the node's state directory (default: <data-dir>/node, as a server's node has it; an agent's default is /var/lib/bosun/node)")
	fs.StringVar(&o.containerd, "containerd-address", "/run/containerd/containerd.sock", "containerd socket")
	fs.StringVar(&o.ns, "namespace", "bosun", "bosun's containerd namespace: every container in it is stopped and deleted")
	fs.StringVar(&o.netnsDir, "netns-dir", "/run/netns", "where pod network namespaces are mounted (those named bosun-* are removed)")
	fs.StringVar(&o.bridge, "bridge", "bosun0", "Linux bridge of the pod network")
	fs.StringVar(&o.proxyTable, "proxy-table", proxy.DefaultTable, "the Service proxy's nftables table")
	fs.StringVar(&o.cniDir, "cni-cache-dir", "/var/lib/cni", "libcni's cache: the bridge network's entries are removed")
	fs.BoolVar(&o.data, "data", false, "also remove the data directory and the node's state directory")
	fs.BoolVarP(&o.yes, "yes", "y", false, "do not ask before starting")
	fs.BoolVar(&o.force, "force", false, "go on although a bosun server or agent runs on this machine")
	cmd.MarkFlagDirname("data-dir")
	cmd.MarkFlagDirname("state-dir")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := proxy.CheckTableName(o.proxyTable); err != nil {
			return usageError(cmd, "--proxy-table: %v", err)
		}
		if o.stateDir == "" {
			o.stateDir = filepath.Join(o.dataDir, "node")
		}
		return o.run(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout())
	}
	return cmd
}

func (o *resetOpts) run(ctx context.Context, stdin io.Reader, w io.Writer) error {
	procs, err := bosunProcesses(o.procDir, os.Getpid())
	if err != nil {
		return fmt.Errorf("reset: look for running bosun processes: %w", err)
	}
	if len(procs) > 0 && !o.force {
		return fmt.Errorf("reset: bosun runs on this machine (%s): stop it first, or give --force", strings.Join(procs, "; "))
	}
	if !o.yes {
		what := "stop every pod of this node and remove its networking"
		if o.data {
			what += ", and DELETE " + o.dataDir + " and " + o.stateDir
		}
		fmt.Fprintf(w, "bosun reset will %s. Type yes to go on: ", what)
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			return &exitError{code: 1, err: errors.New("reset: not confirmed (give --yes to skip the question)")}
		}
	}
	var errs []error
	step := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	n, err := o.removeContainers(ctx)
	step(err)
	fmt.Fprintf(w, "containers: %d stopped and deleted (containerd namespace %s)\n", n, o.ns)
	n, err = removeNetnses(o.netnsDir)
	step(err)
	fmt.Fprintf(w, "network namespaces: %d removed from %s\n", n, o.netnsDir)
	if err := podnet.CleanupNode(o.bridge, ""); err != nil {
		step(fmt.Errorf("routes, VXLAN device and masquerade table: %w", err))
	} else {
		fmt.Fprintf(w, "routes to other nodes' pods, VXLAN device, nftables table %s: removed\n", podnet.TableName(o.bridge))
	}
	if err := proxy.Cleanup(proxy.Config{Table: o.proxyTable}); err != nil {
		step(fmt.Errorf("the Service proxy's table: %w", err))
	} else {
		fmt.Fprintf(w, "nftables table %s (Service proxy): removed\n", o.proxyTable)
	}
	gone, err := removeLink(o.bridge)
	step(err)
	if gone {
		fmt.Fprintf(w, "bridge %s: removed\n", o.bridge)
	}
	step(removeCNICache(o.cniDir, o.bridge, filepath.Join(o.stateDir, "cni", "networks", o.bridge)))
	dirs := []string{o.stateDir, o.dataDir}
	n, err = unmountUnder(dirs...)
	step(err)
	fmt.Fprintf(w, "mounts: %d unmounted under %s\n", n, strings.Join(dirs, ", "))
	if o.data {
		for _, d := range dirs {
			if err := os.RemoveAll(d); err != nil {
				step(fmt.Errorf("remove %s: %w", d, err))
			} else {
				fmt.Fprintf(w, "%s: removed\n", d)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	return nil
}

// bosunProcesses lists the bosun servers and agents running on this
// machine, besides self: "pid 123: bosun server --repo ...".
func bosunProcesses(procDir string, self int) ([]string, error) {
	entries, err := os.ReadDir(procDir)
	if err != nil {
		return nil, err
	}
	cmdlines := map[int][]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procDir, e.Name(), "cmdline"))
		if err != nil {
			continue // gone, or not ours to read
		}
		cmdlines[pid] = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	}
	return runningBosun(cmdlines, self), nil
}

// runningBosun picks, from processes' command lines, those of a bosun
// server or agent (a program named bosun whose first argument is server
// or agent; `agent --cleanup` does not count), but self.
func runningBosun(cmdlines map[int][]string, self int) []string {
	var out []string
	pids := slices.Sorted(func(yield func(int) bool) {
		for p := range cmdlines {
			if !yield(p) {
				return
			}
		}
	})
	for _, pid := range pids {
		args := cmdlines[pid]
		if pid == self || len(args) < 2 || filepath.Base(args[0]) != "bosun" {
			continue
		}
		if args[1] != "server" && args[1] != "agent" {
			continue
		}
		if slices.Contains(args, "--cleanup") {
			continue
		}
		line := strings.Join(args, " ")
		if len(line) > 80 {
			line = line[:77] + "..."
		}
		out = append(out, fmt.Sprintf("pid %d: %s", pid, line))
	}
	return out
}

// removeContainers kills and deletes every container of the namespace,
// with its task and snapshot.
func (o *resetOpts) removeContainers(ctx context.Context) (int, error) {
	c, err := containerd.New(o.containerd, containerd.WithTimeout(10*time.Second))
	if err != nil {
		return 0, fmt.Errorf("containers: connect to containerd at %s: %w", o.containerd, err)
	}
	defer c.Close()
	ctx = namespaces.WithNamespace(ctx, o.ns)
	ctrs, err := c.Containers(ctx)
	if err != nil {
		return 0, fmt.Errorf("containers: list: %w", err)
	}
	var errs []error
	n := 0
	for _, ctr := range ctrs {
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if task, err := ctr.Task(dctx, nil); err == nil {
			if _, err := task.Delete(dctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete task %s: %w", ctr.ID(), err))
			}
		}
		if err := ctr.Delete(dctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete container %s: %w", ctr.ID(), err))
		} else {
			n++
		}
		cancel()
	}
	return n, errors.Join(errs...)
}

// removeNetnses unmounts and removes the pods' network namespaces
// (bosun-*) in dir.
func removeNetnses(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("network namespaces: %w", err)
	}
	var errs []error
	n := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "bosun-") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount netns %s: %w", p, err))
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove netns %s: %w", p, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// removeLink deletes a network device (the bridge); gone says it was there.
func removeLink(name string) (gone bool, err error) {
	l, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("bridge %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil {
		return false, fmt.Errorf("remove bridge %s: %w", name, err)
	}
	return true, nil
}

// removeCNICache removes the bridge network's entries from libcni's cache
// and its host-local address reservations.
func removeCNICache(cacheDir, network, ipamDir string) error {
	var errs []error
	for _, d := range []string{filepath.Join(cacheDir, "results"), filepath.Join(cacheDir, "networks")} {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.Name() == network || strings.HasPrefix(e.Name(), network+"-") {
				if err := os.RemoveAll(filepath.Join(d, e.Name())); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if err := os.RemoveAll(ipamDir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// unmountUnder unmounts everything mounted below the directories, deepest
// first.
func unmountUnder(dirs ...string) (int, error) {
	var mps []string
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return 0, err
		}
		ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(abs))
		if err != nil {
			return 0, fmt.Errorf("mounts under %s: %w", abs, err)
		}
		for _, m := range ms {
			mps = append(mps, m.Mountpoint)
		}
	}
	sort.Slice(mps, func(i, j int) bool {
		if len(mps[i]) != len(mps[j]) {
			return len(mps[i]) > len(mps[j])
		}
		return mps[i] < mps[j]
	})
	mps = slices.Compact(mps)
	var errs []error
	n := 0
	for _, mp := range mps {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
