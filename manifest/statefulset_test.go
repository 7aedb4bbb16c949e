package manifest

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const statefulSet = `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: hello:1
`

func TestStatefulSet_defaultsAsKubernetes(t *testing.T) {
	set, err := Decode("m.yaml", []byte(statefulSet))
	if err != nil {
		t.Fatal(err)
	}
	s := set.StatefulSets[0]
	if s.Namespace != "default" || *s.Spec.Replicas != 3 || s.Spec.PodManagementPolicy != appsv1.OrderedReadyPodManagement ||
		s.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType || *s.Spec.UpdateStrategy.RollingUpdate.Partition != 0 ||
		*s.Spec.RevisionHistoryLimit != 10 || s.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted != appsv1.RetainPersistentVolumeClaimRetentionPolicyType ||
		s.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType ||
		s.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		t.Fatalf("defaults: %+v", s.Spec)
	}
}

func TestValidateStatefulSet(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error, each on its own line; empty: valid
	}{
		{name: "minimal"},
		{name: "Parallel, OnDelete, ordinals, retention", yaml: "  podManagementPolicy: Parallel\n  updateStrategy:\n    type: OnDelete\n" +
			"  ordinals:\n    start: 3\n  persistentVolumeClaimRetentionPolicy:\n    whenDeleted: Delete\n    whenScaled: Retain\n  minReadySeconds: 5\n"},
		{name: "partition", yaml: "  updateStrategy:\n    rollingUpdate:\n      partition: 2\n"},
		{name: "bad policy", yaml: "  podManagementPolicy: Sometimes\n", want: []string{`m.yaml:17: spec.podManagementPolicy: unsupported value "Sometimes": must be OrderedReady or Parallel`}},
		{name: "maxUnavailable refused", yaml: "  updateStrategy:\n    rollingUpdate:\n      maxUnavailable: 2\n",
			want: []string{"spec.updateStrategy.rollingUpdate.maxUnavailable: not supported by bosun: bosun updates one pod at a time"}},
		{name: "OnDelete with rollingUpdate", yaml: "  updateStrategy:\n    type: OnDelete\n    rollingUpdate:\n      partition: 1\n",
			want: []string{"spec.updateStrategy.rollingUpdate: must not be set when type is OnDelete"}},
		{name: "negative partition and start", yaml: "  updateStrategy:\n    rollingUpdate:\n      partition: -1\n  ordinals:\n    start: -2\n",
			want: []string{"m.yaml:19: spec.updateStrategy.rollingUpdate.partition: must be >= 0", "m.yaml:21: spec.ordinals.start: must be >= 0"}},
		{name: "retention policy", yaml: "  persistentVolumeClaimRetentionPolicy:\n    whenScaled: Keep\n",
			want: []string{`spec.persistentVolumeClaimRetentionPolicy.whenScaled: unsupported value "Keep": must be Retain or Delete`}},
		{name: "bad serviceName", yaml: "  serviceName: Web_1\n", want: []string{`spec.serviceName: invalid service name "Web_1"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := statefulSet + tt.yaml
			if strings.Contains(tt.yaml, "serviceName") {
				doc = strings.Replace(statefulSet, "  serviceName: web\n", "", 1) + tt.yaml
			}
			_, err := Decode("m.yaml", []byte(doc))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Decode succeeded, want %v", tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("errors:\n%s\nwant %d", err, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) || !strings.HasPrefix(lines[i], "m.yaml:") {
					t.Errorf("error %q, want it to contain %q", lines[i], w)
				}
			}
		})
	}
}

func TestValidateStatefulSet_templateRules(t *testing.T) {
	for name, tt := range map[string]struct {
		change func(s *appsv1.StatefulSet)
		want   string
	}{
		"hostname":      {func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Hostname = "h" }, "spec.template.spec.hostname: not supported in a StatefulSet's template"},
		"subdomain":     {func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Subdomain = "h" }, "spec.template.spec.subdomain: not supported in a StatefulSet's template"},
		"restartPolicy": {func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever }, `a StatefulSet's pods must use Always`},
		"long name":     {func(s *appsv1.StatefulSet) { s.Name = strings.Repeat("w", 53) }, "metadata.name: must be no more than 52 characters"},
		"selector":      {func(s *appsv1.StatefulSet) { s.Spec.Selector.MatchLabels = map[string]string{"app": "db"} }, "spec.selector: does not match template labels"},
	} {
		t.Run(name, func(t *testing.T) {
			s := decodedStatefulSet(t)
			tt.change(s)
			if got := problemsText(validateStatefulSet(s)); !strings.Contains(got, tt.want) {
				t.Fatalf("problems:\n%s\nwant %q", got, tt.want)
			}
		})
	}
}

// TestValidateStatefulSet_claimTemplates pins what a claim template may
// ask of bosun's local volumes, and that pods may mount it by its name.
func TestValidateStatefulSet_claimTemplates(t *testing.T) {
	good := func() corev1.PersistentVolumeClaim {
		return corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		}}
	}
	for name, tt := range map[string]struct {
		change func(c *corev1.PersistentVolumeClaim, s *appsv1.StatefulSet)
		want   string // "": valid
	}{
		"valid and mounted": {func(c *corev1.PersistentVolumeClaim, s *appsv1.StatefulSet) {
			sc := "local-path"
			c.Spec.StorageClassName = &sc
		}, ""},
		"ReadWriteMany": {func(c *corev1.PersistentVolumeClaim, _ *appsv1.StatefulSet) {
			c.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}
		}, `spec.volumeClaimTemplates[0].spec.accessModes[0]: unsupported value "ReadWriteMany"`},
		"no access mode": {func(c *corev1.PersistentVolumeClaim, _ *appsv1.StatefulSet) { c.Spec.AccessModes = nil },
			"spec.volumeClaimTemplates[0].spec.accessModes: at least one access mode is required"},
		"no storage request": {func(c *corev1.PersistentVolumeClaim, _ *appsv1.StatefulSet) { c.Spec.Resources.Requests = nil },
			"spec.volumeClaimTemplates[0].spec.resources.requests.storage: required"},
		"other storage class": {func(c *corev1.PersistentVolumeClaim, _ *appsv1.StatefulSet) {
			sc := "ebs"
			c.Spec.StorageClassName = &sc
		}, `spec.volumeClaimTemplates[0].spec.storageClassName: unsupported value "ebs"`},
		"clash with a template volume": {func(c *corev1.PersistentVolumeClaim, s *appsv1.StatefulSet) {
			s.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}, `spec.volumeClaimTemplates[0].metadata.name: "data" clashes with a volume of the same name`},
		"no name": {func(c *corev1.PersistentVolumeClaim, _ *appsv1.StatefulSet) { c.Name = "" },
			"spec.volumeClaimTemplates[0].metadata.name: required"},
	} {
		t.Run(name, func(t *testing.T) {
			s := decodedStatefulSet(t)
			c := good()
			s.Spec.Template.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
			tt.change(&c, s)
			s.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{c}
			got := problemsText(validateStatefulSet(s))
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Fatalf("problems:\n%s\nwant %q", got, tt.want)
			}
		})
	}
}

