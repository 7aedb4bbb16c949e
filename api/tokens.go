package api

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"bosun/atomicfile"
)

// Role is what a token may do.
type Role string

const (
	// RoleReadOnly reads: status, get, history, logs, plan, endpoints,
	// canaries, Prometheus targets, /metrics.
	RoleReadOnly Role = "read-only"
	// RoleAdmin also changes things (sync, and what later issues add);
	// every such call is audited.
	RoleAdmin Role = "admin"
)

// allows reports whether a token of role r may call a route of access a.
func (r Role) allows(a Access) bool {
	switch a {
	case Public:
		return true
	case ReadOnly:
		return r == RoleReadOnly || r == RoleAdmin
	case Admin:
		return r == RoleAdmin
	}
	return false
}

// Token is one line of a tokens file: a role, a name (the actor in audit
// lines) and the SHA-256 of the token. The token itself is never kept.
type Token struct {
	Role Role
	Name string
	Hash [sha256.Size]byte
}

// Line is t as a tokens-file line, role:name:sha256:<hex>.
func (t Token) Line() string {
	return string(t.Role) + ":" + t.Name + ":" + hashPrefix + hex.EncodeToString(t.Hash[:])
}

const hashPrefix = "sha256:"

// HashToken returns the hash of a token as a tokens file holds it.
func HashToken(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

// NewToken returns a fresh random token, "bosun_" and 43 characters of
// base64url (256 bits): the prefix lets secret scanners recognise it.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return "bosun_" + base64.RawURLEncoding.EncodeToString(b), nil
}

// maxNameLen bounds a token's name: it is logged with every audited call.
const maxNameLen = 64

// ParseTokens reads a tokens file: one role:name:sha256:<64 hex digits>
// per line, role admin or read-only, name of letters, digits and . _ - @
// (unique: it is the actor of audit lines), the hash unique too; blank
// lines and lines starting with # are skipped. file names the input in
// errors ("tokens:3: ..."). Errors never quote the input: a line may hold
// a token pasted where its hash belongs.
func ParseTokens(file string, r io.Reader) ([]Token, error) {
	var (
		out    []Token
		errs   []error
		names  = map[string]int{}
		hashes = map[[sha256.Size]byte]int{}
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 4096)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		t, err := parseTokenLine(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", file, n, err))
			continue
		}
		if first, ok := names[t.Name]; ok {
			errs = append(errs, fmt.Errorf("%s:%d: name: the same as line %d's; names must be unique (they name the actor in the audit log)", file, n, first))
			continue
		}
		if first, ok := hashes[t.Hash]; ok {
			errs = append(errs, fmt.Errorf("%s:%d: hash: the same as line %d's; give every client a token of its own", file, n, first))
			continue
		}
		names[t.Name], hashes[t.Hash] = n, n
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = errors.New("longer than 4096 bytes")
		}
		errs = append(errs, fmt.Errorf("%s:%d: %w", file, n+1, err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func parseTokenLine(line string) (Token, error) {
	parts := strings.SplitN(line, ":", 3)
	if len(parts) != 3 {
		return Token{}, errors.New("want role:name:sha256:<hex> (bosun token create prints such a line)")
	}
	var t Token
	switch Role(parts[0]) {
	case RoleAdmin, RoleReadOnly:
		t.Role = Role(parts[0])
	default:
		return Token{}, errors.New("role: want admin or read-only")
	}
	if err := checkName(parts[1]); err != nil {
		return Token{}, err
	}
	t.Name = parts[1]
	h, ok := strings.CutPrefix(parts[2], hashPrefix)
	if !ok || len(h) != hex.EncodedLen(sha256.Size) {
		return Token{}, errors.New("hash: want sha256: and 64 hex digits, the SHA-256 of the token (never the token itself)")
	}
	if _, err := hex.Decode(t.Hash[:], []byte(h)); err != nil {
		return Token{}, errors.New("hash: not hex")
	}
	return t, nil
}

// checkName accepts a token name: 1 to 64 letters, digits, '.', '_', '-'
// or '@'. Its error does not quote the name.
func checkName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("name: want 1 to %d characters", maxNameLen)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '@') {
			return errors.New("name: want letters, digits and . _ - @ only")
		}
	}
	return nil
}

