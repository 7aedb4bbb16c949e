package nodes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"

	"bosun/store"
)

// Labels bosun puts on every container it creates; a restarted agent adopts
// containers by them.
const (
	LabelPodNamespace = "bosun.dev/pod-namespace"
	LabelPodName      = "bosun.dev/pod-name"
	LabelPodUID       = "bosun.dev/pod-uid"
	LabelContainer    = "bosun.dev/container"
	LabelSandbox      = "bosun.dev/sandbox"
	LabelNetns        = "bosun.dev/netns"
	LabelPodIP        = "bosun.dev/pod-ip"
	LabelRestartCount = "bosun.dev/restart-count"
	LabelGracePeriod  = "bosun.dev/grace-period"
)

// Errors that classify a failed start; they decide the waiting reason.
var (
	errNeverPull = errors.New("image is not present and imagePullPolicy is Never")
	errPull      = errors.New("pull image")
	errConfig    = errors.New("container config")
)

// LogPath is where a container's stdout and stderr go:
// stateDir/logs/<namespace>_<pod>/<container>.log, and the previous run's
// log with the suffix .1.
func LogPath(stateDir, namespace, pod, container string, previous bool) string {
	p := filepath.Join(stateDir, "logs", namespace+"_"+pod, container+".log")
	if previous {
		p += ".1"
	}
	return p
}

// normalizeRef turns an image as written in a pod spec into containerd's
// image name (docker.io/library/nginx:latest for "nginx").
func normalizeRef(image string) (string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", image, err)
	}
	return reference.TagNameOnly(named).String(), nil
}

// ensureImage returns the container's image, pulling it as its
// imagePullPolicy says, unpacked for the agent's snapshotter.
func (a *Agent) ensureImage(ctx context.Context, c *corev1.Container, pod store.ObjectRef) (client.Image, error) {
	name, err := normalizeRef(c.Image)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errConfig, err)
	}
	policy := pullPolicy(c)
	img, err := a.client.GetImage(ctx, name)
	switch {
	case err == nil && policy != corev1.PullAlways:
	case err != nil && !errdefs.IsNotFound(err):
		return nil, fmt.Errorf("image %s: %w", name, err)
	case err != nil && policy == corev1.PullNever:
		return nil, fmt.Errorf("image %s: %w", name, errNeverPull)
	default:
		start := time.Now()
		a.imagePulling(pod, name)
		img, err = a.client.Pull(ctx, name, client.WithPullUnpack, client.WithPullSnapshotter(a.cfg.Snapshotter),
			client.WithResolver(a.resolver()))
		a.m.pulled(time.Since(start), err)
		a.imagePulled(pod, name, time.Since(start), err)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", errPull, name, err)
		}
		a.log.Info("pulled image", "image", name, "took", time.Since(start))
		return img, nil
	}
	a.imagePresent(pod, name)
	ok, err := img.IsUnpacked(ctx, a.cfg.Snapshotter)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	if !ok {
		if err := img.Unpack(ctx, a.cfg.Snapshotter); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", name, err)
		}
	}
	return img, nil
}

// resolver reaches registries over HTTPS, except localhost and the
// configured insecure registries, which are reached over plain HTTP.
func (a *Agent) resolver() remotes.Resolver {
	plain := func(host string) (bool, error) {
		if slices.Contains(a.cfg.InsecureRegistries, host) {
			return true, nil
		}
		return docker.MatchLocalhost(host)
	}
	return docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(plain)),
	})
}

// containerPlan is what createContainer needs beyond the container spec.
type containerPlan struct {
	ID        string
	Labels    map[string]string
	Env       []string
	Hostname  string
	NetnsPath string
	HostsPath string
	Resolv    string
	LogPath   string
	// Mounts are the container's volumes and termination message file.
	Mounts   []specs.Mount
	Security securityPlan
}

