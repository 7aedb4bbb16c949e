// Command bosun is a GitOps reconciler: it runs the Kubernetes manifests of
// a Git repository on containerd nodes, and serves their names over DNS.
//
//	bosun server --repo URL|PATH [flags]   a control-plane replica (and, by default, this machine's node)
//	bosun agent --etcd-endpoints ... --node-name NAME   a node only
//	bosun agent --etcd-endpoints ... --simulate N      N simulated nodes (scale tests: they run nothing)
//	bosun status | get | describe | events | canary | plan | history | logs | sync | node | version | ...   the CLI
//	bosun reset [--data]   stop this machine's pods and remove what bosun set up on it
//
// The command line is built with cobra (root.go): every command has --help,
// shell completion comes from `bosun completion bash|zsh|fish|powershell`
// (pod, deployment, service, node and namespace names are completed from
// the API), and a usage error exits 2 (`bosun plan`: 1).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/lmittmann/tint"
)

// version is the client's version, set at build time with
// -ldflags "-X main.version=v1.2.3"; "dev" falls back to the module's
// build information (see api.BuildVersion).
var version = "dev"

// exitError carries a process exit code through the command functions. A
// nil err exits with code and prints nothing more.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		err = ee.err
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bosun:", err)
	}
	os.Exit(code)
}

// newLogger logs with tint on a terminal and JSON otherwise.
func newLogger(w *os.File, level slog.Level) *slog.Logger {
	if fi, err := w.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		return slog.New(tint.NewHandler(w, &tint.Options{Level: level, TimeFormat: "15:04:05.000"}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: readableDurations}))
}

// readableDurations writes durations as "1.5s" rather than nanoseconds.
func readableDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}
