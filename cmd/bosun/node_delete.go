package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"

	"bosun/api"
)

// cmdNodeDelete is `bosun node delete NAME [--force]`: the node's
// registration, pod subnet and pod statuses go; its pods are replaced on
// other nodes at once, and every agent removes its route.
func cmdNodeDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("node delete", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := serverFlag(fs)
	force := fs.Bool("force", false, "delete a node that is registered and Ready (its agent runs): its pods are replaced elsewhere and its agent stops")
	// Flags may come after the name, as kubectl takes them.
	var names []string
	for {
		if err := fs.Parse(args); err != nil {
			return &exitError{code: 2, err: err}
		}
		if fs.NArg() == 0 {
			break
		}
		names = append(names, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(names) != 1 {
		return &exitError{code: 2, err: fmt.Errorf("node delete: want one node name, got %d", len(names))}
	}
	path := "/api/v1/nodes/" + url.PathEscape(names[0])
	if *force {
		path += "?force=true"
	}
	var d api.NodeDeleted
	if err := newClient(server).do(ctx, "DELETE", path, nil, &d); err != nil {
		return err
	}
	freed := "it had no pod subnet"
	if d.PodCIDR != "" {
		freed = "pod subnet " + d.PodCIDR + " freed"
	}
	fmt.Fprintf(stdout, "node %s deleted: %s; %d pod(s) bound to it are replaced on other nodes\n", d.Node, freed, d.Pods)
	return nil
}
