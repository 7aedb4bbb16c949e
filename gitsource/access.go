package gitsource

import (
	"errors"
	"fmt"

	git "github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// Given a CA bundle, go-git's default https client builds a new
// http.Transport for every fetch, whose idle connections then linger until
// they time out: a new set every poll. This client caches transports by
// bundle, so fetches reuse their connections. Nothing else changes: without
// a bundle the default transport serves, as before.
func init() {
	client.InstallProtocol("https", githttp.NewClientWithOptions(nil, &githttp.ClientOptions{CacheMaxEntries: 8}))
}

// access is what one conversation with the server needs (a fetch, an
// ls-remote), with Auth's files read now: the auth method, the CA bundle,
// and what to scrub from and add to its errors. Call release when done.
type access struct {
	auth     transport.AuthMethod
	caBundle []byte
	secrets  []string // values that must never appear in an error
	url      string   // the URL, safe to show
	// credentials says which credentials an authentication failure refused;
	// empty when none were given.
	credentials string
	release     func()
}

func (s *settings) access() (*access, error) {
	a := &access{url: s.displayURL, release: func() {}}
	if s.urlPassword != "" {
		a.secrets = append(a.secrets, s.urlPassword)
	}
	au := s.Auth
	switch s.protocol {
	case "ssh":
		auth, release, err := s.sshAuth()
		if err != nil {
			return nil, err
		}
		a.auth, a.release = auth, release
	case "http", "https":
		switch {
		case au.PasswordFile != "":
			p, err := readSecret(au.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("password_file: %w", err)
			}
			a.secrets = append(a.secrets, p)
			a.auth = &githttp.BasicAuth{Username: au.Username, Password: p}
			a.credentials = fmt.Sprintf("user %q with the password of %s", au.Username, au.PasswordFile)
		case au.TokenFile != "":
			tok, err := readSecret(au.TokenFile)
			if err != nil {
				return nil, fmt.Errorf("token_file: %w", err)
			}
			a.secrets = append(a.secrets, tok)
			a.auth = &githttp.TokenAuth{Token: tok}
			a.credentials = "the bearer token of " + au.TokenFile
		case s.urlPassword != "":
			a.auth = &githttp.BasicAuth{Username: au.Username, Password: s.urlPassword}
			a.credentials = fmt.Sprintf("user %q with the password in the URL", au.Username)
		case au.Username != "":
			a.auth = &githttp.BasicAuth{Username: au.Username}
			a.credentials = fmt.Sprintf("user %q without a password", au.Username)
		}
		if au.CAFile != "" {
			b, err := readCABundle(au.CAFile)
			if err != nil {
				return nil, fmt.Errorf("ca_file: %w", err)
			}
			a.caBundle = b
		}
	}
	return a, nil
}

func (a *access) fetchOptions(specs []gitconfig.RefSpec) *git.FetchOptions {
	return &git.FetchOptions{
		RemoteName: remoteName,
		RefSpecs:   specs,
		Auth:       a.auth,
		CABundle:   a.caBundle,
		Tags:       git.NoTags,
		Force:      true,
	}
}

func (a *access) listOptions() *git.ListOptions {
	return &git.ListOptions{Auth: a.auth, CABundle: a.caBundle, PeelingOption: git.IgnorePeeled}
}

// wrap makes err, from doing what with the server, the error to show: it
// names the URL (safe to show), is scrubbed of the secrets, says which
// credentials a server refused, and gives a refused host key's own
// message rather than the ssh library's wrapping of it.
func (a *access) wrap(what string, err error) error {
	var hk *HostKeyError
	if errors.As(err, &hk) {
		return fmt.Errorf("%s %s: %w", what, a.url, hk)
	}
	err = scrub(err, a.secrets...)
	if errors.Is(err, transport.ErrAuthenticationRequired) || errors.Is(err, transport.ErrAuthorizationFailed) {
		why := "no credentials were given"
		if a.credentials != "" {
			why = "the server refused " + a.credentials
		}
		err = &redactedError{msg: err.Error() + " (" + why + ")", err: err}
	}
	return fmt.Errorf("%s %s: %w", what, a.url, err)
}
