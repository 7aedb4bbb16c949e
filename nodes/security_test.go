package nodes

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

func i64(v int64) *int64 { return &v }
func boolp(v bool) *bool { return &v }

// specFor applies the plan's options to containerd's default spec, with a
// root filesystem holding the given /etc files (no snapshot: the options
// read the rootfs path).
func specFor(t *testing.T, p securityPlan, imageUser string, etc map[string]string) *specs.Spec {
	t.Helper()
	root := t.TempDir()
	for name, content := range etc {
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := namespaces.WithNamespace(context.Background(), "test")
	opts := append([]oci.SpecOpts{oci.WithRootFSPath(root)}, p.specOpts(imageUser)...)
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "c1"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var defaultCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

func TestSecurityPlan_defaultsLikeCRI(t *testing.T) {
	p := securityFor(&corev1.PodSpec{}, &corev1.Container{Name: "app"})
	s := specFor(t, p, "", nil)
	if s.Process.User.UID != 0 || s.Process.User.GID != 0 {
		t.Errorf("user = %+v", s.Process.User)
	}
	if got := s.Process.Capabilities.Effective; !reflect.DeepEqual(got, defaultCaps) || !reflect.DeepEqual(s.Process.Capabilities.Bounding, defaultCaps) {
		t.Errorf("caps = %v", got)
	}
	if s.Process.NoNewPrivileges {
		t.Error("no_new_privs set by default (CRI allows escalation unless allowPrivilegeEscalation is false)")
	}
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Errorf("seccomp = %+v, want the RuntimeDefault profile", s.Linux.Seccomp)
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Errorf("masked %v, read-only %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if s.Root.Readonly || len(s.Linux.Sysctl) != 0 {
		t.Errorf("root read-only %v, sysctls %v", s.Root.Readonly, s.Linux.Sysctl)
	}
}

func TestSecurityPlan_containerWinsOverPod(t *testing.T) {
	spec := &corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{
		RunAsUser: i64(1000), RunAsGroup: i64(3000), RunAsNonRoot: boolp(true),
		SupplementalGroups: []int64{4000}, FSGroup: i64(2000),
		Sysctls:        []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}},
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined},
	}}
	c := &corev1.Container{Name: "app", SecurityContext: &corev1.SecurityContext{
		RunAsUser: i64(1001), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		ReadOnlyRootFilesystem: boolp(true), AllowPrivilegeEscalation: boolp(false),
		Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"NET_RAW", "MKNOD"}},
	}}
	p := securityFor(spec, c)
	s := specFor(t, p, "", nil)
	if u := s.Process.User; u.UID != 1001 || u.GID != 3000 || !reflect.DeepEqual(u.AdditionalGids, []uint32{3000, 4000, 2000}) {
		t.Errorf("user = %+v", u)
	}
	caps := s.Process.Capabilities.Effective
	if !slices.Contains(caps, "CAP_NET_ADMIN") || slices.Contains(caps, "CAP_NET_RAW") || slices.Contains(caps, "CAP_MKNOD") || len(caps) != len(defaultCaps)-1 {
		t.Errorf("caps = %v", caps)
	}
	if !s.Process.NoNewPrivileges || !s.Root.Readonly || s.Linux.Seccomp == nil {
		t.Errorf("nnp %v, ro %v, seccomp %v", s.Process.NoNewPrivileges, s.Root.Readonly, s.Linux.Seccomp != nil)
	}
	if s.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"] != "0" {
		t.Errorf("sysctls = %v", s.Linux.Sysctl)
	}
	if err := p.checkNonRoot("", "default/web", "app"); err != nil {
		t.Errorf("uid 1001 refused: %v", err)
	}
}

func TestSecurityPlan_dropAllAddAllPrivileged(t *testing.T) {
	drop := securityFor(&corev1.PodSpec{}, &corev1.Container{SecurityContext: &corev1.SecurityContext{
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}}}})
	s := specFor(t, drop, "", nil)
	if c := s.Process.Capabilities; !reflect.DeepEqual(c.Effective, []string{"CAP_NET_BIND_SERVICE"}) || !reflect.DeepEqual(c.Bounding, []string{"CAP_NET_BIND_SERVICE"}) {
		t.Errorf("drop ALL, add one: %+v", c)
	}
	all := securityFor(&corev1.PodSpec{}, &corev1.Container{SecurityContext: &corev1.SecurityContext{
		Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"ALL"}, Drop: []corev1.Capability{"SYS_ADMIN"}}}})
	s = specFor(t, all, "", nil)
	if c := s.Process.Capabilities.Effective; len(c) <= len(defaultCaps) || slices.Contains(c, "CAP_SYS_ADMIN") || !slices.Contains(c, "CAP_NET_ADMIN") {
		t.Errorf("add ALL, drop SYS_ADMIN: %v", c)
	}
	priv := securityFor(&corev1.PodSpec{}, &corev1.Container{SecurityContext: &corev1.SecurityContext{
		Privileged: boolp(true), AllowPrivilegeEscalation: boolp(false)}})
	s = specFor(t, priv, "", nil)
	if s.Linux.Seccomp != nil || len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 || !slices.Contains(s.Process.Capabilities.Effective, "CAP_SYS_ADMIN") || s.Process.NoNewPrivileges {
		t.Errorf("privileged: seccomp %v masked %v caps %v nnp %v", s.Linux.Seccomp != nil, s.Linux.MaskedPaths, s.Process.Capabilities.Effective, s.Process.NoNewPrivileges)
	}
}

