package signature

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// AllowedSigner is one line of an OpenSSH allowed_signers file (see
// ssh-keygen(1), ALLOWED SIGNERS): who may sign, with which key, for which
// namespaces and when.
type AllowedSigner struct {
	// File and Line locate the entry, for messages.
	File string
	Line int
	// Principals is the principals field as written: a comma-separated
	// pattern list such as "alice@example.com" or "*@example.com".
	Principals string
	// Namespaces is the namespaces="..." option as a pattern list; empty
	// when the line has none (any namespace).
	Namespaces string
	// ValidAfter and ValidBefore bound when signatures by the key are
	// trusted; zero means unbounded.
	ValidAfter, ValidBefore time.Time
	Key                     ssh.PublicKey
}

// where is "file:line" of the entry.
func (a *AllowedSigner) where() string { return fmt.Sprintf("%s:%d", a.File, a.Line) }

// ParseAllowedSigners reads an allowed_signers file: one entry a line,
//
//	principals [options] key-type base64-key [comment]
//
// with blank lines and lines starting with # ignored. Principals may be
// double-quoted. The options are those of OpenSSH: namespaces="git,file",
// valid-after="YYYYMMDD[HHMM[SS]][Z]", valid-before="..." (times without
// Z are in loc; nil means UTC). cert-authority (keys that sign SSH
// certificates) is not supported and is an error, like any unknown option.
// Every bad line is reported, each error naming name:line; no entry is
// returned when any line is bad.
func ParseAllowedSigners(name string, data []byte, loc *time.Location) ([]AllowedSigner, error) {
	if loc == nil {
		loc = time.UTC
	}
	var out []AllowedSigner
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		a, err := parseSignerLine(line, loc)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", name, n, err))
			continue
		}
		a.File, a.Line = name, n
		out = append(out, a)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s:%d: %w", name, n+1, err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

const lineFormat = "want: principals [options] key-type base64-key"

func parseSignerLine(line string, loc *time.Location) (AllowedSigner, error) {
	var a AllowedSigner
	principals, rest, err := firstField(line)
	if err != nil {
		return a, err
	}
	if principals == "" {
		return a, errors.New("empty principals (" + lineFormat + ")")
	}
	if strings.TrimSpace(rest) == "" {
		return a, errors.New("no key after the principals (" + lineFormat + ")")
	}
	a.Principals = principals
	// The rest is an authorized_keys line: options, then the key.
	key, _, opts, _, err := ssh.ParseAuthorizedKey([]byte(rest))
	if err != nil {
		return a, fmt.Errorf("no valid public key (%s): %v", lineFormat, err)
	}
	if _, ok := key.(*ssh.Certificate); ok {
		return a, errors.New("the key is an SSH certificate; give the plain public key")
	}
	a.Key = key
	seen := map[string]bool{}
	for _, o := range opts {
		name, value, hasValue := strings.Cut(o, "=")
		name = strings.ToLower(name)
		if seen[name] {
			return a, fmt.Errorf("option %s given twice", name)
		}
		seen[name] = true
		switch name {
		case "cert-authority":
			return a, errors.New("option cert-authority: SSH certificates are not supported; list the signing keys themselves")
		case "namespaces", "valid-after", "valid-before":
		default:
			return a, fmt.Errorf("unknown option %q (bosun knows namespaces, valid-after, valid-before)", o)
		}
		if !hasValue {
			return a, fmt.Errorf("option %s: needs a value, as %s=\"...\"", name, name)
		}
		v, err := dequote(value)
		if err != nil {
			return a, fmt.Errorf("option %s: %w", name, err)
		}
		switch name {
		case "namespaces":
			if v == "" {
				return a, errors.New(`option namespaces: empty (want e.g. namespaces="git")`)
			}
			a.Namespaces = v
		case "valid-after":
			if a.ValidAfter, err = parseSSHTime(v, loc); err != nil {
				return a, fmt.Errorf("option valid-after: %w", err)
			}
		case "valid-before":
			if a.ValidBefore, err = parseSSHTime(v, loc); err != nil {
				return a, fmt.Errorf("option valid-before: %w", err)
			}
		}
	}
	if !a.ValidAfter.IsZero() && !a.ValidBefore.IsZero() && !a.ValidBefore.After(a.ValidAfter) {
		return a, errors.New("valid-before is not after valid-after")
	}
	return a, nil
}

// firstField splits off the first whitespace-separated field, which may be
// double-quoted (then it may hold spaces).
func firstField(line string) (field, rest string, err error) {
	if line[0] == '"' {
		end := strings.IndexByte(line[1:], '"')
		if end < 0 {
			return "", "", errors.New("unterminated quote in the principals")
		}
		field, rest = line[1:1+end], line[2+end:]
		if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
			return "", "", errors.New("no space after the quoted principals")
		}
		return field, rest, nil
	}
	i := strings.IndexAny(line, " \t")
	if i < 0 {
		return line, "", nil
	}
	return line[:i], line[i:], nil
}

// dequote takes an option value out of its double quotes (\" is a quote).
func dequote(v string) (string, error) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", errors.New("the value must be in double quotes")
	}
	return strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`), nil
}

// parseSSHTime reads OpenSSH's absolute times: YYYYMMDD, YYYYMMDDHHMM or
// YYYYMMDDHHMMSS, in loc, or in UTC with a trailing Z.
func parseSSHTime(v string, loc *time.Location) (time.Time, error) {
	s := v
	if strings.HasSuffix(s, "Z") || strings.HasSuffix(s, "z") {
		s, loc = s[:len(s)-1], time.UTC
	}
	var layout string
	switch len(s) {
	case 8:
		layout = "20060102"
	case 12:
		layout = "200601021504"
	case 14:
		layout = "20060102150405"
	default:
		return time.Time{}, fmt.Errorf("%q: want YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, optionally followed by Z for UTC", v)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return time.Time{}, fmt.Errorf("%q: not a time (digits only, then an optional Z)", v)
		}
	}
	t, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: %v", v, err)
	}
	return t, nil
}

// matchList reports whether s matches OpenSSH's comma-separated pattern
// list: * and ? wildcards, and a pattern starting with ! that matches
// excludes s whatever the others say.
func matchList(s, list string) bool {
	matched := false
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		neg := strings.HasPrefix(p, "!")
		if neg {
			p = p[1:]
		}
		if wildcard(p, s) {
			if neg {
				return false
			}
			matched = true
		}
	}
	return matched
}

// wildcard matches s against p, where * is any run and ? any one byte.
func wildcard(p, s string) bool {
	// Iterative matching with backtracking to the last star.
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
