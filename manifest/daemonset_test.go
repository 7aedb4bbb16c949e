package manifest

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const daemonSet = `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: shipper
  namespace: logging
spec:
  selector:
    matchLabels:
      app: shipper
  template:
    metadata:
      labels:
        app: shipper
    spec:
      tolerations:
      - key: dedicated
        operator: Exists
        effect: NoSchedule
      containers:
      - name: shipper
        image: example/shipper:1.0
`

func TestDaemonSet_defaults(t *testing.T) {
	set, err := Decode("ds.yaml", []byte(daemonSet))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.DaemonSets) != 1 {
		t.Fatalf("got %d DaemonSets, want 1", len(set.DaemonSets))
	}
	ds := set.DaemonSets[0]
	st := ds.Spec.UpdateStrategy
	if st.Type != appsv1.RollingUpdateDaemonSetStrategyType || st.RollingUpdate == nil ||
		*st.RollingUpdate.MaxUnavailable != intstr.FromInt32(1) || *st.RollingUpdate.MaxSurge != intstr.FromInt32(0) {
		t.Errorf("updateStrategy = %+v, want RollingUpdate maxUnavailable 1 maxSurge 0", st)
	}
	if ds.Spec.RevisionHistoryLimit == nil || *ds.Spec.RevisionHistoryLimit != 10 {
		t.Errorf("revisionHistoryLimit = %v, want 10", ds.Spec.RevisionHistoryLimit)
	}
	if rp := ds.Spec.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyAlways {
		t.Errorf("restartPolicy = %q, want Always", rp)
	}
	if ds.Namespace != "logging" {
		t.Errorf("namespace = %q", ds.Namespace)
	}

	onDelete := strings.Replace(daemonSet, "spec:\n  selector:", "spec:\n  updateStrategy:\n    type: OnDelete\n  selector:", 1)
	set, err = Decode("ds.yaml", []byte(onDelete))
	if err != nil {
		t.Fatal(err)
	}
	if st := set.DaemonSets[0].Spec.UpdateStrategy; st.Type != appsv1.OnDeleteDaemonSetStrategyType || st.RollingUpdate != nil {
		t.Errorf("OnDelete strategy defaulted to %+v", st)
	}
}

func TestDaemonSet_acceptsKubernetesStrategies(t *testing.T) {
	for _, strategy := range []string{
		"    type: RollingUpdate\n    rollingUpdate:\n      maxUnavailable: 25%\n",
		"    type: RollingUpdate\n    rollingUpdate:\n      maxUnavailable: 0\n      maxSurge: 1\n",
		"    type: RollingUpdate\n    rollingUpdate:\n      maxUnavailable: 0%\n      maxSurge: 10%\n",
		"    type: OnDelete\n",
	} {
		doc := strings.Replace(daemonSet, "spec:\n  selector:", "spec:\n  minReadySeconds: 5\n  updateStrategy:\n"+strategy+"  selector:", 1)
		if _, err := Decode("ds.yaml", []byte(doc)); err != nil {
			t.Errorf("strategy\n%s refused: %v", strategy, err)
		}
	}
}

func TestDaemonSet_rejectsWithExactMessages(t *testing.T) {
	strategy := func(s string) string {
		return strings.Replace(daemonSet, "spec:\n  selector:", "spec:\n  updateStrategy:\n"+s+"  selector:", 1)
	}
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "selector must match the template",
			yaml: strings.Replace(daemonSet, "      app: shipper\n  template", "      app: other\n  template", 1),
			want: []string{"ds.yaml:7: spec.selector: does not match template labels"},
		},
		{
			name: "selector required",
			yaml: strings.Replace(daemonSet, "  selector:\n    matchLabels:\n      app: shipper\n", "", 1),
			want: []string{"ds.yaml:6: spec.selector: required"},
		},
		{
			name: "template restartPolicy must be Always",
			yaml: strings.Replace(daemonSet, "      tolerations:", "      restartPolicy: OnFailure\n      tolerations:", 1),
			want: []string{`ds.yaml:15: spec.template.spec.restartPolicy: unsupported value "OnFailure": a DaemonSet's pods must use Always`},
		},
		{
			name: "both maxUnavailable and maxSurge zero",
			yaml: strategy("    rollingUpdate:\n      maxUnavailable: 0\n      maxSurge: 0%\n"),
			want: []string{"ds.yaml:9: spec.updateStrategy.rollingUpdate.maxUnavailable: must not be 0 when maxSurge is 0"},
		},
		{
			name: "maxSurge with the default maxUnavailable",
			yaml: strategy("    rollingUpdate:\n      maxSurge: 1\n"),
			want: []string{"ds.yaml:9: spec.updateStrategy.rollingUpdate.maxSurge: must be 0 when maxUnavailable is not 0 (maxUnavailable defaults to 1: set it to 0 to surge)"},
		},
		{
			name: "percentage over 100",
			yaml: strategy("    rollingUpdate:\n      maxUnavailable: 120%\n"),
			want: []string{`ds.yaml:9: spec.updateStrategy.rollingUpdate.maxUnavailable: invalid value "120%": must be an integer or a percentage from 0% to 100%`},
		},
		{
			name: "unknown strategy type",
			yaml: strategy("    type: Recreate\n"),
			want: []string{`ds.yaml:8: spec.updateStrategy.type: unsupported value "Recreate": must be RollingUpdate or OnDelete`},
		},
		{
			name: "OnDelete with rollingUpdate",
			yaml: strategy("    type: OnDelete\n    rollingUpdate:\n      maxUnavailable: 2\n"),
			want: []string{"ds.yaml:9: spec.updateStrategy.rollingUpdate: must not be set when type is OnDelete"},
		},
		{
			name: "negative minReadySeconds and revisionHistoryLimit",
			yaml: strings.Replace(daemonSet, "spec:\n  selector:", "spec:\n  minReadySeconds: -1\n  revisionHistoryLimit: -2\n  selector:", 1),
			want: []string{
				"ds.yaml:7: spec.minReadySeconds: must be >= 0",
				"ds.yaml:8: spec.revisionHistoryLimit: must be >= 0",
			},
		},
		{
			name: "status is refused",
			yaml: daemonSet + "status:\n  numberReady: 3\n",
			want: []string{"ds.yaml:22: status: not supported by bosun: status is observed state, written by bosun, not by manifests"},
		},
		{
			name: "unknown field in the strategy",
			yaml: strategy("    rollingUpdate:\n      maxUnavailible: 2\n"),
			want: []string{"ds.yaml:9: spec.updateStrategy.rollingUpdate.maxUnavailible: unknown field"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode("ds.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Decode succeeded, want:\n%s", strings.Join(tt.want, "\n"))
			}
			if got := err.Error(); got != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n got: %s\nwant: %s", strings.ReplaceAll(got, "\n", "\n      "), strings.Join(tt.want, "\n      "))
			}
		})
	}
}
