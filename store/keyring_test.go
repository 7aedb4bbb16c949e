package store

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// planted is a Secret's value no error, log or stored byte may show.
const planted = "planted-secret-4f9e2a"

var testNow = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

func testKeyring(t testing.TB, names ...string) (*Keyring, []Key) {
	t.Helper()
	var keys []Key
	for _, n := range names {
		k, err := GenerateKey(n, testNow)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	kr, err := NewKeyring("test", keys...)
	if err != nil {
		t.Fatal(err)
	}
	return kr, keys
}

// noLeak fails when text shows the planted value, or its base64.
func noLeak(t testing.TB, what, text string) {
	t.Helper()
	for _, bad := range []string{planted, base64.StdEncoding.EncodeToString([]byte(planted)), base64.RawStdEncoding.EncodeToString([]byte(planted))} {
		if strings.Contains(text, bad) {
			t.Errorf("%s shows the planted value (or its base64): %q", what, text)
		}
	}
}

func TestKeyring_roundTripIsAnEnvelopeBoundToItsKey(t *testing.T) {
	kr, _ := testKeyring(t, "k1")
	const key = "/bosun/secrets/default/db"
	sealed, err := kr.seal(key, []byte(planted))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(sealed, []byte("k8s:enc:aesgcm:v1:k1:")) {
		t.Errorf("envelope = %q, want the prefix k8s:enc:aesgcm:v1:k1:", sealed[:min(len(sealed), 24)])
	}
	noLeak(t, "the sealed value", string(sealed))
	if want := len("k8s:enc:aesgcm:v1:k1:") + 12 + len(planted) + 16; len(sealed) != want {
		t.Errorf("envelope is %d bytes, want %d (prefix, nonce, ciphertext, tag)", len(sealed), want)
	}
	again, _ := kr.seal(key, []byte(planted))
	if bytes.Equal(again, sealed) {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
	got, err := kr.open(key, sealed)
	if err != nil || string(got) != planted {
		t.Fatalf("open = %q, %v", got, err)
	}
	// A plain value (written before encryption at rest) reads as it is.
	if got, err := kr.open(key, []byte(`{"kind":"Secret"}`)); err != nil || string(got) != `{"kind":"Secret"}` {
		t.Errorf("open(plain) = %q, %v", got, err)
	}
}

func TestKeyring_failuresNameTheKeyAndTheKeyNeeded(t *testing.T) {
	kr, _ := testKeyring(t, "k1")
	other, _ := testKeyring(t, "k1") // same name, other bytes
	k2, _ := testKeyring(t, "k2")
	const key = "/bosun/secrets/default/db"
	sealed, err := kr.seal(key, []byte(planted))
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-20] ^= 1
	var nilRing *Keyring
	for _, tc := range []struct {
		name  string
		ring  *Keyring
		key   string
		value []byte
		want  []string
	}{
		{"wrong key bytes", other, key, sealed, []string{key, "key k1", "differ"}},
		{"key not held", k2, key, sealed, []string{key, "key k1", "does not hold", "k2"}},
		{"no keyring", nilRing, key, sealed, []string{key, "key k1", "no encryption key"}},
		{"tampered ciphertext", kr, key, tampered, []string{key, "key k1", "altered"}},
		{"moved to another key", kr, "/bosun/secrets/default/other", sealed, []string{"/bosun/secrets/default/other", "key k1", "moved"}},
		{"truncated", kr, key, sealed[:len("k8s:enc:aesgcm:v1:k1:")+10], []string{key, "truncated"}},
		{"another provider", kr, key, []byte("k8s:enc:kms:v2:k1:xxxx"), []string{key, `"kms"`}},
		{"no key name", kr, key, []byte("k8s:enc:aesgcm:v1:"), []string{key, "names no valid key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.ring.open(tc.key, tc.value)
			if err == nil {
				t.Fatalf("open succeeded: %d bytes (never a silent empty value)", len(got))
			}
			if !errors.Is(err, ErrCannotDecrypt) {
				t.Errorf("error %v is not ErrCannotDecrypt", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			noLeak(t, "the error", err.Error())
		})
	}
}

func TestKeyring_nilRefusesToSeal(t *testing.T) {
	var kr *Keyring
	if _, err := kr.seal("/bosun/secrets/a/b", []byte(planted)); err == nil || !strings.Contains(err.Error(), "/bosun/secrets/a/b") {
		t.Fatalf("seal without keyring: %v, want an error naming the key", err)
	}
}

func TestKeyring_primaryEncryptsEveryKeyDecrypts(t *testing.T) {
	old, keys := testKeyring(t, "old")
	next, newKeys := testKeyring(t, "new")
	both, err := NewKeyring("both", newKeys[0], keys[0])
	if err != nil {
		t.Fatal(err)
	}
	const key = "/bosun/desired"
	byOld, _ := old.seal(key, []byte(planted))
	byBoth, _ := both.seal(key, []byte(planted))
	if name, _, _ := envelopeKey(byBoth); name != "new" {
		t.Errorf("sealed with %q, want the primary, new", name)
	}
	for _, v := range [][]byte{byOld, byBoth} {
		if got, err := both.open(key, v); err != nil || string(got) != planted {
			t.Errorf("open = %q, %v", got, err)
		}
	}
	if _, err := next.open(key, byOld); err == nil {
		t.Error("a keyring without the old key opened its value")
	}
}

func TestKey_printsItsNameOnly(t *testing.T) {
	_, keys := testKeyring(t, "k1")
	k := keys[0]
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("key", "key", k)
	b64 := base64.StdEncoding.EncodeToString(k.Secret)
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k), fmt.Sprint([]Key{k}), logs.String()} {
		if !strings.Contains(s, "k1") || strings.Contains(s, b64) || strings.Contains(s, string(k.Secret)) {
			t.Errorf("printed key %q: want its name, never its bytes", s)
		}
	}
}

func TestParseKeys_errorsNameFileAndLineNeverTheKey(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	short := base64.StdEncoding.EncodeToString([]byte(planted))
	for _, tc := range []struct{ content, want string }{
		{"", "keys: no encryption key"},
		{"# only a comment\n\n", "keys: no encryption key"},
		{"k1 " + good + "\n", "keys:1: not name:base64"},
		{"\nk1:" + short + "\n", "keys:2: key k1: 21 bytes, want 32"},
		{"k1:" + planted + "!\n", "keys:1: key k1: not base64"},
		{"k1:" + good + "\nk1:" + good + "\n", "keys:2: key k1 is already named on line 1"},
		{":" + good + "\n", `keys:1: key name ""`},
		{"a:b:" + good + "\n", "keys:1: key a: not base64"},
		{"-k:" + good + "\n", `keys:1: key name "-k"`},
	} {
		_, err := ParseKeys("keys", []byte(tc.content))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseKeys(%q) = %v, want %q", tc.content, err, tc.want)
			continue
		}
		noLeak(t, "the error", err.Error())
		if strings.Contains(err.Error(), good) {
			t.Errorf("error %q shows a key", err)
		}
	}
	keys, err := ParseKeys("keys", []byte("# keys\n  k1 : "+good+"  \n\nk2:"+good+"\n"))
	if err != nil || len(keys) != 2 || keys[0].Name != "k1" || keys[1].Name != "k2" {
		t.Fatalf("ParseKeys = %v, %v", keys, err)
	}
	again, err := ParseKeys("again", MarshalKeys(keys))
	if err != nil || len(again) != 2 || again[0].Name != "k1" || !bytes.Equal(again[1].Secret, keys[1].Secret) {
		t.Errorf("MarshalKeys does not read back: %v, %v", again, err)
	}
}

