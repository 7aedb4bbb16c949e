package nodes

// The files of configMap, secret, downwardAPI and projected volumes, and
// the mounts of a container (pure), as kubelet lays them out. volumes.go
// writes them and mounts.

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

// defaultFileMode is the mode of projected files when neither the item
// nor the volume gives one (Kubernetes' defaultMode).
const defaultFileMode = 0o644

// projectedFile is one file of a volume that the agent fills.
type projectedFile struct {
	Path string // relative to the volume's root
	Data []byte
	Mode os.FileMode
}

// projectFiles lists the files of a configMap, secret, downwardAPI or
// projected volume. A missing ConfigMap, Secret or key that is not
// optional is an error naming it; an optional one gives no files.
func projectFiles(v *corev1.Volume, f podFacts, src configSources) ([]projectedFile, error) {
	var files []projectedFile
	var err error
	switch {
	case v.ConfigMap != nil:
		files, err = configMapFiles(v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, fileMode(nil, v.ConfigMap.DefaultMode), src)
	case v.Secret != nil:
		files, err = secretFiles(v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, fileMode(nil, v.Secret.DefaultMode), src)
	case v.DownwardAPI != nil:
		files, err = downwardFiles(v.DownwardAPI.Items, fileMode(nil, v.DownwardAPI.DefaultMode), f)
	case v.Projected != nil:
		def := fileMode(nil, v.Projected.DefaultMode)
		for i, s := range v.Projected.Sources {
			var more []projectedFile
			switch {
			case s.ConfigMap != nil:
				more, err = configMapFiles(s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.Optional, def, src)
			case s.Secret != nil:
				more, err = secretFiles(s.Secret.Name, s.Secret.Items, s.Secret.Optional, def, src)
			case s.DownwardAPI != nil:
				more, err = downwardFiles(s.DownwardAPI.Items, def, f)
			default:
				err = fmt.Errorf("sources[%d]: only configMap, secret and downwardAPI sources are supported", i)
			}
			if err != nil {
				break
			}
			files = append(files, more...)
		}
	default:
		return nil, fmt.Errorf("volume %s: not a configMap, secret, downwardAPI or projected volume", v.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", v.Name, err)
	}
	for _, file := range files {
		if !filepath.IsLocal(file.Path) {
			return nil, fmt.Errorf("volume %s: path %q leaves the volume", v.Name, file.Path)
		}
	}
	// A later source wins a path, as kubelet's payload map does.
	seen := map[string]int{}
	var out []projectedFile
	for _, file := range files {
		file.Path = path.Clean(file.Path)
		if i, ok := seen[file.Path]; ok {
			out[i] = file
			continue
		}
		seen[file.Path] = len(out)
		out = append(out, file)
	}
	return out, nil
}

func fileMode(item, def *int32) os.FileMode {
	switch {
	case item != nil:
		return os.FileMode(*item) & os.ModePerm
	case def != nil:
		return os.FileMode(*def) & os.ModePerm
	}
	return defaultFileMode
}

// keyFiles is kubelet's payload of a ConfigMap or Secret: every key as a
// file named after it, or just the items (key -> path).
func keyFiles(data map[string][]byte, items []corev1.KeyToPath, optional *bool, def os.FileMode, missingKey func(string) error) ([]projectedFile, error) {
	var out []projectedFile
	if len(items) == 0 {
		for _, k := range sortedKeys(data) {
			out = append(out, projectedFile{Path: k, Data: data[k], Mode: def})
		}
		return out, nil
	}
	for _, it := range items {
		b, ok := data[it.Key]
		if !ok {
			if isTrue(optional) {
				continue
			}
			return nil, missingKey(it.Key)
		}
		out = append(out, projectedFile{Path: it.Path, Data: b, Mode: fileMode(it.Mode, int32Ptr(int32(def)))})
	}
	return out, nil
}

func int32Ptr(v int32) *int32 { return &v }

func configMapFiles(name string, items []corev1.KeyToPath, optional *bool, def os.FileMode, src configSources) ([]projectedFile, error) {
	cm := src.ConfigMaps[name]
	if cm == nil {
		if isTrue(optional) {
			return nil, nil
		}
		return nil, configMapNotFound(src.Namespace, name)
	}
	return keyFiles(configMapData(cm), items, optional, def, func(k string) error {
		return fmt.Errorf("configmap %s/%s has no key %q", src.Namespace, name, k)
	})
}

func secretFiles(name string, items []corev1.KeyToPath, optional *bool, def os.FileMode, src configSources) ([]projectedFile, error) {
	sec := src.Secrets[name]
	if sec == nil {
		if isTrue(optional) {
			return nil, nil
		}
		return nil, secretNotFound(src.Namespace, name)
	}
	return keyFiles(secretData(sec), items, optional, def, func(k string) error {
		return fmt.Errorf("secret %s/%s has no key %q", src.Namespace, name, k)
	})
}

func downwardFiles(items []corev1.DownwardAPIVolumeFile, def os.FileMode, f podFacts) ([]projectedFile, error) {
	var out []projectedFile
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = fieldRefValue(it.FieldRef.FieldPath, f, true)
		case it.ResourceFieldRef != nil:
			c := containerNamed(f.Containers, it.ResourceFieldRef.ContainerName)
			if c == nil {
				return nil, fmt.Errorf("%s: resourceFieldRef: no container %q in the pod", it.Path, it.ResourceFieldRef.ContainerName)
			}
			v, err = resourceFieldValue(it.ResourceFieldRef, c, f.Allocatable)
		default:
			err = fmt.Errorf("neither fieldRef nor resourceFieldRef")
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", it.Path, err)
		}
		out = append(out, projectedFile{Path: it.Path, Data: []byte(v), Mode: fileMode(it.Mode, int32Ptr(int32(def)))})
	}
	return out, nil
}

