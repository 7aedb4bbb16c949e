package sopsfile_test

import (
	"errors"
	"flag"
	"os"
	"strings"
	"testing"

	"bosun/manifest"
	"bosun/sopsfile"
	"bosun/sopsfile/sopstest"
)

var strictPanics = flag.Bool("sopsfile.strict-panics", false,
	"fail FuzzDecrypt on a panic inside sops (Decrypt recovers it): to find the inputs sops panics on")

// FuzzDecrypt feeds the leader's path for an encrypted file (the manifest
// loader with a Decrypter) files encrypted for the test key, and mutations
// of them: nothing may panic, every error is an Errors naming the file
// and a line, and a file that decrypts loads like any other.
func FuzzDecrypt(f *testing.F) {
	for _, name := range []string{"secret.enc.yaml", "whole.enc.yaml", "secret.enc.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	key, err := os.ReadFile("testdata/test.agekey")
	if err != nil {
		f.Fatal(err)
	}
	recipient := ""
	for _, l := range strings.Split(string(key), "\n") {
		if r, ok := strings.CutPrefix(l, "# public key: "); ok {
			recipient = r
		}
	}
	for _, tc := range []struct {
		plain string
		opts  sopstest.Options
	}{
		{secretYAML, sopstest.Options{}},
		{secretYAML + "---\n" + webUsingDB, sopstest.Options{EncryptedRegex: "^(data|stringData)$"}},
		{webUsingDB, sopstest.Options{UnencryptedSuffix: "_unencrypted"}},
		{"a: [1, 2.5, true, null, {b: c}]\n", sopstest.Options{}},
		{`{"kind": "Secret", "data": {"k": "dg=="}, "n": [1, 2]}`, sopstest.Options{JSON: true}},
	} {
		f.Add(sopstest.Encrypt(f, []byte(tc.plain), tc.opts, recipient))
	}
	f.Add([]byte("sops: {}\n"))
	f.Add([]byte("sops:\n  age: [{recipient: x, enc: y}]\n  mac: z\n  lastmodified: '2024-01-01T00:00:00Z'\n"))
	f.Add([]byte("- sops\n"))
	f.Add([]byte(`{"sops": [1]}`))
	dec := testdataDecrypter(f)
	pol := manifest.Policy{Decrypter: dec}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := dec.Decrypt("fuzz.yaml", data); errors.Is(err, sopsfile.ErrPanic) && *strictPanics {
			t.Fatalf("sops panicked: %v", err)
		}
		set, err := pol.Decode("fuzz.yaml", data)
		if err == nil {
			if set == nil {
				t.Fatal("nil Set without error")
			}
			for k, src := range set.Sources {
				if src.File != "fuzz.yaml" || src.Line < 1 {
					t.Fatalf("source of %s is %v", k, src)
				}
			}
			return
		}
		var errs manifest.Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error %T %v is not a non-empty Errors", err, err)
		}
		for _, e := range errs {
			if e.File != "fuzz.yaml" || e.Line < 1 || e.Message == "" {
				t.Fatalf("error without file, line or message: %#v", e)
			}
		}
	})
}
