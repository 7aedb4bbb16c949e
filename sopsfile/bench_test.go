package sopsfile_test

import (
	"fmt"
	"strings"
	"testing"

	"bosun/manifest"
	"bosun/sopsfile/sopstest"
)

// BenchmarkDecrypt_secret: one Secret file of sops' own making (two
// stringData values, one data value, a comment), decrypted and verified.
//
//	go test -run '^$' -bench Decrypt -benchmem ./sopsfile
func BenchmarkDecrypt_secret(b *testing.B) {
	dec := testdataDecrypter(b)
	data := readTestdata(b, "secret.enc.yaml")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dec.Decrypt("secret.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad_100EncryptedSecrets: a revision of 100 encrypted Secret
// files (data and stringData encrypted), loaded as the leader loads it.
func BenchmarkLoad_100EncryptedSecrets(b *testing.B) {
	id := sopstest.NewIdentity(b)
	files := map[string][]byte{}
	for i := range 100 {
		plain := strings.ReplaceAll(secretYAML, "name: db", fmt.Sprintf("name: db-%d", i))
		files[fmt.Sprintf("s%03d.yaml", i)] = sopstest.Encrypt(b, []byte(plain), sopstest.Options{EncryptedRegex: "^(data|stringData)$"}, id.Recipient)
	}
	pol := manifest.Policy{Decrypter: decrypterTB(b, id)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pol.LoadFiles(files); err != nil {
			b.Fatal(err)
		}
	}
}
