package nodes

// Local persistent volumes: the directory of each claim bound to this node
// under StateDir/volumes/<namespace>/<claim>-<uid>, bind-mounted into the
// pods that use it, recorded in etcd (store.VolumeRecord), and deleted
// only when its claim is gone and said bosun.dev/reclaim-policy: Delete.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"

	"bosun/kube"
	"bosun/store"
)

// volumeSet is the agent's bookkeeping of its node's local volumes,
// shared by the pod workers (which create them) and Run's loop (which
// deletes them).
type volumeSet struct {
	// mu guards the fields below. It is never held over I/O: the agent's
	// loop takes it (startCollect), and so does every teardown (release).
	mu sync.Mutex
	// deleting holds the directories being deleted: no pod may take one.
	deleting map[string]bool
	// users holds, per volume (its directory), the runs (pod UIDs) that
	// take it, from before its directory and record are made (take) until
	// their teardown (release): a new incarnation of a pod does not hide
	// the old one still stopping, and a claim deleted and made again under
	// its name (a new volume) does not hide the old volume's users, nor do
	// they hold the new one.
	users map[string]map[types.UID]bool
	// dirs serializes the etcd and directory work of each volume
	// (prepareClaimDir), outside mu.
	dirs map[string]*dirLock
	// known says the node may hold volumes: set by the first collection
	// (after a start) that finds records and by every volume set up, so
	// a node that never had any does not list etcd on every resync.
	known, listed bool
	// collecting is set while a collection runs (startCollect).
	collecting bool
	m          *volumeMetrics
}

// dirLock is one volume directory's lock: a channel, so that a worker
// waiting for it stops on its context; n counts holders and waiters.
type dirLock struct {
	ch chan struct{}
	n  int
}

// volumeMetrics count the agent's local volume work (bosun_agent_volume*).
type volumeMetrics struct {
	setups      prometheus.Counter
	deletions   prometheus.Counter
	errors      *prometheus.CounterVec
	volumes     *prometheus.GaugeVec
	collectTime prometheus.Histogram
}

func newVolumeMetrics(reg prometheus.Registerer) *volumeMetrics {
	m := &volumeMetrics{
		setups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_agent_volume_mounts_total",
			Help: "Local volumes of PersistentVolumeClaims mounted for a pod (created first when new).",
		}),
		deletions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_agent_volume_deletions_total",
			Help: "Local volumes whose data the agent deleted: their claim was deleted and said bosun.dev/reclaim-policy: Delete.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_agent_volume_errors_total",
			Help: "Failed local volume operations, by operation (mount, collect, delete).",
		}, []string{"op"}),
		volumes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bosun_agent_volumes",
			Help: "Local volumes on the node as of the last collection, by state (Bound, Released).",
		}, []string{"state"}),
		collectTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bosun_agent_volume_collect_duration_seconds",
			Help:    "Time of one pass over the node's volume records (states updated, volumes of deleted claims removed).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
	for _, op := range []string{"mount", "collect", "delete"} {
		m.errors.WithLabelValues(op)
	}
	if reg != nil {
		reg.MustRegister(m.setups, m.deletions, m.errors, m.volumes, m.collectTime)
	}
	return m
}

// setVolumeDefaults puts the node's volume capacity into its capacity and
// allocatable (kube.ResourceLocalStorage): VolumeCapacity, or the size of
// the filesystem holding StateDir when it is 0; nothing (no limit) when it
// is negative.
func (c *Config) setVolumeDefaults() error {
	size := c.VolumeCapacity
	if size == 0 {
		if err := os.MkdirAll(c.StateDir, 0o755); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
		var st unix.Statfs_t
		if err := unix.Statfs(c.StateDir, &st); err != nil {
			return fmt.Errorf("volume capacity: size of the filesystem of %s: %w", c.StateDir, err)
		}
		size = int64(st.Blocks) * st.Bsize
	}
	if size <= 0 {
		return nil
	}
	q := *resource.NewQuantity(size, resource.BinarySI)
	c.Capacity[kube.ResourceLocalStorage] = q
	c.allocatable[kube.ResourceLocalStorage] = q.DeepCopy()
	return nil
}

