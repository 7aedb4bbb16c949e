package manifest

import (
	"errors"
	"os"
	"testing"
)

// FuzzDecode pins that no input makes Decode panic, and that every error it
// reports names the file and a line.
func FuzzDecode(f *testing.F) {
	seed, err := os.ReadFile("../examples/seed/seed.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(seed), pod, deployment, service,
		pod + "---\n" + deployment + "---\n" + service,
		"--- {a: b}\n", "a: b: c\n", "- a\n", "apiVersion: v1\nkind: Pod\nmetadata: &a\n  name: *a\n",
		pod + "    resources:\n      limits:\n        cpu: [1]\n", "\xEF\xBB\xBF...\n%YAML 1.2\n---\n",
		// SOPS-encrypted documents, which without a Decrypter are errors.
		pod + "sops:\n  mac: x\n", pod + "---\n" + service + "sops: {}\n", "sops: 1\n---\n# only a comment\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Decode("f.yaml", data)
		if err == nil {
			if set == nil {
				t.Fatal("nil Set without error")
			}
			n := len(set.Pods) + len(set.Deployments) + len(set.Services)
			if len(set.Sources) != n {
				t.Fatalf("%d objects but %d sources", n, len(set.Sources))
			}
			for k, src := range set.Sources {
				if src.File != "f.yaml" || src.Line < 1 {
					t.Fatalf("source of %s is %v", k, src)
				}
			}
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error %T %v is not a non-empty Errors", err, err)
		}
		for _, e := range errs {
			if e.File != "f.yaml" || e.Line < 1 || e.Message == "" {
				t.Fatalf("error without file, line or message: %#v", e)
			}
		}
	})
}
