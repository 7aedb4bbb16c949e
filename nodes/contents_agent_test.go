package nodes_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"bosun/nodes"
	"bosun/store"
)

// plantedSecret must never show in the agent's log or a pod's status.
const plantedSecret = "pl4nted-s3cret-9f2c"

func (h *harness) putJSON(key string, v any) {
	h.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.st.Client().Put(context.Background(), key, string(b)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) putConfigMap(ns, name string, data map[string]string) {
	h.putJSON(store.ConfigMapKey(ns, name), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data})
}

func (h *harness) putSecret(ns, name string, data map[string]string) {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	h.putJSON(store.SecretKey(ns, name), s)
}

func httpPost(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waiting(ps *store.PodStatus, container, reason string) bool {
	if ps == nil {
		return false
	}
	w := containerStatus(*ps, container).State.Waiting
	return w != nil && w.Reason == reason
}

func terminatedWith(ps *store.PodStatus) *corev1.ContainerStateTerminated {
	if ps == nil {
		return nil
	}
	return containerStatus(*ps, "app").State.Terminated
}

func ref(name string) corev1.LocalObjectReference { return corev1.LocalObjectReference{Name: name} }

func i64(v int64) *int64 { return &v }
func i32(v int32) *int32 { return &v }
func yes() *bool         { t := true; return &t }

// TestAgent_podContents runs pods on a real containerd that are given
// ConfigMaps and Secrets through env, envFrom and volumes; emptyDirs on
// disk and in memory shared between containers; a subPath; an allowed
// hostPath; fsGroup, runAsUser, capabilities, a read-only root, sysctls;
// dnsPolicy Default, hostAliases and termination messages. Pods the node
// must refuse wait with a reason naming the object or flag. A planted
// Secret value never reaches the agent's log or a status, and deleting the
// pods removes their volumes, leaving the hostPath's files alone.
func TestAgent_podContents(t *testing.T) {
	h := newHarness(t)
	logs := &syncBuffer{}
	h.cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, logWriter()), &slog.HandlerOptions{Level: slog.LevelDebug}))
	hostDir := t.TempDir()
	h.cfg.AllowHostPath = []string{hostDir}
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 192.0.2.53\nsearch corp.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.cfg.ResolvConf = resolv
	h.putConfigMap("default", "cfg", map[string]string{"greeting": "hello", "level": "3"})
	h.putSecret("default", "db", map[string]string{"password": plantedSecret})
	h.startAgent()

	pod := helloPod("contents", "aaaaaaaa-0001")
	pod.Labels = map[string]string{"app": "contents"}
	pod.Spec.DNSPolicy = corev1.DNSDefault
	pod.Spec.HostAliases = []corev1.HostAlias{{IP: "10.1.2.3", Hostnames: []string{"db.local"}}}
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{
		FSGroup: i64(2000),
		Sysctls: []corev1.Sysctl{{Name: "net.ipv4.ping_group_range", Value: "0 2000"}},
	}
	dirOrCreate := corev1.HostPathDirectoryOrCreate
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: ref("cfg"),
			Items: []corev1.KeyToPath{{Key: "greeting", Path: "conf/greeting.txt"}}}}},
		{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db", DefaultMode: i32(0o400)}}},
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: resource.NewQuantity(8<<20, resource.BinarySI)}}},
		{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}}},
		{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: ref("cfg")}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: ref("db"), Items: []corev1.KeyToPath{{Key: "password", Path: "db/pw"}}}},
		}}}},
		{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: filepath.Join(hostDir, "data"), Type: &dirOrCreate}}},
	}
	app := &pod.Spec.Containers[0]
	app.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: ref("cfg")}, Prefix: "CFG_"}}
	app.Env = []corev1.EnvVar{
		{Name: "GREETING", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: ref("cfg"), Key: "greeting"}}},
		{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: ref("db"), Key: "password"}}},
		{Name: "APP_LABEL", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
	}
	app.VolumeMounts = []corev1.VolumeMount{
		{Name: "cfg", MountPath: "/etc/cfg"},
		{Name: "cfg", MountPath: "/etc/greeting", SubPath: "conf/greeting.txt"},
		{Name: "sec", MountPath: "/etc/secret"},
		{Name: "scratch", MountPath: "/scratch"},
		{Name: "scratch", MountPath: "/sub", SubPath: "sub/dir"},
		{Name: "mem", MountPath: "/mem"},
		{Name: "info", MountPath: "/info"},
		{Name: "proj", MountPath: "/proj"},
		{Name: "host", MountPath: "/host"},
	}
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
		Name: "sidecar", Image: app.Image, Env: []corev1.EnvVar{{Name: "PORT", Value: "9090"}},
		VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/shared", ReadOnly: true}},
	})
	start := time.Now()
	h.putPod(pod)
	ps := h.waitStatus("default", "contents", 30*time.Second, "running", running)
	t.Logf("pod with 7 volumes running after %s", time.Since(start).Round(time.Millisecond))
	base := "http://" + ps.Status.PodIP + ":8080"
	side := "http://" + ps.Status.PodIP + ":9090"

	env := httpGet(t, base+"/env")
	for _, want := range []string{"GREETING=hello\n", "CFG_greeting=hello\n", "CFG_level=3\n", "DB_PASSWORD=" + plantedSecret + "\n", "APP_LABEL=contents\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %q:\n%s", want, env)
		}
	}
	for path, want := range map[string]string{
		"/etc/cfg/conf/greeting.txt": "hello",
		"/etc/greeting":              "hello",
		"/etc/secret/password":       plantedSecret,
		"/proj/greeting":             "hello",
		"/proj/db/pw":                plantedSecret,
		"/info/labels":               `app="contents"`,
	} {
		if got := httpGet(t, base+"/file?path="+path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	// fsGroup: the pod's volumes belong to group 2000 (files keep their
	// mode, plus group read), and every container has the group.
	for path, want := range map[string]string{
		"/etc/secret/password": "mode 0440 uid 0 gid 2000",
		"/scratch":             "mode 0777 uid 0 gid 2000",
		"/etc/cfg":             "mode 0755 uid 0 gid 2000",
	} {
		if got := httpGet(t, base+"/stat?path="+path); !strings.HasPrefix(got, want) {
			t.Errorf("stat %s = %q, want %q", path, got, want)
		}
	}
	if self := httpGet(t, base+"/self"); !strings.Contains(self, " 2000 ") {
		t.Errorf("groups of the app: %s", self)
	}
	if got := httpGet(t, base+"/sysctl?name=net.ipv4.ping_group_range"); strings.Join(strings.Fields(got), " ") != "0 2000" {
		t.Errorf("sysctl = %q", got)
	}
	if got := httpGet(t, base+"/file?path=/etc/resolv.conf"); got != "nameserver 192.0.2.53\nsearch corp.example\n" {
		t.Errorf("dnsPolicy Default: resolv.conf = %q", got)
	}
	if got := httpGet(t, base+"/file?path=/etc/hosts"); !strings.Contains(got, "10.1.2.3\tdb.local\n") {
		t.Errorf("hosts = %q", got)
	}
	// The emptyDir is shared; the subPath is a directory inside it.
	if code, body := httpPost(t, base+"/write?path=/scratch/note", "from app"); code != 200 {
		t.Errorf("write /scratch: %d %s", code, body)
	}
	if code, body := httpPost(t, base+"/write?path=/sub/deep", "in subpath"); code != 200 {
		t.Errorf("write /sub: %d %s", code, body)
	}
	if got := httpGet(t, side+"/file?path=/shared/note"); got != "from app" {
		t.Errorf("sidecar reads %q", got)
	}
	if got := httpGet(t, side+"/file?path=/shared/sub/dir/deep"); got != "in subpath" {
		t.Errorf("sidecar reads the subPath file as %q", got)
	}
	if code, _ := httpPost(t, side+"/write?path=/shared/x", "no"); code == 200 {
		t.Error("readOnly mount written")
	}
	if code, _ := httpPost(t, base+"/write?path=/etc/cfg/x", "no"); code == 200 {
		t.Error("configMap volume written")
	}
	if code, body := httpPost(t, base+"/write?path=/host/kept", "host data"); code != 200 {
		t.Errorf("write /host: %d %s", code, body)
	}
	if code, body := httpPost(t, base+"/write?path=/mem/m", "in memory"); code != 200 {
		t.Errorf("write /mem: %d %s", code, body)
	}
	// On the node: the secret, projected and memory volumes are tmpfs (the
	// memory one sized by sizeLimit), the others are not.
	podDir := filepath.Join(h.cfg.StateDir, "pods", string(pod.UID))
	for name, want := range map[string]bool{"sec": true, "proj": true, "mem": true, "cfg": false, "scratch": false} {
		var st unix.Statfs_t
		if err := unix.Statfs(filepath.Join(podDir, "volumes", name), &st); err != nil {
			t.Fatal(err)
		}
		if got := st.Type == unix.TMPFS_MAGIC; got != want {
			t.Errorf("volume %s on tmpfs: %v, want %v", name, got, want)
		}
		if name == "mem" && int64(st.Blocks)*st.Bsize != 8<<20 {
			t.Errorf("memory emptyDir size %d, want 8Mi", int64(st.Blocks)*st.Bsize)
		}
	}
	if b, err := os.ReadFile(filepath.Join(hostDir, "data", "kept")); err != nil || string(b) != "host data" {
		t.Errorf("hostPath file on the node: %q %v", b, err)
	}

	// runAsUser, drop ALL and a read-only root filesystem.
	secure := helloPod("secure", "aaaaaaaa-0002")
	secure.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
		RunAsUser: i64(1000), RunAsNonRoot: yes(), ReadOnlyRootFilesystem: yes(),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	h.putPod(secure)
	// Refused by the node: privileged without --allow-privileged, a root
	// image under runAsNonRoot, a missing ConfigMap, a hostPath outside the
	// allowed directories.
	priv := helloPod("priv", "aaaaaaaa-0003")
	priv.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: yes()}
	h.putPod(priv)
	root := helloPod("root", "aaaaaaaa-0004")
	root.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: yes()}
	h.putPod(root)
	missing := helloPod("missing", "aaaaaaaa-0005")
	missing.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "LATER", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: ref("later"), Key: "k"}}}}
	h.putPod(missing)
	badHost := helloPod("badhost", "aaaaaaaa-0006")
	badHost.Spec.Volumes = []corev1.Volume{{Name: "etc", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/etc"}}}}
	h.putPod(badHost)
	// Termination messages: written to the file, or the log's tail.
	term := helloPod("term", "aaaaaaaa-0007")
	term.Spec.RestartPolicy = corev1.RestartPolicyNever
	term.Spec.Containers[0].Args = []string{"-write", "/dev/termination-log=bye from the app", "-exit", "3"}
	h.putPod(term)
	fallback := helloPod("fallback", "aaaaaaaa-0008")
	fallback.Spec.RestartPolicy = corev1.RestartPolicyNever
	fallback.Spec.Containers[0].Args = []string{"-print", "it went wrong", "-exit", "2"}
	fallback.Spec.Containers[0].TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
	h.putPod(fallback)

	ps = h.waitStatus("default", "secure", 30*time.Second, "running", running)
	secureURL := "http://" + ps.Status.PodIP + ":8080"
	self := httpGet(t, secureURL+"/self")
	for _, want := range []string{"Uid:\t1000\t1000\t1000\t1000", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "Seccomp:\t2"} {
		if !strings.Contains(self, want) {
			t.Errorf("secure /self lacks %q:\n%s", want, self)
		}
	}
	if code, body := httpPost(t, secureURL+"/write?path=/tmp/x", "no"); code == 200 || !strings.Contains(body, "read-only file system") {
		t.Errorf("write on a read-only root: %d %s", code, body)
	}
	if self := httpGet(t, base+"/self"); !strings.Contains(self, "CapEff:\t00000000a80425fb") || !strings.Contains(self, "NoNewPrivs:\t0") {
		t.Errorf("default capabilities (CRI's set) and no_new_privs off:\n%s", self)
	}

	configErr := func(name, want string) {
		t.Helper()
		ps := h.waitStatus("default", name, 20*time.Second, "CreateContainerConfigError", func(ps *store.PodStatus) bool {
			return waiting(ps, "app", nodes.ReasonCreateConfigError)
		})
		if msg := containerStatus(ps, "app").State.Waiting.Message; !strings.Contains(msg, want) {
			t.Errorf("%s: message %q, want %q", name, msg, want)
		}
	}
	configErr("priv", "--allow-privileged")
	configErr("root", `container has runAsNonRoot and image will run as root (pod: "default/root", container: app)`)
	configErr("missing", `configmap "later" not found in namespace default`)
	ps = h.waitStatus("default", "badhost", 20*time.Second, "refused", func(ps *store.PodStatus) bool {
		return ps != nil && strings.Contains(ps.Status.Message, "--allow-host-path") && waiting(ps, "app", nodes.ReasonContainerCreating)
	})
	t.Logf("hostPath refused: %s", ps.Status.Message)
	// The ConfigMap appears: the waiting container starts on its next try.
	h.putConfigMap("default", "later", map[string]string{"k": "v"})
	h.waitStatus("default", "missing", 20*time.Second, "running once the ConfigMap exists", running)

	ps = h.waitStatus("default", "term", 20*time.Second, "failed", func(ps *store.PodStatus) bool { return terminatedWith(ps) != nil })
	if tm := terminatedWith(&ps); tm.Message != "bye from the app" || tm.ExitCode != 3 {
		t.Errorf("termination = %+v", tm)
	}
	ps = h.waitStatus("default", "fallback", 20*time.Second, "failed", func(ps *store.PodStatus) bool { return terminatedWith(ps) != nil })
	if tm := terminatedWith(&ps); tm.Message != "it went wrong" {
		t.Errorf("fallback termination message = %q", tm.Message)
	}

	// The planted Secret value is in no status and no log line.
	all, err := h.st.PodStatuses(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(all)
	if bytes.Contains(b, []byte(plantedSecret)) {
		t.Error("a pod status shows the Secret value")
	}

	for _, name := range []string{"contents", "secure", "priv", "root", "missing", "badhost", "term", "fallback"} {
		h.deletePod("default", name)
	}
	delStart := time.Now()
	for _, name := range []string{"contents", "secure", "priv", "root", "missing", "badhost", "term", "fallback"} {
		h.waitStatus("default", name, 30*time.Second, "deleted", func(ps *store.PodStatus) bool { return ps == nil })
	}
	t.Logf("8 pods deleted in %s", time.Since(delStart).Round(time.Millisecond))
	if _, err := os.Stat(podDir); !os.IsNotExist(err) {
		t.Errorf("pod dir %s still there: %v", podDir, err)
	}
	left, err := mountinfo.GetMounts(mountinfo.PrefixFilter(h.cfg.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range left {
		t.Errorf("mount left under the state dir: %s", m.Mountpoint)
	}
	if b, err := os.ReadFile(filepath.Join(hostDir, "data", "kept")); err != nil || string(b) != "host data" {
		t.Errorf("hostPath file after the pod's deletion: %q %v", b, err)
	}
	h.stopAgent()
	if strings.Contains(logs.String(), plantedSecret) {
		t.Error("the agent's log shows the Secret value")
	}
	checkNoGoroutines(t)
}

// logWriter is where the agent's log also goes: stderr with BOSUN_TEST_LOG.
func logWriter() io.Writer {
	if os.Getenv("BOSUN_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

// TestAgent_projectedVolumesStartOverhead measures what three projected
// volumes (a ConfigMap, a Secret and the downward API each) add to a pod's
// start on this node: bound -> Running and Ready, against the same pod
// without volumes, alternating over several rounds.
func TestAgent_projectedVolumesStartOverhead(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	h := newHarness(t)
	h.putConfigMap("default", "cfg", map[string]string{"greeting": "hello", "level": "3"})
	h.putSecret("default", "db", map[string]string{"password": plantedSecret})
	h.startAgent()
	withVolumes := func(p *corev1.Pod) {
		for i := 0; i < 3; i++ {
			name := fmt.Sprintf("p%d", i)
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: ref("cfg")}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: ref("db")}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}},
			}}}})
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: name, MountPath: "/etc/" + name})
		}
	}
	const rounds = 5
	var plain, projected []time.Duration
	for i := 0; i < rounds; i++ {
		for _, vols := range []bool{false, true} {
			name := fmt.Sprintf("plain-%d", i)
			if vols {
				name = fmt.Sprintf("projected-%d", i)
			}
			p := helloPod(name, types.UID(fmt.Sprintf("bbbbbbbb-%04d-%v", i, vols)))
			if vols {
				withVolumes(p)
			}
			start := time.Now()
			h.putPod(p)
			h.waitStatus("default", name, 30*time.Second, "running", running)
			took := time.Since(start)
			if vols {
				projected = append(projected, took)
			} else {
				plain = append(plain, took)
			}
			h.deletePod("default", name)
			h.waitStatus("default", name, 30*time.Second, "deleted", func(ps *store.PodStatus) bool { return ps == nil })
		}
	}
	median := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)/2]
	}
	t.Logf("put -> Running and Ready, median of %d: without volumes %s, with 3 projected volumes %s (all: %v / %v)",
		rounds, median(plain).Round(time.Millisecond), median(projected).Round(time.Millisecond), plain, projected)
	h.stopAgent()
}
