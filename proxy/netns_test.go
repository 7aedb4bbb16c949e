package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

// Kernel tests run in network namespaces they create, never in the host's.

// needRoot skips kernel tests where they cannot run.
func needRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("kernel test (-short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("kernel test needs root")
	}
}

// newNS creates a network namespace (closed at the end of the test) with
// its loopback up.
func newNS(t testing.TB) netns.NsHandle {
	t.Helper()
	needRoot(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := netns.Set(orig); err != nil {
		// This thread is in the wrong namespace: keep it locked so the
		// runtime discards it.
		runtime.LockOSThread()
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	run(t, ns, "ip", "link", "set", "lo", "up")
	return ns
}

// inNS runs f on a thread switched to ns.
func inNS(t testing.TB, ns netns.NsHandle, f func() error) error {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime ends it with the goroutine.
		t.Errorf("restore network namespace: %v", err)
		return ferr
	}
	runtime.UnlockOSThread()
	return ferr
}

// cmdIn runs a command inside ns (nsenter on the namespace's fd).
func cmdIn(ns netns.NsHandle, name string, args ...string) *exec.Cmd {
	nsPath := fmt.Sprintf("--net=/proc/%d/fd/%d", os.Getpid(), int(ns))
	return exec.Command("nsenter", append([]string{nsPath, "--", name}, args...)...)
}

// run runs a command in ns and fails the test when it fails.
func run(t testing.TB, ns netns.NsHandle, name string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := cmdIn(ns, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// listTable returns `nft -j list table ip NAME` in ns, normalized for
// comparison: handles dropped, elements of maps and sets sorted, and
// JSON indented. It returns "" when the table does not exist.
func listTable(t testing.TB, ns netns.NsHandle, table string) string {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := cmdIn(ns, "nft", "-j", "list", "table", "ip", table)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if strings.Contains(errb.String(), "No such file or directory") {
			return ""
		}
		t.Fatalf("nft list table %s: %v: %s", table, err, errb.String())
	}
	var doc struct {
		Nftables []map[string]map[string]any `json:"nftables"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("nft -j output: %v", err)
	}
	var objs []map[string]map[string]any
	for _, o := range doc.Nftables {
		if _, ok := o["metainfo"]; ok {
			continue
		}
		for _, body := range o {
			delete(body, "handle")
			if elems, ok := body["elem"].([]any); ok {
				slices.SortFunc(elems, func(a, b any) int {
					x, _ := json.Marshal(a)
					y, _ := json.Marshal(b)
					return bytes.Compare(x, y)
				})
			}
		}
		objs = append(objs, o)
	}
	// Objects in a stable order: kind, then chain, then position (rules
	// keep their order within a chain).
	kindOrder := map[string]int{"table": 0, "set": 1, "map": 2, "chain": 3, "rule": 4}
	key := func(o map[string]map[string]any) (int, string) {
		for kind, body := range o {
			name, _ := body["name"].(string)
			if kind == "rule" {
				name, _ = body["chain"].(string)
			}
			return kindOrder[kind], name
		}
		return 99, ""
	}
	slices.SortStableFunc(objs, func(a, b map[string]map[string]any) int {
		ka, na := key(a)
		kb, nb := key(b)
		if ka != kb {
			return ka - kb
		}
		return strings.Compare(na, nb)
	})
	var buf bytes.Buffer
	for _, o := range objs {
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.String()
}