// volumesDir is where the node keeps its local volumes.
func (a *Agent) volumesDir() string { return filepath.Join(a.cfg.StateDir, "volumes") }

// claimDir is the directory of the volume volumeName bound to claim; ""
// when the volume name is not one bosun makes.
func (a *Agent) claimDir(namespace, claim, volumeName string) string {
	name := kube.VolumeDirName(claim, volumeName)
	if name == "" {
		return ""
	}
	return filepath.Join(a.volumesDir(), namespace, name)
}

// setupClaimVolume makes the pod volume v, of a PersistentVolumeClaim, at
// target: the claim's directory on this node (created the first time, mode
// 0777 or owned by fsGroup as an emptyDir is), bind-mounted there. The
// claim must be bound to this node. The run uid counts as a user of the
// volume from now until its teardown (volumeSet.release), or until this
// fails before the mount.
func (w *podWorker) setupClaimVolume(ctx context.Context, uid types.UID, v *corev1.Volume, target string, fsGroup *int64) error {
	a := w.a
	name := v.PersistentVolumeClaim.ClaimName
	dir, err := a.takeClaimVolume(ctx, w.namespace, name, uid, w.podDir(uid))
	if err != nil {
		return err
	}
	mounted := false
	defer func() {
		if !mounted {
			a.vols.drop(dir, uid)
		}
	}()
	if fsGroup != nil {
		if err := setOwnership(dir, int(*fsGroup), false); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dir, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		a.vols.m.errors.WithLabelValues("mount").Inc()
		return fmt.Errorf("bind mount %s: %w", dir, err)
	}
	mounted = true
	a.vols.m.setups.Inc()
	return nil
}

// claimWriteTries bounds how often takeClaimVolume reads a claim again
// that changed while its volume record was being written.
const claimWriteTries = 5

// errClaimChanged says a volume record was not written: its claim changed
// since it was read.
var errClaimChanged = errors.New("the claim changed while its volume was being set up")

// takeClaimVolume reads the claim name of namespace, counts run uid as a
// user of its volume (its directory) and makes the volume's record and
// directory (prepareClaimDir), reading the claim again when it changed
// meanwhile; it returns the directory. On error uid is no user of it.
// ownDir is the run's pod directory (mounts there are its own).
func (a *Agent) takeClaimVolume(ctx context.Context, namespace, name string, uid types.UID, ownDir string) (string, error) {
	for try := 1; ; try++ {
		claim, rev, err := a.st.ClaimRevision(ctx, namespace, name)
		if err != nil {
			return "", err
		}
		if claim == nil {
			return "", fmt.Errorf("persistentvolumeclaim %q not found", name)
		}
		node := kube.ClaimNode(claim)
		if node != a.cfg.NodeName {
			if node == "" {
				return "", fmt.Errorf("persistentvolumeclaim %q is not bound", name)
			}
			return "", fmt.Errorf("persistentvolumeclaim %q is bound to node %s, not this one", name, node)
		}
		dir := a.claimDir(namespace, name, claim.Spec.VolumeName)
		if dir == "" {
			return "", fmt.Errorf("persistentvolumeclaim %q: volume %q is not a local volume", name, claim.Spec.VolumeName)
		}
		rwop := kube.ReadWriteOncePod(claim)
		if deleting, other := a.vols.take(dir, uid, rwop); deleting {
			return "", fmt.Errorf("persistentvolumeclaim %q: its volume is being deleted", name)
		} else if other != "" {
			return "", fmt.Errorf("persistentvolumeclaim %q is ReadWriteOncePod and another pod on this node (uid %s) still has it mounted", name, other)
		}
		if rwop {
			// Runs this agent did not set up (adopted after a restart, or
			// left by an earlier agent) are known by their mounts alone.
			if at, err := mountedOutside(dir, ownDir); err != nil {
				a.vols.drop(dir, uid)
				return "", fmt.Errorf("persistentvolumeclaim %q: %w", name, err)
			} else if len(at) > 0 {
				a.vols.drop(dir, uid)
				return "", fmt.Errorf("persistentvolumeclaim %q is ReadWriteOncePod and is still mounted at %s", name, strings.Join(at, ", "))
			}
		}
		err = a.prepareClaimDir(ctx, claim, rev, dir)
		if err == nil {
			return dir, nil
		}
		a.vols.drop(dir, uid)
		if !errors.Is(err, errClaimChanged) || try == claimWriteTries {
			a.vols.m.errors.WithLabelValues("mount").Inc()
			return "", fmt.Errorf("persistentvolumeclaim %q: %w", name, err)
		}
	}
}

