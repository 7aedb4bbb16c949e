package manifest

import (
	"strings"
	"testing"
)

// placementPod is a Pod whose spec ends with the placement fields given,
// indented as spec's children; the first of them is on line 9.
func placementPod(fields string) string {
	return `apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  containers:
  - name: app
    image: registry.local/app:1
` + fields
}

func TestDecode_placementValues(t *testing.T) {
	tests := []struct {
		name   string
		fields string
		want   []string // empty: valid
	}{
		{
			name: "tolerations as Kubernetes writes them",
			fields: `  tolerations:
  - key: dedicated
    operator: Equal
    value: db
    effect: NoSchedule
  - key: node.kubernetes.io/unreachable
    operator: Exists
    effect: NoExecute
    tolerationSeconds: 30
  - operator: Exists
`,
		},
		{
			name: "toleration operators, effects and values",
			fields: `  tolerations:
  - key: a
    operator: Lt
    value: "5"
  - operator: Equal
    value: x
  - key: b
    operator: Exists
    value: x
    effect: Evict
  - key: c
    value: x
    tolerationSeconds: 10
  - key: "bad key!"
    operator: Exists
`,
			want: []string{
				`m.yaml:11: spec.tolerations[0].operator: unsupported value "Lt": must be Equal or Exists`,
				`m.yaml:13: spec.tolerations[1].operator: must be Exists when key is empty (an empty key with Exists tolerates every taint)`,
				`m.yaml:17: spec.tolerations[2].value: must be empty when operator is Exists`,
				`m.yaml:18: spec.tolerations[2].effect: unsupported value "Evict": must be NoSchedule, PreferNoSchedule or NoExecute`,
				`m.yaml:21: spec.tolerations[3].tolerationSeconds: only applies to effect NoExecute`,
				`m.yaml:22: spec.tolerations[4].key: invalid key "bad key!": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
			},
		},
		{
			name: "node affinity as Kubernetes writes it",
			fields: `  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: disk, operator: In, values: [ssd, nvme]}
          - {key: cores, operator: Gt, values: ["8"]}
          - {key: spot, operator: DoesNotExist}
        - matchFields:
          - {key: metadata.name, operator: NotIn, values: [n1]}
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        preference:
          matchExpressions:
          - {key: zone, operator: In, values: [east]}
`,
		},
		{
			name: "node affinity operators, values, fields and weights",
			fields: `  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: disk, operator: Like, values: [ssd]}
          - {key: disk, operator: In}
          - {key: disk, operator: Exists, values: [ssd]}
          - {key: cores, operator: Gt, values: [many]}
          matchFields:
          - {key: metadata.labels, operator: In, values: [x]}
          - {key: metadata.name, operator: Exists}
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 101
        preference:
          matchExpressions:
          - {key: zone, operator: In, values: [east]}
`,
			want: []string{
				`m.yaml:14: spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator: unsupported value "Like": must be In, NotIn, Exists, DoesNotExist, Gt or Lt`,
				`m.yaml:15: spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[1].values: must have at least one value when operator is In`,
				`m.yaml:16: spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[2].values: must be empty when operator is Exists`,
				`m.yaml:17: spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[3].values[0]: invalid value "many": must be an integer when operator is Gt`,
				`m.yaml:19: spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].key: unsupported value "metadata.labels": must be metadata.name`,
				`m.yaml:20: spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[1].operator: unsupported value "Exists": must be In or NotIn`,
				`m.yaml:22: spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: must be from 1 to 100, got 101`,
			},
		},
		{
			name: "no node selector term",
			fields: `  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms: []
`,
			want: []string{`m.yaml:12: spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: must have at least one node selector term`},
		},
		{
			name: "pod affinity and anti-affinity as Kubernetes writes them",
			fields: `  affinity:
    podAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: topology.kubernetes.io/zone
        labelSelector:
          matchExpressions:
          - {key: app, operator: In, values: [cache]}
        namespaces: [data]
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 50
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels: {app: web}
          matchLabelKeys: [pod-template-hash]
`,
		},
		{
			name: "pod affinity terms",
			fields: `  affinity:
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector:
          matchExpressions:
          - {key: app, operator: Near, values: [web]}
        namespaces: [Bad_NS]
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels: {app: web}
        matchLabelKeys: [app, version]
        mismatchLabelKeys: [version]
      - topologyKey: kubernetes.io/hostname
        matchLabelKeys: [version]
      - topologyKey: kubernetes.io/hostname
        namespaceSelector: {}
      - topologyKey: kubernetes.io/hostname
        namespaceSelector: {matchLabels: {team: a}}
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 0
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
`,
			want: []string{
				`m.yaml:12: spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: required`,
				`m.yaml:14: spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchExpressions[0].operator: Invalid value: "Near": not a valid selector operator`,
				`m.yaml:15: spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].namespaces[0]: invalid namespace "Bad_NS": must be a DNS-1123 label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)`,
				`m.yaml:19: spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[1].matchLabelKeys[0]: key "app" is already in labelSelector`,
				`m.yaml:20: spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[1].mismatchLabelKeys: "version" is also in matchLabelKeys`,
				`m.yaml:22: spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[2].matchLabelKeys: requires labelSelector to be set`,
				`m.yaml:24: spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[3].namespaceSelector: not supported by bosun: list the namespaces instead`,
				`m.yaml:26: spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[4].namespaceSelector: not supported by bosun: list the namespaces instead`,
				`m.yaml:28: spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: must be from 1 to 100, got 0`,
			},
		},
		{
			name: "topology spread constraints as Kubernetes writes them",
			fields: `  topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: DoNotSchedule
    minDomains: 3
    nodeAffinityPolicy: Ignore
    nodeTaintsPolicy: Honor
    labelSelector:
      matchLabels: {app: web}
    matchLabelKeys: [pod-template-hash]
  - maxSkew: 2
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels: {app: web}
`,
		},
		{
			name: "topology spread constraints",
			fields: `  topologySpreadConstraints:
  - maxSkew: 0
    topologyKey: zone
    whenUnsatisfiable: Sometimes
    minDomains: 2
    nodeAffinityPolicy: Always
  - maxSkew: 1
    topologyKey: zone
    whenUnsatisfiable: ScheduleAnyway
    minDomains: 0
  - maxSkew: 1
    topologyKey: zone
    whenUnsatisfiable: ScheduleAnyway
`,
			want: []string{
				`m.yaml:10: spec.topologySpreadConstraints[0].maxSkew: must be greater than 0, got 0`,
				`m.yaml:12: spec.topologySpreadConstraints[0].whenUnsatisfiable: unsupported value "Sometimes": must be DoNotSchedule or ScheduleAnyway`,
				`m.yaml:13: spec.topologySpreadConstraints[0].minDomains: only applies when whenUnsatisfiable is DoNotSchedule`,
				`m.yaml:14: spec.topologySpreadConstraints[0].nodeAffinityPolicy: unsupported value "Always": must be Honor or Ignore`,
				`m.yaml:18: spec.topologySpreadConstraints[1].minDomains: must be greater than 0, got 0`,
				`m.yaml:19: spec.topologySpreadConstraints[2]: duplicate constraint: topologyKey "zone" with whenUnsatisfiable "ScheduleAnyway" is already given`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode("m.yaml", []byte(placementPod(tt.fields)))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Decode succeeded, want errors:\n%s", strings.Join(tt.want, "\n"))
			}
			if got := err.Error(); got != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n got: %s\nwant: %s", strings.ReplaceAll(got, "\n", "\n      "), strings.Join(tt.want, "\n      "))
			}
		})
	}
}
