package manifest

import (
	"bytes"
	"cmp"
	"slices"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
)

// Decrypter decrypts a file encrypted with SOPS: package sopsfile
// implements it with age identities (--sops-age-key-file). Decrypt returns
// the whole file's plaintext, in the same format and with the same
// documents in the same order, each without its "sops" key. Its errors must
// not carry a decrypted value.
type Decrypter interface {
	Decrypt(file string, data []byte) ([]byte, error)
}

// sopsKey is the top-level key under which SOPS keeps a document's
// metadata (recipients, MAC): its presence is what marks a document as
// encrypted, as Flux detects it.
const sopsKey = "sops"

// redactedValue replaces, in errors, a value that was encrypted in Git.
const redactedValue = "(encrypted value)"

// encrypted reports whether d is a mapping with a top-level "sops" key.
func (d *document) encrypted() bool {
	if !bytes.Contains(d.text, []byte(sopsKey)) {
		return false // the common case, without parsing
	}
	n, _ := child(d.node(), segment{key: sopsKey})
	return n != nil
}

// onlyMetadata reports whether an encrypted document holds nothing but its
// sops metadata (sops keeps a comment-only document that way).
func (d *document) onlyMetadata() bool {
	n := deref(d.node())
	return n != nil && n.Kind == yamlv3.MappingNode && len(n.Content) == 2 && n.Content[0].Value == sopsKey
}

// decodeEncrypted loads a file of which some document carries sops
// metadata. sops encrypts a file whole (one MAC over all its documents),
// so the file is decrypted whole, then each plaintext document is decoded
// as any other, its lines mapped back to the encrypted document's (keys
// are not encrypted, so every field is on a line of the file in Git).
func (l *loader) decodeEncrypted(file string, data []byte, docs []*document) {
	// Whatever goes wrong, the objects the file may define are not
	// reported missing too: the one error is the file's.
	undecrypted := func() {
		for _, d := range docs {
			if d.encrypted() {
				l.rememberEncrypted(d)
			}
		}
	}
	var mixed bool
	for _, d := range docs {
		if !d.encrypted() {
			mixed = true
			l.errs = append(l.errs, Error{File: file, Line: d.first,
				Message: "a plain document in a file encrypted with SOPS: sops encrypts a file whole; keep plain documents in files of their own"})
		}
	}
	if mixed {
		undecrypted()
		return
	}
	if l.pol.Decrypter == nil {
		undecrypted()
		for _, d := range docs {
			switch {
			case d.onlyMetadata():
			case l.pol.SkipEncrypted:
				l.set.Encrypted = append(l.set.Encrypted, Source{File: d.file, Line: d.first})
			default:
				l.errs = append(l.errs, Error{File: file, Line: d.first,
					Message: "encrypted with SOPS, and no key was given to decrypt it (--sops-age-key-file)"})
			}
		}
		return
	}
	plain, err := l.pol.Decrypter.Decrypt(file, data)
	if err != nil {
		undecrypted()
		l.errs = append(l.errs, Error{File: file, Line: docs[0].first, Message: "cannot decrypt (SOPS): " + err.Error()})
		return
	}
	enc := slices.DeleteFunc(slices.Clone(docs), (*document).onlyMetadata)
	var dec []*document
	for _, p := range splitDocuments(file, plain) {
		if n := deref(p.node()); n != nil && n.Kind == yamlv3.MappingNode && len(n.Content) == 0 {
			continue // a comment-only document, kept by sops as {}
		}
		dec = append(dec, p)
	}
	if len(dec) != len(enc) {
		undecrypted()
		l.errs = append(l.errs, Error{File: file, Line: docs[0].first, Message: "decrypted (SOPS) into " +
			strconv.Itoa(len(dec)) + " documents, not the " + strconv.Itoa(len(enc)) + " of the file; is it what sops writes?"})
		return
	}
	for i, p := range dec {
		p.first = enc[i].first
		var secrets []string
		p.lines, secrets = mapLines(enc[i], p)
		if len(secrets) > 0 {
			if l.secrets == nil {
				l.secrets = map[string][]string{}
			}
			l.secrets[file] = append(l.secrets[file], secrets...)
		}
		l.decodeDocument(p)
	}
}

