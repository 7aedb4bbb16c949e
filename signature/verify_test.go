package signature

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const payload = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@example.com> 1772366400 +0000\ncommitter A <a@example.com> 1772366400 +0000\n\nmessage\n"

// pgpKey makes an OpenPGP key created at t0, valid for life (0: forever).
func pgpKey(t testing.TB, name, email string, life time.Duration) *openpgp.Entity {
	t.Helper()
	cfg := &packet.Config{Time: func() time.Time { return t0 }, KeyLifetimeSecs: uint32(life.Seconds()), Algorithm: packet.PubKeyAlgoEdDSA}
	e, err := openpgp.NewEntity(name, "", email, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func armoredPublic(t testing.TB, e *openpgp.Entity) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes()
}

func pgpSign(t testing.TB, e *openpgp.Entity, msg string, at time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	cfg := &packet.Config{Time: func() time.Time { return at }}
	if err := openpgp.ArmoredDetachSign(&buf, e, strings.NewReader(msg), cfg); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type sshKey struct {
	signer ssh.Signer
	line   string // "key-type base64"
}

func newSSHKey(t testing.TB) sshKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return sshKey{signer: s, line: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))}
}

func sshSign(t testing.TB, k sshKey, msg, namespace string) []byte {
	t.Helper()
	sig, err := sshsig.Sign(strings.NewReader(msg), k.signer, sshsig.HashSHA512, namespace)
	if err != nil {
		t.Fatal(err)
	}
	return sshsig.Armor(sig)
}