// createContainer creates the container and its (not yet started) task.
func (a *Agent) createContainer(ctx context.Context, c *corev1.Container, img client.Image, p containerPlan) (client.Container, client.Task, error) {
	cfg, err := img.Spec(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("image config %s: %w", img.Name(), err)
	}
	args := processArgs(cfg.Config.Entrypoint, cfg.Config.Cmd, expandAll(c.Command, p.Env), expandAll(c.Args, p.Env))
	if len(args) == 0 {
		return nil, nil, fmt.Errorf("%w: container %s: no command: the image has no entrypoint and the spec no command", errConfig, c.Name)
	}
	pod := p.Labels[LabelPodNamespace] + "/" + p.Labels[LabelPodName]
	if err := p.Security.checkNonRoot(cfg.Config.User, pod, c.Name); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errConfig, err)
	}
	mounts := slices.Clone(p.Mounts)
	for dst, src := range map[string]string{"/etc/hosts": p.HostsPath, "/etc/resolv.conf": p.Resolv} {
		// A volume the pod mounts there wins, as in kubelet.
		if !slices.ContainsFunc(mounts, func(m specs.Mount) bool { return path.Clean(m.Destination) == dst }) {
			mounts = append(mounts, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "rprivate", "ro"}})
		}
	}
	opts := []oci.SpecOpts{
		oci.WithImageConfig(img),
		oci.WithProcessArgs(args...),
		oci.WithEnv(p.Env),
		oci.WithMounts(ociMounts(mounts)),
	}
	opts = append(opts, namespaceOpts(p)...) // hostnet.go
	// After the image's config, whose user they override.
	opts = append(opts, p.Security.specOpts(cfg.Config.User)...)
	if c.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(c.WorkingDir))
	}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && q.Value() > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(q.Value())))
	}
	if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok && q.MilliValue() > 0 {
		const period = 100000
		quota := q.MilliValue() * period / 1000
		if quota < 1000 {
			quota = 1000 // the kernel's minimum
		}
		opts = append(opts, oci.WithCPUCFS(quota, period))
	}
	cpuReq, ok := c.Resources.Requests[corev1.ResourceCPU]
	if !ok {
		cpuReq, ok = c.Resources.Limits[corev1.ResourceCPU]
	}
	if ok && cpuReq.MilliValue() > 0 {
		shares := uint64(cpuReq.MilliValue() * 1024 / 1000)
		if shares < 2 {
			shares = 2
		}
		opts = append(opts, oci.WithCPUShares(shares))
	}

	ctr, err := a.client.NewContainer(ctx, p.ID,
		client.WithImage(img),
		client.WithSnapshotter(a.cfg.Snapshotter),
		client.WithNewSnapshot(p.ID, img),
		client.WithContainerLabels(p.Labels),
		client.WithNewSpec(opts...),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("create container %s: %w", p.ID, err)
	}
	if err := os.MkdirAll(filepath.Dir(p.LogPath), 0o755); err != nil {
		a.deleteContainer(ctx, ctr)
		return nil, nil, fmt.Errorf("log dir: %w", err)
	}
	task, err := ctr.NewTask(ctx, cio.LogFile(p.LogPath))
	if err != nil {
		a.deleteContainer(ctx, ctr)
		return nil, nil, fmt.Errorf("create task %s: %w", p.ID, err)
	}
	return ctr, task, nil
}

// deleteContainer removes a container, its task and its snapshot; what is
// already gone is not an error. It keeps going when ctx has ended, so that a
// half-created container is not left behind.
func (a *Agent) deleteContainer(ctx context.Context, ctr client.Container) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if task, err := ctr.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task %s: %w", ctr.ID(), err)
		}
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("task of %s: %w", ctr.ID(), err)
	}
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", ctr.ID(), err)
	}
	return nil
}

