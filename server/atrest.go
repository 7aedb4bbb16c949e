package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"bosun/store"
)

// keyFile is the key file of Secrets at rest: Config.EncryptionKeyFile, or
// secrets.key in the data directory.
func (c *Config) keyFile() string {
	if c.EncryptionKeyFile != "" {
		return c.EncryptionKeyFile
	}
	return filepath.Join(c.DataDir, "secrets.key")
}

// openKeyring loads the keys Secret data is encrypted with in etcd. On the
// first start of a cluster (no key file, nothing encrypted in etcd) it
// creates the file with one fresh key. It refuses to start when etcd holds
// values encrypted with a key the file lacks: this replica could not read
// them, and as leader it would write the cluster's Secrets anew with a key
// the other replicas lack.
func openKeyring(ctx context.Context, cli *clientv3.Client, file string, log *slog.Logger) (*store.Keyring, error) {
	inUse, err := store.New(cli).KeysInUse(ctx)
	if err != nil {
		return nil, err
	}
	needed := neededKeys(inUse)
	keys, err := store.LoadKeyring(file)
	switch {
	case errors.Is(err, fs.ErrNotExist) && len(needed) > 0:
		return nil, fmt.Errorf("encryption key file %s does not exist, and etcd holds values encrypted with %s: "+
			"copy the key file from a server of this cluster (or give its path with --encryption-key-file)", file, describe(needed, inUse))
	case errors.Is(err, fs.ErrNotExist):
		if keys, err = store.CreateKeyFile(file, time.Now()); err != nil {
			return nil, err
		}
		log.Info("created the encryption key of Secrets at rest; back this file up, and give every server of the cluster the same one",
			"file", file, "key", keys.Primary())
	case err != nil:
		return nil, err
	}
	var missing []string
	for _, name := range needed {
		if !keys.Has(name) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("etcd holds values encrypted with %s, which %s does not hold (it holds %s): "+
			"put the missing key back in the file (a key is removed only once no value uses it)",
			describe(missing, inUse), file, strings.Join(keys.Names(), ", "))
	}
	if n := inUse["?"]; n > 0 {
		return nil, fmt.Errorf("etcd holds %d values encrypted in a format bosun does not read (not k8s:enc:aesgcm:v1)", n)
	}
	log.Info("Secrets are encrypted at rest", "file", file, "key", keys.Primary(), "keys", len(keys.Names()))
	if n := inUse[""]; n > 0 {
		log.Warn("values holding Secret data are stored in plain text (written by an older bosun); the leader encrypts them when it takes over", "values", n)
	}
	return keys, nil
}

// neededKeys are the names of the keys values are encrypted with, sorted.
func neededKeys(inUse map[string]int) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(inUse)) {
		if name != "" && name != "?" {
			out = append(out, name)
		}
	}
	return out
}

// describe names keys with how many values each encrypts.
func describe(names []string, inUse map[string]int) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("key %s (%d values)", n, inUse[n])
	}
	return strings.Join(parts, ", ")
}

// reencrypt rewrites, with the primary key, the values still in plain text
// or encrypted with an older key, once per leadership (before the first
// plan): after a rotation, the leader's first start with the new key makes
// the old one removable.
func (c *cluster) reencrypt(ctx context.Context) error {
	r, err := c.lead.Reencrypt(ctx)
	if err != nil {
		return err
	}
	if c.log == nil {
		return nil
	}
	for _, err := range r.Unreadable {
		c.log.Error("cannot re-encrypt a value; it is left as it is", "err", err)
	}
	if n := r.Rewritten(); n > 0 {
		from := make([]string, 0, len(r.From))
		for _, name := range slices.Sorted(maps.Keys(r.From)) {
			label := "key " + name
			if name == "" {
				label = "plain text"
			}
			from = append(from, fmt.Sprintf("%s: %d", label, r.From[name]))
		}
		c.log.Info("re-encrypted values holding Secret data with the primary key", "key", r.Key, "values", n, "from", strings.Join(from, ", "))
	}
	if len(r.Unreadable) == 0 && (r.Rewritten() > 0 || len(c.st.Keyring().Names()) > 1) {
		c.log.Info("every value holding Secret data is encrypted with the primary key; older keys can be removed from the key file", "key", r.Key)
	}
	return nil
}
