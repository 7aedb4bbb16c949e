package manifest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// pod is a valid Pod document; cases append to or alter it.
const pod = `apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  containers:
  - name: app
    image: example/app:1.0
`

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: example/web:1.0
`

const service = `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
`

func TestDecode_rejectsBadManifestsWithExactMessages(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "malformed YAML names the line",
			yaml: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: a: b\n",
			want: []string{"m.yaml:5: invalid YAML: mapping values are not allowed in this context"},
		},
		{
			name: "malformed YAML in a later document counts lines from the file start",
			yaml: pod + "---\n# second\napiVersion: v1\nkind: Pod\nmetadata:\n\tname: q\n",
			want: []string{"m.yaml:14: invalid YAML: found character that cannot start any token"},
		},
		{
			name: "duplicate YAML key",
			yaml: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  name: q\n",
			want: []string{`m.yaml:5: invalid YAML: key "name" already set in map`},
		},
		{
			name: "document that is not a mapping",
			yaml: "# a list, not an object\n- a\n- b\n",
			want: []string{"m.yaml:2: a manifest must be a mapping with apiVersion, kind, metadata and spec"},
		},
		{
			name: "missing apiVersion and kind",
			yaml: "metadata:\n  name: p\n",
			want: []string{
				"m.yaml:1: apiVersion: required",
				"m.yaml:1: kind: required (supported: v1/Pod, apps/v1/Deployment, v1/Service, v1/ConfigMap, v1/Secret, v1/Namespace, batch/v1/Job, batch/v1/CronJob, apps/v1/DaemonSet, apps/v1/StatefulSet, v1/PersistentVolumeClaim, networking.k8s.io/v1/Ingress, networking.k8s.io/v1/IngressClass)",
			},
		},
		{
			name: "unsupported kind in the third document names the kind's line",
			yaml: "---\n" + pod + "---\n" + service + "--- # a replica set\napiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: db\n",
			want: []string{`m.yaml:24: kind: unsupported kind "apps/v1/ReplicaSet" (supported: v1/Pod, apps/v1/Deployment, v1/Service, v1/ConfigMap, v1/Secret, v1/Namespace, batch/v1/Job, batch/v1/CronJob, apps/v1/DaemonSet, apps/v1/StatefulSet, v1/PersistentVolumeClaim, networking.k8s.io/v1/Ingress, networking.k8s.io/v1/IngressClass)`},
		},
		{
			name: "kind under the wrong apiVersion",
			yaml: strings.Replace(pod, "apiVersion: v1", "apiVersion: apps/v1", 1),
			want: []string{`m.yaml:2: kind: unsupported kind "apps/v1/Pod" (supported: v1/Pod, apps/v1/Deployment, v1/Service, v1/ConfigMap, v1/Secret, v1/Namespace, batch/v1/Job, batch/v1/CronJob, apps/v1/DaemonSet, apps/v1/StatefulSet, v1/PersistentVolumeClaim, networking.k8s.io/v1/Ingress, networking.k8s.io/v1/IngressClass)`},
		},
		{
			name: "unknown field names its full path and line",
			yaml: pod + "    imagePullPolicyy: Always\n",
			want: []string{"m.yaml:9: spec.containers[0].imagePullPolicyy: unknown field"},
		},
		{
			name: "field names are case-sensitive",
			yaml: strings.Replace(pod, "    image:", "    Image:", 1),
			want: []string{
				"m.yaml:7: spec.containers[0].image: required",
				"m.yaml:8: spec.containers[0].Image: unknown field",
			},
		},
		{
			name: "wrong type names the field and both types",
			yaml: strings.Replace(deployment, "replicas: 2", "replicas: two", 1),
			want: []string{"m.yaml:6: spec.replicas: expected integer, got string"},
		},
		{
			name: "wrong type inside a list is placed on the offending item",
			yaml: pod + "  - name: side\n    image: example/side:1.0\n    ports:\n    - containerPort: http\n",
			want: []string{"m.yaml:12: spec.containers[1].ports[0].containerPort: expected integer, got string"},
		},
		{
			name: "bad resource quantity",
			yaml: pod + "    resources:\n      requests:\n        memory: 12 megs\n",
			want: []string{`m.yaml:11: spec.containers[0].resources.requests[memory]: invalid quantity "12 megs": must be a number with an optional suffix (e.g. 500m, 64Mi, 1Gi)`},
		},
		{
			name: "request above limit",
			yaml: pod + "    resources:\n      requests:\n        memory: 128Mi\n      limits:\n        memory: 64Mi\n",
			want: []string{"m.yaml:11: spec.containers[0].resources.requests[memory]: must be less than or equal to the limit (64Mi)"},
		},
		{
			name: "missing name",
			yaml: strings.Replace(pod, "  name: p\n", "  labels: {app: p}\n", 1),
			want: []string{"m.yaml:3: metadata.name: required"},
		},
		{
			name: "pod name not a DNS-1123 subdomain",
			yaml: strings.Replace(pod, "name: p", "name: My_Pod", 1),
			want: []string{`m.yaml:4: metadata.name: invalid name "My_Pod": must be a DNS-1123 subdomain (at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)`},
		},
		{
			name: "service name must be a DNS-1123 label",
			yaml: strings.Replace(service, "name: web", "name: web.v2", 1),
			want: []string{`m.yaml:4: metadata.name: invalid name "web.v2": must be a DNS-1123 label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)`},
		},
		{
			name: "namespace must be a DNS-1123 label",
			yaml: strings.Replace(pod, "  name: p\n", "  name: p\n  namespace: Prod\n", 1),
			want: []string{`m.yaml:5: metadata.namespace: invalid namespace "Prod": must be a DNS-1123 label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)`},
		},
		{
			name: "invalid label value names the label",
			yaml: strings.Replace(pod, "  name: p\n", "  name: p\n  labels:\n    app: -bad-\n", 1),
			want: []string{`m.yaml:6: metadata.labels[app]: Invalid value: "-bad-": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`},
		},
		{
			name: "deployment without selector",
			yaml: strings.Replace(deployment, "  selector:\n    matchLabels:\n      app: web\n", "", 1),
			want: []string{"m.yaml:5: spec.selector: required"},
		},
		{
			name: "deployment with empty selector",
			yaml: strings.Replace(deployment, "    matchLabels:\n      app: web\n", "    matchLabels: {}\n", 1),
			want: []string{"m.yaml:7: spec.selector: must select at least one label"},
		},
		{
			name: "selector that does not match the template",
			yaml: strings.Replace(deployment, "      app: web\n  template", "      app: api\n  template", 1),
			want: []string{"m.yaml:7: spec.selector: does not match template labels"},
		},
		{
			name: "invalid selector operator",
			yaml: strings.Replace(deployment, "    matchLabels:\n      app: web\n", "    matchExpressions:\n    - key: app\n      operator: Near\n", 1),
			want: []string{`m.yaml:10: spec.selector.matchExpressions[0].operator: Invalid value: "Near": not a valid selector operator`},
		},
		{
			name: "negative replicas",
			yaml: strings.Replace(deployment, "replicas: 2", "replicas: -1", 1),
			want: []string{"m.yaml:6: spec.replicas: must be >= 0"},
		},
		{
			name: "deployment pods must restart Always",
			yaml: deployment + "      restartPolicy: OnFailure\n",
			want: []string{`m.yaml:18: spec.template.spec.restartPolicy: unsupported value "OnFailure": a Deployment's pods must use Always`},
		},
		{
			name: "pod restartPolicy outside the three values",
			yaml: pod + "  restartPolicy: Sometimes\n",
			want: []string{`m.yaml:9: spec.restartPolicy: unsupported value "Sometimes": must be Always, OnFailure or Never`},
		},
		{
			name: "no containers",
			yaml: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: []\n",
			want: []string{"m.yaml:6: spec.containers: at least one container is required"},
		},
		{
			name: "duplicate container name in a deployment template",
			yaml: deployment + "      - name: web\n        image: example/other:1.0\n",
			want: []string{`m.yaml:18: spec.template.spec.containers[1].name: duplicate container name "web"`},
		},
		{
			name: "container name not a DNS-1123 label, image missing",
			yaml: strings.Replace(pod, "  - name: app\n    image: example/app:1.0\n", "  - name: App\n", 1),
			want: []string{
				`m.yaml:7: spec.containers[0].image: required`,
				`m.yaml:7: spec.containers[0].name: invalid container name "App": must be a DNS-1123 label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)`,
			},
		},
		{
			name: "invalid imagePullPolicy",
			yaml: pod + "    imagePullPolicy: Sometimes\n",
			want: []string{`m.yaml:9: spec.containers[0].imagePullPolicy: unsupported value "Sometimes": must be Always, IfNotPresent or Never`},
		},
		{
			name: "containerPort out of range and duplicate port names across containers",
			yaml: pod + "    ports:\n    - name: http\n      containerPort: 70000\n  - name: side\n    image: example/side:1.0\n    ports:\n    - name: http\n      containerPort: 9090\n",
			want: []string{
				"m.yaml:11: spec.containers[0].ports[0].containerPort: 70000 is out of range (1-65535)",
				`m.yaml:15: spec.containers[1].ports[0].name: duplicate port name "http"`,
			},
		},
		{
			name: "service port, targetPort and protocol",
			yaml: strings.Replace(service, "    port: 80\n    targetPort: 8080\n", "    port: 0\n    targetPort: 70000\n    protocol: ICMP\n", 1),
			want: []string{
				"m.yaml:10: spec.ports[0].port: 0 is out of range (1-65535)",
				"m.yaml:11: spec.ports[0].targetPort: 70000 is out of range (1-65535)",
				`m.yaml:12: spec.ports[0].protocol: unsupported value "ICMP": must be TCP, UDP or SCTP`,
			},
		},
		{
			name: "service port names unique and required when several",
			yaml: service + "  - name: http\n    port: 81\n  - port: 82\n",
			want: []string{
				`m.yaml:12: spec.ports[1].name: duplicate port name "http"`,
				"m.yaml:14: spec.ports[2].name: required when a Service has more than one port",
			},
		},
		{
			name: "service type other than ClusterIP or NodePort",
			yaml: service + "  type: ExternalName\n",
			want: []string{`m.yaml:12: spec.type: unsupported value "ExternalName": bosun serves Services with endpoints (ClusterIP, headless, NodePort); use a DNS CNAME outside the cluster`},
		},
		{
			name: "duplicate object in one file",
			yaml: deployment + "---\n" + deployment,
			want: []string{"m.yaml:22: metadata.name: duplicate Deployment default/web (first defined at m.yaml:1)"},
		},
		{
			name: "same name in another namespace or kind is no duplicate; canary annotations are checked",
			yaml: deployment + "---\n" + strings.Replace(deployment, "  name: web\n", "  name: web\n  namespace: staging\n  annotations:\n    bosun.dev/canary-branch: canary/web\n    bosun.dev/canary-weight: \"150\"\n", 1) + "---\n" + service,
			want: []string{
				`m.yaml:26: metadata.annotations[bosun.dev/canary-weight]: invalid value "150": must be a whole percentage from 1 to 99`,
			},
		},
		{
			name: "canary annotations: only on Deployments, consistent, valid",
			yaml: strings.Replace(deployment, "  name: web\n", "  name: web\n  annotations:\n    bosun.dev/canary-branch: \"bad..branch\"\n    bosun.dev/canary-steps: \"5,50,25\"\n    bosun.dev/canary-step-interval: soon\n    bosun.dev/canary-max: \"0.1\"\n", 1) +
				"---\n" + strings.Replace(service, "  name: web\n", "  name: web\n  annotations:\n    bosun.dev/canary-weight: \"10\"\n", 1),
			want: []string{
				`m.yaml:6: metadata.annotations[bosun.dev/canary-branch]: invalid branch "bad..branch": not a valid Git branch name`,
				`m.yaml:7: metadata.annotations[bosun.dev/canary-steps]: invalid value "5,50,25": the steps must increase`,
				`m.yaml:8: metadata.annotations[bosun.dev/canary-step-interval]: invalid value "soon": must be a duration of at least 1s, such as 30s or 2m`,
				`m.yaml:9: metadata.annotations[bosun.dev/canary-max]: needs bosun.dev/canary-query: the query whose result it bounds`,
				`m.yaml:29: metadata.annotations[bosun.dev/canary-weight]: only a Deployment may set it (in its own metadata): it asks for a canary of the Deployment's pods`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Decode("m.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Decode succeeded (%d pods, %d deployments, %d services), want errors:\n%s",
					len(set.Pods), len(set.Deployments), len(set.Services), strings.Join(tt.want, "\n"))
			}
			if set != nil {
				t.Errorf("Decode returned a Set along with errors")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want Errors", err)
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(tt.want, "\n      "))
			}
		})
	}
}

