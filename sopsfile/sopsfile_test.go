package sopsfile_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bosun/manifest"
	"bosun/sopsfile"
	"bosun/sopsfile/sopstest"
)

const planted = "planted-secret-Zq81vXk"

const secretYAML = `apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: shop
type: Opaque
stringData:
  password: ` + planted + `
  user: admin
`

func decrypter(t *testing.T, ids ...sopstest.Identity) *sopsfile.Decrypter {
	return decrypterTB(t, ids...)
}

func decrypterTB(t testing.TB, ids ...sopstest.Identity) *sopsfile.Decrypter {
	t.Helper()
	d, err := sopsfile.ReadKeyFile(sopstest.KeyFile(t, t.TempDir(), ids...))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDecrypt_roundTrips(t *testing.T) {
	id := sopstest.NewIdentity(t)
	other := sopstest.NewIdentity(t)
	dec := decrypter(t, other, id) // the second identity of the file matches
	twoDocs := secretYAML + "---\n" + strings.ReplaceAll(secretYAML, "name: db", "name: cache")
	for _, tc := range []struct {
		name  string
		plain string
		opts  sopstest.Options
	}{
		{"whole file", secretYAML, sopstest.Options{}},
		{"data and stringData only", secretYAML, sopstest.Options{EncryptedRegex: "^(data|stringData)$"}},
		{"unencrypted suffix", strings.ReplaceAll(secretYAML, "type:", "type_unencrypted:"), sopstest.Options{UnencryptedSuffix: "_unencrypted"}},
		{"two documents", twoDocs, sopstest.Options{EncryptedRegex: "^(data|stringData)$"}},
		{"json", `{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": "` + planted + `"}}`, sopstest.Options{JSON: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := sopstest.Encrypt(t, []byte(tc.plain), tc.opts, id.Recipient)
			if bytes.Contains(enc, []byte(planted)) {
				t.Fatalf("the encrypted file holds the value:\n%s", enc)
			}
			plain, err := dec.Decrypt("x.yaml", enc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(plain, []byte(planted)) || bytes.Contains(plain, []byte("sops")) {
				t.Fatalf("decrypted:\n%s", plain)
			}
			if tc.opts.JSON && !bytes.HasPrefix(bytes.TrimSpace(plain), []byte("{")) {
				t.Fatalf("a JSON file decrypts to JSON, got:\n%s", plain)
			}
			if got, want := bytes.Count(plain, []byte("kind: Secret")), strings.Count(tc.plain, "kind: Secret"); got != want {
				t.Fatalf("%d documents decrypted, want %d:\n%s", got, want, plain)
			}
		})
	}
}

// TestDecrypt_failures: each failure is its kind of error, whose text
// carries no value of the file.
func TestDecrypt_failures(t *testing.T) {
	id := sopstest.NewIdentity(t)
	stranger := sopstest.NewIdentity(t)
	enc := sopstest.Encrypt(t, []byte(secretYAML), sopstest.Options{EncryptedRegex: "^(data|stringData)$"}, id.Recipient)
	whole := sopstest.Encrypt(t, []byte(secretYAML), sopstest.Options{}, id.Recipient)
	tamper := func(data []byte, old, new string) []byte {
		t.Helper()
		if !bytes.Contains(data, []byte(old)) {
			t.Fatalf("%q is not in\n%s", old, data)
		}
		return bytes.Replace(data, []byte(old), []byte(new), 1)
	}
	for _, tc := range []struct {
		name string
		dec  *sopsfile.Decrypter
		data []byte
		want error
		text string
	}{
		{"no matching identity", decrypter(t, stranger), enc, sopsfile.ErrNoKey, id.Recipient},
		{"plain value changed", decrypter(t, id), tamper(enc, "name: db", "name: dc"), sopsfile.ErrTampered, "MAC does not match"},
		{"encrypted value swapped", decrypter(t, id), swapValues(t, whole), sopsfile.ErrTampered, "cannot be decrypted"},
		{"mac changed", decrypter(t, id), tamper(enc, "mac: ENC[AES256_GCM,data:", "mac: ENC[AES256_GCM,data:AAAA"), sopsfile.ErrTampered, "MAC"},
		{"no metadata", decrypter(t, id), []byte(secretYAML), sopsfile.ErrNotEncrypted, "no sops metadata"},
		{"metadata not a mapping", decrypter(t, id), []byte(secretYAML + "sops: 3\n"), sopsfile.ErrMalformed, ""},
		{"not YAML", decrypter(t, id), []byte("sops: [\n"), sopsfile.ErrMalformed, ""},
		{"pgp only", decrypter(t, id), []byte(secretYAML + "sops:\n  pgp:\n  - fp: ABCD\n    created_at: \"2024-01-01T00:00:00Z\"\n    enc: x\n  mac: x\n  lastmodified: \"2024-01-01T00:00:00Z\"\n  version: 3.8.1\n"), sopsfile.ErrNoKey, "pgp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain, err := tc.dec.Decrypt("x.yaml", tc.data)
			if !errors.Is(err, tc.want) || plain != nil {
				t.Fatalf("got %v (%d bytes), want %v", err, len(plain), tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not say %q", err, tc.text)
			}
			for _, s := range []string{planted, "admin", id.Secret, stranger.Secret} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q shows %q", err, s)
				}
			}
		})
	}
}

