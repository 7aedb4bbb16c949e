package nodes

import (
	"fmt"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func mode(m int32) *int32 { return &m }

func filesString(files []projectedFile) string {
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "%s %04o %q\n", f.Path, f.Mode, f.Data)
	}
	return b.String()
}

func TestProjectFiles_itemsModesAndOptional(t *testing.T) {
	ref := corev1.LocalObjectReference{Name: "cfg"}
	facts := podFacts{PodName: "web", Namespace: "prod", UID: "u-1",
		Labels: map[string]string{"app": "web", "tier": "front"}, Annotations: map[string]string{"note": `say "hi"`},
		Containers: []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("32Mi")}}}},
	}
	for _, tc := range []struct {
		name string
		v    corev1.VolumeSource
		want string
	}{
		{"configMap: every key, default mode 0644", corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: ref}},
			"bad=key 0644 \"x\"\nblob 0644 \"\\x00\\x01\"\nlevel 0644 \"3\"\nmode 0644 \"fast\"\n"},
		{"configMap: items with their own mode and defaultMode", corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: ref,
			DefaultMode: mode(0o600), Items: []corev1.KeyToPath{{Key: "mode", Path: "conf/mode.txt"}, {Key: "level", Path: "level", Mode: mode(0o755)}}}},
			"conf/mode.txt 0600 \"fast\"\nlevel 0755 \"3\"\n"},
		{"configMap: optional and missing gives nothing", corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Optional: optional()}}, ""},
		{"configMap: optional, a missing item key is left out", corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: ref,
			Optional: optional(), Items: []corev1.KeyToPath{{Key: "nope", Path: "n"}, {Key: "mode", Path: "m"}}}}, "m 0644 \"fast\"\n"},
		{"secret: mode 0400, data and stringData", corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db", DefaultMode: mode(0o400)}},
			"password 0400 \"" + plantedSecret + "\"\nuser 0400 \"app\"\n"},
		{"downwardAPI", corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}},
			{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}, Mode: mode(0o444)},
			{Path: "tier", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['tier']"}},
			{Path: "mem", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
		}}}, "labels 0644 \"app=\\\"web\\\"\\ntier=\\\"front\\\"\"\nannotations 0644 \"note=\\\"say \\\\\\\"hi\\\\\\\"\\\"\"\nname 0444 \"web\"\ntier 0644 \"front\"\nmem 0644 \"32\"\n"},
		{"projected: sources in order, defaultMode, a later path wins", corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{DefaultMode: mode(0o440), Sources: []corev1.VolumeProjection{
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: ref, Items: []corev1.KeyToPath{{Key: "mode", Path: "x/mode"}, {Key: "level", Path: "same"}}}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Items: []corev1.KeyToPath{{Key: "user", Path: "same", Mode: mode(0o400)}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "ns", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
		}}}, "x/mode 0440 \"fast\"\nsame 0400 \"app\"\nns 0440 \"prod\"\n"},
	} {
		v := &corev1.Volume{Name: "v", VolumeSource: tc.v}
		files, err := projectFiles(v, facts, testSources())
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := filesString(files); got != tc.want {
			t.Errorf("%s:\n%s\nwant\n%s", tc.name, got, tc.want)
		}
	}
}

func TestProjectFiles_errorsNameObjectAndKey(t *testing.T) {
	for _, tc := range []struct {
		v    corev1.VolumeSource
		want string
	}{
		{corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}}},
			`volume v: configmap "gone" not found in namespace prod`},
		{corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Items: []corev1.KeyToPath{{Key: "nope", Path: "n"}}}},
			`volume v: configmap prod/cfg has no key "nope"`},
		{corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db", Items: []corev1.KeyToPath{{Key: "token", Path: "t"}}}},
			`volume v: secret prod/db has no key "token"`},
		{corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "nope"}}, `volume v: secret "nope" not found in namespace prod`},
		{corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db", Items: []corev1.KeyToPath{{Key: "password", Path: "../escape"}}}},
			`volume v: path "../escape" leaves the volume`},
		{corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "t"}}}}},
			`volume v: sources[0]: only configMap, secret and downwardAPI sources are supported`},
	} {
		_, err := projectFiles(&corev1.Volume{Name: "v", VolumeSource: tc.v}, podFacts{}, testSources())
		if err == nil || err.Error() != tc.want {
			t.Errorf("err = %v\nwant %s", err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), plantedSecret) {
			t.Errorf("error shows the secret value: %v", err)
		}
	}
}

func TestHostPathAllowed_prefixesOnly(t *testing.T) {
	allowed := []string{"/srv", "/data/app"}
	for p, want := range map[string]bool{
		"/srv": true, "/srv/x/y": true, "/data/app/z": true,
		"/srvx": false, "/data": false, "/etc": false, "/srv/../etc": false, "/": false,
	} {
		if got := hostPathAllowed(p, allowed); got != want {
			t.Errorf("%s: %v, want %v", p, got, want)
		}
	}
	if err := errHostPathNotAllowed("/etc", allowed); !strings.Contains(err.Error(), "--allow-host-path=/srv,/data/app") {
		t.Errorf("error does not name the flag: %v", err)
	}
}

func TestLogTail_linesAndBytes(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	got := logTail([]byte(b.String()))
	if lines := strings.Split(got, "\n"); len(lines) != fallbackLogLines || lines[0] != "line 20" || lines[79] != "line 99" {
		t.Errorf("tail = %q", got)
	}
	if got := logTail([]byte(strings.Repeat("x", 5000))); len(got) != fallbackLogBytes {
		t.Errorf("tail of one long line: %d bytes", len(got))
	}
}

func TestVolumeKinds(t *testing.T) {
	mem := &corev1.Volume{VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}}
	disk := &corev1.Volume{VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	sec := &corev1.Volume{VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{}}}
	cm := &corev1.Volume{VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}}
	if !volumeOnTmpfs(mem) || volumeOnTmpfs(disk) || !volumeOnTmpfs(sec) || volumeOnTmpfs(cm) {
		t.Error("tmpfs kinds wrong")
	}
	if volumeReadOnly(mem) || !volumeReadOnly(sec) || !volumeReadOnly(cm) {
		t.Error("read-only kinds wrong")
	}
	if fileMode(nil, nil) != os.FileMode(0o644) {
		t.Error("default mode")
	}
}
