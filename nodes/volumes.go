package nodes

// The I/O of a pod's volumes: directories and tmpfs mounts under
// StateDir/pods/<uid>/volumes/<name>, their files, fsGroup ownership,
// hostPath checks, subPath staging, and removal with the pod.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// volumeDir is where the agent keeps a pod's volume.
func volumeDir(podDir, name string) string { return filepath.Join(podDir, "volumes", name) }

// readSources reads from the store the ConfigMaps and Secrets the pod
// refers to; a missing one maps to nil.
func (w *podWorker) readSources(ctx context.Context, pod *corev1.Pod) (configSources, error) {
	src := configSources{Namespace: w.namespace, ConfigMaps: map[string]*corev1.ConfigMap{}, Secrets: map[string]*corev1.Secret{}}
	cms, secs := sourceRefs(&pod.Spec)
	for _, name := range cms {
		cm, err := w.a.st.ConfigMap(ctx, w.namespace, name)
		if err != nil {
			return src, err
		}
		src.ConfigMaps[name] = cm
	}
	for _, name := range secs {
		sec, err := w.a.st.Secret(ctx, w.namespace, name)
		if err != nil {
			return src, err
		}
		src.Secrets[name] = sec
	}
	return src, nil
}

// facts are the downward API's values for the run's pod.
func (w *podWorker) facts(r *podRun) podFacts {
	p := r.pod
	return podFacts{
		PodName: w.name, Namespace: w.namespace, UID: string(r.uid), PodIP: r.podIP,
		NodeName: w.a.cfg.NodeName, HostIP: w.a.cfg.NodeIP, ServiceAccount: p.Spec.ServiceAccountName,
		Labels: p.Labels, Annotations: p.Annotations,
		Containers:  append(append([]corev1.Container(nil), p.Spec.InitContainers...), p.Spec.Containers...),
		Allocatable: w.a.cfg.Capacity,
	}
}

// setupVolumes creates the pod's volumes. It starts afresh each time: what
// an earlier, failed attempt left is removed first, and a failed attempt
// removes what it made.
func (w *podWorker) setupVolumes(ctx context.Context, r *podRun) (err error) {
	root := filepath.Join(w.podDir(r.uid), "volumes")
	if err := removeTree(root); err != nil {
		return err
	}
	if len(r.pod.Spec.Volumes) == 0 {
		return nil
	}
	defer func() {
		if err != nil {
			if rerr := removeTree(root); rerr != nil {
				err = fmt.Errorf("%w (and cleaning up: %w)", err, rerr)
			}
		}
	}()
	src, err := w.readSources(ctx, r.pod)
	if err != nil {
		return err
	}
	facts := w.facts(r)
	var fsGroup *int64
	if sc := r.pod.Spec.SecurityContext; sc != nil {
		fsGroup = sc.FSGroup
	}
	for i := range r.pod.Spec.Volumes {
		v := &r.pod.Spec.Volumes[i]
		if v.PersistentVolumeClaim != nil {
			if err := w.setupClaimVolume(ctx, r.uid, v, filepath.Join(root, v.Name), fsGroup); err != nil {
				return fmt.Errorf("MountVolume.SetUp failed for volume %q: %w", v.Name, err)
			}
			continue
		}
		if err := w.setupVolume(v, root, facts, src, fsGroup); err != nil {
			return fmt.Errorf("MountVolume.SetUp failed for volume %q: %w", v.Name, err)
		}
	}
	return nil
}