// swapValues exchanges two encrypted values of a file: each decrypts with
// its own path as additional data, so a swap is detected.
func swapValues(t *testing.T, enc []byte) []byte {
	t.Helper()
	lines := strings.Split(string(enc), "\n")
	var at []int
	for i, l := range lines {
		if strings.Contains(l, "password: ENC[") || strings.Contains(l, "user: ENC[") {
			at = append(at, i)
		}
	}
	if len(at) != 2 {
		t.Fatalf("want two values to swap in\n%s", enc)
	}
	v := func(l string) string { return l[strings.Index(l, "ENC["):] }
	a, b := lines[at[0]], lines[at[1]]
	lines[at[0]] = strings.Replace(a, v(a), v(b), 1)
	lines[at[1]] = strings.Replace(b, v(b), v(a), 1)
	return []byte(strings.Join(lines, "\n"))
}

func TestReadKeyFile(t *testing.T) {
	id := sopstest.NewIdentity(t)
	dir := t.TempDir()
	write := func(content string) string {
		p := filepath.Join(dir, "keys.txt")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	d, err := sopsfile.ReadKeyFile(write("# created: now\n# public key: " + id.Recipient + "\n\n" + id.Secret + "\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := d.Recipients(); len(r) != 1 || r[0] != id.Recipient {
		t.Errorf("Recipients: %v, want [%s]", r, id.Recipient)
	}
	mistyped := id.Secret[:len(id.Secret)-3] + "XYZ"
	for content, want := range map[string]string{
		"":                     "no identities",
		"# only a comment\n":   "no identities",
		"\n" + mistyped + "\n": "keys.txt:2: not an age identity",
		id.Secret + "\nAGE-PLUGIN-YUBIKEY-1XYZ\n": "keys.txt:2: not an age identity",
	} {
		_, err := sopsfile.ReadKeyFile(write(content))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", content, err, want)
			continue
		}
		if strings.Contains(err.Error(), mistyped) || strings.Contains(err.Error(), id.Secret) {
			t.Errorf("the error shows the key: %v", err)
		}
	}
	if _, err := sopsfile.ReadKeyFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing key file is not an error")
	}
}

// TestDecrypt_ignoresEnvironment: the identities given are the only ones:
// sops' own variables are not read.
func TestDecrypt_ignoresEnvironment(t *testing.T) {
	id := sopstest.NewIdentity(t)
	t.Setenv("SOPS_AGE_KEY", id.Secret)
	t.Setenv("SOPS_AGE_KEY_FILE", sopstest.KeyFile(t, t.TempDir(), id))
	enc := sopstest.Encrypt(t, []byte(secretYAML), sopstest.Options{}, id.Recipient)
	if _, err := decrypter(t, sopstest.NewIdentity(t)).Decrypt("x.yaml", enc); !errors.Is(err, sopsfile.ErrNoKey) {
		t.Fatalf("decrypted with the environment's key: %v", err)
	}
}

// TestDecrypt_recoversPanics: a panic inside sops becomes an error naming
// the file, without the panic's value (which may quote the file), and the
// revision is refused with the file and line like any decryption failure.
func TestDecrypt_recoversPanics(t *testing.T) {
	id := sopstest.NewIdentity(t)
	dec := decrypter(t, id)
	enc := sopstest.Encrypt(t, []byte(secretYAML), sopstest.Options{}, id.Recipient)
	defer sopsfile.SetPanicHook(func(data []byte) {
		if bytes.Contains(data, []byte("index")) {
			var s []int
			_ = s[len(data)] // a runtime error
		}
		panic("cannot handle " + planted)
	})()
	_, err := dec.Decrypt("deploy/x.yaml", enc)
	if !errors.Is(err, sopsfile.ErrPanic) || !strings.Contains(err.Error(), "deploy/x.yaml") || strings.Contains(err.Error(), planted) {
		t.Errorf("got %v", err)
	}
	_, err = dec.Decrypt("deploy/x.yaml", append([]byte("# index\n"), enc...))
	if !errors.Is(err, sopsfile.ErrPanic) || !strings.Contains(err.Error(), "index out of range") {
		t.Errorf("got %v", err)
	}
	_, err = manifest.Policy{Decrypter: dec}.Decode("deploy/x.yaml", enc)
	if err == nil || !strings.HasPrefix(err.Error(), "deploy/x.yaml:1: cannot decrypt (SOPS): sops panicked reading deploy/x.yaml") {
		t.Errorf("got %v", err)
	}
}
