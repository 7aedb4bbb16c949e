package manifest

import (
	"flag"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the README's table of supported fields from fieldTable")

// rootTypes are the kinds manifests may hold; the walk starts there.
var rootTypes = []reflect.Type{
	reflect.TypeFor[corev1.Pod](), reflect.TypeFor[appsv1.Deployment](), reflect.TypeFor[corev1.Service](),
	reflect.TypeFor[corev1.ConfigMap](), reflect.TypeFor[corev1.Secret](), reflect.TypeFor[corev1.Namespace](),
	reflect.TypeFor[batchv1.Job](), reflect.TypeFor[batchv1.CronJob](),
	reflect.TypeFor[appsv1.DaemonSet](), reflect.TypeFor[appsv1.StatefulSet](), reflect.TypeFor[corev1.PersistentVolumeClaim](),
	reflect.TypeFor[networkingv1.Ingress](), reflect.TypeFor[networkingv1.IngressClass](),
}

// TestFieldTable_coversEveryField walks the Kubernetes API types from every
// supported kind, through honoured fields only, and fails for every field
// that fieldTable neither honours nor refuses: a new k8s.io/api version that
// adds a field makes this test fail until the table decides on it.
func TestFieldTable_coversEveryField(t *testing.T) {
	if len(rootTypes) != len(kinds) {
		t.Fatalf("%d root types for %d supported kinds: add the new kind to rootTypes", len(rootTypes), len(kinds))
	}
	listed := map[reflect.Type]bool{}
	for _, tf := range fieldTable {
		if listed[tf.Type] {
			t.Errorf("%s is listed twice", tf.Type)
		}
		listed[tf.Type] = true
		names := map[string]bool{}
		for _, f := range tf.Fields {
			if names[f.Name] {
				t.Errorf("%s.%s is listed twice", tf.Type, f.Name)
			}
			names[f.Name] = true
		}
		for _, f := range tf.Fields {
			if !hasJSONField(tf.Type, f.Name) {
				t.Errorf("%s has no field %q: remove it from the table", tf.Type, f.Name)
			}
		}
	}
	reached := map[reflect.Type]bool{}
	var missing []string
	var visit func(reflect.Type)
	visit = func(typ reflect.Type) {
		typ = elemType(typ)
		if typ.Kind() != reflect.Struct || leafTypes[typ] || reached[typ] {
			return
		}
		reached[typ] = true
		rules, ok := rulesByType[typ]
		if !ok {
			missing = append(missing, typ.String()+": reached through an honoured field but not in the table")
			return
		}
		for i := 0; i < typ.NumField(); i++ {
			sf := typ.Field(i)
			if !sf.IsExported() {
				continue
			}
			name, inline := jsonName(sf)
			switch {
			case name == "-":
			case inline:
				visit(sf.Type)
			default:
				rule, ok := rules[name]
				if !ok {
					missing = append(missing, fmt.Sprintf("%s.%s: neither honoured nor refused", typ, name))
					continue
				}
				if rule.Support == honoured {
					visit(sf.Type)
				}
			}
		}
	}
	for _, rt := range rootTypes {
		visit(rt)
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Error(m)
	}
	for typ := range listed {
		if !reached[typ] {
			t.Errorf("%s is in the table but no honoured field reaches it: remove it", typ)
		}
	}
}

func elemType(t reflect.Type) reflect.Type {
	for {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			t = t.Elem()
		default:
			return t
		}
	}
}

func hasJSONField(typ reflect.Type, name string) bool {
	for i := 0; i < typ.NumField(); i++ {
		sf := typ.Field(i)
		if n, inline := jsonName(sf); !inline && n == name {
			return true
		}
	}
	return false
}

