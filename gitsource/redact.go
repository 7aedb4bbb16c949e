package gitsource

import (
	"net/url"
	"regexp"
	"strings"
)

// urlUserinfoPassword matches the password part of the userinfo of a URL
// inside free text: scheme://user:password@.
var urlUserinfoPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s"']*):[^@/\s"']*@`)

// redact returns msg with every URL password replaced by *** and every
// occurrence of the given secrets (raw or URL-escaped) replaced by ***.
func redact(msg string, secrets ...string) string {
	msg = urlUserinfoPassword.ReplaceAllString(msg, "${1}:***@")
	for _, s := range secrets {
		if s == "" {
			continue
		}
		msg = strings.ReplaceAll(msg, s, "***")
		if esc := url.QueryEscape(s); esc != s {
			msg = strings.ReplaceAll(msg, esc, "***")
		}
		if esc := url.PathEscape(s); esc != s {
			msg = strings.ReplaceAll(msg, esc, "***")
		}
	}
	return msg
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
