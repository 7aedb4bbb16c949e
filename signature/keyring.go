package signature

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// AllowedSignersFile is the name of the SSH allowed_signers file in a
// trusted-keys directory.
const AllowedSignersFile = "allowed_signers"

// Keyring is a set of trusted keys: OpenPGP public keys and SSH allowed
// signers. It is immutable once loaded and safe for concurrent use.
type Keyring struct {
	dir     string
	pgp     openpgp.EntityList
	pgpFile map[*openpgp.Entity]string // where each key came from
	ssh     []AllowedSigner
	ignored []string
}

// LoadDir reads the trusted keys in dir:
//
//   - *.asc, *.gpg, *.pub: OpenPGP public keys, ASCII-armored (as `gpg
//     --export --armor` writes them; several keys or blocks in one file are
//     fine); a *.gpg file may also be binary (`gpg --export`). A file that
//     holds a private key, or an SSH key, or nothing that parses as an
//     OpenPGP public key is an error.
//   - allowed_signers: SSH signing keys, in OpenSSH's allowed_signers
//     format (see ParseAllowedSigners; times without Z are in loc).
//
// Names starting with a dot and directories are skipped (so a Kubernetes
// Secret or ConfigMap mounted as the directory works); other files are
// listed by Ignored. An unreadable directory, a bad key file, or a
// directory with no key at all is an error naming the file (and line).
func LoadDir(dir string, loc *time.Location) (*Keyring, error) {
	if dir == "" {
		return nil, errors.New("no trusted-keys directory given")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("trusted keys: %w", err)
	}
	k := &Keyring{dir: dir, pgpFile: map[*openpgp.Entity]string{}}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		if strings.HasPrefix(name, ".") {
			continue
		}
		info, err := os.Stat(path) // follows symlinks, as Secret mounts use
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		if info.IsDir() {
			continue
		}
		ext := filepath.Ext(name)
		switch {
		case name == AllowedSignersFile:
		case ext == ".asc" || ext == ".gpg" || ext == ".pub":
		default:
			k.ignored = append(k.ignored, path)
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		if name == AllowedSignersFile {
			signers, err := ParseAllowedSigners(path, data, loc)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			k.ssh = append(k.ssh, signers...)
			continue
		}
		ents, err := parseOpenPGP(data, ext == ".gpg")
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		for _, ent := range ents {
			k.pgpFile[ent] = path
		}
		k.pgp = append(k.pgp, ents...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(k.pgp) == 0 && len(k.ssh) == 0 {
		return nil, fmt.Errorf("trusted keys: %s holds no key: want OpenPGP public keys (*.asc, *.gpg, *.pub) or an SSH %s file", dir, AllowedSignersFile)
	}
	return k, nil
}

// parseOpenPGP reads the public keys of a key file: one or more armored
// blocks, or (binary allowed) a binary key ring.
func parseOpenPGP(data []byte, binaryAllowed bool) (openpgp.EntityList, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errors.New("empty file")
	}
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		if bytes.HasPrefix(trimmed, []byte("ssh-")) || bytes.HasPrefix(trimmed, []byte("ecdsa-")) || bytes.HasPrefix(trimmed, []byte("sk-")) {
			return nil, fmt.Errorf("an SSH public key, not an OpenPGP key: SSH keys go in %s, with the principals they sign for", AllowedSignersFile)
		}
		if !binaryAllowed {
			return nil, errors.New("not an ASCII-armored OpenPGP public key (export one with `gpg --export --armor KEYID`)")
		}
		ents, err := openpgp.ReadKeyRing(bytes.NewReader(data)) // binary: every byte counts
		if err != nil {
			return nil, fmt.Errorf("not an OpenPGP public key: %v", err)
		}
		return ents, checkPublic(ents)
	}
	var out openpgp.EntityList
	rest := trimmed
	for len(rest) > 0 {
		// armor.Decode reads one block; find where the next one starts.
		next := bytes.Index(rest[1:], []byte("-----BEGIN "))
		block := rest
		if next >= 0 {
			block, rest = rest[:next+1], rest[next+1:]
		} else {
			rest = nil
		}
		b, err := armor.Decode(bytes.NewReader(block))
		if err != nil {
			return nil, fmt.Errorf("bad armor: %v", err)
		}
		if b.Type != openpgp.PublicKeyType {
			if b.Type == openpgp.PrivateKeyType {
				return nil, errors.New("holds a PRIVATE key: put only public keys here (gpg --export --armor, not --export-secret-keys)")
			}
			return nil, fmt.Errorf("armored %q, not an OpenPGP public key block", b.Type)
		}
		ents, err := openpgp.ReadKeyRing(b.Body)
		if err != nil {
			return nil, fmt.Errorf("not an OpenPGP public key: %v", err)
		}
		if err := checkPublic(ents); err != nil {
			return nil, err
		}
		out = append(out, ents...)
	}
	return out, nil
}

func checkPublic(ents openpgp.EntityList) error {
	if len(ents) == 0 {
		return errors.New("no OpenPGP key in it")
	}
	for _, e := range ents {
		if e.PrivateKey != nil {
			return errors.New("holds a PRIVATE key: put only public keys here (gpg --export --armor, not --export-secret-keys)")
		}
	}
	return nil
}

// Dir is the directory the keys were loaded from.
func (k *Keyring) Dir() string { return k.dir }

// Ignored lists the files of the directory that are not key files (their
// names say neither OpenPGP nor allowed_signers); callers may warn.
func (k *Keyring) Ignored() []string { return slices.Clone(k.ignored) }

// Keys describes every trusted key, one line each, for logs: "OpenPGP
// 0123...CDEF Alice <alice@example.com> (alice.asc)" or "SSH
// SHA256:... alice@example.com (allowed_signers:3)".
func (k *Keyring) Keys() []string {
	var out []string
	for _, e := range k.pgp {
		out = append(out, fmt.Sprintf("OpenPGP %s %s (%s)", fingerprint(e), identity(e), filepath.Base(k.pgpFile[e])))
	}
	for _, a := range k.ssh {
		out = append(out, fmt.Sprintf("SSH %s %s (%s:%d)", sshFingerprint(a.Key), a.Principals, filepath.Base(a.File), a.Line))
	}
	return out
}

// fingerprint is the primary key's fingerprint in upper-case hex, as gpg
// shows it.
func fingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
}

// identity is the key's primary user ID, "Name <email>", or its key ID when
// it has none.
func identity(e *openpgp.Entity) string {
	if id := e.PrimaryIdentity(); id != nil {
		return id.Name
	}
	return "key " + e.PrimaryKey.KeyIdString()
}