func decodedStatefulSet(t *testing.T) *appsv1.StatefulSet {
	t.Helper()
	var s appsv1.StatefulSet
	if err := yaml.Unmarshal([]byte(statefulSet), &s); err != nil {
		t.Fatal(err)
	}
	defaultStatefulSet(&s)
	return &s
}

func problemsText(ps problems) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.path + ": " + p.msg + "\n")
	}
	return b.String()
}

// claimTemplate is a claim template as loading leaves it (the claims'
// own YAML rules are claim.go's).
func claimTemplate(size string) corev1.PersistentVolumeClaim {
	fs := corev1.PersistentVolumeFilesystem
	return corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, VolumeMode: &fs,
		Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
	}}
}

// A change Kubernetes forbids on a StatefulSet's spec is refused against
// the applied revision, at the field's line, saying how to make it; the
// fields Kubernetes lets change pass.
func TestCheckUpdate_statefulSetFixedFields(t *testing.T) {
	load := func(doc string, claims ...corev1.PersistentVolumeClaim) *Set {
		t.Helper()
		s, err := Decode("s.yaml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		s.StatefulSets[0].Spec.VolumeClaimTemplates = claims
		return s
	}
	prev := load(statefulSet, claimTemplate("1Gi"))
	for name, tt := range map[string]struct {
		doc    string
		claims []corev1.PersistentVolumeClaim
		want   string // "": accepted
	}{
		"unchanged": {statefulSet, []corev1.PersistentVolumeClaim{claimTemplate("1Gi")}, ""},
		"replicas, template, strategy, retention, minReady, history, ordinals": {strings.Replace(strings.Replace(statefulSet, "replicas: 3", "replicas: 5", 1), "hello:1", "hello:2", 1) +
			"  updateStrategy:\n    type: OnDelete\n  persistentVolumeClaimRetentionPolicy:\n    whenScaled: Delete\n  minReadySeconds: 3\n  revisionHistoryLimit: 2\n  ordinals:\n    start: 1\n",
			[]corev1.PersistentVolumeClaim{claimTemplate("1Gi")}, ""},
		"serviceName": {strings.Replace(statefulSet, "serviceName: web", "serviceName: www", 1), []corev1.PersistentVolumeClaim{claimTemplate("1Gi")},
			"s.yaml:6: spec.serviceName: cannot change on StatefulSet default/web (Kubernetes forbids it"},
		"claim size":             {statefulSet, []corev1.PersistentVolumeClaim{claimTemplate("2Gi")}, "s.yaml:5: spec.volumeClaimTemplates: cannot change"},
		"claim template removed": {statefulSet, nil, "spec.volumeClaimTemplates: cannot change"},
		"selector": {strings.ReplaceAll(statefulSet, "app: web", "app: www"), []corev1.PersistentVolumeClaim{claimTemplate("1Gi")},
			"s.yaml:8: spec.selector: cannot change"},
		"podManagementPolicy": {statefulSet + "  podManagementPolicy: Parallel\n", []corev1.PersistentVolumeClaim{claimTemplate("1Gi")},
			"s.yaml:17: spec.podManagementPolicy: cannot change"},
	} {
		t.Run(name, func(t *testing.T) {
			err := CheckUpdate(prev, load(tt.doc, tt.claims...))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want == "":
			case err == nil:
				t.Fatalf("accepted; want %q", tt.want)
			case !strings.Contains(err.Error(), tt.want) || strings.Count(err.Error(), "\n") > 0 ||
				!strings.Contains(err.Error(), "remove the StatefulSet in one commit, let bosun apply it, then add it back with the change in the next; with whenDeleted: Retain"):
				t.Fatalf("error %v\nwant %q", err, tt.want)
			}
		})
	}
	if err := CheckUpdate(nil, prev); err != nil {
		t.Fatal(err)
	}
}

