package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The dashboard's session: the browser keeps the API token in a cookie, so
// that the page (and its EventSource, which cannot send headers) is
// authenticated as the CLI is, with the same tokens and roles.
const (
	// CookieName is the cookie that carries the token: HttpOnly (the
	// page's script never reads it), Secure when the request came over
	// TLS (the API serves HTTPS only), SameSite=Strict, Path=/.
	CookieName = "bosun_token"
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

// sessionCookie is the cookie that keeps token; an empty token clears it.
func sessionCookie(r *http.Request, token string) *http.Cookie {
	c := &http.Cookie{
		Name: CookieName, Value: token, Path: "/",
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	}
	if token == "" {
		c.MaxAge = -1
	}
	return c
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
		http.SetCookie(w, sessionCookie(r, ""))
		writeError(w, http.StatusUnauthorized, errors.New("the token is not valid on this server"))
		return false
	}
	http.SetCookie(w, sessionCookie(r, token))
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
	http.SetCookie(w, sessionCookie(r, ""))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
