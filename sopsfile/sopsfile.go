package sopsfile

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keyservice"
	"github.com/getsops/sops/v3/logging"
	sopsjson "github.com/getsops/sops/v3/stores/json"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
	"google.golang.org/grpc"
)

// The kinds of decryption failure, for errors.Is. The error's text says
// more (which recipients the file is for, what is malformed), never a
// decrypted value.
var (
	// ErrNotEncrypted: the file has no sops metadata.
	ErrNotEncrypted = errors.New("not encrypted with SOPS")
	// ErrMalformed: the file or its sops metadata cannot be read.
	ErrMalformed = errors.New("malformed SOPS file")
	// ErrNoKey: no identity decrypts the file's data key.
	ErrNoKey = errors.New("no matching age identity")
	// ErrTampered: a value or the MAC does not verify: the file was
	// changed after it was encrypted, or is not what sops wrote.
	ErrTampered = errors.New("SOPS file does not verify")
	// ErrPanic: sops panicked on the file.
	ErrPanic = errors.New("sops panicked")
)

// Decrypter decrypts SOPS files with a fixed set of age identities held in
// memory. It is safe for concurrent use.
type Decrypter struct {
	ids        sopsage.ParsedIdentities
	recipients []string
}

// ReadKeyFile reads an age identity file, as age-keygen writes it: one
// AGE-SECRET-KEY-1... (or AGE-SECRET-KEY-PQ-1...) per line, with blank
// lines and lines starting with "#" ignored. Errors name the file and
// line, never the line's content.
func ReadKeyFile(path string) (*Decrypter, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("age key file: %w", err)
	}
	defer f.Close()
	return ParseIdentities(path, f)
}

// ParseIdentities reads age identities in the format of ReadKeyFile; name
// names the source in errors.
func ParseIdentities(name string, r io.Reader) (*Decrypter, error) {
	const limit = 1 << 20 // a key file of a thousand identities is 75 KiB
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("age key file %s: %w", name, err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("age key file %s: larger than %d KiB", name, limit>>10)
	}
	d := &Decrypter{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// age's own parser quotes a bad line in its error: a mistyped
		// secret key would reach the log.
		ids, err := age.ParseIdentities(strings.NewReader(line))
		if err != nil || len(ids) != 1 || !utf8.ValidString(line) {
			return nil, fmt.Errorf("%s:%d: not an age identity (expected AGE-SECRET-KEY-1...; plugin and SSH identities are not supported)", name, n)
		}
		d.ids = append(d.ids, ids[0])
		if r := recipientOf(ids[0]); r != "" {
			d.recipients = append(d.recipients, r)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("age key file %s: %w", name, err)
	}
	if len(d.ids) == 0 {
		return nil, fmt.Errorf("age key file %s: no identities (expected lines AGE-SECRET-KEY-1... as age-keygen writes them)", name)
	}
	return d, nil
}

func recipientOf(id age.Identity) string {
	switch id := id.(type) {
	case *age.X25519Identity:
		return id.Recipient().String()
	case *age.HybridIdentity:
		return id.Recipient().String()
	}
	return ""
}

// Recipients are the public keys of the identities: what a file must be
// encrypted for (sops --age) to be decrypted here. They are not secret.
func (d *Decrypter) Recipients() []string { return slices.Clone(d.recipients) }

// Decrypt returns the plaintext of a SOPS-encrypted YAML or JSON file (the
// format is taken from its content: JSON when it starts with "{"), in the
// same format, after verifying its MAC. Multi-document YAML files are
// decrypted whole, as sops encrypts them. file only names the file in
// errors.
//
// Only age keys are used, with the identities given to ReadKeyFile: never
// the environment, never a key service, a KMS or GnuPG. The plaintext
// exists only in the returned slice; no error carries a decrypted value. A
// panic inside sops is recovered and returned as an error wrapping
// ErrPanic.
func (d *Decrypter) Decrypt(file string, data []byte) (plain []byte, err error) {
	quietSops()
	defer func() {
		if r := recover(); r != nil {
			// The panic's value may quote the file's content; a runtime
			// error (index out of range...) does not.
			what := "internal error"
			if re, ok := r.(runtime.Error); ok {
				what = re.Error()
			}
			plain, err = nil, fmt.Errorf("%w reading %s (%s): the file is not what sops writes", ErrPanic, file, what)
		}
	}()
	if panicHook != nil {
		panicHook(data)
	}
	var store interface {
		LoadEncryptedFile([]byte) (sops.Tree, error)
		EmitPlainFile(sops.TreeBranches) ([]byte, error)
	}
	if t := bytes.TrimLeft(data, " \t\r\n\ufeff"); len(t) > 0 && t[0] == '{' {
		store = sopsjson.NewStore(&config.JSONStoreConfig{})
	} else {
		store = sopsyaml.NewStore(&config.YAMLStoreConfig{})
	}
	tree, err := store.LoadEncryptedFile(data)
	if errors.Is(err, sops.MetadataNotFound) {
		return nil, fmt.Errorf("%w: no sops metadata in its first document", ErrNotEncrypted)
	}
	if err != nil {
		// About the file as written in Git (YAML syntax, metadata fields):
		// nothing decrypted yet.
		return nil, fmt.Errorf("%w: %s", ErrMalformed, strings.Join(strings.Fields(err.Error()), " "))
	}
	if err := checkKeys(tree.Metadata); err != nil {
		return nil, err
	}
	key, err := tree.Metadata.GetDataKeyWithKeyServices([]keyservice.KeyServiceClient{ageOnly{d.ids}}, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: the file is encrypted for %s; the key file holds identities for %s",
			ErrNoKey, strings.Join(fileRecipients(tree.Metadata), ", "), strings.Join(d.recipients, ", "))
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("%w: its data key is %d bytes, not 32", ErrMalformed, len(key))
	}
	cipher := aes.NewCipher()
	// sops' errors here may quote the value it could not decrypt or
	// convert: never pass them on.
	mac, err := tree.Decrypt(key, cipher)
	if err != nil {
		return nil, fmt.Errorf("%w: a value cannot be decrypted (changed after encryption, or not written by sops)", ErrTampered)
	}
	if tree.Metadata.MessageAuthenticationCode == "" {
		return nil, fmt.Errorf("%w: sops metadata has no mac", ErrMalformed)
	}
	stored, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, key, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, fmt.Errorf("%w: its MAC cannot be decrypted (sops.mac or sops.lastmodified changed)", ErrTampered)
	}
	if s, ok := stored.(string); !ok || s != mac {
		return nil, fmt.Errorf("%w: its MAC does not match its content (changed after encryption; re-encrypt it with sops)", ErrTampered)
	}
	plain, err = store.EmitPlainFile(tree.Branches)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot write the decrypted document", ErrMalformed)
	}
	return plain, nil
}

