package store

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"bosun/atomicfile"
)

// A key file holds the keys of a Keyring, one a line, the primary first:
//
//	# comments and blank lines are ignored
//	key-20250314-9f3a1c:<base64 of 32 bytes>
//	key-20240102-77aa01:<base64 of 32 bytes>
//
// It must not be readable by group or others (mode 0600, like an SSH
// private key). Errors name the file and line, never a key's bytes.

// keyFileHeader opens every key file bosun writes.
const keyFileHeader = `# bosun: the keys Secrets are encrypted with in etcd (AES-256-GCM).
# One key a line, name:base64; the first encrypts, every one decrypts.
# Without this file the Secrets stored in etcd cannot be read: back it up,
# keep it secret, give every server the same file. See
# examples/encryption-at-rest/README.md to rotate the key.
`

// ParseKeys reads the keys of a key file's content; source names it in
// errors ("file:line: ...").
func ParseKeys(source string, data []byte) ([]Key, error) {
	var keys []Key
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		name, b64, ok := strings.Cut(text, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: not name:base64", source, line)
		}
		name = strings.TrimSpace(name)
		if !keyNameRE.MatchString(name) {
			return nil, fmt.Errorf("%s:%d: key name %q: must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", source, line, name)
		}
		if first, dup := seen[name]; dup {
			return nil, fmt.Errorf("%s:%d: key %s is already named on line %d", source, line, name, first)
		}
		secret, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: key %s: not base64", source, line, name)
		}
		if len(secret) != KeySize {
			return nil, fmt.Errorf("%s:%d: key %s: %d bytes, want %d (AES-256)", source, line, name, len(secret), KeySize)
		}
		seen[name] = line
		keys = append(keys, Key{Name: name, Secret: secret})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no encryption key", source)
	}
	return keys, nil
}

// MarshalKeys is the content of a key file holding keys, the first
// primary.
func MarshalKeys(keys []Key) []byte {
	var b bytes.Buffer
	b.WriteString(keyFileHeader)
	for _, k := range keys {
		b.WriteString(k.Name + ":" + base64.StdEncoding.EncodeToString(k.Secret) + "\n")
	}
	return b.Bytes()
}

// ParseKeyring makes a keyring of a key file's content (a joining node may
// receive it over the wire rather than read it from disk).
func ParseKeyring(source string, data []byte) (*Keyring, error) {
	keys, err := ParseKeys(source, data)
	if err != nil {
		return nil, err
	}
	return NewKeyring(source, keys...)
}

// LoadKeyring reads a key file. A missing file is an error that matches
// fs.ErrNotExist; one that group or others may read is refused.
func LoadKeyring(path string) (*Keyring, error) {
	keys, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	return NewKeyring(path, keys...)
}

func readKeyFile(path string) ([]Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("encryption key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("encryption key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("encryption key file %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("encryption key file %s: mode %04o lets others read it; chmod 600 %s", path, perm, path)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("encryption key file: %w", err)
	}
	return ParseKeys(path, b.Bytes())
}

// CreateKeyFile writes a key file of one fresh key at path (mode 0600, its
// directory 0700 when created), and fails if the file exists.
func CreateKeyFile(path string, now time.Time) (*Keyring, error) {
	k, err := GenerateKey("", now)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("encryption key file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("encryption key file: %w", err)
	}
	_, err = f.Write(MarshalKeys([]Key{k}))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("encryption key file %s: %w", path, err)
	}
	return NewKeyring(path, k)
}

// AddKey adds a fresh key (named name, or NewKeyName when "") to the key
// file at path, which must exist, and returns its name. The
// new key is primary (first) unless secondary: then it is last, and only
// decrypts until PromoteKey makes it primary. Servers read the file when
// they start.
func AddKey(path, name string, secondary bool, now time.Time) (string, error) {
	keys, err := readKeyFile(path)
	if err != nil {
		return "", err
	}
	k, err := GenerateKey(name, now)
	if err != nil {
		return "", err
	}
	if slices.ContainsFunc(keys, func(o Key) bool { return o.Name == k.Name }) {
		return "", fmt.Errorf("%s already holds a key named %s", path, k.Name)
	}
	if secondary {
		keys = append(keys, k)
	} else {
		keys = append([]Key{k}, keys...)
	}
	return k.Name, writeKeyFile(path, keys)
}

// PromoteKey makes the key named name primary (first) in the key file.
func PromoteKey(path, name string) error {
	keys, err := readKeyFile(path)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(keys, func(k Key) bool { return k.Name == name })
	if i < 0 {
		return fmt.Errorf("%s holds no key named %s", path, name)
	}
	k := keys[i]
	keys = append([]Key{k}, slices.Delete(keys, i, i+1)...)
	return writeKeyFile(path, keys)
}

// RemoveKey removes the key named name from the key file. The primary key
// is never removed (add or promote another first): it is the one the
// values are being written with.
func RemoveKey(path, name string) error {
	keys, err := readKeyFile(path)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(keys, func(k Key) bool { return k.Name == name })
	switch {
	case i < 0:
		return fmt.Errorf("%s holds no key named %s", path, name)
	case i == 0:
		return fmt.Errorf("key %s is the primary key of %s: add or promote another first", name, path)
	}
	return writeKeyFile(path, slices.Delete(keys, i, i+1))
}

// writeKeyFile replaces the key file at path with keys, atomically (a
// temporary file of mode 0600 renamed over it).
func writeKeyFile(path string, keys []Key) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("encryption key file: %w", err)
	}
	if err := atomicfile.Write(path, MarshalKeys(keys), 0o600); err != nil {
		return fmt.Errorf("encryption key file %s: %w", path, err)
	}
	return nil
}
