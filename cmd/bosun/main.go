// Command bosun is a GitOps reconciler: it runs the Kubernetes manifests of
// a Git repository on containerd nodes, and serves their names over DNS.
//
//	bosun server --repo URL|PATH [flags]   a control-plane replica (and, by default, this machine's node)
//	bosun agent --etcd-endpoints ... --node-name NAME   a node only
//	bosun agent --etcd-endpoints ... --simulate N      N simulated nodes (scale tests: they run nothing)
//	bosun status | get | canary | plan | history | logs | sync | validate | image import | token create   the CLI
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/lmittmann/tint"
)

const usage = `bosun: run the Kubernetes manifests of a Git repository.

Usage:
  bosun server --repo URL|PATH [--branch main] [--path DIR] [--data-dir DIR] [--poll 5s]
      [--service-cidr 10.96.0.0/16] [--node-port-range 30000-32767] [--proxy=true] [--proxy-table bosun] ...
      [--cluster-cidr 10.88.0.0/16] [--node-cidr-mask-size 24] [--backend host-gw|vxlan]
      [--ssh-known-hosts FILE] [--git-password-file FILE] [--verify-commits --trusted-keys DIR] [--sops-age-key-file FILE]
  bosun agent --server URL --token TOKEN --node-name NAME [--labels k=v,...] [--proxy=true] [--proxy-table bosun]
      join the cluster with the token the server printed (--etcd-endpoints URL for an etcd on loopback)
  bosun agent --cleanup [--proxy-table bosun] [--bridge bosun0]     remove the Service proxy's nftables table,
      the routes to other nodes' pods, the VXLAN device and the masquerade table, and exit
  bosun agent --etcd-endpoints URL[,URL] --simulate N [--simulate-start-delay 0] [--simulate-prefix sim]
      N SIMULATED nodes for scale tests: they report pods Running and Ready but run nothing
  bosun status [-o json]
  bosun get KIND [NAME] [-o json|yaml|wide] [-n NAMESPACE]
      KIND: pods, deployments, services, endpoints [SERVICE], nodes, configmaps, secrets, namespaces, jobs, cronjobs
  bosun canary [NAME|NAMESPACE/NAME] [-n NAMESPACE] [-o json]
      the canaries (bosun.dev/canary-branch): a table, or one canary's spec, state, pods and checks
  bosun sync [--force --reason TEXT [--commit HASH]]
      fetch now; --force applies the revision a sync window holds (.bosun/windows.yaml)
  bosun node cordon|uncordon NAME | bosun node drain NAME [--force] [--timeout 5m]
  bosun node delete NAME [--force]     forget a node: its pod subnet is freed, its pods are replaced elsewhere
  bosun history [-o json]
  bosun plan --ref BRANCH|COMMIT | --dir DIR [-o json]     exit 0: no change, 2: changes, 1: error
      a canary branch (named by a Deployment's bosun.dev/canary-branch) also shows what its canary would run
  bosun logs POD|job/NAME [-c CONTAINER] [-f] [--previous] [--tail N]
  bosun validate [--allow-host-path DIR,...] [--allow-privileged] [--service-cidr CIDR] [--node-port-range A-B] [--sops-age-key-file FILE] DIR
  bosun image import FILE...
  bosun token create --role admin|read-only --name NAME [-o json]
      a new API token and the line of --tokens-file that lets it in
  bosun secrets init|keys|rotate-key|promote-key NAME|remove-key NAME [--data-dir DIR | --encryption-key-file FILE]
      the keys Secret data is encrypted with in etcd (see examples/encryption-at-rest)
  bosun etcd member remove NAME     remove a server's etcd member for good (admin; see examples/ha)
  bosun version

The CLI talks to the API of a server over HTTPS: --server URL or $BOSUN_SERVER
(default https://127.0.0.1:7070), with a token: --token, $BOSUN_TOKEN or
~/.config/bosun/token (written by the server's first start). A certificate no CA
of this machine (or --ca-file) vouches for is pinned on first use in
~/.config/bosun/known_servers, like SSH's known_hosts.
Run "bosun COMMAND -h" for a command's flags.
`

var version = "dev"

// exitError carries a process exit code through the command functions.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

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

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "server":
		return cmdServer(ctx, rest, stderr)
	case "agent":
		return cmdAgent(ctx, rest, stderr)
	case "status":
		return cmdStatus(ctx, rest, stdout, stderr)
	case "get":
		return cmdGet(ctx, rest, stdout, stderr)
	case "canary", "canaries":
		return cmdCanary(ctx, rest, stdout, stderr)
	case "sync":
		return cmdSync(ctx, rest, stdout, stderr)
	case "node":
		return cmdNode(ctx, rest, stdout, stderr)
	case "history":
		return cmdHistory(ctx, rest, stdout, stderr)
	case "plan":
		return cmdPlan(ctx, rest, stdout, stderr)
	case "logs":
		return cmdLogs(ctx, rest, stdout, stderr)
	case "validate":
		return cmdValidate(rest, stdout, stderr)
	case "token":
		return cmdToken(ctx, rest, stdout, stderr)
	case "image":
		return cmdImage(ctx, rest, stdout, stderr)
	case "secrets":
		return cmdSecrets(rest, stdout, stderr)
	case "etcd":
		return cmdEtcd(ctx, rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "bosun", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return &exitError{code: 2, err: fmt.Errorf("unknown command %q", cmd)}
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