func (w *podWorker) setupVolume(v *corev1.Volume, root string, facts podFacts, src configSources, fsGroup *int64) error {
	if v.HostPath != nil {
		_, err := prepareHostPath(v.HostPath, w.a.cfg.AllowHostPath)
		return err
	}
	dir := filepath.Join(root, v.Name)
	mode := os.FileMode(0o755)
	if v.EmptyDir != nil {
		mode = 0o777 // any user of the pod may write, as in Kubernetes
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if volumeOnTmpfs(v) {
		opts := "mode=" + strconv.FormatUint(uint64(mode), 8)
		if v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil && v.EmptyDir.SizeLimit.Value() > 0 {
			opts += ",size=" + strconv.FormatInt(v.EmptyDir.SizeLimit.Value(), 10)
		}
		if err := mountTmpfs(dir, opts); err != nil {
			return err
		}
	}
	if err := os.Chmod(dir, mode); err != nil { // not subject to the umask
		return err
	}
	switch {
	case v.EmptyDir != nil:
	case v.ConfigMap != nil, v.Secret != nil, v.DownwardAPI != nil, v.Projected != nil:
		files, err := projectFiles(v, facts, src)
		if err != nil {
			return err
		}
		if err := writeFiles(dir, files); err != nil {
			return err
		}
	default:
		return errors.New("unsupported volume source")
	}
	if fsGroup != nil {
		return setOwnership(dir, int(*fsGroup), volumeReadOnly(v))
	}
	return nil
}

// writeFiles writes the volume's files below dir with their modes.
func writeFiles(dir string, files []projectedFile) error {
	for _, f := range files {
		p := filepath.Join(dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
		if err := os.WriteFile(p, f.Data, f.Mode); err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
		if err := os.Chmod(p, f.Mode); err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
	}
	return nil
}

// setOwnership gives a volume to the pod's fsGroup as kubelet does: every
// file and directory group-owned by it, readable (and, for a writable
// volume, writable) by the group, directories setgid so new files inherit
// the group.
func setOwnership(dir string, gid int, readOnly bool) error {
	mask := os.FileMode(0o660)
	if readOnly {
		mask = 0o440
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if err := os.Lchown(p, -1, gid); err != nil {
			return err
		}
		m := info.Mode() | mask
		if d.IsDir() {
			m |= os.ModeSetgid | 0o110
		}
		return os.Chmod(p, m&(os.ModePerm|os.ModeSetgid))
	})
}

// mountTmpfs mounts a tmpfs at dir unless one is mounted there already.
func mountTmpfs(dir, opts string) error {
	if mounted, err := mountinfo.Mounted(dir); err == nil && mounted {
		return nil
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs at %s: %w", dir, err)
	}
	return nil
}

// prepareHostPath checks a hostPath volume against the allowed directories
// (after resolving symlinks, so a link cannot lead out of them) and its
// type, creating it for DirectoryOrCreate and FileOrCreate. It returns the
// resolved path.
func prepareHostPath(hp *corev1.HostPathVolumeSource, allowed []string) (string, error) {
	p, err := resolveHostPath(hp.Path, allowed)
	if err != nil {
		return "", err
	}
	t := corev1.HostPathUnset
	if hp.Type != nil {
		t = *hp.Type
	}
	fi, statErr := os.Stat(p)
	switch t {
	case corev1.HostPathDirectoryOrCreate:
		if errors.Is(statErr, fs.ErrNotExist) {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return "", err
			}
			return resolveHostPath(hp.Path, allowed)
		}
		t = corev1.HostPathDirectory
	case corev1.HostPathFileOrCreate:
		if errors.Is(statErr, fs.ErrNotExist) {
			f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return "", err
			}
			f.Close()
			return p, nil
		}
		t = corev1.HostPathFile
	}
	if t == corev1.HostPathUnset {
		return p, nil
	}
	if statErr != nil {
		return "", fmt.Errorf("hostPath type check failed: %s: %w", hp.Path, statErr)
	}
	ok := false
	switch t {
	case corev1.HostPathDirectory:
		ok = fi.IsDir()
	case corev1.HostPathFile:
		ok = fi.Mode().IsRegular()
	case corev1.HostPathSocket:
		ok = fi.Mode()&fs.ModeSocket != 0
	case corev1.HostPathCharDev:
		ok = fi.Mode()&fs.ModeCharDevice != 0
	case corev1.HostPathBlockDev:
		ok = fi.Mode()&fs.ModeDevice != 0 && fi.Mode()&fs.ModeCharDevice == 0
	default:
		return "", fmt.Errorf("hostPath type %q is not supported", t)
	}
	if !ok {
		return "", fmt.Errorf("hostPath type check failed: %s is not a %s", hp.Path, t)
	}
	return p, nil
}

