package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
)

// recreateDeployment is rolloutDeployment with the Recreate strategy and
// time enough to stop (the preStop sleep of 1 s, then the app's drain).
func recreateDeployment(image string, env ...string) string {
	d := strings.Replace(rolloutDeployment(image, env...), `  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 1
`, "  strategy:\n    type: Recreate\n", 1)
	return strings.Replace(d, "terminationGracePeriodSeconds: 2", "terminationGracePeriodSeconds: 10", 1)
}

// runningImages lists the images of the running containers of pods named
// web-*, as containerd sees them.
func runningImages(ctx context.Context, c *client.Client) (map[string]int, error) {
	ctrs, err := c.Containers(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, ctr := range ctrs {
		info, err := ctr.Info(ctx, client.WithoutRefreshedMetadata)
		if err != nil || !strings.HasPrefix(info.Labels["bosun.dev/pod-name"], "web-") {
			continue
		}
		task, err := ctr.Task(ctx, nil)
		if err != nil {
			continue
		}
		if st, err := task.Status(ctx); err == nil && st.Status == client.Running {
			out[info.Image]++
		}
	}
	return out, nil
}

// TestRecreate: with the Recreate strategy the new version starts only
// once every process of the old one has exited, even when the old one
// takes its time to stop (a preStop sleep of 1 s, then DRAIN_FOR 2 s):
// the two never run together.
func TestRecreate(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("web/deployment.yaml", recreateDeployment("localhost/bosun-hello:v1", "DRAIN_FOR=2s"))
	repo.commit("web v1, slow to stop")
	s := startStack(t, repo)
	waitAllOn(s, "localhost/bosun-hello:v1", "v1", 60*time.Second)

	c, err := client.New(s.containerd)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := namespaces.WithNamespace(context.Background(), "bosun")
	repo.write("web/deployment.yaml", recreateDeployment("localhost/bosun-hello:v2"))
	repo.commit("web v2")
	start := time.Now()
	sawGap := false
	for {
		imgs, err := runningImages(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		v1, v2 := imgs["localhost/bosun-hello:v1"], imgs["localhost/bosun-hello:v2"]
		if v1 > 0 && v2 > 0 {
			t.Fatalf("%d v1 and %d v2 containers run at once under Recreate", v1, v2)
		}
		sawGap = sawGap || (v1 == 0 && v2 == 0)
		if v2 == 4 {
			break
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("v2 not running after 60 s: %v", imgs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !sawGap {
		t.Error("never saw the moment with no pod running, which Recreate implies")
	}
	if took := time.Since(start); took < 3*time.Second {
		t.Errorf("v2 ran %v after the commit, before v1's preStop (1 s) and drain (2 s) could be over", took)
	}
	waitAllOn(s, "localhost/bosun-hello:v2", "v2", 30*time.Second)
	t.Logf("commit -> 4 v2 containers running under Recreate: %v", time.Since(start))
}
