package containerdtest

import (
	"context"
	"os"
	"testing"

	"github.com/containerd/containerd/v2/client"
)

func TestStart_servesAndCleansUp(t *testing.T) {
	var dir string
	t.Run("daemon", func(t *testing.T) {
		addr := Start(t)
		dir = addr[:len(addr)-len("/c.sock")]
		c, err := client.New(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		v, err := c.Version(context.Background())
		if err != nil || v.Version == "" {
			t.Fatalf("version: %+v, %v", v, err)
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still exists after cleanup: %v", dir, err)
	}
}

func TestBuildHelloImage_cachesPerVersion(t *testing.T) {
	a := BuildHelloImage(t, "vtest")
	b := BuildHelloImage(t, "vtest")
	if a != b {
		t.Fatalf("two builds of one version: %s, %s", a, b)
	}
	if fi, err := os.Stat(a); err != nil || fi.Size() < 1<<20 {
		t.Fatalf("archive %s: %v %v", a, fi, err)
	}
}
