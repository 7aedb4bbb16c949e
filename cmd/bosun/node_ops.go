package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"bosun/api"
	"bosun/reconciler"
)

// The subcommands of `bosun node` this file adds (node.go dispatches).
func init() {
	nodeCommands["cordon"] = cmdNodeCordon
	nodeCommands["uncordon"] = cmdNodeUncordon
	nodeCommands["drain"] = cmdNodeDrain
}

// nodeArg parses a node command's flags and its one argument, the node's
// name.
func nodeArg(fs *flag.FlagSet, args []string, withValue ...string) (string, error) {
	if err := fs.Parse(reorder(args, append(withValue, clientValueFlags...)...)); err != nil {
		return "", &exitError{code: 2, err: err}
	}
	if fs.NArg() != 1 {
		return "", &exitError{code: 2, err: fmt.Errorf("bosun node %s: want one node name, got %d arguments", fs.Name(), fs.NArg())}
	}
	return fs.Arg(0), nil
}

func nodePath(name, op string) string { return "/api/v1/nodes/" + url.PathEscape(name) + "/" + op }

func cmdNodeCordon(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cordon", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := serverFlag(fs)
	name, err := nodeArg(fs, args)
	if err != nil {
		return err
	}
	var res api.NodeOpResult
	if err := newClient(server).do(ctx, "POST", nodePath(name, "cordon"), nil, &res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "node/%s cordoned\n", name)
	return nil
}

func cmdNodeUncordon(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("uncordon", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := serverFlag(fs)
	name, err := nodeArg(fs, args)
	if err != nil {
		return err
	}
	var res api.NodeOpResult
	if err := newClient(server).do(ctx, "POST", nodePath(name, "uncordon"), nil, &res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "node/%s %s\n", name, res.Result)
	return nil
}

// drainPoll is how often `bosun node drain` asks how the drain stands.
const drainPoll = 500 * time.Millisecond

func cmdNodeDrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := serverFlag(fs)
	force := fs.Bool("force", false, "also delete pods no Deployment or Job manages (bosun recreates them from Git on another node) and running Jobs' pods (counted as failed and replaced)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the node to be empty (0: for ever); the drain goes on after a timeout")
	name, err := nodeArg(fs, args, "timeout")
	if err != nil {
		return err
	}
	if *timeout < 0 {
		return &exitError{code: 2, err: fmt.Errorf("--timeout %s: must be >= 0", *timeout)}
	}
	c := newClient(server)
	var res api.NodeOpResult
	if err := c.do(ctx, "POST", nodePath(name, "drain"), api.DrainRequest{Force: *force}, &res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "node/%s cordoned\n", name)
	start := time.Now()
	wait := ctx
	if *timeout > 0 {
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, *timeout)
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
				name, *timeout, left, name, name)}
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
