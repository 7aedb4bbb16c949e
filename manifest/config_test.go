package manifest

import (
	"strings"
	"testing"
)

const configMap = `apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  LOG_LEVEL: debug
  app.properties: |
    color=blue
`

const secret = `apiVersion: v1
kind: Secret
metadata:
  name: app-secret
type: Opaque
data:
  password: czNjcjN0LXBsYW50ZWQ=
stringData:
  token: t0k3n-planted
`

// webUsing is a Deployment whose container uses app-config and app-secret
// through env, envFrom and volumes.
const webUsing = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: example/web:1.0
        env:
        - name: LOG_LEVEL
          valueFrom:
            configMapKeyRef: {name: app-config, key: LOG_LEVEL}
        envFrom:
        - secretRef: {name: app-secret}
        volumeMounts:
        - {name: config, mountPath: /etc/app}
      volumes:
      - name: config
        configMap:
          name: app-config
          items:
          - {key: app.properties, path: app.properties}
`

func TestDecode_configMapsAndSecrets(t *testing.T) {
	set, err := Decode("c.yaml", []byte(configMap+"---\n"+secret+"---\n"+webUsing))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.ConfigMaps) != 1 || len(set.Secrets) != 1 || len(set.Deployments) != 1 {
		t.Fatalf("got %d configmaps, %d secrets, %d deployments", len(set.ConfigMaps), len(set.Secrets), len(set.Deployments))
	}
	s := set.Secrets[0]
	if s.Namespace != "default" || string(s.Data["password"]) != "s3cr3t-planted" || string(s.Data["token"]) != "t0k3n-planted" || s.StringData != nil {
		t.Errorf("secret: namespace %q data %v stringData %v; want stringData merged into data", s.Namespace, s.Data, s.StringData)
	}
	if src := set.Sources[ObjectKey{KindSecret, "default", "app-secret"}]; src.Line != 10 {
		t.Errorf("secret source %v, want c.yaml:10", src)
	}
}

func TestDecode_referencesMustResolve(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{
			name: "a missing ConfigMap and Secret name both objects",
			yaml: webUsing,
			want: []string{
				"m.yaml:18: spec.template.spec.containers[0].env[0].valueFrom.configMapKeyRef: ConfigMap default/app-config does not exist (Deployment default/web uses it; set optional: true if it may be missing)",
				"m.yaml:20: spec.template.spec.containers[0].envFrom[0].secretRef: Secret default/app-secret does not exist (Deployment default/web uses it; set optional: true if it may be missing)",
				"m.yaml:25: spec.template.spec.volumes[0].configMap: ConfigMap default/app-config does not exist (Deployment default/web uses it; set optional: true if it may be missing)",
			},
		},
		{
			name: "a missing key names the object's source",
			yaml: secret + "---\n" + strings.Replace(configMap, "  LOG_LEVEL: debug\n", "", 1) + "---\n" + webUsing,
			want: []string{
				`m.yaml:36: spec.template.spec.containers[0].env[0].valueFrom.configMapKeyRef: ConfigMap default/app-config (m.yaml:11) has no key "LOG_LEVEL" (Deployment default/web uses it)`,
			},
		},
		{
			name: "the same name in another namespace does not count",
			yaml: strings.Replace(configMap, "  name: app-config\n", "  name: app-config\n  namespace: other\n", 1) + "---\n" + secret + "---\n" + webUsing,
			want: []string{
				"m.yaml:38: spec.template.spec.containers[0].env[0].valueFrom.configMapKeyRef: ConfigMap default/app-config does not exist (Deployment default/web uses it; set optional: true if it may be missing)",
				"m.yaml:45: spec.template.spec.volumes[0].configMap: ConfigMap default/app-config does not exist (Deployment default/web uses it; set optional: true if it may be missing)",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode("m.yaml", []byte(tt.yaml))
			if err == nil || err.Error() != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n got: %v\nwant: %s", err, strings.Join(tt.want, "\n"))
			}
		})
	}
	optional := strings.NewReplacer("key: LOG_LEVEL}", "key: LOG_LEVEL, optional: true}",
		"{name: app-secret}", "{name: app-secret, optional: true}", "name: app-config\n          items", "name: app-config\n          optional: true\n          items").Replace(webUsing)
	if _, err := Decode("m.yaml", []byte(optional)); err != nil {
		t.Errorf("optional references refused:\n%v", err)
	}
}

func TestDecode_configValidationNeverQuotesValues(t *testing.T) {
	const planted = "s3cr3t-planted"
	docs := []string{
		// A key that is not a file name, a value of the wrong type.
		"apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\nstringData:\n  bad/key: " + planted + "\n",
		"apiVersion: v1\nkind: Secret\nmetadata:\n  name: b\nstringData:\n  pin: 123456789\n",
		"apiVersion: v1\nkind: Secret\nmetadata:\n  name: c\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{" + planted + "'\n",
		"apiVersion: v1\nkind: Secret\nmetadata:\n  name: d\ndata:\n  x: '" + planted + "!'\n",
	}
	for _, doc := range docs {
		_, err := Decode("s.yaml", []byte(doc))
		if err == nil {
			t.Errorf("accepted:\n%s", doc)
			continue
		}
		if strings.Contains(err.Error(), planted) || strings.Contains(err.Error(), "123456789") {
			t.Errorf("error shows the secret value: %v", err)
		}
	}
}

func TestDecode_secretTypes(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"apiVersion: v1\nkind: Secret\nmetadata:\n  name: tls\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: x\n",
			`s.yaml:5: type: a Secret of type kubernetes.io/tls needs the key "tls.key"`},
		{"apiVersion: v1\nkind: Secret\nmetadata:\n  name: sa\ntype: kubernetes.io/service-account-token\n",
			`s.yaml:5: type: unsupported value "kubernetes.io/service-account-token": bosun has no service accounts`},
		{"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: x\nbinaryData:\n  a: eA==\n",
			`s.yaml:8: binaryData[a]: duplicate key "a": it is in data too`},
	}
	for _, tt := range tests {
		_, err := Decode("s.yaml", []byte(tt.yaml))
		if err == nil || err.Error() != tt.want {
			t.Errorf("error = %v\nwant %s", err, tt.want)
		}
	}
}

func TestDecode_namespaces(t *testing.T) {
	set, err := Decode("n.yaml", []byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n  labels: {owner: a}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ns := set.Namespaces[0]; ns.Name != "team-a" || ns.Namespace != "" || ns.Labels["owner"] != "a" {
		t.Errorf("namespace %+v", ns.ObjectMeta)
	}
	if _, ok := set.Sources[ObjectKey{Kind: KindNamespace, Name: "team-a"}]; !ok {
		t.Errorf("no source for the namespace: %v", set.Sources)
	}
	_, err = Decode("n.yaml", []byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: Team\n  namespace: x\n"))
	want := "n.yaml:4: metadata.name: invalid name \"Team\": must be a DNS-1123 label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)\n" +
		"n.yaml:5: metadata.namespace: must be empty: a Namespace is not in a namespace"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant %s", err, want)
	}
}

func TestDecode_jobsAndCronJobs(t *testing.T) {
	const job = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: m\n        image: example/m:1\n"
	const cron = "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: report\nspec:\n  schedule: \"*/5 * * * *\"\n  timeZone: Europe/Berlin\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers:\n          - name: r\n            image: example/r:1\n"
	set, err := Decode("b.yaml", []byte(job+"---\n"+cron))
	if err != nil {
		t.Fatal(err)
	}
	j := set.Jobs[0].Spec
	if *j.Parallelism != 1 || *j.Completions != 1 || *j.BackoffLimit != 6 || *j.Suspend {
		t.Errorf("job defaults: parallelism %d completions %d backoffLimit %d suspend %v", *j.Parallelism, *j.Completions, *j.BackoffLimit, *j.Suspend)
	}
	cj := set.CronJobs[0].Spec
	if cj.ConcurrencyPolicy != "Allow" || *cj.SuccessfulJobsHistoryLimit != 3 || *cj.FailedJobsHistoryLimit != 1 {
		t.Errorf("cronjob defaults: %s %d %d", cj.ConcurrencyPolicy, *cj.SuccessfulJobsHistoryLimit, *cj.FailedJobsHistoryLimit)
	}
	tests := []struct{ yaml, want string }{
		{strings.Replace(job, "      restartPolicy: Never\n", "", 1), "b.yaml:7: spec.template.spec.restartPolicy: required: a Job's pods must use OnFailure or Never"},
		{strings.Replace(job, "Never", "Always", 1), `b.yaml:8: spec.template.spec.restartPolicy: unsupported value "Always": a Job's pods must use OnFailure or Never`},
		{strings.Replace(cron, "*/5 * * * *", "*/5 * * *", 1), `b.yaml:6: spec.schedule: invalid schedule "*/5 * * *": expected exactly 5 fields, found 4: [*/5 * * *]`},
		{strings.Replace(cron, "*/5 * * * *", "CRON_TZ=UTC 0 * * * *", 1), "b.yaml:6: spec.schedule: must not name a time zone (TZ= or CRON_TZ=): use spec.timeZone"},
		{strings.Replace(cron, "Europe/Berlin", "Mars/Olympus", 1), `b.yaml:7: spec.timeZone: unknown time zone "Mars/Olympus": use an IANA name such as Europe/Berlin or Etc/UTC`},
		{strings.Replace(cron, "  timeZone: Europe/Berlin\n", "  concurrencyPolicy: Sometimes\n", 1), `b.yaml:7: spec.concurrencyPolicy: unsupported value "Sometimes": must be Allow, Forbid or Replace`},
	}
	for _, tt := range tests {
		_, err := Decode("b.yaml", []byte(tt.yaml))
		if err == nil || err.Error() != tt.want {
			t.Errorf("error = %v\nwant %s", err, tt.want)
		}
	}
}

