package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// client talks to a server's API.
type client struct {
	base string
	http *http.Client
}

// serverFlag declares --server, defaulting to $BOSUN_SERVER.
func serverFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("BOSUN_SERVER")
	if def == "" {
		def = "http://127.0.0.1:7070"
	}
	return fs.String("server", def, "API address of a bosun server (or $BOSUN_SERVER)")
}

func newClient(server string) *client {
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	return &client{base: strings.TrimRight(server, "/"), http: &http.Client{Timeout: 30 * time.Second}}
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
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach the bosun server at %s (set --server or BOSUN_SERVER): %w", c.base, err)
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
func (c *client) stream(ctx context.Context, path string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reach the bosun server at %s (set --server or BOSUN_SERVER): %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return apiError(http.MethodGet, path, resp, answer)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// apiError turns an error answer into an error: the API's message when it
// gave one.
func apiError(method, path string, resp *http.Response, answer []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(answer, &e) == nil && e.Error != "" {
		return errors.New(e.Error)
	}
	return fmt.Errorf("%s %s: %s", method, path, resp.Status)
}

// printJSON writes v as indented JSON, as every -o json does.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