// prepareClaimDir records the volume in etcd, then makes its directory
// the first time (no record said it was made before), then records that
// it is made: a directory never exists without its record, so a
// collection that finds none has nothing to delete. A directory whose
// record says it was made and that is missing is not made again, empty:
// the mount fails, saying so (the data disk may not be mounted yet, or
// --data-dir changed), and the pod waits. Every record is written only
// while the claim's key is at rev, the revision claim was read at
// (errClaimChanged otherwise): the leader deletes a claim once the record
// says the claim's reclaim policy, so a record must never say one the
// claim no longer does. It holds the directory's lock, not volumeSet.mu,
// over the etcd calls.
func (a *Agent) prepareClaimDir(ctx context.Context, claim *corev1.PersistentVolumeClaim, rev int64, dir string) error {
	unlock, err := a.vols.lockDir(ctx, dir)
	if err != nil {
		return err
	}
	defer unlock()
	if a.vols.isDeleting(dir) {
		return errors.New("its volume is being deleted")
	}
	put := func(rec store.VolumeRecord) error {
		ok, err := a.st.PutVolumeIfClaim(ctx, rec, rev)
		if err != nil {
			return err
		}
		if !ok {
			return errClaimChanged
		}
		a.vols.setKnown()
		return nil
	}
	prev, err := a.st.Volume(ctx, a.cfg.NodeName, claim.Namespace, claim.Spec.VolumeName)
	if err != nil {
		return err
	}
	rec := recordOf(a.cfg.NodeName, claim, dir, store.VolumeBound)
	if prev != nil && prev.Made {
		rec.Made = true
		if err := put(rec); err != nil {
			return err
		}
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("volume directory missing: %s (it was made before: is the data disk mounted, or did --data-dir change?); not made again, empty", dir)
		} else if err != nil {
			return err
		}
		return nil
	}
	if err := put(rec); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o777); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	} else if err == nil {
		a.log.Info("volume created", "claim", claim.Namespace+"/"+claim.Name, "volume", claim.Spec.VolumeName, "dir", dir)
		if err := os.Chmod(dir, 0o777); err != nil { // any user of the pod may write, whatever the umask
			return err
		}
	}
	rec.Made = true
	return put(rec)
}

func recordOf(node string, claim *corev1.PersistentVolumeClaim, dir, state string) store.VolumeRecord {
	policy := string(corev1.PersistentVolumeReclaimRetain)
	if kube.ReclaimDelete(claim) {
		policy = string(corev1.PersistentVolumeReclaimDelete)
	}
	return store.VolumeRecord{Node: node, Namespace: claim.Namespace, Claim: claim.Name, VolumeName: claim.Spec.VolumeName,
		Size: kube.ClaimRequest(claim), ReclaimPolicy: policy, State: state, Path: dir}
}

// volumeDecision is what collectVolumes does with one record.
type volumeDecision int

const (
	volumeKeep      volumeDecision = iota // as recorded
	volumeUpdate                          // write the record anew (state or policy changed)
	volumeDelete                          // delete the data and the record
	volumeInUseWait                       // to delete, once no pod uses it
)

