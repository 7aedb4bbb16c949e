package api

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func hashHex(token string) string {
	h := HashToken(token)
	return hex.EncodeToString(h[:])
}

func TestParseTokens_readsRolesNamesAndHashes(t *testing.T) {
	in := "# the team's tokens\n\n" +
		"admin:alice:sha256:" + hashHex("a-token") + "\n" +
		"  read-only:ci.deploy@build-1:sha256:" + strings.ToUpper(hashHex("c-token")) + "  \n" +
		"# read-only:old:sha256:" + hashHex("old") + "\n"
	got, err := ParseTokens("tokens", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Role != RoleAdmin || got[0].Name != "alice" || got[0].Hash != HashToken("a-token") ||
		got[1].Role != RoleReadOnly || got[1].Name != "ci.deploy@build-1" || got[1].Hash != HashToken("c-token") {
		t.Fatalf("tokens = %+v", got)
	}
	if line := got[0].Line(); line != "admin:alice:sha256:"+hashHex("a-token") {
		t.Errorf("Line() = %s", line)
	}
	again, err := ParseTokens("tokens", strings.NewReader(got[1].Line()))
	if err != nil || again[0] != got[1] {
		t.Errorf("Line() does not parse back: %v %v", again, err)
	}
}

// TestParseTokens_errorsNameFileAndLineNeverTheToken: every bad line is
// reported, with file:line, and no error quotes the line: a token pasted
// where its hash or name belongs stays out of the logs.
func TestParseTokens_errorsNameFileAndLineNeverTheToken(t *testing.T) {
	const planted = "bosun_planted-secret-9a8b7c6d5e"
	good := "sha256:" + hashHex(planted)
	for _, tc := range []struct {
		line, want string
	}{
		{planted, "tokens:2: want role:name:sha256:<hex>"},
		{"admin:alice:" + planted, "tokens:2: hash: want sha256: and 64 hex digits"},
		{"admin:alice:sha256:" + planted, "tokens:2: hash: want sha256: and 64 hex digits"},
		{"admin:alice:sha256:" + strings.Repeat("z", 64), "tokens:2: hash: not hex"},
		{planted + ":alice:" + good, "tokens:2: role: want admin or read-only"},
		{"root:alice:" + good, "tokens:2: role: want admin or read-only"},
		{"admin:" + planted + " x:" + good, "tokens:2: name: want letters, digits"},
		{"admin::" + good, "tokens:2: name: want 1 to 64"},
		{"admin:" + strings.Repeat("n", 65) + ":" + good, "tokens:2: name: want 1 to 64"},
		{"admin:alice:" + good + "\nread-only:alice:sha256:" + hashHex("x"), "tokens:3: name: the same as line 2's"},
		{"admin:alice:" + good + "\nread-only:bob:" + good, "tokens:3: hash: the same as line 2's"},
		{strings.Repeat("x", 5000), "tokens:2: longer than 4096 bytes"},
	} {
		_, err := ParseTokens("tokens", strings.NewReader("# header\n"+tc.line+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("line %.40q: err %v, want %q", tc.line, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), planted) || strings.Contains(err.Error(), "bosun_planted") {
			t.Errorf("line %.40q: the error quotes the token: %v", tc.line, err)
		}
	}
	// Every bad line at once.
	_, err := ParseTokens("/etc/bosun/tokens", strings.NewReader("root:a:"+good+"\n\nadmin:b:sha256:1\n"))
	if err == nil || !strings.Contains(err.Error(), "/etc/bosun/tokens:1: role") || !strings.Contains(err.Error(), "/etc/bosun/tokens:3: hash") {
		t.Errorf("two bad lines: %v", err)
	}
}

// secretish are runs of token characters long enough to be a secret.
var secretish = regexp.MustCompile(`[A-Za-z0-9_+/=.@-]{12,}`)

// FuzzParseTokens: no input crashes the parser, what it accepts prints
// back as the same lines, and no error quotes a run of 12 token characters
// of the input (a token, or part of one).
func FuzzParseTokens(f *testing.F) {
	f.Add("admin:alice:sha256:" + hashHex("a") + "\n")
	f.Add("# c\n\nread-only:ci:sha256:" + hashHex("b") + "\nadmin:ci:sha256:" + hashHex("b"))
	f.Add("bosun_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("admin:bosun_AAAAAAAAAAAAAAAAAAAA:sha256:zz")
	f.Add("read-only:x:sha256:" + strings.Repeat("0", 63) + "\r\n")
	f.Add(":::\n::\n:\x00:\xff")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseTokens("f", strings.NewReader(in))
		if err != nil {
			msg := strings.ReplaceAll(err.Error(), "role:name:sha256:<hex>", "")
			for _, run := range secretish.FindAllString(in, -1) {
				if strings.Contains(msg, run) {
					t.Fatalf("error quotes %q of the input: %v", run, err)
				}
			}
			return
		}
		var lines []string
		for _, tok := range got {
			if tok.Role != RoleAdmin && tok.Role != RoleReadOnly || checkName(tok.Name) != nil {
				t.Fatalf("accepted %+v", tok)
			}
			lines = append(lines, tok.Line())
		}
		again, err := ParseTokens("f", strings.NewReader(strings.Join(lines, "\n")))
		if err != nil || len(again) != len(got) {
			t.Fatalf("accepted tokens do not parse back: %v", err)
		}
		for i := range got {
			if again[i] != got[i] {
				t.Fatalf("token %d: %+v, then %+v", i, got[i], again[i])
			}
		}
	})
}

func TestTokens_lookupAndReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("admin:alice:sha256:" + hashHex("tok-a") + "\n")
	var logs syncBuffer
	tokens, err := LoadTokens(path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if tok, ok := tokens.Lookup("tok-a", now); !ok || tok.Name != "alice" || tok.Role != RoleAdmin {
		t.Fatalf("lookup tok-a = %+v %v", tok, ok)
	}
	if _, ok := tokens.Lookup("tok-b", now); ok {
		t.Fatal("tok-b accepted before it is in the file")
	}
	// Add one, revoke the other: seen at the next request.
	write("read-only:bob:sha256:" + hashHex("tok-b") + "\n")
	if tok, ok := tokens.Lookup("tok-b", now); !ok || tok.Name != "bob" {
		t.Errorf("tok-b after the edit: %+v %v", tok, ok)
	}
	if _, ok := tokens.Lookup("tok-a", now); ok {
		t.Error("tok-a still accepted after it was removed")
	}
	// A bad edit changes nothing and is logged once.
	write("read-only:bob:sha256:" + hashHex("tok-b") + "\nadmin:carol:tok-c\n")
	for range 3 {
		if _, ok := tokens.Lookup("tok-b", now); !ok {
			t.Error("tok-b refused after a bad edit")
		}
	}
	if n := strings.Count(logs.String(), "api tokens file unusable"); n != 1 {
		t.Errorf("%d error lines for one bad edit, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), path+":2: hash") || strings.Contains(logs.String(), "tok-c") {
		t.Errorf("log of the bad edit:\n%s", logs.String())
	}
	write("admin:carol:sha256:" + hashHex("tok-c") + "\n")
	if _, ok := tokens.Lookup("tok-c", now); !ok {
		t.Error("tok-c refused once the file is fixed")
	}
	// Startup with a bad file is an error naming file:line.
	write("admin:dave\n")
	if _, err := LoadTokens(path, nil); err == nil || !strings.Contains(err.Error(), path+":1:") {
		t.Errorf("LoadTokens of a bad file: %v", err)
	}
	// nil accepts nothing.
	var none *Tokens
	if _, ok := none.Lookup("", now); ok {
		t.Error("nil Tokens accepted the empty token")
	}
}

func TestEnsureAdminToken_generatesOnceAndStoresOnlyTheHash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api", "tokens")
	token, err := EnsureAdminToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^bosun_[A-Za-z0-9_-]{43}$`).MatchString(token) {
		t.Errorf("token %q is not bosun_ and 43 base64url characters", token)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), token) || !strings.Contains(string(b), "admin:admin:sha256:"+hashHex(token)) {
		t.Errorf("tokens file:\n%s", b)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode().Perm(), err, want)
		}
	}
	tokens, err := LoadTokens(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok, ok := tokens.Lookup(token, time.Now()); !ok || tok.Role != RoleAdmin || tok.Name != "admin" {
		t.Errorf("generated token: %+v %v", tok, ok)
	}
	again, err := EnsureAdminToken(path)
	if err != nil || again != "" {
		t.Errorf("second call: %q, %v; want nothing", again, err)
	}
	if b2, _ := os.ReadFile(path); string(b2) != string(b) {
		t.Error("second call changed the file")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestNewToken_isRandom(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, err := NewToken()
		if err != nil || seen[tok] {
			t.Fatalf("NewToken = %q, %v (seen: %v)", tok, err, seen[tok])
		}
		seen[tok] = true
	}
}

// TestParseTokens_example: the example tokens file parses, and its hashes
// are of the tokens it names.
func TestParseTokens_example(t *testing.T) {
	f, err := os.Open("../examples/api-tokens/tokens")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ParseTokens(f.Name(), f)
	if err != nil {
		t.Fatal(err)
	}
	want := []Token{
		{Role: RoleAdmin, Name: "alice", Hash: HashToken("example-admin-token")},
		{Role: RoleReadOnly, Name: "ci", Hash: HashToken("example-ci-token")},
		{Role: RoleReadOnly, Name: "prometheus", Hash: HashToken("example-prometheus-token")},
	}
	if !sameTokens(got, want) {
		t.Errorf("example tokens = %+v", got)
	}
}

// BenchmarkTokens_lookup: what authenticating a request costs with a
// tokens file of 100 tokens (a stat of the file, a SHA-256, 100 constant
// time compares).
//
//	go test -run '^$' -bench BenchmarkTokens_lookup ./api
func BenchmarkTokens_lookup(b *testing.B) {
	path := filepath.Join(b.TempDir(), "tokens")
	var lines []string
	for i := range 100 {
		lines = append(lines, Token{Role: RoleReadOnly, Name: fmt.Sprintf("client-%d", i), Hash: HashToken(fmt.Sprintf("token-%d", i))}.Line())
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		b.Fatal(err)
	}
	tokens, err := LoadTokens(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().Add(time.Minute) // past the racily-clean window: no re-read
	for b.Loop() {
		if _, ok := tokens.Lookup("token-99", now); !ok {
			b.Fatal("not found")
		}
	}
}
