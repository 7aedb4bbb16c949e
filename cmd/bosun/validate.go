package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"bosun/ipalloc"
	"bosun/manifest"
	"bosun/nodes"
	"bosun/sopsfile"
)

func cmdValidate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var pol manifest.Policy
	policyFlags(fs, &pol)
	var svc ipalloc.Config
	serviceFlags(fs, &svc)
	keyFile := fs.String("sops-age-key-file", "", "age identity file that decrypts SOPS-encrypted manifests, to check them too; without it they are listed as not checked")
	if err := fs.Parse(reorder(args, "allow-host-path", "service-cidr", "node-port-range", "sops-age-key-file")); err != nil {
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() != 1 {
		return &exitError{code: 2, err: errors.New("usage: bosun validate [--allow-host-path DIR,...] [--allow-privileged] [--service-cidr CIDR] [--node-port-range FIRST-LAST] [--sops-age-key-file FILE] DIR")}
	}
	if *keyFile != "" {
		dec, err := sopsfile.ReadKeyFile(*keyFile)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("--sops-age-key-file: %w", err)}
		}
		pol.Decrypter = dec
	} else {
		pol.SkipEncrypted = true
	}
	set, err := pol.LoadDir(fs.Arg(0), "")
	set, err = withWindows(fs.Arg(0), set, err) // syncwindow.go
	if err == nil {
		// The addresses the manifests ask for must fit the ranges and not
		// collide with each other; whether the cluster's other Services
		// keep them, `bosun plan` tells.
		err = ipalloc.Fill(svc, set)
	}
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
	var counts []string
	for _, c := range []struct {
		n    int
		kind string
	}{
		{len(set.Pods), "pod"}, {len(set.Deployments), "deployment"}, {len(set.Services), "service"},
		{len(set.ConfigMaps), "configmap"}, {len(set.Secrets), "secret"}, {len(set.Namespaces), "namespace"},
		{len(set.Jobs), "job"}, {len(set.CronJobs), "cronjob"},
	} {
		if c.n > 0 || c.kind == "pod" || c.kind == "deployment" || c.kind == "service" {
			counts = append(counts, fmt.Sprintf("%d %s(s)", c.n, c.kind))
		}
	}
	for _, src := range set.Encrypted {
		fmt.Fprintf(stdout, "%s: encrypted, not checked (give --sops-age-key-file to decrypt and check it)\n", src)
	}
	if n := len(set.Encrypted); n > 0 {
		counts = append(counts, fmt.Sprintf("%d encrypted document(s) not checked", n))
	}
	fmt.Fprintf(stdout, "%s: valid: %s\n", fs.Arg(0), strings.Join(counts, ", "))
	return nil
}

// policyFlags declares the flags of what the operator allows manifests:
// the server validates revisions with them, `bosun validate` too.
func policyFlags(fs *flag.FlagSet, pol *manifest.Policy) {
	fs.Func("allow-host-path", "directories under which hostPath volumes may point (comma-separated; default none)", func(v string) error {
		for _, p := range splitList(v) {
			if !strings.HasPrefix(p, "/") {
				return fmt.Errorf("%q is not an absolute path", p)
			}
			pol.AllowHostPaths = append(pol.AllowHostPaths, p)
		}
		return nil
	})
	fs.BoolVar(&pol.AllowPrivileged, "allow-privileged", false, "allow privileged containers (securityContext.privileged)")
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
