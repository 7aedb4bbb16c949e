package nodes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// bindForTest bind-mounts src on dst (root only) and undoes it when the
// test ends, if the code under test did not.
func bindForTest(t *testing.T, src, dst string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("bind mounts need root")
		}
		t.Skip("bind mounts need root")
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dst, unix.MNT_DETACH) })
}

// A state directory reached through a symlink (/var/lib/bosun -> a bigger
// disk): the mount table spells the real path, and removing a pod
// directory must still unmount its claim's bind mount first, never delete
// the claim's data through it.
func TestRemoveTree_throughSymlinkKeepsMountedData(t *testing.T) {
	base := t.TempDir()
	realState := filepath.Join(base, "disk", "bosun")
	volume := filepath.Join(realState, "volumes", "default", "data-u1")
	if err := os.MkdirAll(volume, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(volume, "precious"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "state")
	if err := os.Symlink(realState, link); err != nil {
		t.Fatal(err)
	}
	podDir := filepath.Join(link, "pods", "p1")
	bindForTest(t, volume, filepath.Join(podDir, "volumes", "data"))

	if err := removeTree(podDir); err != nil {
		t.Fatalf("removeTree: %v", err)
	}
	if _, err := os.Stat(podDir); !os.IsNotExist(err) {
		t.Errorf("pod directory still there: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(volume, "precious"))
	if err != nil || string(b) != "keep me" {
		t.Fatalf("the claim's data after the pod directory went: %q, %v", b, err)
	}
	if err := removeTree(podDir); err != nil {
		t.Errorf("removeTree of a directory already gone: %v", err)
	}
}

// noMountBelow finds a mount point by the directory itself, whatever a
// mount table lookup missed.
func TestNoMountBelow(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(base, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := noMountBelow(tree); err != nil {
		t.Fatalf("no mount yet: %v", err)
	}
	bindForTest(t, src, filepath.Join(tree, "a", "b", "m"))
	err := noMountBelow(tree)
	if err == nil || !strings.Contains(err.Error(), "is a mount point") {
		t.Fatalf("noMountBelow with a bind mount below: %v", err)
	}
}

// A volume directory already gone (an agent stopped between removing it and
// deleting its record) holds nothing: the record may go. Before, the
// lookup failed and the volume was "in use" for ever.
func TestMountedElsewhere_goneDirectory(t *testing.T) {
	at, err := mountedElsewhere(filepath.Join(t.TempDir(), "gone"))
	if err != nil || len(at) != 0 {
		t.Fatalf("mountedElsewhere of a missing directory: %v, %v", at, err)
	}
}

// A ReadWriteOncePod volume mounted by a run this agent did not set up
// (adopted, or left by an earlier agent) shows in the mount table: the
// mounts outside the pod's own directory are the other users.
func TestMountedOutside(t *testing.T) {
	base := t.TempDir()
	vol := filepath.Join(base, "volumes", "default", "data-u1")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(base, "pods", "new")
	bindForTest(t, vol, filepath.Join(own, "volumes", "data"))
	at, err := mountedOutside(vol, own)
	if err != nil || len(at) != 0 {
		t.Fatalf("only the pod's own mount: %v, %v", at, err)
	}
	other := filepath.Join(base, "pods", "old", "volumes", "data")
	bindForTest(t, vol, other)
	at, err = mountedOutside(vol, own)
	if err != nil || len(at) != 1 || at[0] != other {
		t.Fatalf("with another pod's mount: %v, %v; want [%s]", at, err, other)
	}
}
