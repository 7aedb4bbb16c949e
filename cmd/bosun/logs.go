package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
)

func cmdLogs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := serverFlag(fs)
	container := fs.String("c", "", "container (default: the pod's only container)")
	follow := fs.Bool("f", false, "follow the log, across container restarts")
	previous := fs.Bool("previous", false, "the log of the previous run of the container")
	tail := fs.Int("tail", 0, "only the last N lines (0: all)")
	namespace := fs.String("n", "default", "namespace")
	if err := fs.Parse(reorder(args, "c", "tail", "n", "server")); err != nil {
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() != 1 {
		return &exitError{code: 2, err: errors.New("usage: bosun logs POD [-c CONTAINER] [-f] [--previous] [--tail N]")}
	}
	q := url.Values{}
	if *container != "" {
		q.Set("container", *container)
	}
	if *follow {
		q.Set("follow", "1")
	}
	if *previous {
		q.Set("previous", "1")
	}
	if *tail > 0 {
		q.Set("tail", strconv.Itoa(*tail))
	}
	path := fmt.Sprintf("/api/v1/logs/%s/%s?%s", url.PathEscape(*namespace), url.PathEscape(fs.Arg(0)), q.Encode())
	err := newClient(*server).stream(ctx, path, stdout)
	if errors.Is(err, context.Canceled) {
		return nil // ^C ends a follow
	}
	return err
}