// stopContainer sends SIGTERM to the container's task, waits up to grace for
// it to exit, then SIGKILLs it, and deletes task, container and snapshot.
func (a *Agent) stopContainer(ctx context.Context, ctr client.Container, grace time.Duration, hook *stopHook) error {
	task, err := ctr.Task(ctx, nil)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("task of %s: %w", ctr.ID(), err)
	}
	if err == nil {
		st, err := task.Status(ctx)
		if err == nil && st.Status != client.Stopped {
			waitCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			exited, err := task.Wait(waitCtx)
			if err != nil {
				return fmt.Errorf("wait %s: %w", ctr.ID(), err)
			}
			grace = a.runPreStop(ctx, hook, ctr, task, grace)
			if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
				return fmt.Errorf("SIGTERM %s: %w", ctr.ID(), err)
			}
			timer := time.NewTimer(grace)
			select {
			case <-exited:
				timer.Stop()
			case <-timer.C:
				a.log.Info("grace period over, killing", "container", ctr.ID(), "grace", grace)
				if err := task.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
					return fmt.Errorf("SIGKILL %s: %w", ctr.ID(), err)
				}
				select {
				case <-exited:
				case <-ctx.Done():
					return ctx.Err()
				}
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			}
		}
	}
	return a.deleteContainer(ctx, ctr)
}

// adoptedContainer is a container found in containerd at start-up.
type adoptedContainer struct {
	ctr       client.Container
	labels    map[string]string
	createdAt time.Time
	restart   int32
}

// discover lists bosun's containers in the agent's namespace, grouped by
// pod key (namespace/name) and then by pod UID.
func (a *Agent) discover(ctx context.Context) (map[string]map[string][]adoptedContainer, error) {
	ctrs, err := a.client.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := map[string]map[string][]adoptedContainer{}
	for _, ctr := range ctrs {
		info, err := ctr.Info(ctx, client.WithoutRefreshedMetadata)
		if err != nil {
			if errdefs.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("container %s: %w", ctr.ID(), err)
		}
		l := info.Labels
		if l[LabelPodUID] == "" || l[LabelPodName] == "" || l[LabelContainer] == "" {
			continue
		}
		rc, _ := strconv.Atoi(l[LabelRestartCount])
		key := l[LabelPodNamespace] + "/" + l[LabelPodName]
		if out[key] == nil {
			out[key] = map[string][]adoptedContainer{}
		}
		out[key][l[LabelPodUID]] = append(out[key][l[LabelPodUID]], adoptedContainer{
			ctr: ctr, labels: l, createdAt: info.CreatedAt, restart: int32(rc),
		})
	}
	return out, nil
}

// ImportImages imports OCI image archives (as written by examples/mkimage)
// into containerd and unpacks them for the default snapshotter. It returns
// the names of the imported images. It is `bosun image import`.
func ImportImages(ctx context.Context, containerdAddress, namespace string, files ...string) ([]string, error) {
	c, err := client.New(containerdAddress)
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", containerdAddress, err)
	}
	defer c.Close()
	ctx = namespaces.WithNamespace(ctx, namespace)
	var names []string
	for _, file := range files {
		imported, err := importArchive(ctx, c, file)
		if err != nil {
			return names, err
		}
		names = append(names, imported...)
	}
	return names, nil
}

func importArchive(ctx context.Context, c *client.Client, file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	return ImportArchive(ctx, c, file, f)
}

// ImportArchive imports the OCI image archive r (named file in errors)
// into containerd (ctx carries the namespace) and unpacks its images for
// the default snapshotter; it returns the names of the images imported.
func ImportArchive(ctx context.Context, c *client.Client, file string, r io.Reader) ([]string, error) {
	imgs, err := c.Import(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("import %s: the archive names no image (index.json needs an io.containerd.image.name or org.opencontainers.image.ref.name annotation)", file)
	}
	var names []string
	for _, im := range imgs {
		img := client.NewImage(c, im)
		if err := img.Unpack(ctx, ""); err != nil {
			return names, fmt.Errorf("import %s: unpack %s: %w", file, im.Name, err)
		}
		names = append(names, im.Name)
	}
	return names, nil
}
