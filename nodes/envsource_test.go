package nodes

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// plantedSecret is a Secret value that must never show in an error.
const plantedSecret = "s3cr3t-planted-value"

func testSources() configSources {
	return configSources{
		Namespace: "prod",
		ConfigMaps: map[string]*corev1.ConfigMap{
			"cfg":  {Data: map[string]string{"mode": "fast", "level": "3", "bad=key": "x"}, BinaryData: map[string][]byte{"blob": {0, 1}}},
			"gone": nil,
		},
		Secrets: map[string]*corev1.Secret{
			"db": {Data: map[string][]byte{"password": []byte(plantedSecret)}, StringData: map[string]string{"user": "app"}},
		},
	}
}

func envVar(name string, src corev1.EnvVarSource) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &src}
}

func optional() *bool { t := true; return &t }

func TestContainerEnv_downwardAPIAndExpansion(t *testing.T) {
	c := &corev1.Container{Name: "app", Env: []corev1.EnvVar{
		{Name: "A", Value: "x"},
		{Name: "B", Value: "$(A)-$(POD_NAME)-$(NOPE)-$$"},
		envVar("NODE", corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}),
		envVar("TIER", corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['tier']"}}),
		envVar("OWNER", corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['team/owner']"}}),
		envVar("IPS", corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIPs"}}),
		envVar("HOSTS", corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIPs"}}),
		{Name: "POD_NAME", Value: "override"},
	}}
	f := podFacts{PodName: "web", Namespace: "prod", PodIP: "10.0.0.9", NodeName: "n1", HostIP: "192.0.2.1",
		Labels: map[string]string{"tier": "front"}, Annotations: map[string]string{"team/owner": "ops"}}
	got, skipped, err := containerEnv(c, f, configSources{})
	if err != nil || skipped != nil {
		t.Fatal(err, skipped)
	}
	want := []string{"POD_NAME=override", "POD_NAMESPACE=prod", "POD_IP=10.0.0.9", "A=x", "B=x-web-$(NOPE)-$",
		"NODE=n1", "TIER=front", "OWNER=ops", "IPS=10.0.0.9", "HOSTS=192.0.2.1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("env = %q\nwant  %q", got, want)
	}
}

func TestContainerEnv_configMapsAndSecrets(t *testing.T) {
	c := &corev1.Container{Name: "app",
		EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}, Prefix: "CFG_"},
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}}},
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Optional: optional()}},
		},
		Env: []corev1.EnvVar{
			envVar("MODE", corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "mode"}}),
			envVar("PW", corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}),
			envVar("MAYBE", corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Key: "k", Optional: optional()}}),
			envVar("MAYBE_KEY", corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "nope", Optional: optional()}}),
			{Name: "URL", Value: "db://$(user):$(PW)@$(CFG_mode)"},
		},
	}
	got, skipped, err := containerEnv(c, podFacts{PodName: "web", Namespace: "prod"}, testSources())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"POD_NAME=web", "POD_NAMESPACE=prod", "CFG_level=3", "CFG_mode=fast", "password=" + plantedSecret, "user=app",
		"MODE=fast", "PW=" + plantedSecret, "URL=db://app:" + plantedSecret + "@fast"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("env = %q\nwant  %q", got, want)
	}
	// A key with "=" is no variable name: left out, by name only.
	if !reflect.DeepEqual(skipped, []string{"CFG_bad=key"}) {
		t.Errorf("skipped = %q", skipped)
	}
}

func TestContainerEnv_missingSourcesNameObjectAndKeyNeverValues(t *testing.T) {
	ref := func(src corev1.EnvVarSource) *corev1.Container {
		return &corev1.Container{Name: "app", Env: []corev1.EnvVar{envVar("V", src)}}
	}
	for _, tc := range []struct {
		name string
		c    *corev1.Container
		want string
	}{
		{"missing configmap", ref(corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Key: "k"}}),
			`container app: env V: configmap "gone" not found in namespace prod`},
		{"missing configmap key", ref(corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "k"}}),
			`container app: env V: couldn't find key k in ConfigMap prod/cfg`},
		{"missing secret", ref(corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "password"}}),
			`container app: env V: secret "nope" not found in namespace prod`},
		{"missing secret key", ref(corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "token"}}),
			`container app: env V: couldn't find key token in Secret prod/db`},
		{"envFrom missing secret", &corev1.Container{Name: "app", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}}}}},
			`container app: envFrom[0]: secret "nope" not found in namespace prod`},
		{"unsupported fieldRef", ref(corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}),
			`container app: env V: fieldRef "metadata.labels" is not supported`},
		{"resourceFieldRef of another pod's container", ref(corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "x", Resource: "limits.cpu"}}),
			`container app: env V: resourceFieldRef: no container "x" in the pod`},
	} {
		_, _, err := containerEnv(tc.c, podFacts{}, testSources())
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: err = %v\nwant %s", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), plantedSecret) {
			t.Errorf("%s: error shows the secret value", tc.name)
		}
	}
}

func TestResourceFieldValue_divisorsAndDefaults(t *testing.T) {
	c := &corev1.Container{Name: "app", Resources: corev1.ResourceRequirements{
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
	}}
	node := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi")}
	for _, tc := range []struct {
		res, divisor, want string
	}{
		{"limits.memory", "", "67108864"},
		{"limits.memory", "1Mi", "64"},
		{"limits.memory", "1M", "68"}, // rounded up
		{"requests.memory", "1Mi", "64"},
		{"requests.cpu", "", "1"}, // 250m rounds up to one CPU
		{"requests.cpu", "1m", "250"},
		{"limits.cpu", "", "4"}, // no limit: the node's allocatable
		{"limits.cpu", "1m", "4000"},
		{"requests.ephemeral-storage", "", "0"},
	} {
		sel := &corev1.ResourceFieldSelector{Resource: tc.res}
		if tc.divisor != "" {
			sel.Divisor = resource.MustParse(tc.divisor)
		}
		got, err := resourceFieldValue(sel, c, node)
		if err != nil || got != tc.want {
			t.Errorf("%s / %q = %q, %v; want %s", tc.res, tc.divisor, got, err, tc.want)
		}
	}
	if _, err := resourceFieldValue(&corev1.ResourceFieldSelector{Resource: "limits.nvidia.com/gpu"}, c, node); err == nil {
		t.Error("unsupported resource accepted")
	}
}

func TestSourceRefs_everyUse(t *testing.T) {
	spec := &corev1.PodSpec{
		InitContainers: []corev1.Container{{EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "s-init"}}}}}},
		Containers: []corev1.Container{{Env: []corev1.EnvVar{
			envVar("A", corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "c-env"}}}),
			envVar("B", corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s-env"}}}),
		}}},
		Volumes: []corev1.Volume{
			{Name: "a", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "c-vol"}}}},
			{Name: "b", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s-vol"}}},
			{Name: "c", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "c-proj"}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "s-proj"}}},
			}}}},
		},
	}
	cms, secs := sourceRefs(spec)
	if !reflect.DeepEqual(cms, []string{"c-env", "c-proj", "c-vol"}) || !reflect.DeepEqual(secs, []string{"s-env", "s-init", "s-proj", "s-vol"}) {
		t.Errorf("refs = %q, %q", cms, secs)
	}
}
