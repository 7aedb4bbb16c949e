package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestResetDir_refusesRootAndRelativeAndResolvesSymlinks(t *testing.T) {
	for _, d := range []string{"/", "//", "/tmp/..", "var/lib/bosun", ""} {
		if got, err := resetDir("data-dir", d); err == nil {
			t.Errorf("resetDir(%q) = %q, want refused", d, got)
		}
	}
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "bosun")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if got, err := resetDir("data-dir", link+"/"); err != nil || got != real {
		t.Errorf("resetDir(symlink) = %q, %v; want %q", got, err, real)
	}
	if got, err := resetDir("data-dir", "/nonexistent/bosun/../bosun"); err != nil || got != "/nonexistent/bosun" {
		t.Errorf("resetDir(missing) = %q, %v", got, err)
	}
}

func TestRemoveBosunDir_onlyBosunsAndNeverAcrossAMount(t *testing.T) {
	// Not a bosun directory (a mistyped --data-dir): nothing removed.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "precious"), []byte("x"), 0o644)
	if _, err := removeBosunDir(other, "data-dir"); err == nil || !strings.Contains(err.Error(), "not a bosun --data-dir") {
		t.Errorf("a directory without bosun's entries: %v", err)
	}
	if _, err := os.Stat(filepath.Join(other, "precious")); err != nil {
		t.Fatalf("removed a file of a directory that is not bosun's: %v", err)
	}

	// A state directory with a mount left below it (a pod's volume bound
	// from the host): nothing removed, the mount named.
	state := filepath.Join(t.TempDir(), "node")
	vol := filepath.Join(state, "pods", "uid", "volumes", "data")
	os.MkdirAll(vol, 0o755)
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "db"), []byte("host data"), 0o644)
	if err := unix.Mount(host, vol, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("bind mount (needs root): %v", err)
	}
	defer unix.Unmount(vol, unix.MNT_DETACH)
	if mps, err := mountsBelow(state); err != nil || len(mps) != 1 || mps[0] != vol {
		t.Errorf("mountsBelow = %v, %v; want [%s]", mps, err, vol)
	}
	if _, err := removeBosunDir(state, "state-dir"); err == nil || !strings.Contains(err.Error(), "still mounted below it: "+vol) {
		t.Errorf("a state dir with a mount below: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(host, "db")); err != nil || string(b) != "host data" {
		t.Fatalf("the host's file behind the mount: %q %v", b, err)
	}
	// Unmounted: it goes, the host's file stays.
	if n, err := unmountUnder(state); err != nil || n != 1 {
		t.Fatalf("unmountUnder = %d, %v", n, err)
	}
	if removed, err := removeBosunDir(state, "state-dir"); err != nil || !removed {
		t.Fatalf("removeBosunDir after the unmount: %v %v", removed, err)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state dir still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(host, "db")); err != nil {
		t.Errorf("the host's file: %v", err)
	}
}

func TestUsingDirs(t *testing.T) {
	procs := []string{
		"pid 1: bosun server --repo /r --data-dir /srv/bosun",
		"pid 2: bosun agent --server https://s:7070 --node-name n",
	}
	if got := usingDirs(procs, "/srv/bosun", "/srv/bosun/node"); len(got) != 1 || !strings.HasPrefix(got[0], "pid 1") {
		t.Errorf("usingDirs(/srv/bosun) = %v", got)
	}
	if got := usingDirs(procs, "/var/lib/bosun", "/var/lib/bosun/node"); len(got) != 1 || !strings.HasPrefix(got[0], "pid 2") {
		t.Errorf("usingDirs(defaults) = %v, want the agent with default directories", got)
	}
	if got := usingDirs(procs, "/tmp/other", "/tmp/other/node"); len(got) != 0 {
		t.Errorf("usingDirs(/tmp/other) = %v", got)
	}
}
