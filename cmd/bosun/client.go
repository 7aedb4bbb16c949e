package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// defaultServer is the API of a server on this machine.
const defaultServer = "https://127.0.0.1:7070"

// clientOptions are the flags every command that talks to a server has.
type clientOptions struct {
	cmd    *cobra.Command // its stderr tells of a certificate pinned on first use
	server string
	token  string
	caFile string
}

// clientFlags declares the client flags of cmd: --server (default
// $BOSUN_SERVER, then https://127.0.0.1:7070), --token and --ca-file.
func clientFlags(cmd *cobra.Command) *clientOptions {
	o := &clientOptions{cmd: cmd}
	def := os.Getenv("BOSUN_SERVER")
	if def == "" {
		def = defaultServer
	}
	fs := cmd.Flags()
	fs.StringVar(&o.server, "server", def, "API address of a bosun server, https://HOST:PORT (or $BOSUN_SERVER)")
	fs.StringVar(&o.token, "token", "", "API token (default $BOSUN_TOKEN, then ~/.config/bosun/token); prefer those: other users of this machine can read a command line")
	fs.StringVar(&o.caFile, "ca-file", "", "PEM CA certificates that verify the server's certificate (instead of the system's roots and first-use pinning in ~/.config/bosun/known_servers)")
	return o
}

// client talks to a server's API.
type client struct {
	base   string
	opts   *clientOptions
	setup  error        // why no request can be made (bad --server, unreadable files)
	http   *http.Client // with a timeout
	stream *http.Client // without: `logs -f` runs until ^C
	pins   *pinner
}

func newClient(o *clientOptions) *client {
	c := &client{opts: o}
	c.base, c.setup = serverURL(o.server)
	if c.setup != nil {
		return c
	}
	u, _ := url.Parse(c.base)
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			c.setup = fmt.Errorf("--ca-file: %w", err)
			return c
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			c.setup = fmt.Errorf("--ca-file %s: no PEM certificate in it", o.caFile)
			return c
		}
		tlsConf.RootCAs = pool
	} else {
		// Verified by the system's roots, or else pinned on first use:
		// VerifyConnection does what Go's verification would, then
		// falls back to the fingerprint known for this address.
		c.pins = &pinner{addr: u.Host, stderr: o.cmd.ErrOrStderr()}
		tlsConf.InsecureSkipVerify = true
		tlsConf.VerifyConnection = c.pins.verify
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	c.http = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	c.stream = &http.Client{Transport: tr}
	return c
}

// serverURL normalises --server: https is the only scheme (a bare
// HOST:PORT gets it), the port defaults to 7070.
func serverURL(server string) (string, error) {
	if !strings.Contains(server, "://") {
		server = "https://" + server
	}
	u, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("--server %q: %w", server, err)
	}
	if u.Scheme == "http" {
		return "", fmt.Errorf("--server %s: the bosun API serves HTTPS only; use https://%s", server, u.Host)
	}
	if u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("--server %q: want https://HOST:PORT", server)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), "7070")
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/"), nil
}

// bearer returns the token to send: --token, $BOSUN_TOKEN, or the file
// ~/.config/bosun/token that `bosun server` writes at its first start; ""
// when there is none.
func (c *client) bearer() (string, error) {
	if c.opts.token != "" {
		return strings.TrimSpace(c.opts.token), nil
	}
	if t := os.Getenv("BOSUN_TOKEN"); t != "" {
		return strings.TrimSpace(t), nil
	}
	path, err := configPath("token")
	if err != nil {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// send makes a request with the token and maps transport errors to what
// the user can do about them.
func (c *client) send(hc *http.Client, req *http.Request) (*http.Response, error) {
	if c.setup != nil {
		return nil, c.setup
	}
	token, err := c.bearer()
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		var pe *pinError
		if errors.As(err, &pe) {
			return nil, pe
		}
		return nil, fmt.Errorf("reach the bosun server at %s (set --server or BOSUN_SERVER): %w", c.base, err)
	}
	return resp, nil
}

// do sends a request (with in as its JSON body, unless nil) and decodes a
// JSON answer into out.
func (c *client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.send(c.http, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer of %s: %w", path, err)
	}
	if resp.StatusCode >= 300 {
		return apiError(method, path, resp, answer)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("decode answer of %s: %w", path, err)
	}
	return nil
}

// stream copies the body of a GET to w as it arrives (no timeout: `logs -f`
// runs until ^C).
func (c *client) streamTo(ctx context.Context, path string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.send(c.stream, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return apiError(http.MethodGet, path, resp, answer)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// statusError is an error answer of the API, with its HTTP status.
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// apiError turns an error answer into an error: the API's message when it
// gave one, with what to do about a refused token.
func apiError(method, path string, resp *http.Response, answer []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	msg := fmt.Sprintf("%s %s: %s", method, path, resp.Status)
	if json.Unmarshal(answer, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	err := errors.New(msg)
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		err = fmt.Errorf("%s (401 Unauthorized: give a valid token with --token, BOSUN_TOKEN or ~/.config/bosun/token; an admin makes one with `bosun token create`)", msg)
	case http.StatusForbidden:
		err = fmt.Errorf("%s (403 Forbidden)", msg)
	case http.StatusTooManyRequests:
		err = fmt.Errorf("%s (429 Too Many Requests)", msg)
	}
	return &statusError{code: resp.StatusCode, err: err}
}

// configPath is a file of the user's bosun configuration:
// $XDG_CONFIG_HOME/bosun/NAME, by default ~/.config/bosun/NAME.
func configPath(name string) (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "bosun", name), nil
}

// printJSON writes v as indented JSON, as every -o json does.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
