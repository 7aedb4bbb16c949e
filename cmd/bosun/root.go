package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// annotationUsageExit is a command's exit code for usage errors (bad flags
// or arguments) when it is not 2: `bosun plan` exits 1 for every error, a
// CI contract.
const annotationUsageExit = "bosun.dev/usage-exit"

// run runs the command line args, writing to stdout and stderr: what main
// does, and what tests call.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetIn(os.Stdin)
	// ran is set once a command's own code starts: an error before that is
	// a usage error (an unknown command or flag, a wrong number of
	// arguments), which exits 2.
	ran := false
	root.PersistentPreRun = func(*cobra.Command, []string) { ran = true }
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil || ran {
		return err
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	code := 2
	if c, e := strconv.Atoi(cmd.Annotations[annotationUsageExit]); e == nil {
		code = c
	}
	return &exitError{code: code, err: fmt.Errorf("%w\nRun '%s --help' for usage.", err, cmd.CommandPath())}
}

// newRoot is the whole command line.
func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "bosun",
		Short: "Run the Kubernetes manifests of a Git repository",
		Long: `bosun runs the Kubernetes manifests of a Git repository on containerd nodes,
and serves their names over DNS: one binary for the servers (bosun server),
the nodes (bosun agent) and the command line that talks to a server's API.

The CLI talks to the API of a server over HTTPS: --server URL or $BOSUN_SERVER
(default https://127.0.0.1:7070), with a token: --token, $BOSUN_TOKEN or
~/.config/bosun/token (written by the server's first start). A certificate no CA
of this machine (or --ca-file) vouches for is pinned on first use in
~/.config/bosun/known_servers, like SSH's known_hosts.`,
		Example: `  bosun server --repo https://github.com/me/deploy.git
  bosun get pods -n default -o wide
  bosun describe pod web-7d4b9-x2x9q
  bosun plan --ref my-branch
  source <(bosun completion bash)`,
		Args:          cobra.NoArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		// bosun alone prints the help, and exits 2 as a usage error does.
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(cmd.ErrOrStderr())
			cmd.Help()
			return &exitError{code: 2}
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return err // run turns it into a usage error of the command
	})
	root.AddGroup(
		&cobra.Group{ID: "run", Title: "Run bosun:"},
		&cobra.Group{ID: "look", Title: "Look at the cluster:"},
		&cobra.Group{ID: "change", Title: "Change the cluster:"},
		&cobra.Group{ID: "local", Title: "On this machine:"},
	)
	add := func(group string, cmds ...*cobra.Command) {
		for _, c := range cmds {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	add("run", newServerCmd(), newAgentCmd())
	add("look", newStatusCmd(), newGetCmd(), newDescribeCmd(), newEventsCmd(), newCanaryCmd(), newHistoryCmd(),
		newLogsCmd(), newPlanCmd(), newVersionCmd())
	add("change", newSyncCmd(), newDeleteCmd(), newNodeCmd(), newTokenCmd(), newEtcdCmd())
	add("local", newValidateCmd(), newImageCmd(), newSecretsCmd(), newResetCmd())
	root.SetHelpCommandGroupID("look")
	root.SetCompletionCommandGroupID("local")
	return root
}

// parentCmd makes cmd, a command of subcommands, print its help on
// stderr and exit 2 when it is given none (an unknown one is a usage
// error too).
func parentCmd(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cmd.SetOut(cmd.ErrOrStderr())
		cmd.Help()
		return &exitError{code: 2}
	}
	return cmd
}

// usageError is a wrong use of a command found by its own code: exit 2
// (or the command's annotationUsageExit).
func usageError(cmd *cobra.Command, format string, a ...any) error {
	code := 2
	if c, e := strconv.Atoi(cmd.Annotations[annotationUsageExit]); e == nil {
		code = c
	}
	return &exitError{code: code, err: fmt.Errorf(format, a...)}
}

// outputFlag declares -o/--output, whose values are formats (completed by
// the shell); "" is a command's default (a table or text).
func outputFlag(cmd *cobra.Command, formats ...string) *string {
	var out string
	cmd.Flags().StringVarP(&out, "output", "o", "", "output format: "+strings.Join(formats, ", ")+" (default: a table or text)")
	cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
	return &out
}

// checkOutput refuses an -o the command does not print.
func checkOutput(cmd *cobra.Command, out string, formats ...string) error {
	if out == "" || slices.Contains(formats, out) {
		return nil
	}
	return usageError(cmd, "-o %q: want %s", out, strings.Join(formats, ", "))
}

// nsOptions are -n/--namespace and -A/--all-namespaces.
type nsOptions struct {
	namespace string
	all       bool
	def       string // the namespace when neither is given ("" is all)
}

// namespaceFlags declares -n and -A; def is the namespace when neither is
// given ("": every namespace, as `bosun get` always did).
func namespaceFlags(cmd *cobra.Command, o *clientOptions, def string) *nsOptions {
	n := &nsOptions{def: def}
	help := "namespace (default: all)"
	if def != "" {
		help = "namespace"
	}
	cmd.Flags().StringVarP(&n.namespace, "namespace", "n", def, help)
	cmd.Flags().BoolVarP(&n.all, "all-namespaces", "A", false, "every namespace")
	cmd.RegisterFlagCompletionFunc("namespace", completeNames(o, "namespaces"))
	return n
}

// resolve returns the namespace to ask for, "" for all.
func (n *nsOptions) resolve(cmd *cobra.Command) (string, error) {
	if n.all {
		if cmd.Flags().Changed("namespace") {
			return "", usageError(cmd, "give -n NAMESPACE or -A, not both")
		}
		return "", nil
	}
	return n.namespace, nil
}

// flagSet is what the flag helpers shared by server and agent declare on.
type flagSet = pflag.FlagSet
