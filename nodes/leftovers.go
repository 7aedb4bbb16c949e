package nodes

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"bosun/atomicfile"
)

// A run's teardown stops and deletes its containers first, then releases
// its network and removes its pod directory (which unmounts its volumes,
// claims' bind mounts included). An agent stopped between the two (a
// SIGTERM while a pod is torn down: the context ends, the CNI plugin is
// killed) leaves a run that has no container. The next agent finds runs by
// their containers (discover), so it never sees that one: its pod
// directory, its mounts of claims' volumes (which then keep a Delete
// volume's data forever: a volume is never deleted while mounted), its
// network namespace and its address would stay until the machine reboots.
// sweepLeftovers finishes those teardowns at start-up, before any worker
// runs.

// sandboxFile, in a pod directory, names the run's network attachment
// (empty on the host's network), so a leftover run's network can be
// released without its containers' labels.
const sandboxFile = "sandbox"

// recordSandbox writes the run's sandbox name in its pod directory, before
// its network is set up.
func (w *podWorker) recordSandbox(r *podRun) error {
	name := r.sandbox
	if isHostNetwork(r.pod) {
		name = ""
	}
	dir := w.podDir(r.uid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("pod dir: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, sandboxFile), []byte(name), 0o644); err != nil {
		return fmt.Errorf("pod dir: %w", err)
	}
	return nil
}

// leftoverRuns are the run UIDs, among the pod directories dirs, that no
// container found (found: pod key -> run UID -> containers) belongs to and
// that are not the UID of a pod bound to this node (bound): a bound pod
// without containers is one whose only container an agent stopped between
// deleting and recreating it, and its worker takes its directory (its
// emptyDir volumes, its logs) over; sorted.
func leftoverRuns(dirs []string, found map[string]map[string][]adoptedContainer, bound map[string]bool) []string {
	live := map[string]bool{}
	for uid := range bound {
		live[uid] = true
	}
	for _, byUID := range found {
		for uid := range byUID {
			live[uid] = true
		}
	}
	var out []string
	for _, d := range dirs {
		if !live[d] {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}

// sweepLeftovers tears down what the runs without containers left: their
// network (as their sandbox file names it) and their pod directory, its
// mounts first. A run that cannot be swept is logged and left for the next
// start; the others go on.
func (a *Agent) sweepLeftovers(ctx context.Context, found map[string]map[string][]adoptedContainer) {
	podsDir := filepath.Join(a.cfg.StateDir, "pods")
	ents, err := os.ReadDir(podsDir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.log.Warn("list pod directories", "err", err)
		}
		return
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(leftoverRuns(dirs, found, nil)) == 0 {
		return
	}
	// Which pods are bound here now: unknown (etcd out of reach), nothing
	// is swept, the safe side; the next start tries again.
	pods, _, err := a.st.PodsOnNode(ctx, a.cfg.NodeName)
	if err != nil {
		a.log.Warn("leftovers of pods torn down in part by an earlier agent: not removed this time (the pods bound here are unknown)", "err", err)
		return
	}
	bound := make(map[string]bool, len(pods))
	for _, p := range pods {
		bound[string(p.UID)] = true
	}
	for _, uid := range leftoverRuns(dirs, found, bound) {
		if err := a.sweepRun(ctx, types.UID(uid), filepath.Join(podsDir, uid)); err != nil {
			a.log.Warn("leftover of a pod torn down in part by an earlier agent: not removed", "uid", uid, "err", err)
			continue
		}
		a.log.Info("leftover of a pod torn down in part by an earlier agent removed", "uid", uid)
	}
}

func (a *Agent) sweepRun(ctx context.Context, uid types.UID, dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, sandboxFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if name := strings.TrimSpace(string(b)); name != "" && a.net != nil {
		if err := a.net.teardown(ctx, name, ""); err != nil {
			// The claims' bind mounts go all the same (a Delete volume is
			// not held until the next start); the directory and its
			// sandbox file stay for the next start's try.
			if uerr := unmountAll(dir); uerr != nil {
				return errors.Join(err, uerr)
			}
			return err
		}
	}
	// removeTree unmounts everything below first, and never removes
	// through a mount it could not undo.
	if err := removeTree(dir); err != nil {
		return err
	}
	a.vols.release(uid)
	return nil
}
