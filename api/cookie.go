package api

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The dashboard's session: a login with an API token gives the browser a
// cookie naming a session of this server, which stands for that token, so
// that the page (and its EventSource, which cannot send headers) is
// authenticated as the CLI is, with the same tokens and roles. The cookie
// holds a random session id, never the token: cookies are not kept apart
// by port, so another HTTPS service on the same host name would receive
// it. Sessions live in this server's memory (a restart logs the browser
// out) for sessionTTL; the token behind one is checked again at every
// request, so a token revoked from the tokens file ends its sessions.
const (
	// CookieName is the cookie that carries the session id: HttpOnly
	// (the page's script never reads it), Secure when the request came
	// over TLS (the API serves HTTPS only), SameSite=Strict, Path=/.
	CookieName = "bosun_session"
	// CSRFHeader must be sent, with any value, by every request that
	// changes something (any method but GET, HEAD and OPTIONS)
	// authenticated by the cookie: a cross-site form cannot set a header,
	// and a cross-site script cannot send one without a CORS preflight,
	// which the API never answers. The dashboard's script sets it on
	// every request.
	CSRFHeader = "X-Bosun-CSRF"
)

// failCSRF is the reason of bosun_api_auth_failures_total for a
// cookie-authenticated change without CSRFHeader or from another origin.
const failCSRF = "csrf"

// maxLoginBody bounds POST /login: a form with one token.
const maxLoginBody = 4 << 10

// sessionTTL is how long a dashboard session lasts after its login;
// maxSessions bounds this server's sessions (the oldest goes first).
const (
	sessionTTL  = 12 * time.Hour
	maxSessions = 10000
)

// sessionCookie is the cookie that names session id; an empty id clears it.
func sessionCookie(r *http.Request, id string) *http.Cookie {
	c := &http.Cookie{
		Name: CookieName, Value: id, Path: "/",
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	}
	if id == "" {
		c.MaxAge = -1
	}
	return c
}

// sessions are the dashboard's logins on this server: a random id for
// each, standing for the token it logged in with.
type sessions struct {
	mu sync.Mutex
	m  map[string]session
}

type session struct {
	token   string
	expires time.Time
}

func newSessions() *sessions { return &sessions{m: map[string]session{}} }

// create starts a session for token and returns its id: 32 random bytes.
func (ss *sessions) create(token string, now time.Time) string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	id := base64.RawURLEncoding.EncodeToString(b)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.m) >= maxSessions {
		oldest := ""
		for k, v := range ss.m {
			if !v.expires.After(now) {
				delete(ss.m, k)
			} else if oldest == "" || v.expires.Before(ss.m[oldest].expires) {
				oldest = k
			}
		}
		if len(ss.m) >= maxSessions {
			delete(ss.m, oldest)
		}
	}
	ss.m[id] = session{token: token, expires: now.Add(sessionTTL)}
	return id
}

// token is the token the session id stands for, false when there is no
// such session or it expired.
func (ss *sessions) token(id string, now time.Time) (string, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	v, ok := ss.m[id]
	if ok && !v.expires.After(now) {
		delete(ss.m, id)
		ok = false
	}
	return v.token, ok
}

// end forgets the session id.
func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, id)
}

// safeMethod reports whether a request of this method changes nothing,
// so needs no CSRF protection.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sameOrigin reports whether a browser's request comes from the page the
// API served: an Origin (or, without one, a Referer) naming another host
// is a cross-site request. A request with neither (curl) passes; the
// CSRF header is what a browser cannot forge.
func sameOrigin(r *http.Request) bool {
	from := r.Header.Get("Origin")
	if from == "" {
		from = r.Header.Get("Referer")
	}
	if from == "" {
		return true
	}
	if from == "null" {
		return false
	}
	u, err := url.Parse(from)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// csrfError is why a cookie-authenticated request may not change
// anything, nil when it may.
func csrfError(r *http.Request) error {
	if safeMethod(r.Method) {
		return nil
	}
	if r.Header.Get(CSRFHeader) == "" {
		return fmt.Errorf("a change authenticated by the dashboard's cookie needs the %s header", CSRFHeader)
	}
	if !sameOrigin(r) {
		return errors.New("a change authenticated by the dashboard's cookie must come from the dashboard's own origin")
	}
	return nil
}

// login checks a token presented to the dashboard (its login form or a
// ?token= link) as authenticate checks a bearer token, failures counting
// against the client's limit, and on success keeps it in the session
// cookie. It answers the failures itself (401 without a Bearer challenge:
// a browser would otherwise pop up its own dialog; 429 when blocked) and
// returns false; on success it writes nothing but the cookie. The token
// is never logged.
func (s *Server) login(w http.ResponseWriter, r *http.Request, token string) bool {
	now := s.now()
	client := clientKey(r.RemoteAddr)
	if wait := s.limiter.blocked(client, now); wait > 0 {
		s.authFailures.WithLabelValues(failRateLimited).Inc()
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, http.StatusTooManyRequests, fmt.Errorf("too many failed authentication attempts from %s; retry in %d s", hostOf(r.RemoteAddr), secs))
		return false
	}
	token = strings.TrimSpace(token)
	if token == "" {
		// An empty form is no guess: refused, not counted.
		writeError(w, http.StatusBadRequest, errors.New("give a token"))
		return false
	}
	tok, ok := s.cfg.Tokens.Lookup(token, now)
	if !ok {
		s.authFailures.WithLabelValues(failInvalid).Inc()
		s.limiter.fail(client, now)
		s.log.Warn("dashboard login failed", "remote", r.RemoteAddr, "reason", "unknown token")
		if r.Header.Get("Sec-Fetch-Site") != "cross-site" {
			// A link from another site with a bad token does not log out.
			http.SetCookie(w, sessionCookie(r, ""))
		}
		writeError(w, http.StatusUnauthorized, errors.New("the token is not valid on this server"))
		return false
	}
	http.SetCookie(w, sessionCookie(r, s.sessions.create(token, now)))
	s.log.Info("dashboard login", "actor", tok.Name, "role", string(tok.Role), "remote", r.RemoteAddr)
	return true
}

// loginForm serves POST /login (Public): the dashboard's login form
// (application/x-www-form-urlencoded, field token). A cross-origin post is
// refused. Success answers 303 to /.
func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		s.authFailures.WithLabelValues(failCSRF).Inc()
		writeError(w, http.StatusForbidden, errors.New("a login must come from the dashboard's own origin"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("login form: %w", err))
		return
	}
	if !s.login(w, r, r.PostForm.Get("token")) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout serves POST /logout (Public): it clears the session cookie.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		s.authFailures.WithLabelValues(failCSRF).Inc()
		writeError(w, http.StatusForbidden, errors.New("a logout must come from the dashboard's own origin"))
		return
	}
	if c, err := r.Cookie(CookieName); err == nil {
		s.sessions.end(c.Value)
	}
	http.SetCookie(w, sessionCookie(r, ""))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