// A Pod of the revision named <statefulset>-<n> in its namespace is
// refused at its name, naming the StatefulSet's file:line; other names and
// namespaces pass.
func TestLoad_podNamedAsAStatefulSetPodIsRefused(t *testing.T) {
	pod := func(name, ns string) string {
		return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\n  namespace: " + ns + "\nspec:\n  containers:\n  - name: app\n    image: hello:1\n"
	}
	for _, tt := range []struct {
		name, ns string
		want     string
	}{
		{"web-0", "default", "pod.yaml:4: metadata.name: Pod default/web-0 has the name of ordinal 0 of StatefulSet default/web (sts.yaml:1)"},
		{"web-7", "default", "ordinal 7 of StatefulSet default/web (sts.yaml:1)"},
		{"web-0", "other", ""},
		{"web-00", "default", ""},
		{"web-x", "default", ""},
		{"webby-0", "default", ""},
	} {
		_, err := LoadFiles(map[string][]byte{"sts.yaml": []byte(statefulSet), "pod.yaml": []byte(pod(tt.name, tt.ns))})
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s/%s: %v", tt.ns, tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s/%s: %v\nwant %q", tt.ns, tt.name, err, tt.want)
		}
	}
}

func TestValidateStatefulSet_duplicateClaimTemplate(t *testing.T) {
	s := decodedStatefulSet(t)
	ct := claimTemplate("1Gi")
	s.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{ct, ct}
	got := problemsText(validateStatefulSet(s))
	if want := `spec.volumeClaimTemplates[1].metadata.name: duplicate claim template name "data" (spec.volumeClaimTemplates[0] has it)`; got != want+"\n" {
		t.Fatalf("problems:\n%s\nwant %s", got, want)
	}
}