func writeDir(t testing.TB, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestVerify_table(t *testing.T) {
	alice := pgpKey(t, "Alice", "alice@example.com", 0)
	mallory := pgpKey(t, "Mallory", "mallory@example.com", 0)
	shortLived := pgpKey(t, "Carol", "carol@example.com", time.Hour)
	bob, eve, dave, erin, frank := newSSHKey(t), newSSHKey(t), newSSHKey(t), newSSHKey(t), newSSHKey(t)

	signers := strings.Join([]string{
		"# the team",
		"bob@example.com " + bob.line + " bob's laptop",
		`dave@example.com namespaces="file" ` + dave.line,
		`erin@example.com valid-before="20260201Z" ` + erin.line,
		`frank@example.com valid-after="20270101Z" ` + frank.line,
	}, "\n")
	dir := writeDir(t, map[string][]byte{
		"alice.asc":       armoredPublic(t, alice),
		"carol.asc":       armoredPublic(t, shortLived),
		"allowed_signers": []byte(signers),
		"README.md":       []byte("not a key"),
		".hidden":         []byte("skipped"),
	})
	k, err := LoadDir(dir, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Ignored(); len(got) != 1 || filepath.Base(got[0]) != "README.md" {
		t.Errorf("Ignored = %v, want README.md", got)
	}
	if got := len(k.Keys()); got != 6 {
		t.Errorf("Keys: %d lines, want 6:\n%s", got, strings.Join(k.Keys(), "\n"))
	}
	aliceFP := fingerprint(alice)
	bobFP := ssh.FingerprintSHA256(bob.signer.PublicKey())
	twoSigs := append(pgpSign(t, alice, payload, t0), sshSign(t, bob, payload, "git")...)

	tests := []struct {
		name    string
		payload string
		sig     []byte
		now     time.Time
		want    Signer
		wantErr string // substring; empty: success
		is      error
	}{
		{name: "openpgp good", sig: pgpSign(t, alice, payload, t0), want: Signer{Kind: OpenPGP, Identity: "Alice <alice@example.com>", Fingerprint: aliceFP}},
		{name: "openpgp unknown key", sig: pgpSign(t, mallory, payload, t0), wantErr: "signed by OpenPGP key " + fingerprint(mallory) + ", which is not among the trusted OpenPGP keys in " + dir},
		{name: "openpgp changed payload", payload: payload + "evil\n", sig: pgpSign(t, alice, payload, t0), wantErr: "does not verify"},
		{name: "openpgp expired key", sig: pgpSign(t, shortLived, payload, t0.Add(time.Minute)), now: t0.Add(2 * time.Hour), wantErr: "Carol <carol@example.com>), which has expired"},
		{name: "openpgp key valid until now", sig: pgpSign(t, shortLived, payload, t0.Add(time.Minute)), now: t0.Add(30 * time.Minute), want: Signer{Kind: OpenPGP, Identity: "Carol <carol@example.com>", Fingerprint: fingerprint(shortLived)}},
		{name: "unsigned", sig: nil, is: ErrNotSigned, wantErr: "not signed"},
		{name: "blank signature", sig: []byte("  \n"), is: ErrNotSigned, wantErr: "not signed"},
		{name: "ssh good", sig: sshSign(t, bob, payload, "git"), want: Signer{Kind: SSH, Identity: "bob@example.com", Fingerprint: bobFP, KeyType: "ed25519"}},
		{name: "ssh unknown key", sig: sshSign(t, eve, payload, "git"), wantErr: "signed by SSH key " + ssh.FingerprintSHA256(eve.signer.PublicKey()) + " (ed25519), which is not in " + filepath.Join(dir, "allowed_signers")},
		{name: "ssh changed payload", payload: "x" + payload, sig: sshSign(t, bob, payload, "git"), wantErr: "does not verify"},
		{name: "ssh wrong namespace", sig: sshSign(t, bob, payload, "file"), wantErr: `is for namespace "file", not "git"`},
		{name: "ssh namespace not allowed by its line", sig: sshSign(t, dave, payload, "git"), wantErr: `allowed_signers:3 allows namespaces "file" only`},
		{name: "ssh expired valid-before", sig: sshSign(t, erin, payload, "git"), wantErr: "trusted it only until 2026-02-01T00:00:00Z (valid-before)"},
		{name: "ssh valid-before still ahead", sig: sshSign(t, erin, payload, "git"), now: time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC), want: Signer{Kind: SSH, Identity: "erin@example.com", Fingerprint: ssh.FingerprintSHA256(erin.signer.PublicKey()), KeyType: "ed25519"}},
		{name: "ssh not yet valid-after", sig: sshSign(t, frank, payload, "git"), wantErr: "trusts it only from 2027-01-01T00:00:00Z (valid-after)"},
		{name: "two signatures", sig: twoSigs, wantErr: "carries 2 signatures"},
		{name: "x509", sig: []byte("-----BEGIN SIGNED MESSAGE-----\nMIAG\n-----END SIGNED MESSAGE-----\n"), wantErr: "X.509"},
		{name: "garbage", sig: []byte("hello"), wantErr: "unknown format"},
		{name: "garbage pgp armor", sig: []byte("-----BEGIN PGP SIGNATURE-----\n\nnot base64!\n-----END PGP SIGNATURE-----\n"), wantErr: "does not parse"},
		{name: "garbage ssh armor", sig: []byte("-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"), wantErr: "SSH signature does not parse"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.payload
			if p == "" {
				p = payload
			}
			now := tc.now
			if now.IsZero() {
				now = t0.Add(time.Hour)
			}
			got, err := k.Verify([]byte(p), tc.sig, now)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got != tc.want {
					t.Fatalf("signer = %+v, want %+v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify = %+v, want an error with %q", got, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tc.wantErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v is not %v", err, tc.is)
			}
			if got != (Signer{}) {
				t.Fatalf("signer %+v returned with an error", got)
			}
		})
	}

	var ue *UntrustedError
	_, err = k.Verify([]byte(payload), sshSign(t, eve, payload, "git"), t0)
	if !errors.As(err, &ue) || ue.Kind != SSH {
		t.Errorf("unknown SSH key: error %v is not an SSH *UntrustedError", err)
	}
}

func TestSigner_String(t *testing.T) {
	for _, tc := range []struct {
		s    Signer
		want string
	}{
		{Signer{Kind: OpenPGP, Identity: "Alice <alice@example.com>", Fingerprint: "ABCD"}, "Alice <alice@example.com> (OpenPGP key ABCD)"},
		{Signer{Kind: SSH, Identity: "bob@example.com", Fingerprint: "SHA256:xyz", KeyType: "ed25519"}, "bob@example.com (SSH key SHA256:xyz ed25519)"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestLoadDir_errors(t *testing.T) {
	alice := pgpKey(t, "Alice", "alice@example.com", 0)
	var binary bytes.Buffer
	if err := alice.Serialize(&binary); err != nil {
		t.Fatal(err)
	}
	var priv bytes.Buffer
	w, _ := armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err := alice.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	bob := newSSHKey(t)

	tests := []struct {
		name    string
		files   map[string][]byte
		wantErr string // substring; empty: loads
	}{
		{name: "empty dir", files: map[string][]byte{}, wantErr: "holds no key"},
		{name: "only other files", files: map[string][]byte{"notes.txt": []byte("x")}, wantErr: "holds no key"},
		{name: "private key", files: map[string][]byte{"alice.asc": priv.Bytes()}, wantErr: "alice.asc: holds a PRIVATE key"},
		{name: "ssh key in pub", files: map[string][]byte{"bob.pub": []byte(bob.line + "\n")}, wantErr: "bob.pub: an SSH public key, not an OpenPGP key"},
		{name: "garbage asc", files: map[string][]byte{"x.asc": []byte("hello")}, wantErr: "x.asc: not an ASCII-armored OpenPGP public key"},
		{name: "empty asc", files: map[string][]byte{"x.asc": nil}, wantErr: "x.asc: empty file"},
		{name: "bad allowed_signers line", files: map[string][]byte{"allowed_signers": []byte("# ok\n\nbob@example.com ssh-ed25519 AAAAnotakey\n")}, wantErr: "allowed_signers:3: no valid public key"},
		{name: "binary gpg", files: map[string][]byte{"alice.gpg": binary.Bytes()}},
		{name: "binary in asc", files: map[string][]byte{"alice.asc": binary.Bytes()}, wantErr: "not an ASCII-armored"},
		{name: "two armored blocks", files: map[string][]byte{"team.asc": append(armoredPublic(t, alice), armoredPublic(t, pgpKey(t, "B", "b@example.com", 0))...)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeDir(t, tc.files)
			k, err := LoadDir(dir, time.UTC)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(k.pgp) == 0 {
					t.Fatal("no key loaded")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("LoadDir error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	if _, err := LoadDir(filepath.Join(t.TempDir(), "missing"), nil); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing dir: %v", err)
	}
	if _, err := LoadDir("", nil); err == nil {
		t.Error("empty dir name: no error")
	}
}

// BenchmarkVerify measures one verification of each kind against a
// keyring of 1 OpenPGP key and 1 SSH key: the cost bosun adds to each new
// head. go test -run XXX -bench Verify ./signature
func BenchmarkVerify(b *testing.B) {
	alice := pgpKey(b, "Alice", "alice@example.com", 0)
	bob := newSSHKey(b)
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "alice.asc"), armoredPublic(b, alice), 0o644)
	os.WriteFile(filepath.Join(dir, "allowed_signers"), []byte("bob "+bob.line+"\n"), 0o644)
	k, err := LoadDir(dir, time.UTC)
	if err != nil {
		b.Fatal(err)
	}
	for name, sig := range map[string][]byte{"openpgp": pgpSign(b, alice, payload, t0), "ssh": sshSign(b, bob, payload, "git")} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := k.Verify([]byte(payload), sig, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