func TestSecurityPlan_imageUserAndGroups(t *testing.T) {
	etc := map[string]string{
		"passwd": "root:x:0:0::/root:/bin/sh\napp:x:1001:1002::/home/app:/bin/sh\n",
		"group":  "root:x:0:\napp:x:1002:\nextra:x:5000:app\n",
	}
	s := specFor(t, securityFor(&corev1.PodSpec{}, &corev1.Container{}), "app", etc)
	if u := s.Process.User; u.UID != 1001 || u.GID != 1002 || !reflect.DeepEqual(u.AdditionalGids, []uint32{1002, 5000}) {
		t.Errorf("image user app: %+v", u)
	}
	strict := corev1.SupplementalGroupsPolicyStrict
	p := securityFor(&corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{SupplementalGroupsPolicy: &strict, SupplementalGroups: []int64{7}}}, &corev1.Container{})
	s = specFor(t, p, "app", etc)
	if u := s.Process.User; !reflect.DeepEqual(u.AdditionalGids, []uint32{1002, 7}) {
		t.Errorf("Strict: %+v", u)
	}
	// runAsUser 1001 takes its group from /etc/passwd; runAsGroup alone
	// keeps the image's user.
	s = specFor(t, securityFor(&corev1.PodSpec{}, &corev1.Container{SecurityContext: &corev1.SecurityContext{RunAsUser: i64(1001)}}), "", etc)
	if u := s.Process.User; u.UID != 1001 || u.GID != 1002 {
		t.Errorf("runAsUser 1001: %+v", u)
	}
	s = specFor(t, securityFor(&corev1.PodSpec{}, &corev1.Container{SecurityContext: &corev1.SecurityContext{RunAsGroup: i64(9)}}), "app", etc)
	if u := s.Process.User; u.UID != 1001 || u.GID != 9 {
		t.Errorf("runAsGroup 9 with image user app: %+v", u)
	}
}

func TestSecurityPlan_checkNonRoot(t *testing.T) {
	nonRoot := func(uid *int64) securityPlan { return securityPlan{RunAsNonRoot: true, RunAsUser: uid} }
	for _, tc := range []struct {
		p         securityPlan
		imageUser string
		want      string
	}{
		{securityPlan{}, "", ""},
		{nonRoot(nil), "1000", ""},
		{nonRoot(nil), "1000:0", ""},
		{nonRoot(i64(1000)), "", ""},
		{nonRoot(i64(1000)), "root", ""},
		{nonRoot(nil), "", `container has runAsNonRoot and image will run as root (pod: "default/web", container: app)`},
		{nonRoot(nil), "0:1000", `container has runAsNonRoot and image will run as root (pod: "default/web", container: app)`},
		{nonRoot(nil), "nginx", `container has runAsNonRoot and image has non-numeric user (nginx), cannot verify user is non-root (pod: "default/web", container: app)`},
		{nonRoot(i64(0)), "1000", `container's runAsUser breaks non-root policy (pod: "default/web", container: app)`},
	} {
		err := tc.p.checkNonRoot(tc.imageUser, "default/web", "app")
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%+v with image user %q: %q, want %q", tc.p, tc.imageUser, got, tc.want)
		}
	}
}

func TestSecurityPlan_checkRefusesWhatTheNodeDoesNotAllow(t *testing.T) {
	for _, tc := range []struct {
		p       securityPlan
		allowed bool
		want    string
	}{
		{securityPlan{Privileged: true, Seccomp: corev1.SeccompProfileTypeRuntimeDefault}, false, "--allow-privileged"},
		{securityPlan{Privileged: true, Seccomp: corev1.SeccompProfileTypeRuntimeDefault}, true, ""},
		{securityPlan{CapAdd: []string{"NET_ADMIN", "ALL"}, CapDrop: []string{"CAP_KILL"}, Seccomp: corev1.SeccompProfileTypeRuntimeDefault}, false, ""},
		{securityPlan{CapAdd: []string{"FLY"}, Seccomp: corev1.SeccompProfileTypeRuntimeDefault}, false, `unknown capability "FLY"`},
		{securityPlan{Sysctls: map[string]string{"kernel.shmmax": "1", "net/ipv4/ip_forward": "1", "fs.mqueue.msg_max": "9"}, Seccomp: corev1.SeccompProfileTypeRuntimeDefault}, false, ""},
		{securityPlan{Sysctls: map[string]string{"kernel.panic": "1"}, Seccomp: corev1.SeccompProfileTypeRuntimeDefault}, false, `sysctl "kernel.panic" is not namespaced`},
		{securityPlan{Seccomp: corev1.SeccompProfileTypeLocalhost}, false, `seccompProfile type "Localhost" is not supported`},
	} {
		err := tc.p.check(tc.allowed)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.p, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: err %v, want %q", tc.p, err, tc.want)
		}
	}
}