func TestCheckFields_refusesWhatBosunDoesNotCarryOut(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "a refused pod field names its path and line",
			yaml: pod + "  hostIPC: true\n",
			want: []string{"m.yaml:9: spec.hostIPC: not supported by bosun"},
		},
		{
			name: "a refused field in a Deployment's template, with the reason",
			yaml: deployment + "      serviceAccountName: web\n",
			want: []string{"m.yaml:18: spec.template.spec.serviceAccountName: not supported by bosun: bosun has no service accounts"},
		},
		{
			name: "a refused field deep in a container",
			yaml: pod + "    securityContext:\n      seLinuxOptions:\n        level: s0\n    tty: true\n",
			want: []string{
				"m.yaml:10: spec.containers[0].securityContext.seLinuxOptions: not supported by bosun",
				"m.yaml:12: spec.containers[0].tty: not supported by bosun",
			},
		},
		{
			name: "a refused volume source",
			yaml: pod + "  volumes:\n  - name: data\n    nfs:\n      server: nas\n      path: /export\n",
			want: []string{"m.yaml:11: spec.volumes[0].nfs: not supported by bosun"},
		},
		{
			name: "an unsupported value is refused with what bosun serves",
			yaml: service + "  type: LoadBalancer\n",
			want: []string{`m.yaml:12: spec.type: unsupported value "LoadBalancer": bosun has no load balancer provider; use type NodePort and point your load balancer at the nodes' ports`},
		},
		{
			name: "status and cluster-set metadata are refused",
			yaml: strings.Replace(pod, "  name: p\n", "  name: p\n  uid: \"1234\"\n", 1) + "status:\n  phase: Running\n",
			want: []string{
				"m.yaml:5: metadata.uid: not supported by bosun: set by the cluster, not by manifests",
				"m.yaml:10: status: not supported by bosun: status is observed state, written by bosun, not by manifests",
			},
		},
		{
			name: "bosun.dev annotations bosun does not act on",
			yaml: strings.Replace(pod, "  name: p\n", "  name: p\n  annotations:\n    bosun.dev/spec-hash: abc\n    example.com/owner: team-a\n", 1),
			want: []string{"m.yaml:6: metadata.annotations[bosun.dev/spec-hash]: not supported by bosun: bosun.dev/ annotations are bosun's own"},
		},
		{
			name: "a false that means something is a value",
			yaml: pod + "  automountServiceAccountToken: true\n  hostUsers: false\n",
			want: []string{
				"m.yaml:9: spec.automountServiceAccountToken: unsupported value true: bosun has no service account tokens to mount",
				"m.yaml:10: spec.hostUsers: not supported by bosun: user namespaces",
			},
		},
		{
			name: "restartPolicy on an app container",
			yaml: pod + "    restartPolicy: Always\n",
			want: []string{"m.yaml:9: spec.containers[0].restartPolicy: not supported: only init containers may set restartPolicy; the pod's restartPolicy applies"},
		},
		{
			name: "a template names neither itself nor its namespace",
			yaml: strings.Replace(deployment, "    metadata:\n      labels:\n        app: web\n", "    metadata:\n      name: x\n      labels:\n        app: web\n", 1),
			want: []string{"m.yaml:12: spec.template.metadata.name: not supported by bosun: the owner names the pods and jobs it makes (Kubernetes ignores this name); remove it"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode("m.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Decode succeeded, want:\n%s", strings.Join(tt.want, "\n"))
			}
			if got := err.Error(); got != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n got: %s\nwant: %s", strings.ReplaceAll(got, "\n", "\n      "), strings.Join(tt.want, "\n      "))
			}
		})
	}
}

// TestCheckFields_acceptsEmptyValues: what kubectl and generators write for
// "nothing" is not a field set.
func TestCheckFields_acceptsEmptyValues(t *testing.T) {
	doc := strings.Replace(pod, "  name: p\n", "  name: p\n  creationTimestamp: null\n", 1) +
		"  imagePullSecrets: []\n  ephemeralContainers: []\n  readinessGates: []\n" +
		"status: {}\n"
	if _, err := Decode("e.yaml", []byte(doc)); err != nil {
		t.Fatalf("empty values refused:\n%v", err)
	}
}

// TestFieldTable_README keeps the README's table of supported fields equal
// to fieldTable; `go test ./manifest -run README -rewrite` regenerates it.
func TestFieldTable_README(t *testing.T) {
	const path = "../README.md"
	const begin, end = "<!-- fields:begin (generated from manifest/fields.go: go test ./manifest -run README -rewrite) -->\n", "<!-- fields:end -->\n"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	if i < 0 || j < i {
		t.Fatalf("README.md has no %q ... %q section", strings.TrimSpace(begin), strings.TrimSpace(end))
	}
	want := readme[:i+len(begin)] + FieldTableMarkdown() + readme[j:]
	if want == readme {
		return
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's field table differs from manifest/fields.go; run: go test ./manifest -run README -rewrite")
}