func TestLoadDir_duplicateAcrossFilesNamesBothPlaces(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "a.yaml", "# the web app\n\n"+deployment)
	writeFile(t, root, "nested/b.yaml", service+"---\n"+deployment)
	writeFile(t, root, "nested/c.yml", strings.Replace(pod, "image: example/app:1.0", "image: ''", 1))

	_, err := LoadDir(root, "")
	want := strings.Join([]string{
		"nested/b.yaml:16: metadata.name: duplicate Deployment default/web (first defined at a.yaml:3)",
		"nested/c.yml:8: spec.containers[0].image: required",
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("LoadDir error:\n%v\nwant:\n%s", err, want)
	}
}

func TestLoadDir_skipsHiddenAndNonYAMLFiles(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "apps/web.yaml", deployment)
	writeFile(t, root, "apps/README.md", "not yaml")
	writeFile(t, root, ".gitlab-ci.yml", "stages: [test]\n")
	writeFile(t, root, ".git/config.yaml", "garbage: [\n")
	writeFile(t, root, "apps/.hidden/x.yaml", "garbage: [\n")
	writeFile(t, root, "other/p.yaml", pod)

	set, err := LoadDir(root, "apps")
	if err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	if len(set.Deployments) != 1 || len(set.Pods) != 0 {
		t.Fatalf("got %d deployments, %d pods; want only apps/web.yaml's deployment", len(set.Deployments), len(set.Pods))
	}
	key := ObjectKey{Kind: KindDeployment, Namespace: "default", Name: "web"}
	if src := set.Sources[key]; src != (Source{File: "apps/web.yaml", Line: 1}) {
		t.Errorf("Sources[%s] = %v, want apps/web.yaml:1", key, src)
	}
}