// decideVolume is the pure part of a collection: what becomes of the
// volume rec records, given its claim as stored (nil: gone) and whether a
// pod on this node uses that volume (not merely a claim of its name: the
// claim may have been made again, with a volume of its own). The record
// it returns is the one to write for volumeUpdate.
func decideVolume(rec store.VolumeRecord, claim *corev1.PersistentVolumeClaim, node string, inUse bool) (volumeDecision, store.VolumeRecord) {
	if claim != nil && claim.Spec.VolumeName == rec.VolumeName && kube.ClaimNode(claim) == node {
		want := recordOf(node, claim, rec.Path, store.VolumeBound)
		want.Made = rec.Made
		if want == rec {
			return volumeKeep, rec
		}
		return volumeUpdate, want
	}
	// The claim is gone (or now has another volume): this one is released.
	if rec.ReclaimPolicy == string(corev1.PersistentVolumeReclaimDelete) {
		if inUse {
			return volumeInUseWait, rec
		}
		return volumeDelete, rec
	}
	if rec.State != store.VolumeReleased {
		rec.State = store.VolumeReleased
		return volumeUpdate, rec
	}
	return volumeKeep, rec
}

// collectVolumes goes over the node's volume records: it keeps their
// state and policy up to date with their claims, and deletes the data of
// volumes whose claim is gone and said Delete once no pod uses it: no run
// took it (volumeSet.users, by directory) and no mount shows it (runs
// adopted after a restart). Deletions run in the background, on wg.
// startCollect runs collectVolumes beside the agent's loop, one at a
// time: it reads etcd, which a node cut off from the cluster waits on for
// the request timeout, and the loop must meanwhile go on (stopping the pods
// of a cut-off node, for one). A resync while one runs starts none.
func (a *Agent) startCollect(ctx context.Context, wg *sync.WaitGroup) {
	a.vols.mu.Lock()
	if a.vols.collecting {
		a.vols.mu.Unlock()
		return
	}
	a.vols.collecting = true
	a.vols.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			a.vols.mu.Lock()
			a.vols.collecting = false
			a.vols.mu.Unlock()
		}()
		a.collectVolumes(ctx, wg)
	}()
}

func (a *Agent) collectVolumes(ctx context.Context, wg *sync.WaitGroup) {
	a.vols.mu.Lock()
	skip := a.vols.listed && !a.vols.known
	a.vols.mu.Unlock()
	if skip {
		return
	}
	start := time.Now()
	defer func() { a.vols.m.collectTime.Observe(time.Since(start).Seconds()) }()
	list, err := a.st.VolumeList(ctx, a.cfg.NodeName)
	if err != nil {
		a.vols.m.errors.WithLabelValues("collect").Inc()
		a.log.Warn("list volume records", "err", err)
		return
	}
	for _, err := range list.Skipped {
		a.vols.m.errors.WithLabelValues("collect").Inc()
		a.log.Warn("volume record skipped", "err", err, "skipped", len(list.Skipped))
	}
	recs := list.Records
	a.vols.mu.Lock()
	a.vols.listed = true
	a.vols.known = a.vols.known || len(recs) > 0
	a.vols.mu.Unlock()
	inUse := a.vols.inUse()
	states := map[string]float64{store.VolumeBound: 0, store.VolumeReleased: 0}
	for _, rec := range recs {
		claim, rev, err := a.st.ClaimRevision(ctx, rec.Namespace, rec.Claim)
		if err != nil {
			a.vols.m.errors.WithLabelValues("collect").Inc()
			a.log.Warn("read claim", "claim", rec.Namespace+"/"+rec.Claim, "err", err)
			continue
		}
		dir := a.claimDir(rec.Namespace, rec.Claim, rec.VolumeName)
		decision, next := decideVolume(rec, claim, a.cfg.NodeName, inUse[dir])
		if decision == volumeDelete && dir != "" {
			// Runs adopted after a restart are known by their mounts.
			if at, err := mountedElsewhere(dir); err == nil && len(at) > 0 {
				decision = volumeInUseWait
			}
		}
		switch decision {
		case volumeUpdate:
			// Only while the claim is as read: the leader trusts the
			// policy the record says (store.PutVolumeIfClaim).
			if ok, err := a.st.PutVolumeIfClaim(ctx, next, rev); err != nil {
				a.vols.m.errors.WithLabelValues("collect").Inc()
				a.log.Warn("update volume record", "claim", rec.Namespace+"/"+rec.Claim, "err", err)
			} else if !ok {
				a.log.Debug("claim changed while its volume record was updated: next time", "claim", rec.Namespace+"/"+rec.Claim)
			} else if next.State != rec.State {
				a.log.Info("volume "+next.State, "claim", rec.Namespace+"/"+rec.Claim, "volume", rec.VolumeName, "dir", rec.Path)
			}
		case volumeInUseWait:
			a.log.Debug("volume to delete is still in use", "claim", rec.Namespace+"/"+rec.Claim)
		case volumeDelete:
			a.deleteVolume(ctx, rec, wg)
			continue
		}
		states[next.State]++
	}
	for s, n := range states {
		a.vols.m.volumes.WithLabelValues(s).Set(n)
	}
}

