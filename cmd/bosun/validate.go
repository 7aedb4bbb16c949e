package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"bosun/ipalloc"
	"bosun/manifest"
	"bosun/sopsfile"
)

func newValidateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "validate DIR",
		Short: "Check a directory of manifests as the server would, offline",
		Long: `Validate checks the manifests under DIR as a server checks a revision:
every document decoded strictly, every field either supported or refused
with its file:line, Service addresses against the ranges. SOPS-encrypted
manifests are checked when --sops-age-key-file decrypts them. Exit 1 lists
every error.`,
		Example: `  bosun validate ./deploy
  bosun validate --allow-host-path /srv/data --sops-age-key-file key.txt ./deploy`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError(cmd, "want one directory of manifests")
			}
			return nil
		},
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveFilterDirs
		},
	}
	fs := cmd.Flags()
	var pol manifest.Policy
	policyFlags(fs, &pol)
	var svc ipalloc.Config
	serviceFlags(fs, &svc)
	keyFile := fs.String("sops-age-key-file", "", "age identity file that decrypts SOPS-encrypted manifests, to check them too; without it they are listed as not checked")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return validate(cmd.OutOrStdout(), args[0], pol, svc, *keyFile)
	}
	return cmd
}

func validate(stdout io.Writer, dir string, pol manifest.Policy, svc ipalloc.Config, keyFile string) error {
	if keyFile != "" {
		dec, err := sopsfile.ReadKeyFile(keyFile)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("--sops-age-key-file: %w", err)}
		}
		pol.Decrypter = dec
	} else {
		pol.SkipEncrypted = true
	}
	set, err := pol.LoadDir(dir, "")
	set, err = withWindows(dir, set, err) // syncwindow.go
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
			return &exitError{code: 1, err: fmt.Errorf("%d error(s) in %s", len(errs), dir)}
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
		{len(set.DaemonSets), "daemonset"}, {len(set.StatefulSets), "statefulset"},
		{len(set.PersistentVolumeClaims), "persistentvolumeclaim"}, {len(set.Ingresses), "ingress"},
		{len(set.IngressClasses), "ingressclass"},
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
	fmt.Fprintf(stdout, "%s: valid: %s\n", dir, strings.Join(counts, ", "))
	return nil
}

// policyFlags declares the flags of what the operator allows manifests:
// the server validates revisions with them, `bosun validate` too.
func policyFlags(fs *flagSet, pol *manifest.Policy) {
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
	fs.BoolVar(&pol.AllowHostNetwork, "allow-host-network", false, "allow pods on the node's network (hostNetwork) and host ports (hostPort)")
}
