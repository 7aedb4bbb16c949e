package signature

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// Kind is the kind of a signature.
type Kind string

const (
	OpenPGP Kind = "OpenPGP"
	SSH     Kind = "SSH"
)

// Namespace is the SSH signature namespace Git signs commits in.
const Namespace = "git"

// Signer is who signed a commit, as the trusted keys say.
type Signer struct {
	Kind Kind
	// Identity is the key's primary user ID for OpenPGP ("Alice
	// <alice@example.com>"), the principals of its allowed_signers line for
	// SSH ("alice@example.com").
	Identity string
	// Fingerprint is the primary key's fingerprint in upper-case hex for
	// OpenPGP, SHA256:<base64> for SSH.
	Fingerprint string
	// KeyType is the SSH key's type ("ed25519", "rsa", ...); empty for
	// OpenPGP.
	KeyType string
}

// String reads "Alice <alice@example.com> (OpenPGP key 0123...CDEF)" or
// "alice@example.com (SSH key SHA256:... ed25519)".
func (s Signer) String() string {
	if s.Kind == SSH {
		return fmt.Sprintf("%s (SSH key %s %s)", s.Identity, s.Fingerprint, s.KeyType)
	}
	return fmt.Sprintf("%s (%s key %s)", s.Identity, s.Kind, s.Fingerprint)
}

// ErrNotSigned is the error of Verify for a commit without a signature.
var ErrNotSigned = errors.New("not signed")

// UntrustedError says that a commit is signed by a key that is not among
// the trusted ones.
type UntrustedError struct {
	Kind        Kind
	Fingerprint string // OpenPGP: the issuer's fingerprint, or its key ID when the signature names no fingerprint
	KeyType     string // SSH only
	In          string // where the key would have to be
}

func (e *UntrustedError) Error() string {
	if e.Kind == SSH {
		return fmt.Sprintf("signed by SSH key %s (%s), which is not in %s", e.Fingerprint, e.KeyType, e.In)
	}
	return fmt.Sprintf("signed by OpenPGP key %s, which is not among the trusted OpenPGP keys in %s", e.Fingerprint, e.In)
}

// Verify checks sig, the signature block of a commit (its gpgsig header;
// empty when unsigned), over payload, the commit without its signature
// headers, against the trusted keys, at time now: OpenPGP key expiry and
// revocation and SSH valid-after/valid-before are judged at now (not at
// the commit's own date, which its author chooses). SSH signatures must be
// in the "git" namespace, and allowed by their allowed_signers line's
// namespaces option if it has one.
//
// The error is ErrNotSigned, an *UntrustedError, or another error saying
// why the signature is not good (it does not verify, the key expired, the
// format is unknown); its text names no secret.
func (k *Keyring) Verify(payload, sig []byte, now time.Time) (Signer, error) {
	sig = bytes.TrimSpace(sig)
	if len(sig) == 0 {
		return Signer{}, ErrNotSigned
	}
	if n := bytes.Count(sig, []byte("-----BEGIN ")); n > 1 {
		return Signer{}, fmt.Errorf("carries %d signatures; bosun accepts exactly one", n)
	}
	switch {
	case bytes.HasPrefix(sig, []byte("-----BEGIN PGP SIGNATURE-----")):
		return k.verifyOpenPGP(payload, sig, now)
	case bytes.HasPrefix(sig, []byte("-----BEGIN SSH SIGNATURE-----")):
		return k.verifySSH(payload, sig, now)
	case bytes.HasPrefix(sig, []byte("-----BEGIN SIGNED MESSAGE-----")), bytes.HasPrefix(sig, []byte("-----BEGIN CERTIFICATE-----")):
		return Signer{}, errors.New("signed with X.509 (gpgsm), which bosun does not verify: sign with OpenPGP or SSH keys")
	default:
		return Signer{}, errors.New("signature of an unknown format (want an OpenPGP or SSH signature)")
	}
}

