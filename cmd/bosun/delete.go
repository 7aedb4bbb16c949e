package main

import (
	"context"
	"fmt"
	"io"
	"net/url"

	"github.com/spf13/cobra"

	"bosun/api"
)

// newDeleteCmd is `bosun delete pod NAME [-n NS]`: kubectl delete pod, the
// one object an operator deletes by hand. Everything else comes from Git,
// and a deleted pod comes back: it is how one pod is restarted.
func newDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete pod NAME",
		Short: "Delete a pod: its node stops it and its controller (or Git) starts it again",
		Long: `Delete deletes one pod, as kubectl delete pod does: its node stops it (preStop
hooks, then SIGTERM, SIGKILL after its grace period) and its controller starts
it again: a Deployment's or DaemonSet's pod under a new name, a StatefulSet's
or a standalone Pod from Git under its own (a StatefulSet pod keeps its
claims, and so its data). Use it to restart a stuck pod; to remove a pod for
good, remove it from Git. Only pods can be deleted: everything else is Git's.`,
		Example: `  bosun delete pod web-1
  bosun delete pod db-0 -n prod`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 || kinds[args[0]] != "pods" {
				return usageError(cmd, "want: delete pod NAME (only pods are deleted by hand; other objects come from Git)")
			}
			return nil
		},
	}
	client := clientFlags(cmd)
	namespace := cmd.Flags().StringP("namespace", "n", "default", "the pod's namespace")
	cmd.RegisterFlagCompletionFunc("namespace", completeNames(client, "namespaces"))
	cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		switch len(args) {
		case 0:
			return []cobra.Completion{"pod"}, cobra.ShellCompDirectiveNoFileComp
		case 1:
			return completeNames(client, "pods")(cmd, nil, toComplete)
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return deletePod(cmd.Context(), newClient(client), *namespace, args[1], cmd.OutOrStdout())
	}
	return cmd
}

func deletePod(ctx context.Context, c *client, namespace, name string, stdout io.Writer) error {
	var d api.PodDeleted
	path := "/api/v1/namespaces/" + url.PathEscape(namespace) + "/pods/" + url.PathEscape(name)
	if err := c.do(ctx, "DELETE", path, nil, &d); err != nil {
		return err
	}
	again := "Git starts it again under its name"
	if d.Controller != "" {
		again = "its controller " + d.Controller + " starts it again"
	}
	fmt.Fprintf(stdout, "pod %s/%s deleted; %s\n", d.Namespace, d.Name, again)
	return nil
}
