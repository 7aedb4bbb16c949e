package gitsource

import (
	"net/url"
	"strings"
)

// RedactURL returns raw (a URL, or any text holding URLs) with the password
// of every URL's userinfo replaced by ***: https://bob:***@host/r.git. Use
// it wherever the configured repository URL is shown.
func RedactURL(raw string) string { return redact(raw) }

// redact returns msg with every URL password replaced by *** and every
// occurrence of the given secrets, raw or URL-escaped, replaced too.
func redact(msg string, secrets ...string) string {
	msg = redactURLPasswords(msg)
	for _, s := range secrets {
		if s == "" {
			continue
		}
		// The escaped forms first, the raw one last: whatever a
		// replacement leaves, the raw secret is gone.
		forms := []string{url.QueryEscape(s), url.PathEscape(s), userinfoEscape(s)}
		for _, f := range forms {
			if f != s {
				msg = replaceAllOf(msg, f)
			}
		}
		msg = replaceAllOf(msg, s)
	}
	return msg
}

// userinfoEscape is how a URL writes s as its password.
func userinfoEscape(s string) string {
	return strings.TrimPrefix(url.UserPassword("", s).String(), ":")
}

// replaceAllOf replaces secret in msg until no occurrence is left: a
// replacement next to what is left of an overlapping occurrence could form
// a new one ("**[r" less "*[r" is "*[redacted]", which holds "*[r"). See maskFor for
// why it ends.
func replaceAllOf(msg, secret string) string {
	mask := maskFor(secret)
	for strings.Contains(msg, secret) {
		msg = strings.ReplaceAll(msg, secret, mask)
	}
	return msg
}

// maskFor is what replaces secret. Each round of replaceAllOf then strictly
// lowers a count that cannot go below zero, so it ends: a secret without
// '*' is masked with "***", removing at least one non-'*' byte per
// occurrence and adding none; a secret with a '*' is masked with
// "[redacted]", removing at least one '*' and adding none.
func maskFor(secret string) string {
	if strings.Contains(secret, "*") {
		return "[redacted]"
	}
	return "***"
}

// redactURLPasswords replaces the password of the userinfo of every URL in
// free text with ***. A URL's authority starts after "://" and ends at the
// first '/', '?', '#', whitespace, or character net/url refuses in a
// userinfo ('"', '`', '<', '>', '\\'; not "'", which it allows). Its
// userinfo is what comes before the last '@' in it (as net/url parses it,
// so an unescaped '@' in a password is covered), and the password is what
// follows the first ':' of the userinfo. A userinfo without ':' (a user
// name alone) is kept.
func redactURLPasswords(msg string) string {
	if !strings.Contains(msg, "://") {
		return msg
	}
	var b strings.Builder
	rest := msg
	for {
		i := strings.Index(rest, "://")
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		b.WriteString(rest[:i+3])
		rest = rest[i+3:]
		end := strings.IndexFunc(rest, endsAuthority)
		if end < 0 {
			end = len(rest)
		}
		authority := rest[:end]
		at := strings.LastIndexByte(authority, '@')
		if at < 0 {
			continue
		}
		colon := strings.IndexByte(authority[:at], ':')
		if colon < 0 {
			continue
		}
		b.WriteString(authority[:colon+1])
		b.WriteString("***@")
		// Go on right after the '@': the rest of this authority may
		// start another URL ("://:@https://u:p@h" holds two).
		rest = rest[at+1:]
	}
}

func endsAuthority(r rune) bool {
	switch r {
	case '/', '?', '#', '"', '`', '<', '>', '\\', ' ', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return false
}

// redactedError carries a scrubbed message; Unwrap keeps errors.Is working
// for sentinels such as context.Canceled or transport.ErrAuthenticationRequired.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// scrub wraps err so that its message is redacted of the secrets.
func scrub(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	return &redactedError{msg: strings.TrimSpace(redact(err.Error(), secrets...)), err: err}
}
