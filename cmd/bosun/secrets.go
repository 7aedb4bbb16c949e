package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"bosun/store"
)

const secretsLong = `The key file of Secrets at rest: the keys a server encrypts Secret data with
in etcd (AES-256-GCM). The first key encrypts, every key decrypts. Servers
read the file when they start. Key bytes are never printed.

To rotate on one server: stop it, rotate-key, start it: the leader rewrites
every value with the new key and logs that older keys can be removed; then
remove-key the old one. With several servers, see
examples/encryption-at-rest/README.md.`

func newSecretsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Manage the keys Secret data is encrypted with in etcd",
		Long:  secretsLong,
		Example: `  bosun secrets keys
  bosun secrets rotate-key --data-dir /var/lib/bosun
  bosun secrets remove-key key-20240101-1a2b --data-dir /var/lib/bosun`,
		Args: cobra.NoArgs,
	}
	var o secretsOpts
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.dataDir, "data-dir", "/var/lib/bosun", "the server's data directory, whose secrets.key is the key file")
	pf.StringVar(&o.file, "encryption-key-file", "", "the key file (default: <data-dir>/secrets.key)")
	sub := func(use, short string, args int) *cobra.Command {
		c := &cobra.Command{
			Use:     use,
			Short:   short,
			Long:    short + ".\n\n" + secretsLong,
			Example: "  bosun secrets " + use + " --data-dir /var/lib/bosun",
			Args: func(c *cobra.Command, a []string) error {
				if len(a) != args {
					return usageError(c, "secrets %s: want %d argument(s), got %q", c.Name(), args, a)
				}
				return nil
			},
		}
		c.RunE = func(c *cobra.Command, a []string) error { return o.run(c.Name(), a, c.OutOrStdout()) }
		cmd.AddCommand(c)
		return c
	}
	sub("init", "Create the key file with one fresh key (a server does this on a cluster's first start; init makes one to copy to every server beforehand)", 0)
	sub("keys", "List the keys' names, the primary (encrypting) one first", 0)
	rotate := sub("rotate-key", "Add a fresh key as the primary one", 0)
	rotate.Flags().StringVar(&o.name, "name", "", "the new key's name (default: key-<date>-<random hex>)")
	rotate.Flags().BoolVar(&o.secondary, "secondary", false, "add the key last, to decrypt only, until promote-key")
	sub("promote-key NAME", "Make a key the primary one", 1)
	sub("remove-key NAME", "Remove a key (never the primary one)", 1)
	return parentCmd(cmd)
}

// secretsOpts are the flags of `bosun secrets`.
type secretsOpts struct {
	dataDir, file, name string
	secondary           bool
}

func (o *secretsOpts) run(sub string, pos []string, stdout io.Writer) error {
	path := o.file
	if path == "" {
		path = filepath.Join(o.dataDir, "secrets.key")
	}
	name, secondary := &o.name, &o.secondary
	switch sub {
	case "init":
		keys, err := store.CreateKeyFile(path, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created %s with key %s; back it up, and give every server of the cluster the same file\n", path, keys.Primary())
		return nil
	case "keys":
		keys, err := store.LoadKeyring(path)
		if err != nil {
			return err
		}
		for i, n := range keys.Names() {
			role := "decrypts"
			if i == 0 {
				role = "primary: encrypts and decrypts"
			}
			fmt.Fprintf(stdout, "%s\t%s\n", n, role)
		}
		return nil
	case "rotate-key":
		added, err := store.AddKey(path, *name, *secondary, time.Now())
		if err != nil {
			return err
		}
		keys, err := store.LoadKeyring(path)
		if err != nil {
			return err
		}
		if *secondary {
			fmt.Fprintf(stdout, "added key %s to %s, to decrypt only (keys: %s); promote it once every server has it\n", added, path, strings.Join(keys.Names(), ", "))
		} else {
			fmt.Fprintf(stdout, "added key %s to %s as the primary key (keys: %s); restart the server: its leader re-encrypts every value with it\n", added, path, strings.Join(keys.Names(), ", "))
		}
		return nil
	case "promote-key":
		if err := store.PromoteKey(path, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "key %s is the primary key of %s; restart the servers\n", pos[0], path)
		return nil
	case "remove-key":
		if err := store.RemoveKey(path, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed key %s from %s\n", pos[0], path)
		return nil
	}
	return fmt.Errorf("secrets: unknown command %q", sub)
}
