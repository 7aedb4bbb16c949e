package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"bosun/api"
	"bosun/reconciler"
)

// The subcommands of `bosun node` this file adds (node.go gathers them).
func init() {
	nodeCommands = append(nodeCommands, newNodeCordonCmd, newNodeUncordonCmd, newNodeDrainCmd)
}

func nodePath(name, op string) string { return "/api/v1/nodes/" + url.PathEscape(name) + "/" + op }

func newNodeCordonCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "cordon NAME",
		Short:   "Mark a node unschedulable: no new pod goes there",
		Long:    `Cordon marks a node unschedulable: pods it runs stay, no new pod is placed on it.`,
		Example: `  bosun node cordon node-b`,
	}
	client := clientFlags(cmd)
	nodeNameArgs(cmd, client)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var res api.NodeOpResult
		if err := newClient(client).do(cmd.Context(), "POST", nodePath(args[0], "cordon"), nil, &res); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "node/%s cordoned\n", args[0])
		return nil
	}
	return cmd
}

func newNodeUncordonCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "uncordon NAME",
		Short:   "Mark a node schedulable again (and stop a drain)",
		Long:    `Uncordon marks a node schedulable again; a drain of it stops.`,
		Example: `  bosun node uncordon node-b`,
	}
	client := clientFlags(cmd)
	nodeNameArgs(cmd, client)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var res api.NodeOpResult
		if err := newClient(client).do(cmd.Context(), "POST", nodePath(args[0], "uncordon"), nil, &res); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "node/%s %s\n", args[0], res.Result)
		return nil
	}
	return cmd
}

func newNodeDrainCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drain NAME",
		Short: "Cordon a node and move its pods elsewhere, waiting until it is empty",
		Long: `Drain cordons a node, then the leader replaces its pods elsewhere (a
Deployment's new pod ready before the old one stops, as a rollout does);
drain prints what is left until the node is empty or --timeout passes. The
drain goes on after a timeout: run it again to wait, uncordon to stop it.`,
		Example: `  bosun node drain node-b
  bosun node drain node-b --force --timeout 10m`,
	}
	client := clientFlags(cmd)
	force := cmd.Flags().Bool("force", false, "also delete pods no Deployment or Job manages (bosun recreates them from Git on another node) and running Jobs' pods (counted as failed and replaced)")
	timeout := cmd.Flags().Duration("timeout", 5*time.Minute, "how long to wait for the node to be empty (0: for ever); the drain goes on after a timeout")
	nodeNameArgs(cmd, client)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *timeout < 0 {
			return usageError(cmd, "--timeout %s: must be >= 0", *timeout)
		}
		return nodeDrain(cmd.Context(), newClient(client), args[0], *force, *timeout, cmd.OutOrStdout())
	}
	return cmd
}

// drainPoll is how often `bosun node drain` asks how the drain stands.
const drainPoll = 500 * time.Millisecond

func nodeDrain(ctx context.Context, c *client, name string, force bool, timeout time.Duration, stdout io.Writer) error {
	var res api.NodeOpResult
	if err := c.do(ctx, "POST", nodePath(name, "drain"), api.DrainRequest{Force: force}, &res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "node/%s cordoned\n", name)
	start := time.Now()
	wait := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	last, notDraining := "", 0
	p := res.Progress
	for {
		if p != nil {
			if line := drainLine(p); line != last {
				fmt.Fprintln(stdout, line)
				last = line
			}
			if p.Done {
				fmt.Fprintf(stdout, "node/%s drained in %s\n", name, time.Since(start).Round(100*time.Millisecond))
				return nil
			}
		}
		select {
		case <-wait.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			left := "its pods"
			if p != nil {
				left = drainLeft(p)
			}
			return &exitError{code: 1, err: fmt.Errorf("drain of node %s timed out after %s with %s still on it; the node stays cordoned and the leader keeps draining it (bosun node drain %s again to wait, bosun node uncordon %s to stop)",
				name, timeout, left, name, name)}
		case <-time.After(drainPoll):
		}
		var now api.NodeOpResult
		if err := c.do(wait, "GET", nodePath(name, "drain"), nil, &now); err != nil {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				continue // the select above says which
			}
			return err
		}
		if !now.Draining {
			// The server that answers may not have seen the drain's record
			// yet for a moment; after that, someone uncordoned the node.
			if notDraining++; notDraining > 10 {
				return &exitError{code: 1, err: fmt.Errorf("node %s is no longer being drained (uncordoned?)", name)}
			}
			continue
		}
		notDraining = 0
		p = now.Progress
	}
}

// drainLine is one line of a drain's progress: "3 pods left:
// deployment default/web 2, job default/backup 1 (waiting: ...)".
func drainLine(p *reconciler.DrainProgress) string {
	if p.Done {
		return "no pod left"
	}
	line := drainLeft(p)
	if p.Stopping > 0 {
		line += fmt.Sprintf(", %d stopping", p.Stopping)
	}
	if len(p.Waiting) > 0 {
		line += "; waiting: " + strings.Join(p.Waiting, "; ")
	}
	return line
}

// drainLeft is "3 pods left (deployment default/web 2, job default/backup 1)".
func drainLeft(p *reconciler.DrainProgress) string {
	owners := slices.Sorted(maps.Keys(p.Pods))
	parts := make([]string, 0, len(owners))
	for _, o := range owners {
		kind, rest, _ := strings.Cut(o, "/")
		parts = append(parts, fmt.Sprintf("%s %s: %d", strings.ToLower(kind), rest, p.Pods[o]))
	}
	s := fmt.Sprintf("%d pods left", p.Left)
	if p.Left == 1 {
		s = "1 pod left"
	}
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s
}
