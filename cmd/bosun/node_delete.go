package main

import (
	"context"
	"fmt"
	"io"
	"net/url"

	"github.com/spf13/cobra"

	"bosun/api"
)

func init() { nodeCommands = append(nodeCommands, newNodeDeleteCmd) }

// newNodeDeleteCmd is `bosun node delete NAME [--force]`: the node's
// registration, pod subnet and pod statuses go; its pods are replaced on
// other nodes at once, and every agent removes its route.
func newNodeDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Forget a node: its pod subnet is freed, its pods are replaced elsewhere",
		Long: `Delete forgets a node for good: its registration, pod subnet and pod
statuses go, its pods are replaced on other nodes at once, and every agent
removes its route to it. A node that is registered and Ready (its agent
runs) is refused unless --force.`,
		Example: `  bosun node delete node-b`,
	}
	client := clientFlags(cmd)
	force := cmd.Flags().Bool("force", false, "delete a node that is registered and Ready (its agent runs): its pods are replaced elsewhere and its agent stops")
	nodeNameArgs(cmd, client)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return nodeDelete(cmd.Context(), newClient(client), args[0], *force, cmd.OutOrStdout())
	}
	return cmd
}

func nodeDelete(ctx context.Context, c *client, name string, force bool, stdout io.Writer) error {
	path := "/api/v1/nodes/" + url.PathEscape(name)
	if force {
		path += "?force=true"
	}
	var d api.NodeDeleted
	if err := c.do(ctx, "DELETE", path, nil, &d); err != nil {
		return err
	}
	freed := "it had no pod subnet"
	if d.PodCIDR != "" {
		freed = "pod subnet " + d.PodCIDR + " freed"
	}
	fmt.Fprintf(stdout, "node %s deleted: %s; %d pod(s) bound to it are replaced on other nodes\n", d.Node, freed, d.Pods)
	return nil
}
