package main

import (
	"github.com/spf13/cobra"
)

// nodeCommands make the subcommands of `bosun node`, each in a file of its
// own (node_delete.go, node_ops.go), which registers it in an init.
var nodeCommands []func() *cobra.Command

func newNodeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Cordon, uncordon, drain or delete a node",
		Long: `Node commands take a node out of service and back: cordon (no new pods),
drain (cordon, then move its pods elsewhere and wait), uncordon, and delete
(forget a node for good: its pod subnet is freed, its pods replaced).`,
		Example: `  bosun node drain node-b --timeout 2m
  bosun node uncordon node-b
  bosun node delete node-b`,
		Args: cobra.NoArgs,
	}
	for _, c := range nodeCommands {
		cmd.AddCommand(c())
	}
	return parentCmd(cmd)
}

// nodeNameArgs is the argument check and completion of a node command:
// one node name.
func nodeNameArgs(cmd *cobra.Command, client *clientOptions) {
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usageError(cmd, "bosun node %s: want one node name, got %d arguments", cmd.Name(), len(args))
		}
		return nil
	}
	cmd.ValidArgsFunction = completeFirst(client, "nodes")
}
