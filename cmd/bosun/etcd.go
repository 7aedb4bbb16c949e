package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
)

// cmdEtcd is `bosun etcd member remove NAME`: a server's etcd member leaves
// the cluster for good (a machine retired or replaced). Its server must be
// stopped first, and its data directory wiped before it joins again.
func cmdEtcd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 || args[0] != "member" || args[1] != "remove" {
		return &exitError{code: 2, err: fmt.Errorf("usage: bosun etcd member remove NAME")}
	}
	fs := flag.NewFlagSet("etcd member remove", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := serverFlag(fs)
	if err := fs.Parse(args[2:]); err != nil {
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() != 1 {
		return &exitError{code: 2, err: fmt.Errorf("usage: bosun etcd member remove NAME (the member's name, as bosun status lists it)")}
	}
	name := fs.Arg(0)
	var out map[string]string
	if err := newClient(server).do(ctx, "DELETE", "/api/v1/etcd/members/"+url.PathEscape(name), nil, &out); err != nil {
		return err
	}
	fmt.Fprintln(stdout, out["result"])
	return nil
}
