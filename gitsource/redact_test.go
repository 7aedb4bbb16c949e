package gitsource

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzRedact_secretNeverSurvives: whatever the message, none of the
// secret's forms (raw, query- or path-escaped, or as a URL's password)
// survives redact.
func FuzzRedact_secretNeverSurvives(f *testing.F) {
	f.Add("fetch https://bob:hunter2@git.example.com/r.git: 401 hunter2", "hunter2")
	f.Add("**[r", "*[r")
	f.Add("aaaa", "aa")
	f.Add("x", "p@ss:w/rd %zz")
	f.Add(`"a b"`, "a b")
	f.Fuzz(func(t *testing.T, msg, secret string) {
		if secret == "" {
			return
		}
		for _, m := range []string{
			msg,
			msg + secret + msg,
			msg + url.QueryEscape(secret) + url.PathEscape(secret) + msg,
			"fetch https://u:" + userinfoEscape(secret) + "@h/r.git: " + msg,
		} {
			if out := redact(m, secret); strings.Contains(out, secret) {
				t.Fatalf("redact(%q, %q) = %q still holds the secret", m, secret, out)
			}
		}
	})
}

// FuzzRedact_urlPasswordNeverSurvives: a URL's password is hidden by redact
// alone, with no secret given, wherever the URL sits in free text.
func FuzzRedact_urlPasswordNeverSurvives(f *testing.F) {
	f.Add("fetch ", "bob", "hunter2", ": 401")
	f.Add(`"`, "", "p@ss:w/rd", `"`)
	f.Add("x://a:", "u", "pw", "@x")
	f.Add("", "a b", "c d#e?f", "")
	f.Fuzz(func(t *testing.T, prefix, user, pass, suffix string) {
		u := &url.URL{Scheme: "https", User: url.UserPassword(user, pass), Host: "git.example.com", Path: "/r.git"}
		esc := userinfoEscape(pass)
		if esc == "" {
			return
		}
		shown := u.String()
		// What redact should give: prefix, the URL with *** for the
		// password, suffix. A password that occurs there anyway (in the
		// prefix, say) proves nothing.
		want := prefix + strings.Replace(shown, ":"+esc+"@", ":***@", 1) + suffix
		if strings.Contains(want, esc) {
			return
		}
		msg := prefix + shown + suffix
		if out := redact(msg); strings.Contains(out, esc) {
			t.Fatalf("redact(%q) = %q still holds the password %q", msg, out, esc)
		}
	})
}

// FuzzConfig_urlPasswordNeverShown: a password typed into the URL, escaped
// or not, shows neither in the URL New logs and reports nor in its errors
// nor in Check's warnings.
func FuzzConfig_urlPasswordNeverShown(f *testing.F) {
	f.Add("hunter2")
	f.Add("1/x")
	f.Add("p@ss")
	f.Add("a#b")
	f.Add("%41")
	f.Fuzz(func(t *testing.T, pass string) {
		const user, rest = "deployer", "git.example.com/r.git"
		// A password that the redacted URL holds anyway (in the mask,
		// say: "**@") proves nothing.
		if len(pass) < 3 || strings.Contains("https://"+user+":@"+rest, pass) || strings.Contains("https://"+user+":***@"+rest, pass) {
			return
		}
		// Nor does one that the warnings hold whatever the password.
		baseline, _ := Check(Config{URL: "https://" + user + ":x@" + rest, Dir: "/d"})
		if strings.Contains(strings.Join(baseline, "\n"), pass) {
			return
		}
		for _, raw := range []string{
			"https://" + user + ":" + pass + "@" + rest,
			"https://" + user + ":" + url.PathEscape(pass) + "@" + rest,
			"https://" + user + ":" + userinfoEscape(pass) + "@" + rest,
		} {
			var shown []string
			s, err := validate(Config{URL: raw, Dir: "/d"})
			if err != nil {
				shown = append(shown, err.Error())
			} else {
				shown = append(shown, s.displayURL, s.URL, RedactURL(raw))
			}
			warnings, err := Check(Config{URL: raw, Dir: "/d"})
			if err != nil {
				shown = append(shown, err.Error())
			}
			shown = append(shown, warnings...)
			for _, m := range shown {
				if strings.Contains(m, pass) {
					t.Fatalf("URL %q: %q shows the password %q", raw, m, pass)
				}
			}
		}
	})
}