func TestKeyFile_createRotateRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "secrets.key")
	if _, err := LoadKeyring(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadKeyring(missing) = %v, want fs.ErrNotExist", err)
	}
	first, err := CreateKeyFile(path, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("key file directory mode = %v, %v; want 0700", fi.Mode(), err)
	}
	if !strings.HasPrefix(first.Primary(), "key-20250314-") {
		t.Errorf("generated key name %q, want key-20250314-<hex>", first.Primary())
	}
	if _, err := CreateKeyFile(path, testNow); err == nil {
		t.Error("CreateKeyFile replaced an existing key file")
	}
	loaded, err := LoadKeyring(path)
	if err != nil || loaded.Primary() != first.Primary() {
		t.Fatalf("LoadKeyring = %v, %v", loaded, err)
	}
	sealed, _ := first.seal("/bosun/desired", []byte(planted))
	if got, err := loaded.open("/bosun/desired", sealed); err != nil || string(got) != planted {
		t.Fatalf("the loaded key does not open what the created one sealed: %v", err)
	}

	if _, err := AddKey(filepath.Join(dir, "missing.key"), "", false, testNow); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("AddKey(missing file) = %v, want fs.ErrNotExist", err)
	}
	second, err := AddKey(path, "", false, testNow.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	third, err := AddKey(path, "spare", true, testNow)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := LoadKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(kr.Names(), ","), second+","+first.Primary()+","+third; got != want {
		t.Errorf("keys = %s, want %s (the new primary first, a secondary last)", got, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("rewritten key file mode = %v, want 0600", fi.Mode())
	}
	if _, err := AddKey(path, "spare", true, testNow); err == nil {
		t.Error("AddKey added a second key named spare")
	}
	if err := RemoveKey(path, second); err == nil || !strings.Contains(err.Error(), "primary") {
		t.Errorf("RemoveKey(primary) = %v, want a refusal", err)
	}
	if err := PromoteKey(path, "spare"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveKey(path, first.Primary()); err != nil {
		t.Fatal(err)
	}
	if err := RemoveKey(path, "nope"); err == nil {
		t.Error("RemoveKey(unknown) succeeded")
	}
	kr, _ = LoadKeyring(path)
	if got, want := strings.Join(kr.Names(), ","), "spare,"+second; got != want {
		t.Errorf("keys = %s, want %s", got, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the key file's directory holds %d entries, want the key file only (no temporary file left)", len(entries))
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyring(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("LoadKeyring(0644) = %v, want a refusal that says chmod 600", err)
	}
}

// FuzzKeyringOpen: whatever etcd holds at an encrypted key, opening it
// returns the plain value or an ErrCannotDecrypt, and never panics.
func FuzzKeyringOpen(f *testing.F) {
	kr, _ := testKeyring(f, "k1")
	sealed, _ := kr.seal("/bosun/secrets/a/b", []byte(planted))
	for _, seed := range [][]byte{sealed, []byte(`{"data":{}}`), []byte("k8s:enc:"), []byte("k8s:enc:aesgcm:v1:k1:"),
		[]byte("k8s:enc:aesgcm:v1:k1"), []byte("k8s:enc:aesgcm:v1::abc"), []byte("k8s:enc:secretbox:v1:k1:abc"), nil} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		got, err := kr.open("/bosun/secrets/a/b", value)
		if err == nil {
			if _, enc, _ := envelopeKey(value); !enc && !bytes.Equal(got, value) {
				t.Fatal("a plain value changed")
			}
			return
		}
		if !errors.Is(err, ErrCannotDecrypt) {
			t.Fatalf("error %v is not ErrCannotDecrypt", err)
		}
	})
}

// FuzzParseKeys: a key file of any content parses or fails with an error,
// never panics.
func FuzzParseKeys(f *testing.F) {
	f.Add([]byte("k1:" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"))
	f.Add([]byte("# c\n\nk:AAAA\n"))
	f.Add([]byte(":::\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseKeys("f", data)
		if err != nil {
			return
		}
		if _, err := NewKeyring("f", keys...); err != nil {
			t.Fatalf("ParseKeys accepted keys NewKeyring refuses: %v", err)
		}
	})
}
