package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"bosun/manifest"
	"bosun/nodes"
)

func cmdValidate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() != 1 {
		return &exitError{code: 2, err: errors.New("usage: bosun validate DIR")}
	}
	set, err := manifest.LoadDir(fs.Arg(0), "")
	if err != nil {
		var errs manifest.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(stdout, e.Error())
			}
			return &exitError{code: 1, err: fmt.Errorf("%d error(s) in %s", len(errs), fs.Arg(0))}
		}
		return err
	}
	fmt.Fprintf(stdout, "%s: valid: %d pod(s), %d deployment(s), %d service(s)\n",
		fs.Arg(0), len(set.Pods), len(set.Deployments), len(set.Services))
	return nil
}

func cmdImage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "import" {
		return &exitError{code: 2, err: errors.New("usage: bosun image import [--containerd-address SOCK] FILE...")}
	}
	fs := flag.NewFlagSet("image import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	address := fs.String("containerd-address", "/run/containerd/containerd.sock", "containerd socket")
	namespace := fs.String("namespace", "bosun", "containerd namespace")
	if err := fs.Parse(args[1:]); err != nil {
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() == 0 {
		return &exitError{code: 2, err: errors.New("usage: bosun image import FILE...")}
	}
	names, err := nodes.ImportImages(ctx, *address, *namespace, fs.Args()...)
	if err != nil {
		return err
	}
	for _, n := range names {
		fmt.Fprintln(stdout, "imported", n)
	}
	return nil
}