// rememberEncrypted remembers what an encrypted document that is not
// decrypted (no key, or a failure) defines, when that is written in plain
// text (sops --encrypted-regex '^(data|stringData)$' leaves apiVersion,
// kind and metadata alone), so that references to it are not reported
// missing.
func (l *loader) rememberEncrypted(d *document) {
	if d.onlyMetadata() {
		return
	}
	plainField := func(path ...string) (string, bool) {
		n := d.node()
		for _, p := range path {
			n, _ = child(n, segment{key: p})
		}
		if n == nil {
			return "", true
		}
		if n.Kind != yamlv3.ScalarNode || strings.HasPrefix(n.Value, "ENC[") {
			return "", false
		}
		return n.Value, true
	}
	apiVersion, ok1 := plainField("apiVersion")
	kind, ok2 := plainField("kind")
	name, ok3 := plainField("metadata", "name")
	namespace, ok4 := plainField("metadata", "namespace")
	if !ok1 || !ok2 || !ok3 || !ok4 || name == "" {
		l.unknownEncrypted = true
		return
	}
	if apiVersion == "v1" && (kind == KindSecret || kind == KindConfigMap) {
		if l.opaque == nil {
			l.opaque = map[ObjectKey]bool{}
		}
		l.opaque[ObjectKey{Kind: kind, Namespace: cmp.Or(namespace, "default"), Name: name}] = true
	}
}

// definedEncrypted reports whether a ConfigMap or Secret the loader did not
// load may be defined by an encrypted document it skipped.
func (l *loader) definedEncrypted(key ObjectKey) bool {
	return l.unknownEncrypted || l.opaque[key]
}

// lineMap maps lines of a decrypted document's text to lines of the
// encrypted file, sorted by text line.
type lineMap []struct{ text, file int }

// fileLine is the file line of the nearest mapped text line at or before
// textLine.
func (m lineMap) fileLine(textLine int) (int, bool) {
	i, found := slices.BinarySearchFunc(m, textLine, func(e struct{ text, file int }, t int) int { return cmp.Compare(e.text, t) })
	switch {
	case found:
		return m[i].file, true
	case i > 0:
		return m[i-1].file, true
	}
	return 0, false
}

// mapLines walks a decrypted document beside the encrypted one it came
// from (same keys, same order), pairing the line of each field in the
// plaintext with its line in the file, and collecting the values that
// were encrypted: errors must not show them. An object's identity
// (apiVersion, kind, metadata.name and namespace) is shown everywhere
// (status, plan, get) and is not collected.
func mapLines(enc, plain *document) (lineMap, []string) {
	var m lineMap
	var secrets []string
	add := func(text, encLine int) {
		if text > 0 && encLine > 0 {
			m = append(m, struct{ text, file int }{text, enc.fileLine(encLine)})
		}
	}
	var walk func(p, e *yamlv3.Node, path []string, depth int)
	walk = func(p, e *yamlv3.Node, path []string, depth int) {
		p, e = deref(p), deref(e)
		if p == nil || e == nil || depth > 100 {
			return
		}
		add(p.Line, e.Line)
		switch {
		case p.Kind == yamlv3.MappingNode && e.Kind == yamlv3.MappingNode:
			for i := 0; i+1 < len(p.Content); i += 2 {
				k := p.Content[i]
				ev, keyLine := child(e, segment{key: k.Value})
				if ev == nil {
					continue
				}
				add(k.Line, keyLine)
				walk(p.Content[i+1], ev, append(path, k.Value), depth+1)
			}
		case p.Kind == yamlv3.SequenceNode && e.Kind == yamlv3.SequenceNode:
			for i, item := range p.Content {
				if i < len(e.Content) {
					walk(item, e.Content[i], path, depth+1)
				}
			}
		case p.Kind == yamlv3.ScalarNode && e.Kind == yamlv3.ScalarNode:
			if strings.HasPrefix(e.Value, "ENC[") && p.Value != e.Value && !identityField(path) {
				secrets = append(secrets, p.Value)
			}
		}
	}
	walk(plain.node(), enc.node(), nil, 0)
	slices.SortStableFunc(m, func(a, b struct{ text, file int }) int { return cmp.Compare(a.text, b.text) })
	m = slices.CompactFunc(m, func(a, b struct{ text, file int }) bool { return a.text == b.text })
	return m, secrets
}

func identityField(path []string) bool {
	switch strings.Join(path, ".") {
	case "apiVersion", "kind", "metadata.name", "metadata.namespace":
		return true
	}
	return false
}

// redactErrors replaces, in the messages of errors of encrypted files,
// every value that was encrypted in Git: a whole-file-encrypted manifest's
// values (a Deployment's environment, say) must not reach status or
// history through an error message. Values of one or two characters are
// replaced only where quoted, so that "must be >= 1" keeps its meaning.
// Fields are paths of keys, which sops never encrypts.
func redactErrors(es Errors, secrets map[string][]string) {
	if len(secrets) == 0 {
		return
	}
	for file, vals := range secrets {
		slices.SortFunc(vals, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
		secrets[file] = slices.Compact(vals)
	}
	for i := range es {
		vals := secrets[es[i].File]
		for _, v := range vals {
			switch {
			case v == "":
			case len(v) >= 3:
				es[i].Message = strings.ReplaceAll(es[i].Message, v, redactedValue)
			default:
				es[i].Message = strings.ReplaceAll(es[i].Message, strconv.Quote(v), `"`+redactedValue+`"`)
			}
		}
	}
}
