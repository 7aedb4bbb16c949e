package store

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Secrets at rest: the values of the keys that carry Secret data are
// AES-256-GCM envelopes in the format of Kubernetes' encryption at rest:
//
//	k8s:enc:aesgcm:v1:<key name>:<12-byte random nonce><ciphertext and 16-byte tag>
//
// with the etcd key as additional authenticated data, so that a value moved
// to another key does not open.
const (
	encPrefix    = "k8s:enc:"
	aesgcmPrefix = encPrefix + "aesgcm:v1:"
	// KeySize is the length of an encryption key: AES-256.
	KeySize = 32
)

// ErrCannotDecrypt is wrapped by every error of a value that is encrypted
// but cannot be opened: its key is not in the keyring (or there is no
// keyring), it was altered, moved to another etcd key, or is not an
// envelope bosun knows. Such errors name the etcd key and the key name the
// value needs, never the value.
var ErrCannotDecrypt = errors.New("cannot decrypt")

// keyNameRE is what a key may be named: it is written into every value,
// and ':' ends it.
var keyNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Key is one named AES-256 key. Its String, GoString and LogValue show the
// name only.
type Key struct {
	Name   string
	Secret []byte // KeySize bytes
}

func (k Key) String() string       { return "key " + k.Name }
func (k Key) GoString() string     { return "store.Key{Name: " + fmt.Sprintf("%q", k.Name) + "}" }
func (k Key) LogValue() slog.Value { return slog.StringValue(k.Name) }

// GenerateKey makes a key of fresh random bytes (crypto/rand), named
// NewKeyName(now) when name is "".
func GenerateKey(name string, now time.Time) (Key, error) {
	if name == "" {
		name = NewKeyName(now)
	}
	if !keyNameRE.MatchString(name) {
		return Key{}, fmt.Errorf("key name %q: must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	k := Key{Name: name, Secret: make([]byte, KeySize)}
	if _, err := rand.Read(k.Secret); err != nil {
		return Key{}, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

// NewKeyName names a generated key after its day, with random hex so that
// two keys made the same day (or on two machines) never share a name:
// key-20250314-9f3a1c.
func NewKeyName(now time.Time) string {
	b := make([]byte, 3)
	rand.Read(b)
	return "key-" + now.UTC().Format("20060102") + "-" + hex.EncodeToString(b)
}

// Keyring holds the named keys Secret data is encrypted with at rest: the
// first (primary) encrypts, every one decrypts. It is immutable and safe
// for concurrent use. A nil *Keyring holds no key: it reads plain values
// and refuses everything else.
type Keyring struct {
	source string // where the keys came from, for errors
	names  []string
	aeads  map[string]cipher.AEAD
	// plain makes seal a no-op: benchmarks measure the cost of encryption
	// against it. Nothing outside the package can make one.
	plain bool
}

// NewKeyring makes a keyring of keys, the first one primary; source says
// where they came from (a file), for errors.
func NewKeyring(source string, keys ...Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no encryption key", source)
	}
	k := &Keyring{source: source, aeads: make(map[string]cipher.AEAD, len(keys))}
	for _, key := range keys {
		if !keyNameRE.MatchString(key.Name) {
			return nil, fmt.Errorf("%s: key name %q: must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", source, key.Name)
		}
		if _, dup := k.aeads[key.Name]; dup {
			return nil, fmt.Errorf("%s: key %s is named twice", source, key.Name)
		}
		if len(key.Secret) != KeySize {
			return nil, fmt.Errorf("%s: key %s: %d bytes, want %d (AES-256)", source, key.Name, len(key.Secret), KeySize)
		}
		block, err := aes.NewCipher(key.Secret)
		if err != nil {
			return nil, fmt.Errorf("%s: key %s: %w", source, key.Name, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%s: key %s: %w", source, key.Name, err)
		}
		k.names = append(k.names, key.Name)
		k.aeads[key.Name] = aead
	}
	return k, nil
}

// Primary is the name of the key that encrypts.
func (k *Keyring) Primary() string { return k.names[0] }

// Names are the keys' names, the primary first.
func (k *Keyring) Names() []string { return slices.Clone(k.names) }

// Has reports whether the keyring holds a key of that name.
func (k *Keyring) Has(name string) bool {
	if k == nil {
		return false
	}
	_, ok := k.aeads[name]
	return ok
}

// Source is where the keys came from.
func (k *Keyring) Source() string { return k.source }

// seal encrypts plain with the primary key for the etcd key key.
func (k *Keyring) seal(key string, plain []byte) ([]byte, error) {
	if k == nil {
		return nil, fmt.Errorf("%s: no encryption key: a Secret's data is never stored in plain text (the Store needs a keyring)", key)
	}
	if k.plain {
		return plain, nil
	}
	name := k.names[0]
	aead := k.aeads[name]
	out := make([]byte, 0, len(aesgcmPrefix)+len(name)+1+aead.NonceSize()+len(plain)+aead.Overhead())
	out = append(out, aesgcmPrefix...)
	out = append(out, name...)
	out = append(out, ':')
	nonce := out[len(out) : len(out)+aead.NonceSize()]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("%s: nonce: %w", key, err)
	}
	out = out[:len(out)+aead.NonceSize()]
	return aead.Seal(out, nonce, plain, []byte(key)), nil
}

// open returns the plain value of the etcd key key: value itself when it
// is not an envelope (written before encryption at rest, or by a bosun
// that did not encrypt), else the decrypted envelope.
func (k *Keyring) open(key string, value []byte) ([]byte, error) {
	name, encrypted, err := envelopeKey(value)
	if !encrypted {
		return value, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", key, ErrCannotDecrypt, err)
	}
	if k == nil {
		return nil, fmt.Errorf("%s: %w: it is encrypted with key %s and this process has no encryption key (--encryption-key-file)", key, ErrCannotDecrypt, name)
	}
	aead, ok := k.aeads[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w: it is encrypted with key %s, which %s does not hold (it holds %s)", key, ErrCannotDecrypt, name, k.source, strings.Join(k.names, ", "))
	}
	body := value[len(aesgcmPrefix)+len(name)+1:]
	if len(body) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%s: %w: value encrypted with key %s is truncated", key, ErrCannotDecrypt, name)
	}
	plain, err := aead.Open(nil, body[:aead.NonceSize()], body[aead.NonceSize():], []byte(key))
	if err != nil {
		return nil, fmt.Errorf("%s: %w with key %s: the key's bytes differ from those that encrypted it, or the value was altered or moved from another key", key, ErrCannotDecrypt, name)
	}
	return plain, nil
}

// envelopeKey returns the key name of an encrypted value; encrypted is
// false for a plain value. An envelope of another provider than aesgcm
// v1, or without a key name, is encrypted with an error.
func envelopeKey(value []byte) (name string, encrypted bool, err error) {
	if !bytes.HasPrefix(value, []byte(encPrefix)) {
		return "", false, nil
	}
	rest, ok := bytes.CutPrefix(value, []byte(aesgcmPrefix))
	if !ok {
		provider, _, _ := strings.Cut(string(value[len(encPrefix):min(len(value), len(encPrefix)+32)]), ":")
		return "", true, fmt.Errorf("encryption provider %q is not aesgcm (bosun encrypts with aesgcm v1 only)", provider)
	}
	i := bytes.IndexByte(rest[:min(len(rest), 64)], ':')
	if i < 0 || !keyNameRE.Match(rest[:i]) {
		return "", true, errors.New("the envelope names no valid key")
	}
	return string(rest[:i]), true, nil
}