// panicHook, set by tests only, stands for sops panicking on an input: no
// input found by fuzzing makes sops 3.13 panic, but earlier versions did.
var panicHook func(data []byte)

// checkKeys refuses a file bosun could not decrypt with age alone, before
// any key is tried.
func checkKeys(m sops.Metadata) error {
	if len(m.KeyGroups) == 0 {
		return fmt.Errorf("%w: sops metadata names no keys", ErrMalformed)
	}
	for _, g := range m.KeyGroups {
		for _, k := range g {
			if _, ok := k.(*sopsage.MasterKey); ok {
				return nil
			}
		}
	}
	var types []string
	for _, g := range m.KeyGroups {
		for _, k := range g {
			types = append(types, k.TypeToIdentifier())
		}
	}
	slices.Sort(types)
	return fmt.Errorf("%w: the file is encrypted for %s only; bosun decrypts with age keys", ErrNoKey, strings.Join(slices.Compact(types), ", "))
}

func fileRecipients(m sops.Metadata) []string {
	var out []string
	for _, g := range m.KeyGroups {
		for _, k := range g {
			if a, ok := k.(*sopsage.MasterKey); ok {
				out = append(out, a.Recipient)
			}
		}
	}
	if len(out) == 0 {
		return []string{"no age recipient"}
	}
	return out
}

// ageOnly is the key service sops asks for the data key: age identities
// held in memory, as Flux's kustomize-controller does it. sops' own local
// key service would read SOPS_AGE_KEY* from the process environment, run
// SOPS_AGE_KEY_CMD, and call out to KMS and GnuPG.
type ageOnly struct{ ids sopsage.ParsedIdentities }

func (s ageOnly) Decrypt(_ context.Context, req *keyservice.DecryptRequest, _ ...grpc.CallOption) (*keyservice.DecryptResponse, error) {
	k, ok := req.GetKey().GetKeyType().(*keyservice.Key_AgeKey)
	if !ok || k.AgeKey == nil {
		return nil, errors.New("only age keys are supported")
	}
	if len(s.ids) == 0 {
		// With no identities sops' age key would look in the environment.
		return nil, errors.New("no age identities")
	}
	mk := sopsage.MasterKey{Recipient: k.AgeKey.GetRecipient(), EncryptedKey: string(req.GetCiphertext())}
	s.ids.ApplyToMasterKey(&mk)
	plain, err := mk.Decrypt()
	if err != nil {
		return nil, err
	}
	return &keyservice.DecryptResponse{Plaintext: plain}, nil
}

func (ageOnly) Encrypt(context.Context, *keyservice.EncryptRequest, ...grpc.CallOption) (*keyservice.EncryptResponse, error) {
	return nil, errors.New("bosun does not encrypt")
}

var quiet sync.Once

// quietSops silences sops' loggers (logrus, on stderr): bosun reports
// decryption through its own errors. sops logs nothing secret, but it
// would bypass the component's logger.
func quietSops() {
	quiet.Do(func() {
		for _, l := range logging.Loggers {
			l.SetOutput(io.Discard)
		}
	})
}