// deleteVolume removes a volume's directory, then its record, in the
// background. The directory must be one of this node's volumes.
func (a *Agent) deleteVolume(ctx context.Context, rec store.VolumeRecord, wg *sync.WaitGroup) {
	dir := a.claimDir(rec.Namespace, rec.Claim, rec.VolumeName)
	a.vols.mu.Lock()
	if dir == "" || a.vols.deleting[dir] {
		a.vols.mu.Unlock()
		return
	}
	// A pod's bind mount of the volume is under its own pod dir, so
	// removeTree (which unmounts below dir) would not see it: refuse while
	// a run that took it lives (checked with deleting set, under one lock:
	// a run takes a volume only while it is not being deleted) or any
	// mount shows it.
	if users := len(a.vols.users[dir]); users > 0 {
		a.vols.mu.Unlock()
		a.log.Info("volume to delete is still used by a pod: kept for now", "claim", rec.Namespace+"/"+rec.Claim, "runs", users)
		return
	}
	a.vols.deleting[dir] = true
	a.vols.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			a.vols.mu.Lock()
			delete(a.vols.deleting, dir)
			a.vols.mu.Unlock()
		}()
		if at, err := mountedElsewhere(dir); err != nil || len(at) > 0 {
			if err == nil {
				err = fmt.Errorf("still mounted at %s", strings.Join(at, ", "))
			}
			a.vols.m.errors.WithLabelValues("delete").Inc()
			a.log.Warn("volume to delete is in use: kept for now", "claim", rec.Namespace+"/"+rec.Claim, "dir", dir, "err", err)
			return
		}
		// removeTree refuses while anything is mounted below: it never
		// deletes through a mount.
		if err := removeTree(dir); err != nil {
			a.vols.m.errors.WithLabelValues("delete").Inc()
			a.log.Warn("delete volume", "claim", rec.Namespace+"/"+rec.Claim, "dir", dir, "err", err)
			return
		}
		if err := a.st.DeleteVolume(ctx, a.cfg.NodeName, rec.Namespace, rec.VolumeName); err != nil {
			a.vols.m.errors.WithLabelValues("delete").Inc()
			a.log.Warn("delete volume record", "claim", rec.Namespace+"/"+rec.Claim, "err", err)
			return
		}
		a.vols.m.deletions.Inc()
		a.log.Info("volume deleted: its claim was deleted with reclaim policy Delete", "claim", rec.Namespace+"/"+rec.Claim, "volume", rec.VolumeName, "dir", dir)
	}()
}

