// Package sopsfile decrypts manifests encrypted with SOPS for age keys, in
// memory, as Flux's kustomize-controller does: the leader's loader of
// revisions (package manifest, through its Decrypter interface), `bosun
// plan` on the server and `bosun validate --sops-age-key-file` use it.
//
//	--sops-age-key-file ──ReadKeyFile──> *Decrypter (age identities, in memory)
//	manifest file with a top-level "sops" key ──Decrypt──> plaintext file ──> manifest decoding
//
// # Contract
//
// Decrypt takes a whole file, YAML (one or many documents: sops encrypts
// them together, under one MAC) or JSON, whose metadata sits under the
// top-level "sops" key, as `sops --encrypt --age RECIPIENT` writes it,
// whether it encrypted every value or only some (--encrypted-regex
// '^(data|stringData)$', --unencrypted-suffix and the like, which the
// metadata records). It returns the plaintext in the same format, or an
// error wrapping one of ErrNotEncrypted, ErrMalformed, ErrNoKey,
// ErrTampered or ErrPanic. It verifies the file's MAC, so a file changed
// after encryption (a value swapped, a plain field edited) is refused.
//
// Secrets stay secret: the plaintext exists only in the slice returned;
// nothing is written to disk or logged; no error carries a decrypted value
// (sops' own error texts, which may quote a value, are replaced by ours);
// errors name recipients (public keys) and never identities. Key file
// errors name the file and line, never the line's content.
//
// sops is known to panic on some malformed inputs; Decrypt recovers and
// returns ErrPanic naming the file, so a malicious file in Git cannot crash
// the leader. FuzzDecrypt runs the leader's path (manifest loading with a
// Decrypter) on encrypted files and mutations of them.
//
// # Which sops packages, and why
//
// sops' decrypt package, its stable API, takes age identities only from the
// process environment (SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD,
// which it runs) or ~/.config/sops/age/keys.txt, and its local key service
// also tries AWS, GCP, Azure, Vault, Huawei Cloud KMS and GnuPG. A
// multi-threaded server cannot set environment variables per call, and
// bosun decrypts with the identities it was given and nothing else. So
// Decrypt does what decrypt.DataWithFormat does with sops' lower-level
// packages: the YAML or JSON store loads the tree and metadata,
// Metadata.GetDataKeyWithKeyServices asks one key service of ours
// (ageOnly: age identities parsed once, applied to each age key with
// sops' age.ParsedIdentities; every other key type refused), then
// Tree.Decrypt and the MAC check. This is how Flux's kustomize-controller
// does it.
//
// Identities are X25519 (AGE-SECRET-KEY-1...) and hybrid post-quantum
// (AGE-SECRET-KEY-PQ-1...) age keys; plugin identities (which run a
// program) and SSH keys are refused.
//
// sops comes with process-wide side effects bosun cannot turn off: its
// audit package reads /etc/sops/audit.yaml when the program starts (and
// then reports decryptions to the PostgreSQL database it names); bosun
// silences sops' loggers, which write to stderr, on first use.
package sopsfile