// resolveHostPath resolves the symlinks of the part of path that exists and
// checks the result lies under an allowed directory.
func resolveHostPath(p string, allowed []string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("hostPath %q is not absolute", p)
	}
	p = filepath.Clean(p)
	if !hostPathAllowed(p, allowed) {
		return "", errHostPathNotAllowed(p, allowed)
	}
	existing, rest := p, ""
	for {
		if _, err := os.Lstat(existing); err == nil {
			break
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			break
		}
		rest = filepath.Join(filepath.Base(existing), rest)
		existing = parent
	}
	real, err := filepath.EvalSymlinks(existing)
	if err != nil {
		return "", fmt.Errorf("hostPath %s: %w", p, err)
	}
	real = filepath.Join(real, rest)
	var realAllowed []string
	for _, a := range allowed {
		if ra, err := filepath.EvalSymlinks(a); err == nil {
			realAllowed = append(realAllowed, ra)
		}
		realAllowed = append(realAllowed, a)
	}
	if !hostPathAllowed(real, realAllowed) {
		return "", fmt.Errorf("%w (it leads to %s)", errHostPathNotAllowed(p, allowed), real)
	}
	return real, nil
}

// containerMounts are the bind mounts of a container's volumeMounts and its
// termination message file. A subPath is resolved inside its volume without
// following links out of it and staged as its own bind mount under the pod
// dir (volume-subpaths/<volume>/<container>/<index>), so that what the
// container gets cannot be swapped for something outside the volume
// between the check and the mount (kubelet does the same).
func (w *podWorker) containerMounts(r *podRun, c *corev1.Container) ([]specs.Mount, error) {
	podDir := w.podDir(r.uid)
	vols := map[string]*corev1.Volume{}
	for i := range r.pod.Spec.Volumes {
		vols[r.pod.Spec.Volumes[i].Name] = &r.pod.Spec.Volumes[i]
	}
	var out []specs.Mount
	for i, m := range c.VolumeMounts {
		v := vols[m.Name]
		if v == nil {
			return nil, fmt.Errorf("%w: container %s: volumeMounts[%d]: no volume %q in the pod", errConfig, c.Name, i, m.Name)
		}
		src := volumeDir(podDir, v.Name)
		if v.HostPath != nil {
			p, err := resolveHostPath(v.HostPath.Path, w.a.cfg.AllowHostPath)
			if err != nil {
				return nil, fmt.Errorf("%w: container %s: volume %s: %w", errConfig, c.Name, v.Name, err)
			}
			src = p
		}
		readOnly := m.ReadOnly || volumeReadOnly(v)
		if m.SubPath != "" {
			staged := filepath.Join(podDir, "volume-subpaths", v.Name, c.Name, strconv.Itoa(i))
			if err := stageSubPath(src, m.SubPath, staged, !readOnly); err != nil {
				return nil, fmt.Errorf("%w: container %s: volumeMounts[%d] subPath %q: %w", errConfig, c.Name, i, m.SubPath, err)
			}
			src = staged
		}
		out = append(out, bindMount(m.MountPath, src, readOnly))
	}
	tm, err := w.terminationFile(r, c)
	if err != nil {
		return nil, err
	}
	out = append(out, bindMount(terminationMessagePath(c), tm, false))
	return out, nil
}

