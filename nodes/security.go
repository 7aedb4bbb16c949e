package nodes

// How a container runs: its identity, privileges and kernel settings, from
// the pod's and the container's securityContext, with containerd CRI's
// defaults (the default capability set, the RuntimeDefault seccomp profile,
// masked and read-only /proc paths, privilege escalation allowed).

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cap"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

// securityPlan is a container's effective security settings: the
// container's securityContext wins over the pod's for the fields both have.
type securityPlan struct {
	RunAsUser    *int64
	RunAsGroup   *int64
	RunAsNonRoot bool
	// SupplementalGroups are the pod's supplementalGroups, then its fsGroup.
	SupplementalGroups []uint32
	// MergeImageGroups adds the groups the image's /etc/group gives the
	// user (supplementalGroupsPolicy Merge, the default; Strict does not).
	MergeImageGroups bool
	Privileged       bool
	// AllowPrivilegeEscalation false sets no_new_privs.
	AllowPrivilegeEscalation *bool
	ReadOnlyRootFS           bool
	// Capabilities as written (NET_ADMIN, or ALL); nil: the default set.
	CapAdd, CapDrop []string
	// Seccomp is RuntimeDefault (the default) or Unconfined.
	Seccomp corev1.SeccompProfileType
	// Sysctls are the pod's, set in the container's namespaces (the pod's
	// network namespace, the container's IPC namespace).
	Sysctls map[string]string
}

// securityFor derives the plan of container c of a pod with spec.
func securityFor(spec *corev1.PodSpec, c *corev1.Container) securityPlan {
	p := securityPlan{MergeImageGroups: true, Seccomp: corev1.SeccompProfileTypeRuntimeDefault}
	if psc := spec.SecurityContext; psc != nil {
		p.RunAsUser, p.RunAsGroup = psc.RunAsUser, psc.RunAsGroup
		p.RunAsNonRoot = isTrue(psc.RunAsNonRoot)
		for _, g := range psc.SupplementalGroups {
			p.SupplementalGroups = append(p.SupplementalGroups, uint32(g))
		}
		if psc.FSGroup != nil {
			p.SupplementalGroups = append(p.SupplementalGroups, uint32(*psc.FSGroup))
		}
		if psc.SupplementalGroupsPolicy != nil && *psc.SupplementalGroupsPolicy == corev1.SupplementalGroupsPolicyStrict {
			p.MergeImageGroups = false
		}
		if psc.SeccompProfile != nil {
			p.Seccomp = psc.SeccompProfile.Type
		}
		if len(psc.Sysctls) > 0 {
			p.Sysctls = map[string]string{}
			for _, s := range psc.Sysctls {
				p.Sysctls[s.Name] = s.Value
			}
		}
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			p.RunAsUser = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			p.RunAsGroup = sc.RunAsGroup
		}
		if sc.RunAsNonRoot != nil {
			p.RunAsNonRoot = *sc.RunAsNonRoot
		}
		if sc.SeccompProfile != nil {
			p.Seccomp = sc.SeccompProfile.Type
		}
		p.Privileged = isTrue(sc.Privileged)
		p.AllowPrivilegeEscalation = sc.AllowPrivilegeEscalation
		p.ReadOnlyRootFS = isTrue(sc.ReadOnlyRootFilesystem)
		if sc.Capabilities != nil {
			for _, c := range sc.Capabilities.Add {
				p.CapAdd = append(p.CapAdd, string(c))
			}
			for _, c := range sc.Capabilities.Drop {
				p.CapDrop = append(p.CapDrop, string(c))
			}
		}
	}
	return p
}

// userPart is the user of an image's "user[:group]".
func userPart(imageUser string) string {
	u, _, _ := strings.Cut(imageUser, ":")
	return u
}

// userString is the user the runtime resolves against the image's
// /etc/passwd (containerd's oci.WithUser): runAsUser[:runAsGroup]; with
// runAsGroup alone, the image's user with that group; else the image's
// user, root when it names none. A uid without a group takes the group
// /etc/passwd gives it, else 0.
func (p securityPlan) userString(imageUser string) string {
	u := imageUser
	if p.RunAsUser != nil {
		u = strconv.FormatInt(*p.RunAsUser, 10)
	}
	if p.RunAsGroup != nil {
		u = userPart(u)
		if u == "" {
			u = "0"
		}
		u += ":" + strconv.FormatInt(*p.RunAsGroup, 10)
	}
	if u == "" {
		u = "0"
	}
	return u
}

// checkNonRoot is kubelet's runAsNonRoot check: with runAsNonRoot, a
// container must not run as uid 0, and the image's user must be numeric
// for the check to be possible. pod names the pod in the message.
func (p securityPlan) checkNonRoot(imageUser, pod, container string) error {
	if !p.RunAsNonRoot {
		return nil
	}
	if p.RunAsUser != nil {
		if *p.RunAsUser == 0 {
			return fmt.Errorf("container's runAsUser breaks non-root policy (pod: %q, container: %s)", pod, container)
		}
		return nil
	}
	u := userPart(imageUser)
	if u == "" {
		u = "0"
	}
	uid, err := strconv.ParseInt(u, 10, 64)
	if err != nil {
		return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %q, container: %s)", u, pod, container)
	}
	if uid == 0 {
		return fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", pod, container)
	}
	return nil
}

// capName turns a securityContext capability (NET_ADMIN) into the
// runtime's name (CAP_NET_ADMIN).
func capName(c string) string {
	c = strings.ToUpper(c)
	if strings.HasPrefix(c, "CAP_") {
		return c
	}
	return "CAP_" + c
}

