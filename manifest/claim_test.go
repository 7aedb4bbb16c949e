package manifest

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

const claimDoc = `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
`

func TestDecode_claimAccepted(t *testing.T) {
	yaml := claimDoc + "---\n" + pod + "    volumeMounts:\n    - {name: d, mountPath: /data}\n  volumes:\n  - name: d\n    persistentVolumeClaim: {claimName: data, readOnly: true}\n" +
		"---\n" + strings.Replace(claimDoc, "name: data", "name: cache\n  annotations: {bosun.dev/reclaim-policy: Delete}", 1) +
		"  storageClassName: local-path\n  volumeMode: Filesystem\n"
	set, err := Policy{}.Decode("m.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.PersistentVolumeClaims) != 2 {
		t.Fatalf("claims: %d", len(set.PersistentVolumeClaims))
	}
	c := set.PersistentVolumeClaims[0]
	if c.Namespace != "default" || c.Spec.VolumeMode == nil || *c.Spec.VolumeMode != corev1.PersistentVolumeFilesystem {
		t.Errorf("defaults: namespace %q, volumeMode %v", c.Namespace, c.Spec.VolumeMode)
	}
}

func TestDecode_claimRefused(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "no storage request, other access modes, class and mode",
			yaml: "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\n  annotations: {bosun.dev/reclaim-policy: Recycle}\nspec:\n  accessModes: [ReadWriteMany]\n  storageClassName: gp2\n  volumeMode: Block\n  resources:\n    requests: {cpu: '1'}\n",
			want: []string{
				`m.yaml:5: metadata.annotations[bosun.dev/reclaim-policy]: unsupported value "Recycle": must be Delete or Retain (the default)`,
				`m.yaml:7: spec.accessModes[0]: unsupported value "ReadWriteMany": a local volume is ReadWriteOnce or ReadWriteOncePod`,
				`m.yaml:8: spec.storageClassName: unsupported value "gp2": bosun provides local volumes only: leave it empty or say "local-path"`,
				`m.yaml:9: spec.volumeMode: unsupported value "Block": must be Filesystem`,
				"m.yaml:11: spec.resources.requests[cpu]: not supported by bosun: only storage",
				"m.yaml:11: spec.resources.requests[storage]: required",
			},
		},
		{
			name: "limits other than the request; refused fields",
			yaml: "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\nspec:\n  volumeName: pv1\n  selector: {matchLabels: {a: b}}\n  resources:\n    requests: {storage: 1Gi}\n    limits: {storage: 2Gi}\n",
			want: []string{
				"m.yaml:5: spec.accessModes: required: ReadWriteOnce or ReadWriteOncePod",
				"m.yaml:6: spec.volumeName: not supported by bosun: bosun names the volume it binds",
				"m.yaml:7: spec.selector: not supported by bosun: volumes are provisioned, never pre-made",
				"m.yaml:10: spec.resources.limits[storage]: must equal requests.storage (1Gi): bosun does not cap a local volume",
			},
		},
		{
			name: "an exported claim's selected-node; a name too long for its volume directory",
			yaml: "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n  annotations: {volume.kubernetes.io/selected-node: n1}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests: {storage: 1Gi}\n",
			want: []string{
				"m.yaml:4: metadata.name: too long: 219 bytes, at most 218 (the claim's volume directory on its node is <name>-<uid>, at most 255 bytes)",
				"m.yaml:5: metadata.annotations[volume.kubernetes.io/selected-node]: set by the cluster when it binds the claim, not in Git: remove it (bosun chooses the node with the claim's first pod)",
			},
		},
		{
			name: "a pod naming a claim the revision does not hold",
			yaml: pod + "  volumes:\n  - name: d\n    persistentVolumeClaim: {claimName: missing}\n  - name: e\n    persistentVolumeClaim: {claimName: Bad_Name}\n",
			want: []string{
				"m.yaml:11: spec.volumes[0].persistentVolumeClaim.claimName: PersistentVolumeClaim default/missing does not exist (Pod default/p uses it)",
				`m.yaml:13: spec.volumes[1].persistentVolumeClaim.claimName: invalid name "Bad_Name": must be a DNS-1123 subdomain (at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Policy{}.Decode("m.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Decode succeeded, want errors:\n%s", strings.Join(tt.want, "\n"))
			}
			if got := err.Error(); got != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n got: %s\nwant: %s", strings.ReplaceAll(got, "\n", "\n      "), strings.Join(tt.want, "\n      "))
			}
		})
	}
}