func (k *Keyring) verifyOpenPGP(payload, sig []byte, now time.Time) (Signer, error) {
	block, err := armor.Decode(bytes.NewReader(sig))
	if err != nil || block.Type != openpgp.SignatureType {
		return Signer{}, errors.New("OpenPGP signature does not parse")
	}
	body, err := readAll(block)
	if err != nil {
		return Signer{}, fmt.Errorf("OpenPGP signature does not parse: %v", err)
	}
	issuer := issuerOf(body)
	cfg := &packet.Config{Time: func() time.Time { return now }}
	ent, err := openpgp.CheckDetachedSignature(k.pgp, bytes.NewReader(payload), bytes.NewReader(body), cfg)
	switch {
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return Signer{}, &UntrustedError{Kind: OpenPGP, Fingerprint: issuer, In: k.dir}
	case err != nil && ent != nil:
		who := fmt.Sprintf("OpenPGP key %s (%s)", fingerprint(ent), identity(ent))
		switch {
		case errors.Is(err, pgperrors.ErrKeyExpired):
			return Signer{}, fmt.Errorf("signed by %s, which has expired", who)
		case errors.Is(err, pgperrors.ErrKeyRevoked):
			return Signer{}, fmt.Errorf("signed by %s, which is revoked", who)
		case errors.Is(err, pgperrors.ErrSignatureExpired):
			return Signer{}, fmt.Errorf("signed by %s, but the signature has expired", who)
		}
		return Signer{}, fmt.Errorf("signed by %s, but the signature is not good: %v", who, err)
	case err != nil:
		return Signer{}, fmt.Errorf("OpenPGP signature by key %s does not verify (the commit differs from what was signed): %v", issuer, err)
	}
	return Signer{Kind: OpenPGP, Identity: identity(ent), Fingerprint: fingerprint(ent)}, nil
}

// issuerOf names the key that made a signature: its fingerprint when the
// signature carries it, else its key ID.
func issuerOf(body []byte) string {
	p, err := packet.Read(bytes.NewReader(body))
	if err != nil {
		return "(unknown)"
	}
	s, ok := p.(*packet.Signature)
	if !ok {
		return "(unknown)"
	}
	if len(s.IssuerFingerprint) > 0 {
		return strings.ToUpper(hex.EncodeToString(s.IssuerFingerprint))
	}
	if s.IssuerKeyId != nil {
		return fmt.Sprintf("%016X", *s.IssuerKeyId)
	}
	return "(unknown)"
}

func (k *Keyring) verifySSH(payload, sig []byte, now time.Time) (Signer, error) {
	s, err := sshsig.Unarmor(sig)
	if err != nil {
		return Signer{}, fmt.Errorf("SSH signature does not parse: %v", err)
	}
	fp, typ := sshFingerprint(s.PublicKey), keyType(s.PublicKey)
	if s.Namespace != Namespace {
		return Signer{}, fmt.Errorf("SSH signature by key %s is for namespace %q, not %q", fp, s.Namespace, Namespace)
	}
	var lines []*AllowedSigner
	for i := range k.ssh {
		if sshFingerprint(k.ssh[i].Key) == fp {
			lines = append(lines, &k.ssh[i])
		}
	}
	if len(lines) == 0 {
		in := filepath.Join(k.dir, AllowedSignersFile)
		return Signer{}, &UntrustedError{Kind: SSH, Fingerprint: fp, KeyType: typ, In: in}
	}
	if err := sshsig.Verify(bytes.NewReader(payload), s, lines[0].Key, s.HashAlgorithm, Namespace); err != nil {
		return Signer{}, fmt.Errorf("SSH signature by key %s (%s) does not verify (the commit differs from what was signed): %v", fp, typ, err)
	}
	// The signature is good; one of the key's lines must allow it.
	var why []string
	for _, a := range lines {
		switch {
		case a.Namespaces != "" && !matchList(Namespace, a.Namespaces):
			why = append(why, fmt.Sprintf("%s allows namespaces %q only", a.where(), a.Namespaces))
		case !a.ValidAfter.IsZero() && now.Before(a.ValidAfter):
			why = append(why, fmt.Sprintf("%s trusts it only from %s (valid-after)", a.where(), a.ValidAfter.Format(time.RFC3339)))
		case !a.ValidBefore.IsZero() && now.After(a.ValidBefore):
			why = append(why, fmt.Sprintf("%s trusted it only until %s (valid-before)", a.where(), a.ValidBefore.Format(time.RFC3339)))
		default:
			return Signer{Kind: SSH, Identity: a.Principals, Fingerprint: fp, KeyType: typ}, nil
		}
	}
	return Signer{}, fmt.Errorf("signed by SSH key %s (%s) of %s, which is not trusted now: %s", fp, typ, lines[0].Principals, strings.Join(why, "; "))
}

func sshFingerprint(k ssh.PublicKey) string { return ssh.FingerprintSHA256(k) }

// keyType is the key's type without the ssh- prefix: "ed25519", "rsa",
// "ecdsa-sha2-nistp256", "sk-ssh-ed25519@openssh.com".
func keyType(k ssh.PublicKey) string { return strings.TrimPrefix(k.Type(), "ssh-") }

func readAll(b *armor.Block) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(b.Body); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