// volumeReadOnly reports whether a volume is always mounted read-only, as
// Kubernetes mounts configMap, secret, downwardAPI and projected volumes.
func volumeReadOnly(v *corev1.Volume) bool {
	return v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil || v.Projected != nil ||
		(v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ReadOnly)
}

// volumeOnTmpfs reports whether the agent keeps the volume in memory: an
// emptyDir of medium Memory, and secret and projected volumes, so that
// secret files never touch the disk (as kubelet does).
func volumeOnTmpfs(v *corev1.Volume) bool {
	return (v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory) || v.Secret != nil || v.Projected != nil
}

// mountSource is where a container's volumeMount comes from on the host:
// the volume's path, or a staged subPath inside it (stageSubPath).
type mountSource struct {
	Path     string
	ReadOnly bool
}

// ociMounts orders the container's mounts for the runtime: parents before
// what is mounted inside them, as containerd's CRI plugin sorts them.
func ociMounts(ms []specs.Mount) []specs.Mount {
	out := slices.Clone(ms)
	depth := func(m specs.Mount) int {
		return strings.Count(filepath.Clean(m.Destination), "/")
	}
	slices.SortStableFunc(out, func(a, b specs.Mount) int { return depth(a) - depth(b) })
	return out
}

// bindMount is a bind mount of src at dst.
func bindMount(dst, src string, readOnly bool) specs.Mount {
	mode := "rw"
	if readOnly {
		mode = "ro"
	}
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "rprivate", mode}}
}

// hostPathAllowed reports whether path lies under one of the allowed
// directories (lexically; the caller resolves symlinks first).
func hostPathAllowed(p string, allowed []string) bool {
	p = filepath.Clean(p)
	for _, a := range allowed {
		if a == "/" || p == a || strings.HasPrefix(p, a+"/") {
			return true
		}
	}
	return false
}

// errHostPathNotAllowed names the agent flag that would allow the path.
func errHostPathNotAllowed(p string, allowed []string) error {
	if len(allowed) == 0 {
		return fmt.Errorf("hostPath %s is not allowed: this node allows no host paths (agent flag --allow-host-path)", p)
	}
	return fmt.Errorf("hostPath %s is not under a directory this node allows (agent flag --allow-host-path=%s)", p, strings.Join(allowed, ","))
}

// termination message limits, as kubelet's.
const (
	maxTerminationMessage = 4096 // bytes read from terminationMessagePath
	fallbackLogLines      = 80   // FallbackToLogsOnError: last lines of the log
	fallbackLogBytes      = 2048 // ... and at most this many bytes
)

// terminationMessagePath is where the container may write why it ended.
func terminationMessagePath(c *corev1.Container) string {
	if c.TerminationMessagePath != "" {
		return c.TerminationMessagePath
	}
	return corev1.TerminationMessagePathDefault
}

// logTail is the end of a log for FallbackToLogsOnError: its last
// fallbackLogLines lines, at most fallbackLogBytes bytes.
func logTail(log []byte) string {
	s := strings.TrimRight(string(log), "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > fallbackLogLines {
		lines = lines[len(lines)-fallbackLogLines:]
	}
	s = strings.Join(lines, "\n")
	if len(s) > fallbackLogBytes {
		s = s[len(s)-fallbackLogBytes:]
	}
	return s
}