// stageSubPath bind-mounts sub of volume at staged, creating sub as a
// directory when it does not exist (and create is set).
func stageSubPath(volume, sub, staged string, create bool) error {
	if !filepath.IsLocal(sub) {
		return errors.New("must be a relative path inside the volume")
	}
	// What an earlier instance staged goes first.
	if err := unmountAll(staged); err != nil {
		return err
	}
	if err := os.Remove(staged); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	h, err := pathrs.OpenInRoot(volume, sub)
	if errors.Is(err, fs.ErrNotExist) && create {
		var root *os.File
		if root, err = openPath(volume); err != nil {
			return err
		}
		h, err = pathrs.MkdirAllHandle(root, sub, 0o755)
		root.Close()
	}
	if err != nil {
		return err
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(staged), 0o755); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err = os.Mkdir(staged, 0o755)
	} else {
		var f *os.File
		if f, err = os.OpenFile(staged, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o644); err == nil {
			f.Close()
		}
	}
	if err != nil {
		return err
	}
	// The handle, not the path: what was checked is what is mounted.
	src := fmt.Sprintf("/proc/self/fd/%d", h.Fd())
	if err := unix.Mount(src, staged, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind mount: %w", err)
	}
	return nil
}

// openPath opens a directory as an O_PATH handle.
func openPath(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// terminationFile creates (empty) the file a container instance may write
// its termination message to: pods/<uid>/containers/<name>/termination-log.
func (w *podWorker) terminationFile(r *podRun, c *corev1.Container) (string, error) {
	dir := filepath.Join(w.podDir(r.uid), "containers", c.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, "termination-log")
	if err := os.WriteFile(p, nil, 0o666); err != nil {
		return "", err
	}
	// Any user of the container may write it, whatever the umask.
	return p, os.Chmod(p, 0o666)
}

// terminationMessage is what a container that exited with code left: its
// termination message file (at most maxTerminationMessage bytes) or, when
// that is empty, the policy is FallbackToLogsOnError and it failed, the
// tail of its log.
func (w *podWorker) terminationMessage(r *podRun, name string, code int32) string {
	c := containerNamed(slices.Concat(r.pod.Spec.InitContainers, r.pod.Spec.Containers), name)
	if c == nil {
		return ""
	}
	msg := readLimited(filepath.Join(w.podDir(r.uid), "containers", name, "termination-log"), 0, maxTerminationMessage)
	if strings.TrimSpace(msg) == "" && code != 0 && c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError {
		logPath := LogPath(w.a.cfg.StateDir, w.namespace, w.name, name, false)
		msg = logTail([]byte(readLimited(logPath, -2*fallbackLogBytes, 2*fallbackLogBytes)))
	}
	return msg
}

// readLimited reads at most n bytes of a file from offset (negative: from
// the end); "" when it cannot.
func readLimited(p string, offset int64, n int) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	if offset < 0 {
		if _, err := f.Seek(offset, io.SeekEnd); err != nil {
			f.Seek(0, io.SeekStart)
		}
	}
	b, _ := io.ReadAll(io.LimitReader(f, int64(n)))
	return string(b)
}

// removeTree unmounts everything mounted under dir, then removes dir. It
// refuses to remove anything while a mount is left below dir: removing
// through a bind mount of a hostPath would delete the host's files.
func removeTree(dir string) error {
	if err := unmountAll(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// unmountAll unmounts every mount at or below dir, deepest first, and
// checks none is left.
func unmountAll(dir string) error {
	list := func() ([]string, error) {
		ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
			return !(m.Mountpoint == dir || strings.HasPrefix(m.Mountpoint, dir+"/")), false
		})
		if err != nil {
			return nil, fmt.Errorf("list mounts under %s: %w", dir, err)
		}
		var out []string
		for _, m := range ms {
			out = append(out, m.Mountpoint)
		}
		sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
		return out, nil
	}
	points, err := list()
	if err != nil {
		return err
	}
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	if left, err := list(); err != nil {
		return err
	} else if len(left) > 0 {
		return fmt.Errorf("mounts left under %s: %s", dir, strings.Join(left, ", "))
	}
	return nil
}
