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

	"bosun/nodes"
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
nftables tables (the Service proxy's, the pod network's masquerade
table and the one guarding the node's loopback from pods) and the mounts bosun made under its directories (pods' volumes).
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
	fs.StringVar(&o.ns, "namespace", "bosun", "bosun's containerd namespace: the containers in it that bosun made (labelled "+nodes.LabelPodUID+") are stopped and deleted")
	fs.MarkHidden("namespace") // the agent has no flag to change it: only tests' containerds use another
	fs.StringVar(&o.netnsDir, "netns-dir", "/run/netns", "where pod network namespaces are mounted (those named bosun-* are removed)")
	fs.StringVar(&o.bridge, "bridge", "bosun0", "Linux bridge of the pod network (a name starting with bosun: reset never removes another bridge)")
	fs.StringVar(&o.proxyTable, "proxy-table", proxy.DefaultTable, "the Service proxy's nftables table (a name starting with bosun: reset never removes another table)")
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
		for flag, name := range map[string]string{"proxy-table": o.proxyTable, "bridge": o.bridge} {
			if !strings.HasPrefix(name, "bosun") {
				return usageError(cmd, "--%s %q: reset removes only what bosun names bosun*", flag, name)
			}
		}
		if o.stateDir == "" {
			o.stateDir = filepath.Join(o.dataDir, "node")
		}
		var err error
		if o.dataDir, err = resetDir("data-dir", o.dataDir); err != nil {
			return usageError(cmd, "%v", err)
		}
		if o.stateDir, err = resetDir("state-dir", o.stateDir); err != nil {
			return usageError(cmd, "%v", err)
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
		return fmt.Errorf("reset: bosun runs on this machine (%s): stop it first, or give --force", shortLines(procs))
	}
	if o.data {
		if users := usingDirs(procs, o.dataDir, o.stateDir); len(users) > 0 {
			// --force or not: it would mount volumes again while they go.
			return fmt.Errorf("reset: %s or %s is in use by a running bosun (%s): stop it first", o.dataDir, o.stateDir, shortLines(users))
		}
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
	if err := nodes.CleanupLocalnet(o.bridge); err != nil {
		step(fmt.Errorf("the table guarding the node's loopback from pods: %w", err))
	} else {
		fmt.Fprintf(w, "nftables table %s (the node's loopback guarded from pods): removed\n", nodes.LocalnetTable(o.bridge))
	}
	if err := nodes.CleanupHostPorts(o.bridge); err != nil {
		step(fmt.Errorf("the pods' host port forwarding: %w", err))
	} else {
		fmt.Fprintf(w, "host port forwarding of the pods of %s (iptables nat %s): removed\n", o.bridge, "CNI-HOSTPORT-DNAT")
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
		if err != nil {
			step(fmt.Errorf("%s and %s are kept: a mount under them could not be removed, and removing them would reach into it", o.stateDir, o.dataDir))
		} else {
			for _, d := range []struct{ dir, flag string }{{o.stateDir, "state-dir"}, {o.dataDir, "data-dir"}} {
				removed, err := removeBosunDir(d.dir, d.flag)
				step(err)
				if removed {
					fmt.Fprintf(w, "%s: removed\n", d.dir)
				}
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
		out = append(out, fmt.Sprintf("pid %d: %s", pid, strings.Join(args, " ")))
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
	ctrs, err := c.Containers(ctx, `labels."`+nodes.LabelPodUID+`"`) // bosun's, not what `ctr -n bosun run` made
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
	if l.Type() != "bridge" {
		return false, fmt.Errorf("%s is a %s, not the pod bridge: left alone", name, l.Type())
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

// unmountUnder unmounts everything mounted strictly below the
// directories (pods' volumes, bind mounts of subPaths), deepest first, and
// again while mounts are left (stacked mounts); a directory that is a
// mount point itself (its own volume) is left mounted. It fails when a
// mount is left below them.
func unmountUnder(dirs ...string) (int, error) {
	n := 0
	var errs []error
	for pass := 0; pass < 5; pass++ {
		mps, err := mountsBelow(dirs...)
		if err != nil {
			return n, err
		}
		if len(mps) == 0 {
			return n, errors.Join(errs...)
		}
		errs = nil
		for _, mp := range mps {
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
				continue
			}
			n++
		}
	}
	mps, err := mountsBelow(dirs...)
	if err == nil && len(mps) > 0 {
		err = fmt.Errorf("still mounted: %s", strings.Join(mps, ", "))
	}
	return n, errors.Join(append(errs, err)...)
}

// mountsBelow lists the mount points strictly below the directories
// (resolved paths), deepest first.
func mountsBelow(dirs ...string) ([]string, error) {
	var mps []string
	for _, d := range dirs {
		ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(d))
		if err != nil {
			return nil, fmt.Errorf("mounts under %s: %w", d, err)
		}
		for _, m := range ms {
			if m.Mountpoint != d {
				mps = append(mps, m.Mountpoint)
			}
		}
	}
	sort.Slice(mps, func(i, j int) bool {
		if len(mps[i]) != len(mps[j]) {
			return len(mps[i]) > len(mps[j])
		}
		return mps[i] < mps[j]
	})
	return slices.Compact(mps), nil
}

// resetDir is a directory flag's value made absolute, clean and free of
// symlinks (mount points are listed by their real paths); / is refused.
func resetDir(flag, d string) (string, error) {
	if !filepath.IsAbs(d) {
		return "", fmt.Errorf("--%s %q: want an absolute path", flag, d)
	}
	d = filepath.Clean(d)
	if real, err := filepath.EvalSymlinks(d); err == nil {
		d = real
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	if d == "/" {
		return "", fmt.Errorf("--%s /: refused", flag)
	}
	return d, nil
}

// bosunMarkers are entries only a bosun data directory (data-dir) or
// node state directory (state-dir) has: removeBosunDir removes nothing
// that has none of them (a mistyped --data-dir /var).
var bosunMarkers = map[string][]string{
	"data-dir":  {"etcd", "pki", "secrets.key", "git", "api", "node"},
	"state-dir": {"pods", "logs", "cni", "pki"},
}

// removeBosunDir removes a bosun directory's contents, and the directory
// unless it is a mount point of its own; never into a mount (a mount left
// below it, or a file system boundary, fails naming it, and nothing is
// removed). removed is false when it did not exist.
func removeBosunDir(dir, flag string) (removed bool, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("remove %s: %w", dir, err)
	}
	if len(entries) > 0 && !slices.ContainsFunc(entries, func(e os.DirEntry) bool { return slices.Contains(bosunMarkers[flag], e.Name()) }) {
		return false, fmt.Errorf("%s holds none of %s: not a bosun --%s, left alone", dir, strings.Join(bosunMarkers[flag], ", "), flag)
	}
	// A bind mount of a host directory of the same file system has the
	// same device: mountinfo is what names it.
	if mps, err := mountsBelow(dir); err != nil || len(mps) > 0 {
		if err == nil {
			err = fmt.Errorf("still mounted below it: %s: nothing removed", strings.Join(mps, ", "))
		}
		return false, fmt.Errorf("remove %s: %w", dir, err)
	}
	var root unix.Stat_t
	if err := unix.Lstat(dir, &root); err != nil {
		return false, fmt.Errorf("remove %s: %w", dir, err)
	}
	// Nothing below may be on another file system: checked for the whole
	// tree before anything goes.
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Dev != root.Dev {
			return fmt.Errorf("%s is on another file system (a mount): nothing removed", p)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("remove %s: %w", dir, err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return false, fmt.Errorf("remove %s: %w", dir, err)
		}
	}
	if mounted, _ := mountinfo.Mounted(dir); !mounted {
		if err := os.Remove(dir); err != nil {
			return false, fmt.Errorf("remove %s: %w", dir, err)
		}
	}
	return true, nil
}

// shortLines joins process lines for a message, each cut to 80 bytes.
func shortLines(lines []string) string {
	out := make([]string, len(lines))
	for i, l := range lines {
		if len(l) > 80 {
			l = l[:77] + "..."
		}
		out[i] = l
	}
	return strings.Join(out, "; ")
}

// usingDirs picks the processes (runningBosun's lines) whose command
// line names one of the directories, or names no --data-dir or
// --state-dir while one of them is bosun's default.
func usingDirs(procs []string, dirs ...string) []string {
	var out []string
	for _, p := range procs {
		named := strings.Contains(p, "--data-dir") || strings.Contains(p, "--state-dir")
		for _, d := range dirs {
			if strings.Contains(p, d) || (!named && strings.HasPrefix(d, "/var/lib/bosun")) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}
