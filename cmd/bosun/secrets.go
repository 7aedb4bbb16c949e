package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"bosun/store"
)

const secretsUsage = `Usage: bosun secrets COMMAND [--data-dir DIR | --encryption-key-file FILE]

The key file of Secrets at rest: the keys a server encrypts Secret data with
in etcd (AES-256-GCM). The first key encrypts, every key decrypts. Servers
read the file when they start. Key bytes are never printed.

  init               create the key file with one fresh key (a server does this on a cluster's
                     first start; init makes one to copy to every server beforehand)
  keys               list the keys' names, the primary (encrypting) one first
  rotate-key         add a fresh key as the primary one [--name NAME] [--secondary: add it last, to decrypt only]
  promote-key NAME   make a key the primary one
  remove-key NAME    remove a key (never the primary one)

To rotate on one server: stop it, rotate-key, start it: the leader rewrites
every value with the new key and logs that older keys can be removed; then
remove-key the old one. With several servers, see
examples/encryption-at-rest/README.md.
`

func cmdSecrets(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, secretsUsage)
		if len(args) == 0 {
			return &exitError{code: 2}
		}
		return nil
	}
	sub := args[0]
	fs := flag.NewFlagSet("secrets "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, secretsUsage) }
	dataDir := fs.String("data-dir", "/var/lib/bosun", "the server's data directory, whose secrets.key is the key file")
	file := fs.String("encryption-key-file", "", "the key file (default: <data-dir>/secrets.key)")
	name := fs.String("name", "", "rotate-key: the new key's name (default: key-<date>-<random hex>)")
	secondary := fs.Bool("secondary", false, "rotate-key: add the key last, to decrypt only, until promote-key")
	// The key name may come before or after the flags.
	var pos []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return &exitError{code: 2, err: err}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	path := *file
	if path == "" {
		path = filepath.Join(*dataDir, "secrets.key")
	}
	wantArgs := 0
	if sub == "promote-key" || sub == "remove-key" {
		wantArgs = 1
	}
	if len(pos) != wantArgs {
		return &exitError{code: 2, err: fmt.Errorf("secrets %s: want %d argument(s), got %q", sub, wantArgs, pos)}
	}
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
	fmt.Fprint(stderr, secretsUsage)
	return &exitError{code: 2, err: fmt.Errorf("secrets: unknown command %q", sub)}
}