func TestLoadDir_refusesSymlinksMissingDirsAndEscapes(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(t.TempDir(), "secret.yaml")
	if err := os.WriteFile(outside, []byte(pod), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		sub, want string
	}{
		{"", "link.yaml: symbolic links are not followed; make the manifest a regular file"},
		{"missing", "missing: manifest directory does not exist"},
		{"../x", "../x: manifest path must be a relative path inside the repository"},
		{"link.yaml", "link.yaml: manifest path is not a directory"},
	}
	for _, tt := range tests {
		_, err := LoadDir(root, tt.sub)
		if err == nil || err.Error() != tt.want {
			t.Errorf("LoadDir(root, %q) error = %v, want %q", tt.sub, err, tt.want)
		}
	}
}

func TestLoadDir_seedManifestsLoadUnchanged(t *testing.T) {
	set, err := LoadDir("../examples/seed", "")
	if err != nil {
		t.Fatalf("seed manifests rejected:\n%v", err)
	}
	if len(set.Pods) != 2 || len(set.Deployments) != 1 || len(set.Services) != 1 {
		t.Fatalf("got %d pods, %d deployments, %d services; want 2, 1, 1", len(set.Pods), len(set.Deployments), len(set.Services))
	}
	if names := []string{set.Pods[0].Name, set.Pods[1].Name}; names[0] != "foo-instance-1" || names[1] != "nginx" {
		t.Errorf("pods = %v, want sorted [foo-instance-1 nginx]", names)
	}
	dep := set.Deployments[0]
	if dep.Namespace != "default" || *dep.Spec.Replicas != 10 || len(dep.Spec.Template.Spec.Containers) != 2 {
		t.Errorf("deployment %s/%s replicas %d containers %d", dep.Namespace, dep.Name, *dep.Spec.Replicas, len(dep.Spec.Template.Spec.Containers))
	}
	svc := set.Services[0]
	if p := svc.Spec.Ports[0]; p.Protocol != corev1.ProtocolTCP || p.TargetPort != intstr.FromInt32(80) {
		t.Errorf("service port defaults: protocol %q targetPort %v, want TCP and 80", p.Protocol, p.TargetPort.String())
	}
	wantSources := map[ObjectKey]Source{
		{KindPod, "default", "nginx"}:                   {"seed.yaml", 7},
		{KindPod, "default", "foo-instance-1"}:          {"seed.yaml", 20},
		{KindDeployment, "default", "foo-deployment-1"}: {"seed.yaml", 36},
		{KindService, "default", "foo"}:                 {"seed.yaml", 63},
	}
	for k, want := range wantSources {
		if got := set.Sources[k]; got != want {
			t.Errorf("Sources[%s] = %v, want %v", k, got, want)
		}
	}
}

