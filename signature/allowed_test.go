package signature

import (
	"strings"
	"testing"
	"time"
)

const edKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"

func TestParseAllowedSigners(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = time.FixedZone("CET", 3600)
	}
	tests := []struct {
		name    string
		line    string
		want    AllowedSigner // File, Line and Key not compared
		wantErr string
	}{
		{name: "plain", line: "alice@example.com " + edKey, want: AllowedSigner{Principals: "alice@example.com"}},
		{name: "comment after key", line: "alice@example.com " + edKey + " alice's laptop", want: AllowedSigner{Principals: "alice@example.com"}},
		{name: "several principals", line: "alice@example.com,*@ops.example.com " + edKey, want: AllowedSigner{Principals: "alice@example.com,*@ops.example.com"}},
		{name: "quoted principals", line: `"alice smith@example.com" ` + edKey, want: AllowedSigner{Principals: "alice smith@example.com"}},
		{name: "tabs", line: "alice@example.com\t" + edKey, want: AllowedSigner{Principals: "alice@example.com"}},
		{name: "namespaces", line: `alice@example.com namespaces="git,file" ` + edKey, want: AllowedSigner{Principals: "alice@example.com", Namespaces: "git,file"}},
		{name: "option case", line: `alice@example.com NAMESPACES="git" ` + edKey, want: AllowedSigner{Principals: "alice@example.com", Namespaces: "git"}},
		{name: "validity utc", line: `a valid-after="20260101Z",valid-before="202612312359Z" ` + edKey,
			want: AllowedSigner{Principals: "a", ValidAfter: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ValidBefore: time.Date(2026, 12, 31, 23, 59, 0, 0, time.UTC)}},
		{name: "validity local", line: `a valid-before="20260601120000" ` + edKey,
			want: AllowedSigner{Principals: "a", ValidBefore: time.Date(2026, 6, 1, 12, 0, 0, 0, berlin)}},
		{name: "all options", line: `a namespaces="git",valid-after="20250101Z",valid-before="20300101Z" ` + edKey,
			want: AllowedSigner{Principals: "a", Namespaces: "git", ValidAfter: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), ValidBefore: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}},

		{name: "no key", line: "alice@example.com", wantErr: "no key after the principals"},
		{name: "bad key", line: "alice@example.com ssh-ed25519 AAAAbogus", wantErr: "no valid public key"},
		{name: "key only", line: edKey, wantErr: "no valid public key"},
		{name: "cert authority", line: "*@example.com cert-authority " + edKey, wantErr: "cert-authority: SSH certificates are not supported"},
		{name: "unknown option", line: `a no-touch-required ` + edKey, wantErr: `unknown option "no-touch-required"`},
		{name: "unquoted value", line: `a namespaces=git ` + edKey, wantErr: "option namespaces: the value must be in double quotes"},
		{name: "empty namespaces", line: `a namespaces="" ` + edKey, wantErr: "option namespaces: empty"},
		{name: "bad time", line: `a valid-before="2026-01-01" ` + edKey, wantErr: `option valid-before: "2026-01-01": want YYYYMMDD`},
		{name: "bad date", line: `a valid-before="20261399" ` + edKey, wantErr: "option valid-before:"},
		{name: "letters in time", line: `a valid-after="2026010A" ` + edKey, wantErr: "not a time"},
		{name: "window inverted", line: `a valid-after="20270101Z",valid-before="20260101Z" ` + edKey, wantErr: "valid-before is not after valid-after"},
		{name: "option twice", line: `a namespaces="git",namespaces="file" ` + edKey, wantErr: "option namespaces given twice"},
		{name: "unterminated quote", line: `"alice ` + edKey, wantErr: "unterminated quote"},
		{name: "empty quoted principals", line: `"" ` + edKey, wantErr: "empty principals"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := "# comment\n\n  " + tc.line + "\n"
			got, err := ParseAllowedSigners("/keys/allowed_signers", []byte(data), berlin)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "/keys/allowed_signers:3: ") {
					t.Fatalf("error %q does not start with file:line", err)
				}
				if got != nil {
					t.Fatalf("entries returned with an error: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("got %d entries, want 1", len(got))
			}
			g := got[0]
			if g.File != "/keys/allowed_signers" || g.Line != 3 || g.Key == nil {
				t.Errorf("File, Line, Key = %q, %d, %v", g.File, g.Line, g.Key)
			}
			if g.Principals != tc.want.Principals || g.Namespaces != tc.want.Namespaces ||
				!g.ValidAfter.Equal(tc.want.ValidAfter) || !g.ValidBefore.Equal(tc.want.ValidBefore) {
				t.Errorf("got %+v\nwant %+v", g, tc.want)
			}
		})
	}
}

func TestParseAllowedSigners_reportsEveryBadLine(t *testing.T) {
	data := "a " + edKey + "\nb\nc ssh-rsa AAAA\nd " + edKey + "\n"
	_, err := ParseAllowedSigners("as", []byte(data), nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"as:2: ", "as:3: "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestMatchList(t *testing.T) {
	for _, tc := range []struct {
		s, list string
		want    bool
	}{
		{"git", "git", true},
		{"git", "file,git", true},
		{"git", "file", false},
		{"git", "*", true},
		{"git", "g?t", true},
		{"git", "g*", true},
		{"git", "*,!git", false},
		{"git", "!file", false},
		{"git", "gi", false},
		{"git", "*t*", true},
		{"git", "", false},
	} {
		if got := matchList(tc.s, tc.list); got != tc.want {
			t.Errorf("matchList(%q, %q) = %v, want %v", tc.s, tc.list, got, tc.want)
		}
	}
}

// FuzzParseAllowedSigners feeds arbitrary files to the parser: it must not
// panic, and what it accepts must be usable (a key, principals, a line).
func FuzzParseAllowedSigners(f *testing.F) {
	for _, seed := range []string{
		"alice@example.com " + edKey + "\n",
		"# c\n\n\"a b\" namespaces=\"git\",valid-after=\"20260101Z\" " + edKey + " c\n",
		"a cert-authority " + edKey,
		"a valid-before=\"2026\" " + edKey,
		"\"unterminated",
		"a namespaces=\"\\\"\" " + edKey,
		"a\n" + edKey,
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseAllowedSigners("f", data, time.UTC)
		if err != nil {
			if got != nil {
				t.Fatal("entries returned with an error")
			}
			if !strings.HasPrefix(err.Error(), "f:") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for _, a := range got {
			if a.Key == nil || a.Principals == "" || a.Line < 1 {
				t.Fatalf("accepted an unusable entry %+v", a)
			}
		}
	})
}