// namespacedSysctl reports whether a sysctl is set per namespace (network
// or IPC) rather than for the whole machine: only those may be set for a
// pod. Names may use dots or slashes.
func namespacedSysctl(name string) bool {
	name = sysctlDots(name)
	switch {
	case strings.HasPrefix(name, "net."):
		return true
	case name == "kernel.sem", strings.HasPrefix(name, "kernel.shm"), strings.HasPrefix(name, "kernel.msg"),
		strings.HasPrefix(name, "fs.mqueue."):
		return true
	}
	return false
}

// sysctlDots converts a sysctl written with slashes (net/ipv4/ip_forward)
// to the dotted form; dots inside a slashed name become slashes, as the
// kernel's own names may contain dots (net/ipv4/conf/eth0.100/forwarding).
func sysctlDots(name string) string {
	if !strings.Contains(name, "/") {
		return name
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '/':
			return '.'
		case '.':
			return '/'
		}
		return r
	}, name)
}

// check refuses what the node does not allow or cannot do: privileged
// without allowPrivileged (the agent flag --allow-privileged), unknown
// capabilities, sysctls that are not namespaced, and seccomp profiles
// other than RuntimeDefault and Unconfined.
func (p securityPlan) check(allowPrivileged bool) error {
	if p.Privileged && !allowPrivileged {
		return fmt.Errorf("privileged containers are not allowed on this node (agent flag --allow-privileged is off)")
	}
	known := cap.Known()
	for _, c := range slices.Concat(p.CapAdd, p.CapDrop) {
		if strings.ToUpper(c) == "ALL" {
			continue
		}
		if !slices.Contains(known, capName(c)) {
			return fmt.Errorf("unknown capability %q", c)
		}
	}
	for _, name := range sortedKeys(p.Sysctls) {
		if !namespacedSysctl(name) {
			return fmt.Errorf("sysctl %q is not namespaced: it would change the whole node", name)
		}
	}
	switch p.Seccomp {
	case corev1.SeccompProfileTypeRuntimeDefault, corev1.SeccompProfileTypeUnconfined:
	default:
		return fmt.Errorf("seccompProfile type %q is not supported (RuntimeDefault or Unconfined)", p.Seccomp)
	}
	return nil
}

// specOpts are the OCI spec options of the plan, applied after the image's
// config (which set the image's user). They follow containerd's CRI
// plugin: the default spec's capabilities, masked and read-only paths;
// privilege escalation allowed unless allowPrivilegeEscalation is false; no
// ambient capabilities; RuntimeDefault seccomp unless Unconfined or
// privileged. Resolving a user name needs the container's snapshot.
func (p securityPlan) specOpts(imageUser string) []oci.SpecOpts {
	user := p.userString(imageUser)
	opts := []oci.SpecOpts{oci.WithNewPrivileges, oci.WithUser(user)}
	if p.MergeImageGroups {
		opts = append(opts, oci.WithAdditionalGIDs(userPart(user)))
	}
	if len(p.SupplementalGroups) > 0 {
		opts = append(opts, withSupplementalGroups(p.SupplementalGroups))
	}
	var add, drop []string
	for _, c := range p.CapAdd {
		if strings.ToUpper(c) == "ALL" {
			opts = append(opts, oci.WithAllCurrentCapabilities)
		} else {
			add = append(add, capName(c))
		}
	}
	for _, c := range p.CapDrop {
		if strings.ToUpper(c) == "ALL" {
			opts = append(opts, oci.WithCapabilities(nil))
		} else {
			drop = append(drop, capName(c))
		}
	}
	if len(add) > 0 {
		opts = append(opts, oci.WithAddedCapabilities(add))
	}
	if len(drop) > 0 {
		opts = append(opts, oci.WithDroppedCapabilities(drop))
	}
	if p.Privileged {
		opts = append(opts, oci.WithPrivileged, oci.WithHostDevices, oci.WithAllDevicesAllowed)
	}
	opts = append(opts, withoutAmbientCaps)
	if p.AllowPrivilegeEscalation != nil && !*p.AllowPrivilegeEscalation && !p.Privileged {
		opts = append(opts, oci.WithNoNewPrivileges)
	}
	if p.ReadOnlyRootFS {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	switch {
	case p.Privileged || p.Seccomp == corev1.SeccompProfileTypeUnconfined:
		opts = append(opts, oci.WithSeccompUnconfined)
	default:
		// After the capabilities: the profile allows the calls they need.
		opts = append(opts, seccomp.WithDefaultProfile())
	}
	if len(p.Sysctls) > 0 {
		opts = append(opts, withSysctls(p.Sysctls))
	}
	return opts
}

// withSupplementalGroups appends groups to the process's additional groups.
func withSupplementalGroups(groups []uint32) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		for _, g := range groups {
			if !slices.Contains(s.Process.User.AdditionalGids, g) {
				s.Process.User.AdditionalGids = append(s.Process.User.AdditionalGids, g)
			}
		}
		return nil
	}
}

func withoutAmbientCaps(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
	if s.Process != nil && s.Process.Capabilities != nil {
		s.Process.Capabilities.Ambient = nil
	}
	return nil
}

func withSysctls(sysctls map[string]string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		if s.Linux.Sysctl == nil {
			s.Linux.Sysctl = map[string]string{}
		}
		for k, v := range sysctls {
			s.Linux.Sysctl[sysctlDots(k)] = v
		}
		return nil
	}
}
