package kubeproxy

import (
	"bytes"
	"fmt"
	"os/exec"
	"runtime"

	"github.com/vishvananda/netns"
)

// nsThread is one OS thread living in a fresh network namespace: the
// functions it runs, and the processes they start (knftables runs the nft
// binary), see that namespace only. The thread is never unlocked: when
// the goroutine ends, the runtime ends the thread with it, so no other
// goroutine ever runs in the namespace.
type nsThread struct {
	ns   netns.NsHandle
	work chan func()
}

func newNSThread() (*nsThread, error) {
	t := &nsThread{work: make(chan func())}
	errc := make(chan error)
	go func() {
		runtime.LockOSThread()
		ns, err := netns.New() // unshare(CLONE_NEWNET) for this thread only
		if err != nil {
			errc <- fmt.Errorf("new network namespace: %w", err)
			return
		}
		t.ns = ns
		errc <- nil
		for f := range t.work {
			f()
		}
		ns.Close()
	}()
	return t, <-errc
}

// do runs f on the thread and waits for it.
func (t *nsThread) do(f func()) {
	done := make(chan struct{})
	t.work <- func() {
		defer close(done)
		f()
	}
	<-done
}

// close ends the thread; the namespace goes when nothing holds it.
func (t *nsThread) close() { close(t.work) }

// hostNS is the namespace the test process started in.
var hostNS = func() netns.NsHandle {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ns, err := netns.Get()
	if err != nil {
		panic(err)
	}
	return ns
}()

// inHost runs f on a thread that is in the host's namespace (checked).
func inHost(f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cur, err := netns.Get()
	if err != nil {
		return err
	}
	defer cur.Close()
	if !cur.Equal(hostNS) {
		return fmt.Errorf("thread is in namespace %v, not the host's %v", cur, hostNS)
	}
	return f()
}

// nft runs the nft binary on the calling thread (so in its namespace).
func nft(args ...string) ([]byte, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command("nft", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("nft %v: %w: %s", args, err, bytes.TrimSpace(errb.Bytes()))
	}
	return out.Bytes(), nil
}