func TestPolicy_hostPathsAndPrivileged(t *testing.T) {
	doc := pod + "    securityContext:\n      privileged: true\n  volumes:\n  - name: data\n    hostPath:\n      path: /srv/data\n  - name: etc\n    hostPath:\n      path: /etc\n"
	_, err := Decode("p.yaml", []byte(doc))
	want := strings.Join([]string{
		"p.yaml:10: spec.containers[0].securityContext.privileged: not allowed: the operator has not given --allow-privileged",
		`p.yaml:14: spec.volumes[0].hostPath.path: "/srv/data" is not under a directory the operator allows (--allow-host-path: none)`,
		`p.yaml:17: spec.volumes[1].hostPath.path: "/etc" is not under a directory the operator allows (--allow-host-path: none)`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("zero policy: %v\nwant %s", err, want)
	}
	pol := Policy{AllowHostPaths: []string{"/srv"}, AllowPrivileged: true}
	_, err = pol.Decode("p.yaml", []byte(doc))
	want = `p.yaml:17: spec.volumes[1].hostPath.path: "/etc" is not under a directory the operator allows (--allow-host-path: /srv)`
	if err == nil || err.Error() != want {
		t.Errorf("policy: %v\nwant %s", err, want)
	}
	if !pol.hostPathAllowed("/srv") || pol.hostPathAllowed("/srvx") || pol.hostPathAllowed("/sr") {
		t.Errorf("prefix matching is by path component")
	}
}

func TestStampConfigHashes(t *testing.T) {
	load := func(docs ...string) *Set {
		t.Helper()
		s, err := Decode("h.yaml", []byte(strings.Join(docs, "---\n")))
		if err != nil {
			t.Fatal(err)
		}
		s.StampConfigHashes([]byte("cluster key"))
		return s
	}
	hashOf := func(s *Set) string { return s.Deployments[0].Spec.Template.Annotations[AnnotationConfigHash] }
	base := load(configMap, secret, webUsing, pod)
	h := hashOf(base)
	if len(h) != 16 {
		t.Fatalf("hash %q", h)
	}
	if _, ok := base.Pods[0].Annotations[AnnotationConfigHash]; ok {
		t.Errorf("a pod that uses no configuration got a hash")
	}
	if again := hashOf(load(webUsing, secret, configMap)); again != h {
		t.Errorf("hash depends on document order: %s != %s", again, h)
	}
	if changed := hashOf(load(strings.Replace(configMap, "debug", "info", 1), secret, webUsing)); changed == h {
		t.Errorf("hash did not change with the ConfigMap")
	}
	if changed := hashOf(load(configMap, strings.Replace(secret, "t0k3n-planted", "t0k3n-other", 1), webUsing)); changed == h {
		t.Errorf("hash did not change with the Secret")
	}
	other := load(configMap, secret, webUsing)
	other.StampConfigHashes([]byte("another key"))
	if hashOf(other) == h {
		t.Errorf("hash does not depend on the key")
	}
	tmpl := base.Deployments[0].Spec.Template
	if TemplateHash(&tmpl) == TemplateHash(&load(strings.Replace(configMap, "debug", "info", 1), secret, webUsing).Deployments[0].Spec.Template) {
		t.Errorf("the pod-template-hash does not follow the configuration")
	}
	unkeyed, _ := Decode("h.yaml", []byte(configMap+"---\n"+secret+"---\n"+webUsing))
	unkeyed.StampConfigHashes(nil)
	if _, ok := unkeyed.Deployments[0].Spec.Template.Annotations[AnnotationConfigHash]; ok {
		t.Errorf("stamped without a key")
	}
}

func TestCheckUpdate_immutableConfig(t *testing.T) {
	load := func(doc string) *Set {
		t.Helper()
		s, err := Decode("i.yaml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	immutable := strings.Replace(configMap, "\ndata:", "\nimmutable: true\ndata:", 1)
	prev := load(immutable)
	if err := CheckUpdate(prev, load(immutable)); err != nil {
		t.Errorf("unchanged: %v", err)
	}
	if err := CheckUpdate(nil, load(immutable)); err != nil {
		t.Errorf("first revision: %v", err)
	}
	err := CheckUpdate(prev, load(strings.Replace(immutable, "debug", "info", 1)))
	if want := "i.yaml:1: data: the ConfigMap is immutable: its data cannot change; give it a new name and point its users at it"; err == nil || err.Error() != want {
		t.Errorf("changed data: %v\nwant %s", err, want)
	}
	err = CheckUpdate(prev, load(configMap))
	if want := "i.yaml:1: immutable: an immutable ConfigMap cannot become mutable; give it a new name"; err == nil || err.Error() != want {
		t.Errorf("made mutable: %v\nwant %s", err, want)
	}
	secretPrev := load(strings.Replace(secret, "type: Opaque", "type: Opaque\nimmutable: true", 1))
	err = CheckUpdate(secretPrev, load(strings.NewReplacer("type: Opaque", "type: Opaque\nimmutable: true", "t0k3n-planted", "changed").Replace(secret)))
	if err == nil || strings.Contains(err.Error(), "planted") || !strings.Contains(err.Error(), "the Secret is immutable") {
		t.Errorf("changed secret: %v", err)
	}
}

func TestDecode_referenceWithoutNameNamesItsField(t *testing.T) {
	doc := pod + "  volumes:\n  - name: s\n    secret: {}\n  - name: c\n    configMap: {}\n"
	_, err := Decode("r.yaml", []byte(doc))
	want := "r.yaml:11: spec.volumes[0].secret.secretName: required\nr.yaml:13: spec.volumes[1].configMap.name: required"
	if err == nil || !strings.Contains(err.Error(), "secret.secretName: required") || !strings.Contains(err.Error(), "configMap.name: required") {
		t.Errorf("error = %v\nwant %s", err, want)
	}
}

func TestDecode_fieldRefIsOfAV1Pod(t *testing.T) {
	doc := pod + "    env:\n    - name: NAME\n      valueFrom:\n        fieldRef: {apiVersion: v2, fieldPath: metadata.name}\n"
	_, err := Decode("f.yaml", []byte(doc))
	if want := `f.yaml:12: spec.containers[0].env[0].valueFrom.fieldRef.apiVersion: unsupported value "v2": must be v1`; err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant %s", err, want)
	}
}

// TestStampConfigHashes_daemonSetsAndStatefulSets: a configuration change
// rolls DaemonSets' and StatefulSets' pods as it rolls a Deployment's.
func TestStampConfigHashes_daemonSetsAndStatefulSets(t *testing.T) {
	ds := strings.Replace(webUsing, "kind: Deployment", "kind: DaemonSet", 1)
	sts := strings.NewReplacer("kind: Deployment", "kind: StatefulSet", "name: web\nspec:", "name: db\nspec:\n  serviceName: db").Replace(webUsing)
	load := func(cm string) *Set {
		t.Helper()
		s, err := Decode("h.yaml", []byte(strings.Join([]string{cm, secret, ds, sts}, "---\n")))
		if err != nil {
			t.Fatal(err)
		}
		s.StampConfigHashes([]byte("cluster key"))
		return s
	}
	a, b := load(configMap), load(strings.Replace(configMap, "debug", "info", 1))
	for _, c := range []struct{ kind, before, after string }{
		{"DaemonSet", a.DaemonSets[0].Spec.Template.Annotations[AnnotationConfigHash], b.DaemonSets[0].Spec.Template.Annotations[AnnotationConfigHash]},
		{"StatefulSet", a.StatefulSets[0].Spec.Template.Annotations[AnnotationConfigHash], b.StatefulSets[0].Spec.Template.Annotations[AnnotationConfigHash]},
	} {
		if c.before == "" || c.before == c.after {
			t.Errorf("%s template hash %q -> %q: want one that follows the ConfigMap", c.kind, c.before, c.after)
		}
	}
}