func TestLoadDir_helloExampleRepository(t *testing.T) {
	set, err := LoadDir("../examples/hello", "")
	if err != nil {
		t.Fatalf("hello manifests rejected:\n%v", err)
	}
	if len(set.Deployments) != 1 || len(set.Services) != 1 || len(set.Pods) != 1 {
		t.Fatalf("got %d deployments, %d services, %d pods; want 1 each", len(set.Deployments), len(set.Services), len(set.Pods))
	}
	web := set.Deployments[0]
	c := web.Spec.Template.Spec.Containers[0]
	if web.Name != "web" || *web.Spec.Replicas != 3 || c.Image != "localhost/bosun-hello:v1" || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("web deployment: name %q replicas %d image %q port %d", web.Name, *web.Spec.Replicas, c.Image, c.Ports[0].ContainerPort)
	}
	if got := c.Resources.Requests.Cpu().String(); got != "50m" {
		t.Errorf("web cpu request = %s, want 50m", got)
	}
	side := set.Pods[0]
	if side.Name != "sidecar-demo" || len(side.Spec.Containers) != 2 || side.Spec.Containers[1].Env[1].Value != "http://127.0.0.1:8080" {
		t.Errorf("sidecar pod: %s with %d containers", side.Name, len(side.Spec.Containers))
	}
	if src := set.Sources[ObjectKey{KindService, "default", "web"}]; src.File != "web/service.yaml" {
		t.Errorf("service source = %v, want web/service.yaml", src)
	}
}

