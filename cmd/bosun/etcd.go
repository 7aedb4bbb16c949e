package main

import (
	"fmt"
	"net/url"

	"github.com/spf13/cobra"
)

func newEtcdCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "etcd",
		Short: "Manage the servers' etcd members",
		Args:  cobra.NoArgs,
	}
	member := &cobra.Command{Use: "member", Short: "Manage the servers' etcd members", Args: cobra.NoArgs}
	member.AddCommand(newEtcdMemberRemoveCmd())
	cmd.AddCommand(parentCmd(member))
	return parentCmd(cmd)
}

// newEtcdMemberRemoveCmd is `bosun etcd member remove NAME`: a server's
// etcd member leaves the cluster for good (a machine retired or replaced).
// Its server must be stopped first, and its data directory wiped before it
// joins again.
func newEtcdMemberRemoveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a server's etcd member for good (admin; see examples/ha)",
		Long: `Remove takes a server's etcd member out of the cluster for good: a machine
retired or replaced. Stop its server first, and wipe its data directory
before it joins again. NAME is the member's name, as bosun status lists it.`,
		Example: `  bosun etcd member remove server-3`,
	}
	client := clientFlags(cmd)
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usageError(cmd, "want the member's name, as bosun status lists it")
		}
		return nil
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var out map[string]string
		if err := newClient(client).do(cmd.Context(), "DELETE", "/api/v1/etcd/members/"+url.PathEscape(args[0]), nil, &out); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), out["result"])
		return nil
	}
	return cmd
}