// Tokens are the tokens the API accepts, read from a tokens file and read
// again when the file changes (its mtime, size or inode), so a token is
// added or revoked without a restart. An edit that does not parse changes
// nothing: the tokens read before stay, and the error is logged once.
// The zero value and nil accept no token.
type Tokens struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	fi      os.FileInfo
	readAt  time.Time
	tokens  []Token
	problem string
}

// LoadTokens reads the tokens file at path; an error names path:line.
// log (nil: discard) receives reloads and their errors, never a token.
func LoadTokens(path string, log *slog.Logger) (*Tokens, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Tokens{path: path, log: log}
	fi, tokens, err := t.read()
	if err != nil {
		return nil, err
	}
	t.fi, t.tokens, t.readAt = fi, tokens, time.Now()
	return t, nil
}

// StaticTokens accepts exactly tokens, for tests and embedders.
func StaticTokens(tokens ...Token) *Tokens { return &Tokens{tokens: tokens} }

func (t *Tokens) read() (os.FileInfo, []Token, error) {
	f, err := os.Open(t.path)
	if err != nil {
		return nil, nil, fmt.Errorf("tokens file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("tokens file: %w", err)
	}
	tokens, err := ParseTokens(t.path, f)
	if err != nil {
		return nil, nil, err
	}
	return fi, tokens, nil
}

// current returns the tokens, reading the file again if it changed.
func (t *Tokens) current(now time.Time) []Token {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.path == "" {
		return t.tokens
	}
	fi, err := os.Stat(t.path)
	if err != nil {
		t.keep(err.Error())
		return t.tokens
	}
	// The same stat as read last, and read well after its mtime (a rewrite
	// within the filesystem's mtime tick would go unseen otherwise).
	if t.fi != nil && os.SameFile(t.fi, fi) && fi.ModTime().Equal(t.fi.ModTime()) && fi.Size() == t.fi.Size() &&
		t.readAt.Sub(fi.ModTime()) > secretRecheck {
		return t.tokens
	}
	fi, tokens, err := t.read()
	if err != nil {
		t.keep(err.Error())
		// Try again on the next request only once the file changes again.
		if fi, serr := os.Stat(t.path); serr == nil {
			t.fi, t.readAt = fi, now
		}
		return t.tokens
	}
	if t.problem != "" || !sameTokens(tokens, t.tokens) {
		t.log.Info("api tokens loaded", "file", t.path, "tokens", len(tokens))
	}
	t.fi, t.readAt, t.tokens, t.problem = fi, now, tokens, ""
	return t.tokens
}

// keep logs, once per distinct problem, that the file could not be read
// and the tokens read before stay in force.
func (t *Tokens) keep(problem string) {
	if problem != t.problem {
		t.log.Error("api tokens file unusable; the tokens read before stay in force", "file", t.path, "err", problem)
	}
	t.problem = problem
}

func sameTokens(a, b []Token) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Lookup returns the token whose hash is the presented token's. It hashes
// the presented token and compares it with every hash in constant time, so
// neither the answer's timing nor its position tells anything.
func (t *Tokens) Lookup(presented string, now time.Time) (Token, bool) {
	h := HashToken(presented)
	var found Token
	ok := 0
	for _, tok := range t.current(now) {
		eq := subtle.ConstantTimeCompare(h[:], tok.Hash[:])
		if eq == 1 {
			found = tok
		}
		ok |= eq
	}
	return found, ok == 1
}

// EnsureAdminToken makes path a tokens file with one generated admin
// token named "admin" when path does not exist, and returns that token:
// the caller shows it once, as only its hash is stored (mode 0600, the
// directory 0700). When path exists it returns "" and changes nothing.
func EnsureAdminToken(path string) (string, error) {
	if _, err := os.Stat(path); err == nil {
		return "", nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("tokens file: %w", err)
	}
	token, err := NewToken()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("tokens file: %w", err)
	}
	line := Token{Role: RoleAdmin, Name: "admin", Hash: HashToken(token)}.Line()
	var b bytes.Buffer
	fmt.Fprintf(&b, "# bosun API tokens: role:name:sha256:<hex of the token's SHA-256>, one per line.\n")
	fmt.Fprintf(&b, "# Generated at the first start; bosun token create prints more lines.\n")
	fmt.Fprintf(&b, "%s\n", line)
	if err := atomicfile.Create(path, b.Bytes(), 0o600); err != nil {
		return "", fmt.Errorf("tokens file: %w", err)
	}
	return token, nil
}
