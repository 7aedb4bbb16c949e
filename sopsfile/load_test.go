package sopsfile_test

// Tests of the manifest loader with real decryption: what the leader, `bosun
// plan` and `bosun validate` do with a revision holding SOPS files.

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"bosun/manifest"
	"bosun/sopsfile"
	"bosun/sopsfile/sopstest"
)

// The value planted in the files of testdata/, made with the sops command
// (sops 3.13.3) and the test-only key testdata/test.agekey.
const plantedCLI = "planted-secret-cli-7Hq2"

func testdataDecrypter(t testing.TB) *sopsfile.Decrypter {
	t.Helper()
	d, err := sopsfile.ReadKeyFile("testdata/test.agekey")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lineOf is the 1-based line of the first line of data containing s.
func lineOf(t *testing.T, data []byte, s string) int {
	t.Helper()
	for i, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("%q not found", s)
	return 0
}

const webUsingDB = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      volumes:
      - name: db
        secret: {secretName: db}
      containers:
      - name: web
        image: example/web:1
        env:
        - name: PASSWORD
          valueFrom:
            secretKeyRef: {name: db, key: password}
`

// TestLoad_filesOfTheSopsCommand: files encrypted by the sops command
// (Secret data only, a whole multi-document file, JSON) load with the key,
// with their values, and the Sources name the encrypted file's lines.
func TestLoad_filesOfTheSopsCommand(t *testing.T) {
	pol := manifest.Policy{Decrypter: testdataDecrypter(t)}
	secret, whole, js := readTestdata(t, "secret.enc.yaml"), readTestdata(t, "whole.enc.yaml"), readTestdata(t, "secret.enc.json")
	set, err := pol.LoadFiles(map[string][]byte{
		"secret.yaml": secret, "whole.yaml": whole, "json.yaml": js, "web.yaml": []byte(webUsingDB),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Secrets) != 3 || len(set.ConfigMaps) != 1 || len(set.Deployments) != 1 {
		t.Fatalf("loaded %d secrets, %d configmaps, %d deployments", len(set.Secrets), len(set.ConfigMaps), len(set.Deployments))
	}
	byName := map[string]map[string][]byte{}
	for _, s := range set.Secrets {
		byName[s.Name] = s.Data
	}
	if got := string(byName["db"]["password"]); got != plantedCLI {
		t.Errorf("db password %q", got)
	}
	if got := string(byName["db"]["token"]); got != plantedCLI {
		t.Errorf("db token (data, base64 in Git) %q", got)
	}
	if got := string(byName["db"]["config.ini"]); !strings.Contains(got, "password = "+plantedCLI+"\n") {
		t.Errorf("db config.ini %q", got)
	}
	if got := string(byName["api"]["key"]); got != plantedCLI {
		t.Errorf("api key %q", got)
	}
	if got := string(byName["json-secret"]["password"]); got != plantedCLI {
		t.Errorf("json-secret password %q", got)
	}
	if got := set.ConfigMaps[0].Data["mode"]; got != "fast" {
		t.Errorf("settings mode %q", got)
	}
	for key, want := range map[manifest.ObjectKey]manifest.Source{
		{Kind: manifest.KindSecret, Namespace: "shop", Name: "db"}:             {File: "secret.yaml", Line: 2},
		{Kind: manifest.KindSecret, Namespace: "default", Name: "api"}:         {File: "whole.yaml", Line: 1},
		{Kind: manifest.KindConfigMap, Namespace: "default", Name: "settings"}: {File: "whole.yaml"},
		{Kind: manifest.KindSecret, Namespace: "default", Name: "json-secret"}: {File: "json.yaml", Line: 1},
		{Kind: manifest.KindDeployment, Namespace: "shop", Name: "web"}:        {File: "web.yaml", Line: 1},
	} {
		if key.Name == "settings" {
			// The third document of whole.yaml starts after the second's
			// separator.
			want.Line = nthDocumentLine(t, whole, 3)
		}
		if got := set.Sources[key]; got != want {
			t.Errorf("source of %s: %v, want %v", key, got, want)
		}
	}
}

// nthDocumentLine is the first line of the n-th document (1-based) of a
// YAML stream.
func nthDocumentLine(t *testing.T, data []byte, n int) int {
	t.Helper()
	doc := 1
	for i, l := range strings.Split(string(data), "\n") {
		if l == "---" {
			doc++
			continue
		}
		if doc == n && strings.TrimSpace(l) != "" {
			return i + 1
		}
	}
	t.Fatalf("no document %d", n)
	return 0
}

// TestLoad_errorsNameLinesOfTheEncryptedFile: an invalid field of a
// decrypted document is reported on its line in the file in Git, though
// the plaintext's lines differ (a multi-line value is one line encrypted).
func TestLoad_errorsNameLinesOfTheEncryptedFile(t *testing.T) {
	id := sopstest.NewIdentity(t)
	plain := strings.Replace(secretYAML, "stringData:\n", "stringData:\n  config.ini: |\n    a = 1\n    b = 2\n    c = 3\n  bad/key: x\n", 1) +
		"bogus: 1\n"
	for _, opts := range []sopstest.Options{{}, {EncryptedRegex: "^(data|stringData)$"}} {
		enc := sopstest.Encrypt(t, []byte(plain), opts, id.Recipient)
		_, err := manifest.Policy{Decrypter: decrypter(t, id)}.Decode("s.yaml", enc)
		var errs manifest.Errors
		if !errors.As(err, &errs) || len(errs) != 2 {
			t.Fatalf("got %v, want 2 Errors", err)
		}
		want := []string{
			"s.yaml:" + itoa(lineOf(t, enc, "bad/key:")) + ": stringData[bad/key]: ",
			"s.yaml:" + itoa(lineOf(t, enc, "bogus:")) + ": bogus: unknown field",
		}
		for i, e := range errStrings(errs) {
			if !strings.HasPrefix(e, want[i]) {
				t.Errorf("error %q, want it to start with %q; file:\n%s", e, want[i], enc)
			}
		}
	}
}

func errStrings(errs manifest.Errors) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestLoad_errorsHideEncryptedValues: the errors of a whole-file-encrypted
// manifest do not show the values that were encrypted, though the same
// manifest in plain text gets messages quoting them.
func TestLoad_errorsHideEncryptedValues(t *testing.T) {
	id := sopstest.NewIdentity(t)
	pod := `apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  volumes:
  - name: v
    hostPath: {path: /` + planted + `}
  containers:
  - name: app
    image: example/app:1
    env:
    - {name: A, valueFrom: {secretKeyRef: {name: ` + planted + `, key: k}}}
`
	_, plainErr := manifest.Decode("p.yaml", []byte(pod))
	if plainErr == nil || !strings.Contains(plainErr.Error(), planted) {
		t.Fatalf("the plain manifest's errors do not quote the value, the test proves nothing: %v", plainErr)
	}
	enc := sopstest.Encrypt(t, []byte(pod), sopstest.Options{}, id.Recipient)
	_, err := manifest.Policy{Decrypter: decrypter(t, id)}.Decode("p.yaml", enc)
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), planted) {
		t.Fatalf("errors show the encrypted value:\n%v", err)
	}
	if !strings.Contains(err.Error(), "(encrypted value)") || !strings.Contains(err.Error(), "p.yaml:"+itoa(lineOf(t, enc, "path: ENC["))) {
		t.Errorf("errors:\n%v", err)
	}
}

// TestLoad_failuresRejectTheRevision: a file that cannot be decrypted
// makes the whole load fail with the file and its line, and a reason.
func TestLoad_failuresRejectTheRevision(t *testing.T) {
	id := sopstest.NewIdentity(t)
	enc := sopstest.Encrypt(t, []byte("# leading comment\n"+secretYAML), sopstest.Options{EncryptedRegex: "^(data|stringData)$"}, id.Recipient)
	tampered := []byte(strings.Replace(string(enc), "type: Opaque", "type: opaque", 1))
	files := func(secret []byte) map[string][]byte {
		return map[string][]byte{"a.yaml": []byte(webUsingDB), "secret.yaml": secret}
	}
	for _, tc := range []struct {
		name string
		pol  manifest.Policy
		data []byte
		want string
	}{
		{"no key", manifest.Policy{}, enc,
			"secret.yaml:2: encrypted with SOPS, and no key was given to decrypt it (--sops-age-key-file)"},
		{"wrong key", manifest.Policy{Decrypter: decrypter(t, sopstest.NewIdentity(t))}, enc,
			"secret.yaml:2: cannot decrypt (SOPS): no matching age identity: the file is encrypted for " + id.Recipient},
		{"tampered", manifest.Policy{Decrypter: decrypter(t, id)}, tampered,
			"secret.yaml:2: cannot decrypt (SOPS): SOPS file does not verify: its MAC does not match its content"},
		{"malformed metadata", manifest.Policy{Decrypter: decrypter(t, id)}, []byte(secretYAML + "sops:\n  age: 3\n"),
			"secret.yaml:1: cannot decrypt (SOPS): malformed SOPS file"},
		{"a plain document beside encrypted ones", manifest.Policy{Decrypter: decrypter(t, id)}, append(append([]byte{}, enc...), "---\n"+secretYAML...),
			"secret.yaml:" + itoa(lineOf(t, enc, "version:")+2) + ": a plain document in a file encrypted with SOPS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := tc.pol.LoadFiles(files(tc.data))
			if set != nil || err == nil {
				t.Fatalf("loaded: %v", err)
			}
			// One error: the Deployment's reference to the Secret the
			// file defines is not reported too.
			if !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error:\n%v\nwant one, starting with:\n%s", err, tc.want)
			}
			if strings.Contains(err.Error(), planted) {
				t.Errorf("the error shows the value: %v", err)
			}
		})
	}
}

// TestLoad_withoutKeySkipsEncrypted: `bosun validate` without a key checks
// everything else, notes each encrypted document, and takes references to
// the Secrets they define as satisfied.
func TestLoad_withoutKeySkipsEncrypted(t *testing.T) {
	id := sopstest.NewIdentity(t)
	dataOnly := sopstest.Encrypt(t, []byte(secretYAML), sopstest.Options{EncryptedRegex: "^(data|stringData)$"}, id.Recipient)
	pol := manifest.Policy{SkipEncrypted: true}
	set, err := pol.LoadFiles(map[string][]byte{"web.yaml": []byte(webUsingDB), "secret.yaml": dataOnly})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Secrets) != 0 || len(set.Deployments) != 1 {
		t.Errorf("loaded %d secrets, %d deployments", len(set.Secrets), len(set.Deployments))
	}
	if want := (manifest.Source{File: "secret.yaml", Line: 1}); len(set.Encrypted) != 1 || set.Encrypted[0] != want {
		t.Errorf("Encrypted: %v, want [%v]", set.Encrypted, want)
	}

	// The Secret's name is readable: another missing Secret is still an
	// error.
	other := strings.ReplaceAll(webUsingDB, "name: db", "name: other")
	if _, err := pol.LoadFiles(map[string][]byte{"web.yaml": []byte(other), "secret.yaml": dataOnly}); err == nil ||
		!strings.Contains(err.Error(), "Secret shop/other does not exist") {
		t.Errorf("a reference to a missing Secret: %v", err)
	}
	// Whole-file encryption hides the name: any Secret may be defined.
	whole := sopstest.Encrypt(t, []byte(secretYAML), sopstest.Options{}, id.Recipient)
	set, err = pol.LoadFiles(map[string][]byte{"web.yaml": []byte(other), "secret.yaml": whole})
	if err != nil || len(set.Encrypted) != 1 {
		t.Fatalf("whole-file encrypted, without a key: %v, %v", err, set)
	}
	// Everything else is checked.
	if _, err := pol.LoadFiles(map[string][]byte{"web.yaml": []byte(webUsingDB + "  bogus: 1\n"), "secret.yaml": dataOnly}); err == nil ||
		!strings.Contains(err.Error(), "web.yaml:23: spec.bogus: unknown field") {
		t.Errorf("a plain error beside an encrypted file: %v", err)
	}
}

// TestLoad_readsGitFilesInPlace: LoadDir of a directory with an encrypted
// file decrypts in memory; the file on disk is not changed.
func TestLoad_readsGitFilesInPlace(t *testing.T) {
	id := sopstest.NewIdentity(t)
	dir := t.TempDir()
	enc := sopstest.Encrypt(t, []byte(secretYAML), sopstest.Options{EncryptedRegex: "^(data|stringData)$"}, id.Recipient)
	if err := os.WriteFile(filepath.Join(dir, "secret.yaml"), enc, 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := manifest.Policy{Decrypter: decrypter(t, id)}.LoadDir(dir, "")
	if err != nil || len(set.Secrets) != 1 || string(set.Secrets[0].Data["password"]) != planted {
		t.Fatalf("LoadDir: %v", err)
	}
	after, err := os.ReadFile(filepath.Join(dir, "secret.yaml"))
	if err != nil || string(after) != string(enc) {
		t.Fatalf("the file on disk changed: %v", err)
	}
}
