package server

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/api"
	"bosun/canary"
	"bosun/ipalloc"
	"bosun/manifest"
	"bosun/store"
)

const planMainWeb = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    bosun.dev/canary-branch: canary/web-v2
    bosun.dev/canary-weight: "10"
spec:
  replicas: 4
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: app
        image: localhost/bosun-hello:v1
        env:
        - name: LOG_LEVEL
          value: info
        - name: DB_PASSWORD
          valueFrom:
            secretKeyRef:
              name: db
              key: password
        resources:
          requests:
            cpu: 100m
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  annotations:
    bosun.dev/canary-branch: canary/api-v2
    bosun.dev/canary-steps: "5,25"
spec:
  replicas: 2
  selector:
    matchLabels:
      app: api
  template:
    metadata:
      labels:
        app: api
    spec:
      containers:
      - name: app
        image: localhost/bosun-hello:v1
---
apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: hunter2-from-git
`

// planBranchWeb is branch canary/web-v2's web: a new image, an env value
// changed, one added from a Secret, another request.
var planBranchWeb = strings.NewReplacer("image: localhost/bosun-hello:v1\n        env:", "image: localhost/bosun-hello:v2\n        env:",
	"value: info", "value: debug-secretish-value", "cpu: 100m", "cpu: 200m",
	"        - name: DB_PASSWORD", "        - name: FEATURE_X\n          value: on-value-xyz\n        - name: DB_PASSWORD").Replace(planMainWeb)

// gitRepo is a real repository with a main branch.
type gitRepo struct {
	t   *testing.T
	dir string
}

func newPlanRepo(t *testing.T) *gitRepo {
	t.Helper()
	r := &gitRepo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *gitRepo) git(args ...string) {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// commit writes app.yaml on branch (created from main when new).
func (r *gitRepo) commit(branch, content, msg string) {
	r.t.Helper()
	r.git("checkout", "-q", "-B", branch, "main")
	if err := os.WriteFile(filepath.Join(r.dir, "app.yaml"), []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
	r.git("checkout", "-q", "main")
}

// planBackend is a replica's backend over a real store whose running
// revision is main's head, with one registered node.
func planBackend(t *testing.T, repo *gitRepo) *backend {
	t.Helper()
	ctx := context.Background()
	st := store.NewTest(t)
	lead := newLeadership(t, st)
	key, err := st.ClusterKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pol manifest.Policy
	set, err := pol.LoadDir(repo.dir, "")
	if err != nil {
		t.Fatal(err)
	}
	svc := ipalloc.Config{}.WithDefaults()
	if set, err = finishRevision(key, svc, nil, set, nil); err != nil {
		t.Fatal(err)
	}
	op, err := store.PutDesired(desiredFrom(store.Revision{Commit: "main1", Message: "main"}, set))
	if err != nil {
		t.Fatal(err)
	}
	if err := lead.Apply(ctx, []store.Op{op}); err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{
		Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")},
		Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	nl, err := st.RegisterNode(ctx, node, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nl.Close(context.Background()) })
	cache := store.RunTestCache(t, st, store.CacheConfig{})
	deadline := time.Now().Add(10 * time.Second)
	for {
		snap, err := cache.Snapshot(ctx)
		if err == nil && len(snap.Nodes) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cache never saw the node: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &backend{cfg: Config{Repo: repo.dir, Branch: "main", DataDir: t.TempDir(), Services: svc}, st: st, cache: cache}
}

// TestPlan_canaryBranchShowsWhatTheCanaryWouldRun: `bosun plan --ref
// canary/web-v2` on a real repository, against a running main that names
// the branch: the canary's template diffed against main's (image, env
// names, never an env value; resources), its one pod at 10% on the node the
// scheduler picks, and the weights; a branch of the same name that is
// missing, has no such Deployment, breaks main's selector or is invalid
// says why with file:line; and a ref no Deployment names as a canary gets
// no canary plan.
func TestPlan_canaryBranchShowsWhatTheCanaryWouldRun(t *testing.T) {
	ctx := context.Background()
	repo := newPlanRepo(t)
	repo.git("commit", "-q", "--allow-empty", "-m", "root")
	repo.commit("main", planMainWeb, "main: web and api")
	repo.commit("canary/web-v2", planBranchWeb, "web v2")
	b := planBackend(t, repo)

	res, err := b.Plan(ctx, api.PlanRequest{Ref: "canary/web-v2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Canaries) != 1 {
		t.Fatalf("canaries = %+v", res.Canaries)
	}
	c := res.Canaries[0]
	if c.Namespace != "default" || c.Name != "web" || c.Branch != "canary/web-v2" || c.Commit != res.Revision.Commit || c.Subject != "web v2" {
		t.Errorf("canary = %+v", c)
	}
	if c.Phase != canary.Progressing || c.Reason != "" || c.Weight != 10 || c.StableWeight != 90 || c.Replicas != 1 || c.StableReplicas != 4 || c.Hash == "" || c.Hash == c.StableHash {
		t.Errorf("canary would run: phase %s (%s), %d%%/%d%%, %d pods beside %d, hash %s (stable %s)", c.Phase, c.Reason, c.Weight, c.StableWeight, c.Replicas, c.StableReplicas, c.Hash, c.StableHash)
	}
	want := []string{
		"container app: image localhost/bosun-hello:v1 -> localhost/bosun-hello:v2",
		"container app: env ~LOG_LEVEL +FEATURE_X",
		"container app: requests cpu 100m -> 200m",
	}
	if strings.Join(c.Changes, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(c.Changes, "\n"), strings.Join(want, "\n"))
	}
	if len(c.Pods) != 1 || c.Pods[0].Op != "start" || c.Pods[0].Node != "n1" || !strings.HasPrefix(c.Pods[0].Name, "web-"+c.Hash) || !strings.Contains(c.Pods[0].Reason, "10%") {
		t.Errorf("pods = %+v", c.Pods)
	}
	raw, _ := json.Marshal(res)
	if strings.Contains(string(raw), "hunter2") {
		t.Errorf("the plan shows a Secret value: %s", raw)
	}
	for _, v := range []string{"debug-secretish-value", "on-value-xyz", "hunter2"} {
		if strings.Contains(strings.Join(c.Changes, " "), v) {
			t.Errorf("the canary's changes show the env value %q", v)
		}
	}
	if res.Preview == nil || len(res.Errors) > 0 {
		t.Errorf("no plan of merging the branch: errors %v", res.Errors)
	}

	// api names canary/api-v2, which does not exist.
	res, err = b.Plan(ctx, api.PlanRequest{Ref: "canary/api-v2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Canaries) != 1 || res.Canaries[0].Phase != canary.Failed || res.Canaries[0].Reason != "branch canary/api-v2 does not exist" || res.Preview != nil {
		t.Errorf("missing branch: %+v", res.Canaries)
	}

	for _, tc := range []struct{ content, reason string }{
		{strings.ReplaceAll(planMainWeb, "name: api\n", "name: api-renamed\n"), "has no Deployment default/api"},
		{strings.ReplaceAll(planMainWeb, "app: api\n", "app: other\n"), "do not match main's selector of Deployment default/api (app=api)"},
		{planMainWeb + "---\nkind: Widget\n", "is invalid: app.yaml:"},
	} {
		repo.commit("canary/api-v2", tc.content, "api v2")
		res, err = b.Plan(ctx, api.PlanRequest{Ref: "refs/heads/canary/api-v2"})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Canaries) != 1 || res.Canaries[0].Phase != canary.Failed || !strings.Contains(res.Canaries[0].Reason, tc.reason) || len(res.Canaries[0].Pods) != 0 {
			t.Errorf("want the reason %q: %+v", tc.reason, res.Canaries)
		}
	}
	if len(res.Errors) == 0 || !strings.Contains(res.Errors[0], "app.yaml:") {
		t.Errorf("invalid branch: errors %v", res.Errors)
	}

	res, err = b.Plan(ctx, api.PlanRequest{Ref: "main"})
	if err != nil || len(res.Canaries) != 0 {
		t.Errorf("plan of main: %v, canaries %+v", err, res.Canaries)
	}
}

func TestTemplateChanges_namesNeverValues(t *testing.T) {
	main := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "a:1",
			Env: []corev1.EnvVar{{Name: "GONE", Value: "old-secret"}, {Name: "PW", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "pw"}}}}}}}}
	branch := *main.DeepCopy()
	branch.Labels["version"] = "v2"
	branch.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PW", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "db2"}, Key: "pw"}}}}
	branch.Spec.Containers[0].Args = []string{"-v"}
	branch.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")}
	branch.Spec.Containers = append(branch.Spec.Containers, corev1.Container{Name: "sidecar", Image: "s:1"})
	branch.Spec.NodeSelector = map[string]string{"disk": "ssd"}
	got := strings.Join(templateChanges(&main, &branch), "\n")
	want := `container app: env ~PW (from Secret db2 key pw) -GONE
container app: limits memory (none) -> 128Mi
container app: args changed
+ container sidecar (image s:1)
+ label version
~ spec.nodeSelector`
	if got != want {
		t.Errorf("changes:\n%s\nwant:\n%s", got, want)
	}
}
