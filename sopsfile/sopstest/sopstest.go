// Package sopstest makes SOPS-encrypted files for tests, as the sops
// command does (`sops --encrypt --age RECIPIENT`), with sops' own packages,
// and age identities to decrypt them.
package sopstest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keys"
	sopsjson "github.com/getsops/sops/v3/stores/json"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
)

// sopsVersion is written in the metadata, as sops writes its own version
// (its version package would pull in its command line's dependencies).
const sopsVersion = "3.13.3"

// Identity is a fresh age key pair.
type Identity struct {
	// Recipient is the public key (age1...).
	Recipient string
	// Secret is the private key (AGE-SECRET-KEY-1...).
	Secret string
}

// NewIdentity generates an age key pair.
func NewIdentity(t testing.TB) Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return Identity{Recipient: id.Recipient().String(), Secret: id.String()}
}

// KeyFile writes identities to a file in dir as age-keygen writes them
// and returns its path.
func KeyFile(t testing.TB, dir string, ids ...Identity) string {
	t.Helper()
	var b bytes.Buffer
	for _, id := range ids {
		b.WriteString("# created: 2026-01-01T00:00:00Z\n# public key: " + id.Recipient + "\n" + id.Secret + "\n")
	}
	path := filepath.Join(dir, "age.agekey")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Options are the sops creation rule of a file.
type Options struct {
	// EncryptedRegex encrypts only the values of matching keys (sops
	// --encrypted-regex), e.g. "^(data|stringData)$".
	EncryptedRegex string
	// UnencryptedSuffix leaves the values of keys with this suffix in
	// plain text (sops --unencrypted-suffix).
	UnencryptedSuffix string
	// JSON reads and writes the file as JSON instead of YAML.
	JSON bool
}

// Encrypt encrypts plain (YAML, or JSON with opts.JSON; several YAML
// documents are encrypted together, as sops does) for the age recipients.
func Encrypt(t testing.TB, plain []byte, opts Options, recipients ...string) []byte {
	t.Helper()
	out, err := EncryptE(plain, opts, recipients...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// EncryptE is Encrypt returning its error.
func EncryptE(plain []byte, opts Options, recipients ...string) ([]byte, error) {
	var store interface {
		LoadPlainFile([]byte) (sops.TreeBranches, error)
		EmitEncryptedFile(sops.Tree) ([]byte, error)
	}
	if opts.JSON {
		store = sopsjson.NewStore(&config.JSONStoreConfig{})
	} else {
		store = sopsyaml.NewStore(&config.YAMLStoreConfig{})
	}
	branches, err := store.LoadPlainFile(plain)
	if err != nil {
		return nil, err
	}
	var group sops.KeyGroup
	for _, r := range recipients {
		k, err := sopsage.MasterKeyFromRecipient(r)
		if err != nil {
			return nil, err
		}
		group = append(group, keys.MasterKey(k))
	}
	tree := sops.Tree{Branches: branches, Metadata: sops.Metadata{
		KeyGroups:         []sops.KeyGroup{group},
		EncryptedRegex:    opts.EncryptedRegex,
		UnencryptedSuffix: opts.UnencryptedSuffix,
		Version:           sopsVersion,
	}}
	dataKey, errs := tree.GenerateDataKey()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	cipher := aes.NewCipher()
	mac, err := tree.Encrypt(dataKey, cipher)
	if err != nil {
		return nil, err
	}
	tree.Metadata.LastModified = time.Now().UTC()
	tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, err
	}
	return store.EmitEncryptedFile(tree)
}