func TestDecode_appliesKubernetesDefaults(t *testing.T) {
	doc := strings.Replace(deployment, "  replicas: 2\n", "", 1) + "      - name: latest\n        image: example/x:latest\n" +
		"      - name: untagged\n        image: registry:5000/x\n      - name: digest\n        image: example/x@sha256:0123\n" +
		"---\n" + pod
	set, err := Decode("d.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	dep := set.Deployments[0]
	if *dep.Spec.Replicas != 1 {
		t.Errorf("replicas = %d, want 1", *dep.Spec.Replicas)
	}
	if dep.Spec.Strategy.Type != "RollingUpdate" || dep.Spec.Strategy.RollingUpdate.MaxSurge.String() != "25%" {
		t.Errorf("strategy = %+v, want RollingUpdate with 25%% surge", dep.Spec.Strategy)
	}
	want := map[string]corev1.PullPolicy{"web": "IfNotPresent", "latest": "Always", "untagged": "Always", "digest": "IfNotPresent"}
	for _, c := range dep.Spec.Template.Spec.Containers {
		if c.ImagePullPolicy != want[c.Name] {
			t.Errorf("container %s (%s): imagePullPolicy %s, want %s", c.Name, c.Image, c.ImagePullPolicy, want[c.Name])
		}
	}
	p := set.Pods[0]
	if p.Namespace != "default" || p.Spec.RestartPolicy != corev1.RestartPolicyAlways || *p.Spec.TerminationGracePeriodSeconds != 30 {
		t.Errorf("pod defaults: namespace %q restartPolicy %q grace %d", p.Namespace, p.Spec.RestartPolicy, *p.Spec.TerminationGracePeriodSeconds)
	}
}

func TestDecode_skipsEmptyDocumentsAndMarkers(t *testing.T) {
	doc := "\xEF\xBB\xBF---\n# only a comment\n---\n\n--- # trailing comment\n" + pod + "...\n---\n"
	set, err := Decode("e.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Pods) != 1 || set.Sources[ObjectKey{KindPod, "default", "p"}].Line != 6 {
		t.Errorf("got %d pods at %v, want 1 at e.yaml:6", len(set.Pods), set.Sources)
	}
}

func TestTemplateHash_stableAndSensitiveToTemplate(t *testing.T) {
	set, err := Decode("h.yaml", []byte(deployment))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := set.Deployments[0].Spec.Template
	h := TemplateHash(&tmpl)
	if len(h) != 10 || strings.Trim(h, "0123456789abcdef") != "" {
		t.Fatalf("hash %q is not 10 hex digits", h)
	}
	// Writing the defaults out explicitly does not change the hash.
	explicit := strings.Replace(deployment, "image: example/web:1.0", "image: example/web:1.0\n        imagePullPolicy: IfNotPresent", 1)
	set2, err := Decode("h.yaml", []byte(explicit))
	if err != nil {
		t.Fatal(err)
	}
	if h2 := TemplateHash(&set2.Deployments[0].Spec.Template); h2 != h {
		t.Errorf("hash with explicit defaults = %s, want %s", h2, h)
	}
	changed := tmpl.DeepCopy()
	changed.Spec.Containers[0].Image = "example/web:1.1"
	if TemplateHash(changed) == h {
		t.Errorf("hash did not change with the image")
	}
}

func TestError_format(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{"a.yaml", 3, "spec.replicas", "must be >= 0"}, "a.yaml:3: spec.replicas: must be >= 0"},
		{Error{"a.yaml", 3, "", "invalid YAML: x"}, "a.yaml:3: invalid YAML: x"},
		{Error{"a.yaml", 0, "", "not a regular file"}, "a.yaml: not a regular file"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	if got := (ObjectKey{"Deployment", "default", "web"}).String(); got != "Deployment/default/web" {
		t.Errorf("ObjectKey.String() = %q", got)
	}
}

func writeFile(t *testing.T, root, rel, content string) {
	t.Helper()
	path := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDecode_refusesAliasBombsAndDeepNesting(t *testing.T) {
	var bomb strings.Builder
	bomb.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&bomb, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n",
			i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	tests := []struct{ name, yaml, want string }{
		{"billion laughs", bomb.String(), "b.yaml:1: invalid YAML: document contains excessive aliasing"},
		{"deep nesting", strings.Repeat("[", 100000), "b.yaml:1: invalid YAML: exceeded max depth of 10000"},
	}
	for _, tt := range tests {
		_, err := Decode("b.yaml", []byte(tt.yaml))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: error = %v, want %q", tt.name, err, tt.want)
		}
	}
}
