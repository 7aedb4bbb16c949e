package manifest

import (
	"strings"
	"testing"
)

// podWith is a Pod whose spec continues with extra (indented for spec:)
// and whose container continues with ctr (indented for a container),
// followed by the ConfigMap c and the Secret s it may use.
func podWith(ctr, extra string) string {
	return pod + ctr + extra + configObjects
}

const configObjects = `---
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
data: {k: v}
---
apiVersion: v1
kind: Secret
metadata: {name: s}
stringData: {k: v}
`

func TestDecode_podContentsValues(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "a volume with two sources, one without, a duplicate name",
			yaml: podWith("", "  volumes:\n  - name: a\n    emptyDir: {}\n    configMap: {name: c}\n  - name: b\n  - name: b\n    emptyDir: {}\n"),
			want: []string{
				"m.yaml:10: spec.volumes[0]: must give exactly one volume source, not 2",
				"m.yaml:13: spec.volumes[1]: must give a volume source (emptyDir, configMap, secret, downwardAPI, projected, hostPath or persistentVolumeClaim)",
				`m.yaml:14: spec.volumes[2].name: duplicate volume name "b"`,
			},
		},
		{
			name: "mounts: unknown volume, relative and duplicate paths, subPath out of the volume",
			yaml: podWith("    volumeMounts:\n    - name: nope\n      mountPath: /a\n    - name: data\n      mountPath: rel\n    - name: data\n      mountPath: /a/\n      subPath: ../x\n",
				"  volumes:\n  - name: data\n    emptyDir: {}\n"),
			want: []string{
				`m.yaml:10: spec.containers[0].volumeMounts[0].name: no volume "nope" in the pod`,
				`m.yaml:13: spec.containers[0].volumeMounts[1].mountPath: must be an absolute path, got "rel"`,
				`m.yaml:15: spec.containers[0].volumeMounts[2].mountPath: duplicate mount path "/a/"`,
				`m.yaml:16: spec.containers[0].volumeMounts[2].subPath: must not contain '..'`,
			},
		},
		{
			name: "emptyDir: sizeLimit only in memory, no hugepages",
			yaml: podWith("", "  volumes:\n  - name: a\n    emptyDir:\n      sizeLimit: 1Gi\n  - name: b\n    emptyDir:\n      medium: HugePages\n"),
			want: []string{
				"m.yaml:12: spec.volumes[0].emptyDir.sizeLimit: not supported by bosun on a disk emptyDir (bosun does not evict a pod over it); use medium: Memory, where it is the tmpfs size",
				`m.yaml:15: spec.volumes[1].emptyDir.medium: unsupported value "HugePages": must be "" (disk) or Memory`,
			},
		},
		{
			name: "configMap, secret and hostPath values",
			yaml: podWith("", "  volumes:\n  - name: a\n    configMap:\n      name: Cfg\n      defaultMode: 512\n      items:\n      - key: k\n        path: /abs\n  - name: b\n    secret: {}\n  - name: c\n    hostPath:\n      path: srv/x\n      type: Dir\n"),
			want: []string{
				`m.yaml:11: spec.volumes[0].configMap: ConfigMap default/Cfg does not exist (Pod default/p uses it; set optional: true if it may be missing)`,
				`m.yaml:12: spec.volumes[0].configMap.name: invalid name "Cfg": must be a DNS-1123 subdomain (at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)`,
				"m.yaml:13: spec.volumes[0].configMap.defaultMode: invalid mode 512: must be from 0 to 0777 (octal) or 511 (decimal)",
				`m.yaml:16: spec.volumes[0].configMap.items[0].path: must be a relative path, got "/abs"`,
				"m.yaml:18: spec.volumes[1].secret.secretName: required",
				"m.yaml:21: spec.volumes[2].hostPath.path: must be an absolute path",
				`m.yaml:22: spec.volumes[2].hostPath.type: unsupported value "Dir": must be DirectoryOrCreate, Directory, FileOrCreate, File, Socket, CharDevice or BlockDevice`,
			},
		},
		{
			name: "projected: duplicate paths; downwardAPI fields",
			yaml: podWith("", "  volumes:\n  - name: a\n    projected:\n      sources:\n      - configMap:\n          name: c\n          items: [{key: k, path: x}]\n      - secret:\n          name: s\n          items: [{key: k, path: x}]\n      - downwardAPI:\n          items:\n          - path: node\n            fieldRef: {fieldPath: spec.nodeName}\n          - path: mem\n            resourceFieldRef: {resource: limits.memory}\n"),
			want: []string{
				`m.yaml:18: spec.volumes[0].projected.sources[1].secret.items[0].path: conflicting duplicate path "x"`,
				`m.yaml:22: spec.volumes[0].projected.sources[2].downwardAPI.items[0].fieldRef.fieldPath: unsupported value "spec.nodeName": must be metadata.name, metadata.namespace, metadata.uid, metadata.labels, metadata.annotations, or metadata.labels['KEY'] / metadata.annotations['KEY']`,
				"m.yaml:24: spec.volumes[0].projected.sources[2].downwardAPI.items[1].resourceFieldRef.containerName: required in a volume",
			},
		},
		{
			name: "env sources",
			yaml: podWith("    env:\n    - name: A\n      valueFrom:\n        fieldRef: {fieldPath: metadata.labels}\n    - name: B\n      valueFrom:\n        resourceFieldRef: {resource: limits.gpu}\n    - name: C\n      valueFrom:\n        resourceFieldRef: {resource: limits.cpu, divisor: 1Mi}\n    - name: D\n      value: x\n      valueFrom:\n        configMapKeyRef: {name: c, key: k}\n        secretKeyRef: {name: s, key: k}\n    envFrom:\n    - prefix: 'A='\n      configMapRef: {name: c}\n    - {}\n", ""),
			want: []string{
				`m.yaml:12: spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: unsupported value "metadata.labels": must be metadata.name, metadata.namespace, metadata.uid, metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, spec.serviceAccountName, status.hostIP, status.hostIPs, status.podIP or status.podIPs`,
				`m.yaml:15: spec.containers[0].env[1].valueFrom.resourceFieldRef.resource: unsupported value "limits.gpu": must be limits.cpu, limits.memory, limits.ephemeral-storage, requests.cpu, requests.memory or requests.ephemeral-storage`,
				`m.yaml:18: spec.containers[0].env[2].valueFrom.resourceFieldRef.divisor: unsupported value "1Mi": a cpu divisor must be 1m or 1`,
				"m.yaml:21: spec.containers[0].env[3].valueFrom: must give exactly one source (fieldRef, resourceFieldRef, configMapKeyRef or secretKeyRef), not 2",
				"m.yaml:21: spec.containers[0].env[3].valueFrom: must not be set together with value",
				`m.yaml:25: spec.containers[0].envFrom[0].prefix: invalid prefix "A=": a valid environment variable name must consist only of printable ASCII characters other than '='`,
				"m.yaml:27: spec.containers[0].envFrom[1]: must give exactly one of configMapRef and secretRef",
			},
		},
		{
			name: "container securityContext",
			yaml: podWith("    securityContext:\n      runAsUser: -1\n      privileged: true\n      allowPrivilegeEscalation: false\n      capabilities:\n        add: [CAP_NET_ADMIN, FLY]\n      seccompProfile:\n        type: Localhost\n        localhostProfile: my.json\n    terminationMessagePolicy: Sometimes\n", ""),
			want: []string{
				"m.yaml:10: spec.containers[0].securityContext.runAsUser: -1 is out of range (0-2147483647)",
				"m.yaml:12: spec.containers[0].securityContext.allowPrivilegeEscalation: cannot be false when privileged is true",
				`m.yaml:14: spec.containers[0].securityContext.capabilities.add[0]: write capabilities without the CAP_ prefix: "NET_ADMIN"`,
				`m.yaml:14: spec.containers[0].securityContext.capabilities.add[1]: unknown capability "FLY"`,
				`m.yaml:16: spec.containers[0].securityContext.seccompProfile.type: unsupported value "Localhost": bosun runs RuntimeDefault or Unconfined`,
				"m.yaml:17: spec.containers[0].securityContext.seccompProfile.localhostProfile: not supported by bosun: Localhost profiles",
				`m.yaml:18: spec.containers[0].terminationMessagePolicy: unsupported value "Sometimes": must be File or FallbackToLogsOnError`,
			},
		},
		{
			name: "pod securityContext, DNS, host aliases, hostname, subdomain",
			yaml: podWith("", "  securityContext:\n    fsGroup: 4294967296\n    sysctls:\n    - {name: kernel.panic, value: '1'}\n    - {name: net.core.somaxconn, value: '1024'}\n    - {name: net/core/somaxconn, value: '1024'}\n  dnsPolicy: None\n  dnsConfig:\n    nameservers: [not-an-ip]\n  hostAliases:\n  - ip: 10.0.0.300\n    hostnames: [db]\n  hostname: Web_1\n  subdomain: db.svc\n"),
			want: []string{
				"m.yaml:10: spec.securityContext.fsGroup: 4294967296 is out of range (0-2147483647)",
				`m.yaml:12: spec.securityContext.sysctls[0].name: sysctl "kernel.panic" is not namespaced: a pod may set only net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.*`,
				`m.yaml:14: spec.securityContext.sysctls[2].name: duplicate sysctl "net/core/somaxconn"`,
				`m.yaml:17: spec.dnsConfig.nameservers[0]: invalid IP address "not-an-ip"`,
				`m.yaml:19: spec.hostAliases[0].ip: invalid IP address "10.0.0.300"`,
				`m.yaml:21: spec.hostname: invalid hostname "Web_1": must be a DNS-1123 label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)`,
				`m.yaml:22: spec.subdomain: invalid subdomain "db.svc": must be a DNS-1123 label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Policy{AllowPrivileged: true}.Decode("m.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Decode succeeded, want errors:\n%s", strings.Join(tt.want, "\n"))
			}
			if got := err.Error(); got != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n got: %s\nwant: %s", strings.ReplaceAll(got, "\n", "\n      "), strings.Join(tt.want, "\n      "))
			}
		})
	}
}

func TestDecode_podContentsAccepted(t *testing.T) {
	yaml := podWith(`    env:
    - name: LEVEL
      valueFrom:
        configMapKeyRef: {name: cfg, key: level, optional: true}
    - name: MEM
      valueFrom:
        resourceFieldRef: {resource: limits.memory, divisor: 1Mi}
    - name: TIER
      valueFrom:
        fieldRef: {fieldPath: "metadata.labels['tier']"}
    envFrom:
    - prefix: CFG_
      configMapRef: {name: cfg}
    volumeMounts:
    - {name: cfg, mountPath: /etc/cfg, readOnly: true}
    - {name: cfg, mountPath: /etc/app.conf, subPath: app.conf}
    - {name: data, mountPath: /data}
    securityContext:
      runAsUser: 1000
      runAsNonRoot: true
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
    terminationMessagePolicy: FallbackToLogsOnError
`, `  securityContext:
    fsGroup: 2000
    supplementalGroups: [3000]
    sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "0"}]
    seccompProfile: {type: RuntimeDefault}
  dnsPolicy: ClusterFirst
  dnsConfig:
    options: [{name: ndots, value: "2"}]
  hostAliases: [{ip: 10.1.2.3, hostnames: [db.local]}]
  hostname: db-0
  subdomain: db
  volumes:
  - name: cfg
    configMap:
      name: cfg
      items: [{key: app.conf, path: app.conf, mode: 0400}]
  - name: data
    emptyDir: {medium: Memory, sizeLimit: 64Mi}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {level: "1", app.conf: "x"}
`)
	if _, err := Decode("m.yaml", []byte(yaml)); err != nil {
		t.Fatal(err)
	}
}