// take counts run uid as a user of the volume dir, unless the volume is
// being deleted (deleting) or, rwop (ReadWriteOncePod), another run uses
// it (other): one lock for the check and the count, so that a deletion
// (deleteVolume) and a run never both go ahead.
func (v *volumeSet) take(dir string, uid types.UID, rwop bool) (deleting bool, other types.UID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.deleting[dir] {
		return true, ""
	}
	if rwop {
		for u := range v.users[dir] {
			if u != uid {
				return false, u
			}
		}
	}
	if v.users == nil {
		v.users = map[string]map[types.UID]bool{}
	}
	if v.users[dir] == nil {
		v.users[dir] = map[types.UID]bool{}
	}
	v.users[dir][uid] = true
	return false, ""
}

// drop forgets run uid as a user of the volume dir: it did not mount it.
func (v *volumeSet) drop(dir string, uid types.UID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.users[dir], uid)
	if len(v.users[dir]) == 0 {
		delete(v.users, dir)
	}
}

// release forgets run uid as a user of any volume: its pod dir, and with
// it its mounts of volumes, is gone.
func (v *volumeSet) release(uid types.UID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for dir, runs := range v.users {
		delete(runs, uid)
		if len(runs) == 0 {
			delete(v.users, dir)
		}
	}
}

// inUse are the volumes (directories) some run uses.
func (v *volumeSet) inUse() map[string]bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[string]bool, len(v.users))
	for dir := range v.users {
		out[dir] = true
	}
	return out
}

func (v *volumeSet) isDeleting(dir string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.deleting[dir]
}

// setKnown says the node holds volumes (a record was written).
func (v *volumeSet) setKnown() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.known = true
}

// lockDir takes the lock of the volume dir, waiting at most until ctx is
// done; the function it returns releases it.
func (v *volumeSet) lockDir(ctx context.Context, dir string) (func(), error) {
	v.mu.Lock()
	if v.dirs == nil {
		v.dirs = map[string]*dirLock{}
	}
	l := v.dirs[dir]
	if l == nil {
		l = &dirLock{ch: make(chan struct{}, 1)}
		v.dirs[dir] = l
	}
	l.n++
	v.mu.Unlock()
	done := func() {
		v.mu.Lock()
		if l.n--; l.n == 0 {
			delete(v.dirs, dir)
		}
		v.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; done() }, nil
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
}

// mountedElsewhere lists the mount points, outside dir, of mounts whose
// source is dir or a directory below it (same device, root path at or
// under dir's), as /proc/self/mountinfo says: a pod's bind mount of a
// volume, or of a subPath of it, wherever it is.
func mountedElsewhere(dir string) ([]string, error) {
	real, err := filepath.EvalSymlinks(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// Gone already (a deletion an agent stopped between removing the
		// directory and deleting its record): nothing to hold, the record
		// goes.
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ms, err := mountinfo.GetMounts(nil)
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	return mountsOf(real, ms), nil
}

// mountedOutside lists the mounts of dir that are not below own (a pod's
// own directory: an earlier try of the same run).
func mountedOutside(dir, own string) ([]string, error) {
	at, err := mountedElsewhere(dir)
	if err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(own); err == nil {
		own = real
	}
	return slices.DeleteFunc(at, func(p string) bool { return p == own || strings.HasPrefix(p, own+"/") }), nil
}

// mountsOf is mountedElsewhere's decision on the mount table ms, for the
// directory dir (no symlinks).
func mountsOf(dir string, ms []*mountinfo.Info) []string {
	under := func(p, d string) bool { return p == d || strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/") }
	// The mount dir lives on: the deepest mount point holding it (the
	// last one listed, of those stacked at one point).
	var home *mountinfo.Info
	for _, m := range ms {
		if under(dir, m.Mountpoint) && (home == nil || len(m.Mountpoint) >= len(home.Mountpoint)) {
			home = m
		}
	}
	if home == nil {
		return nil
	}
	rel, err := filepath.Rel(home.Mountpoint, dir)
	if err != nil {
		return nil
	}
	root := filepath.Join(home.Root, rel)
	var out []string
	for _, m := range ms {
		if m.Major != home.Major || m.Minor != home.Minor || under(m.Mountpoint, dir) {
			continue
		}
		if under(m.Root, root) {
			out = append(out, m.Mountpoint)
		}
	}
	return out
}
