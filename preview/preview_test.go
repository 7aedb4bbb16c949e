package preview

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"bosun/manifest"
	"bosun/reconciler"
)

const strategySurgeOnly = `  strategy:
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
`

const strategyRecreate = `  strategy:
    type: Recreate
`

func TestCompute_objectChangesPerKind(t *testing.T) {
	web := deployment("web", 2, "registry.local/web:1.0", "100m", "64Mi", "")
	all := []string{web, service, pod}
	tests := []struct {
		name      string
		current   []string // nil: nothing applied yet
		next      []string
		want      []string // "op Kind/name"
		wantField map[string][]string
	}{
		{name: "create every kind", current: nil, next: all,
			want: []string{"create Deployment/web", "create Pod/batch", "create Service/web"}},
		{name: "delete every kind", current: all, next: []string{},
			want: []string{"delete Deployment/web", "delete Pod/batch", "delete Service/web"}},
		{name: "change every kind", current: all,
			next: []string{
				deployment("web", 3, "registry.local/web:1.0", "100m", "64Mi", ""),
				strings.Replace(service, "port: 80", "port: 8080", 1),
				strings.Replace(pod, "team: data", "team: ml\n    app.kubernetes.io/name: batch", 1),
			},
			want: []string{"change Deployment/web", "change Pod/batch", "change Service/web"},
			wantField: map[string][]string{
				"Deployment/web": {"spec.replicas"},
				"Service/web":    {"spec.ports[0].port"},
				"Pod/batch":      {"metadata.labels.team", "metadata.labels['app.kubernetes.io/name']"},
			}},
		{name: "defaults written out, keys reordered and quantities respelled change nothing", current: all,
			next: []string{
				strings.NewReplacer("cpu: 100m", "cpu: \"0.1\"", "        image:", "        imagePullPolicy: IfNotPresent\n        image:").Replace(web),
				"metadata:\n  namespace: default\n  name: web\napiVersion: v1\nkind: Service\n" + service[strings.Index(service, "spec:"):],
				pod,
			}},
		{name: "a list element added", current: all,
			next:      []string{web, strings.Replace(service, "    targetPort: 8080\n", "    targetPort: 8080\n  - name: metrics\n    port: 9090\n", 1), pod},
			want:      []string{"change Service/web"},
			wantField: map[string][]string{"Service/web": {"spec.ports[1]"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := set(t, tt.next...)
			var cur = set(t, tt.current...)
			if tt.current == nil {
				cur = nil
			}
			r := Compute(cur, next, running(t, next, node("n1", "8", "16Gi")), now)
			var got []string
			for _, oc := range r.Objects {
				got = append(got, oc.Op+" "+oc.Kind+"/"+oc.Name)
				switch oc.Op {
				case OpCreate:
					lines := strings.SplitAfter(oc.Diff, "\n")
					if !strings.HasPrefix(oc.Diff, "+apiVersion: ") || !strings.Contains(oc.Diff, "\n+spec:\n") || lines[len(lines)-1] != "" ||
						slices.ContainsFunc(lines[:len(lines)-1], func(l string) bool { return !strings.HasPrefix(l, "+") }) {
						t.Errorf("%s: create diff is not the whole YAML in + lines:\n%s", oc.Name, oc.Diff)
					}
					if oc.Source == "" || oc.Fields != nil {
						t.Errorf("%s: create: Source %q Fields %v", oc.Name, oc.Source, oc.Fields)
					}
				case OpDelete:
					if oc.Diff != "" || oc.Fields != nil || oc.Source == "" {
						t.Errorf("%s: delete carries Diff %q Fields %v Source %q", oc.Name, oc.Diff, oc.Fields, oc.Source)
					}
				case OpChange:
					want := tt.wantField[oc.Kind+"/"+oc.Name]
					slices.Sort(want)
					if !slices.Equal(oc.Fields, want) {
						t.Errorf("%s/%s: Fields = %q, want %q", oc.Kind, oc.Name, oc.Fields, want)
					}
					if !strings.HasPrefix(oc.Diff, "--- current/"+oc.Kind+"/default/"+oc.Name+"\n+++ next/") {
						t.Errorf("%s: diff header:\n%s", oc.Name, oc.Diff)
					}
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("objects = %q, want %q", got, tt.want)
			}
			if len(tt.want) > 0 != r.Changed() && tt.current != nil {
				t.Errorf("Changed() = %v with objects %q", r.Changed(), got)
			}
		})
	}
}

func TestCompute_unifiedDiffOfImageAndReplicasChanges(t *testing.T) {
	cur := set(t, deployment("web", 2, "registry.local/web:1.0", "100m", "64Mi", ""))
	tests := []struct {
		name, next, diff string
	}{
		{"image", deployment("web", 2, "registry.local/web:1.1", "100m", "64Mi", ""), `--- current/Deployment/default/web
+++ next/Deployment/default/web
@@ -19,7 +19,7 @@
         app: web
     spec:
       containers:
-      - image: registry.local/web:1.0
+      - image: registry.local/web:1.1
         imagePullPolicy: IfNotPresent
         name: web
         resources:
`},
		{"replicas", deployment("web", 5, "registry.local/web:1.0", "100m", "64Mi", ""), `--- current/Deployment/default/web
+++ next/Deployment/default/web
@@ -4,7 +4,7 @@
   name: web
   namespace: default
 spec:
-  replicas: 2
+  replicas: 5
   selector:
     matchLabels:
       app: web
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Compute(cur, set(t, tt.next), running(t, cur, node("n1", "8", "16Gi")), now)
			if len(r.Objects) != 1 {
				t.Fatalf("objects: %+v", r.Objects)
			}
			if got := r.Objects[0].Diff; got != tt.diff {
				t.Errorf("diff:\n%s\nwant:\n%s", got, tt.diff)
			}
		})
	}
}

func TestCompute_scaleUpStartsPods(t *testing.T) {
	cur := set(t, deployment("web", 2, "registry.local/web:1.0", "500m", "64Mi", ""))
	next := set(t, deployment("web", 4, "registry.local/web:1.0", "500m", "64Mi", ""))
	r := Compute(cur, next, running(t, cur, node("n1", "4", "8Gi")), now)
	if len(r.Pods) != 2 {
		t.Fatalf("pods = %+v, want 2 starts", r.Pods)
	}
	for _, p := range r.Pods {
		if p.Op != OpStart || p.Owner != "web" || p.Reason != "scale up 2 -> 4" || !strings.HasPrefix(p.Name, "web-") {
			t.Errorf("pod change %+v, want a start of web for scale up 2 -> 4", p)
		}
	}
	if r.Rollouts != nil {
		t.Errorf("rollouts = %+v for a scale up", r.Rollouts)
	}
	if !r.Fits || r.Verdict != "fits: 2 pods start on 1 node" {
		t.Errorf("verdict = %v %q", r.Fits, r.Verdict)
	}
}

func TestCompute_newTemplateStopsOldPodsAndStartsNew(t *testing.T) {
	cur := set(t, deployment("web", 4, "registry.local/web:1.0", "500m", "64Mi", ""))
	next := set(t, deployment("web", 4, "registry.local/web:2.0", "500m", "64Mi", ""))
	o := running(t, cur, node("n1", "8", "8Gi"))
	r := Compute(cur, next, o, now)

	oldHash, newHash := r.Rollouts[0].FromHash, r.Rollouts[0].ToHash
	var starts, stops int
	for _, p := range r.Pods {
		switch {
		case p.Op == OpStart && strings.HasPrefix(p.Name, "web-"+newHash+"-") && p.Owner == "web":
			starts++
		case p.Op == OpStop && strings.HasPrefix(p.Name, "web-"+oldHash+"-") && p.Owner == "web":
			stops++
		default:
			t.Errorf("unexpected pod change %+v", p)
		}
	}
	// The first step of the rollout; how far it goes depends on the strategy.
	if starts == 0 || stops == 0 {
		t.Errorf("starts %d, stops %d: want both", starts, stops)
	}
	// The planner's steps with 25%/25% of 4: one old pod goes and two new
	// start (5 pods), then two more old go and two new start, then the last
	// old one goes.
	want := RolloutChange{Namespace: "default", Name: "web", FromHash: oldHash, ToHash: newHash, Replicas: 4, Replaced: 4,
		Peak: 5, Steps: 3, Strategy: "RollingUpdate", MaxSurge: 1, MaxUnavailable: 1,
		State: reconciler.RolloutComplete, Message: `deployment "web" successfully rolled out`}
	if len(r.Rollouts) != 1 || r.Rollouts[0] != want {
		t.Errorf("rollouts = %+v, want %+v", r.Rollouts, want)
	}
	if got := r.Rollouts[0].String(); got != "rollout web: 4 pods replaced in 3 steps, at most 5 pods at once (maxSurge 1, maxUnavailable 1)" {
		t.Errorf("String() = %q", got)
	}
	if oldHash == newHash || len(oldHash) != 10 {
		t.Errorf("hashes %q -> %q", oldHash, newHash)
	}
	if !r.Fits || r.Verdict != "fits: 4 pods start on 1 node" {
		t.Errorf("verdict = %v %q", r.Fits, r.Verdict)
	}
}

func TestCompute_noChangeIsNotChanged(t *testing.T) {
	s := set(t, deployment("web", 3, "registry.local/web:1.0", "500m", "64Mi", ""), service, pod)
	r := Compute(s, s, running(t, s, node("n1", "4", "8Gi")), now)
	if r.Changed() || r.Objects != nil || r.Pods != nil || r.Rollouts != nil {
		t.Errorf("Changed() = %v: %+v", r.Changed(), r)
	}
	if !r.Fits || r.Verdict != "fits: no pods start" {
		t.Errorf("verdict = %v %q", r.Fits, r.Verdict)
	}
}

func TestCompute_verdict(t *testing.T) {
	tests := []struct {
		name    string
		current []string
		next    []string
		nodes   []string // name:cpu:memory
		fits    bool
		verdict string // a regular expression, anchored
	}{
		{name: "fits on one node",
			next:  []string{deployment("web", 3, "registry.local/web:1.0", "1", "1Gi", "")},
			nodes: []string{"n1:4:8Gi"}, fits: true,
			verdict: `fits: 3 pods start on 1 node`},
		{name: "spreads over two nodes",
			next:  []string{deployment("web", 2, "registry.local/web:1.0", "1", "1Gi", ""), pod},
			nodes: []string{"n1:4:8Gi", "n2:4:8Gi"}, fits: true,
			verdict: `fits: 3 pods start on 2 nodes`},
		{name: "cpu shortfall",
			next:  []string{deployment("web", 3, "registry.local/web:1.0", "1500m", "64Mi", "")},
			nodes: []string{"n1:2:8Gi"},
			verdict: `does not fit: needs 2\.5 CPU more than is free on any node; ` +
				`web-[0-9a-f]{10}-[0-9a-z]+ and 1 more cannot be scheduled: 0/1 nodes are available: 1 insufficient cpu`},
		{name: "memory shortfall",
			next:  []string{deployment("api", 3, "registry.local/api:1.0", "100m", "1280Mi", "")},
			nodes: []string{"n1:8:2Gi"},
			verdict: `does not fit: needs 1\.75Gi memory more than is free on any node; ` +
				`api-[0-9a-f]{10}-[0-9a-z]+ and 1 more cannot be scheduled: 0/1 nodes are available: 1 insufficient memory`},
		{name: "pods that stay keep their requests",
			current: []string{pod},
			next:    []string{pod, deployment("web", 1, "registry.local/web:1.0", "1950m", "64Mi", "")},
			nodes:   []string{"n1:2:8Gi"},
			verdict: `does not fit: needs 0\.05 CPU more than is free on any node; web-[0-9a-f]{10}-[0-9a-z]+ cannot be scheduled: 0/1 nodes are available: 1 insufficient cpu`},
		{name: "pods that go free their requests",
			current: []string{pod},
			next:    []string{deployment("web", 1, "registry.local/web:1.0", "2", "64Mi", "")},
			nodes:   []string{"n1:2:8Gi"}, fits: true,
			verdict: `fits: 1 pod starts on 1 node`},
		{name: "rolling update whose surge does not fit",
			current: []string{deployment("web", 4, "registry.local/web:1.0", "1", "64Mi", strategySurgeOnly)},
			next:    []string{deployment("web", 4, "registry.local/web:2.0", "1", "64Mi", strategySurgeOnly)},
			nodes:   []string{"n1:4:8Gi"},
			verdict: `does not fit: needs 1 CPU more than is free on any node; web-[0-9a-f]{10}-[0-9a-z]+ cannot be scheduled: ` +
				`0/1 nodes are available: 1 insufficient cpu \(at step 1 of the rolling update of web, old pods still running\)`},
		{name: "recreate has no surge",
			current: []string{deployment("web", 4, "registry.local/web:1.0", "1", "64Mi", strategyRecreate)},
			next:    []string{deployment("web", 4, "registry.local/web:2.0", "1", "64Mi", strategyRecreate)},
			nodes:   []string{"n1:4:8Gi"}, fits: true,
			verdict: `fits: 4 pods start on 1 node`},
		{name: "no nodes",
			next:    []string{pod},
			verdict: `does not fit: batch cannot be scheduled: 0/0 nodes are available: no nodes registered`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ns = nodesOf(t, tt.nodes)
			cur := set(t, tt.current...)
			o := running(t, cur, ns...)
			if tt.current == nil {
				cur = nil
			}
			r := Compute(cur, set(t, tt.next...), o, now)
			if r.Fits != tt.fits || !regexp.MustCompile(`^`+tt.verdict+`$`).MatchString(r.Verdict) {
				t.Errorf("verdict = %v %q\nwant %v %q", r.Fits, r.Verdict, tt.fits, tt.verdict)
			}
		})
	}
}

// TestObjectsOf_coversEveryKindOfSet fails when manifest.Set gains a kind
// that objectsOf does not compare yet. A kind holding secrets (Secret) must
// have its values redacted in diffs before it is added.
func TestObjectsOf_coversEveryKindOfSet(t *testing.T) {
	var kinds []string
	typ := reflect.TypeFor[manifest.Set]()
	for i := range typ.NumField() {
		// Encrypted lists the files not decrypted (no key): no objects.
		if f := typ.Field(i); f.Type.Kind() == reflect.Slice && f.Name != "Encrypted" {
			kinds = append(kinds, f.Name)
		}
	}
	if want := []string{"Pods", "Deployments", "Services", "ConfigMaps", "Secrets", "Namespaces", "Jobs", "CronJobs",
		"DaemonSets", "StatefulSets", "PersistentVolumeClaims", "Ingresses", "IngressClasses"}; !slices.Equal(kinds, want) {
		t.Errorf("manifest.Set holds %q; objectsOf compares %q", kinds, want)
	}
}

// TestCompute_secretValuesNeverShown: a plan says which keys of a Secret
// changed, never their values, in any form.
func TestCompute_secretValuesNeverShown(t *testing.T) {
	const old, changed, added = "0ld-planted-value", "n3w-planted-value", "4dded-planted-value"
	secret := func(data string) string {
		return "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n" + data
	}
	cur := set(t, secret("  password: "+old+"\n  user: app\n"))
	next := set(t, secret("  password: "+changed+"\n  user: app\n  token: "+added+"\n"))
	res := Compute(cur, next, running(t, cur, node("n1", "4", "8Gi")), now)
	if len(res.Objects) != 1 || res.Objects[0].Op != OpChange {
		t.Fatalf("objects: %+v", res.Objects)
	}
	diff := res.Objects[0].Diff
	if !strings.Contains(diff, "+  password: "+secretValueChanged) || !strings.Contains(diff, "+  token: "+secretValue) {
		t.Errorf("diff does not say which values changed:\n%s", diff)
	}
	if strings.Contains(diff, "user: "+secretValueChanged) {
		t.Errorf("an unchanged value shows as changed:\n%s", diff)
	}
	created := Compute(nil, next, reconciler.Observed{}, now)
	all, _ := json.Marshal([]any{res, created})
	for _, v := range []string{old, changed, added} {
		for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v))} {
			if strings.Contains(string(all), form) {
				t.Errorf("the plan shows a secret value (%q as %q)", v, form)
			}
		}
	}
	if same := Compute(next, set(t, secret("  password: "+changed+"\n  user: app\n  token: "+added+"\n")), reconciler.Observed{}, now); len(same.Objects) != 0 {
		t.Errorf("an unchanged Secret shows as changed: %+v", same.Objects)
	}
}
