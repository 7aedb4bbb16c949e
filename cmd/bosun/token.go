package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"bosun/api"
	"bosun/atomicfile"
)

// cmdToken is `bosun token create --role ROLE --name NAME [-o json]`: a
// new random token, and the line of the tokens file (--tokens-file) that
// lets it in. Nothing is stored: the token goes to the client, the line
// to the servers' tokens file.
func cmdToken(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return &exitError{code: 2, err: fmt.Errorf("usage: bosun token create --role admin|read-only --name NAME [-o json]")}
	}
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	role := fs.String("role", "", "admin or read-only (required)")
	name := fs.String("name", "", "who uses the token: the actor in audit lines, e.g. ci or alice (required)")
	output := fs.String("o", "", "output: json (default text)")
	if err := fs.Parse(args[1:]); err != nil {
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("token create: unexpected argument %q", fs.Arg(0))}
	}
	tok := api.Token{Role: api.Role(*role), Name: *name}
	if tok.Role != api.RoleAdmin && tok.Role != api.RoleReadOnly {
		return &exitError{code: 2, err: fmt.Errorf("token create: --role %q: want admin or read-only", *role)}
	}
	// The line must parse as the server will read it.
	token, err := api.NewToken()
	if err != nil {
		return err
	}
	tok.Hash = api.HashToken(token)
	if _, err := api.ParseTokens("--name", strings.NewReader(tok.Line())); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("token create: %v", err)}
	}
	switch *output {
	case "json":
		return printJSON(stdout, map[string]string{"role": string(tok.Role), "name": tok.Name, "token": token, "line": tok.Line()})
	case "":
	default:
		return &exitError{code: 2, err: fmt.Errorf("-o %q: want json", *output)}
	}
	fmt.Fprintf(stdout, `# The token, for %s (%s). Give it to the client (BOSUN_TOKEN, --token or
# ~/.config/bosun/token); it is shown once and stored nowhere:
%s

# The line for the servers' --tokens-file (every replica's); the token works once it is there:
%s
`, tok.Name, tok.Role, token, tok.Line())
	return nil
}

// announceAdminToken shows the admin token generated at a server's first
// start, once, on stderr, and saves it for the local CLI in
// ~/.config/bosun/token (0600, the directory 0700).
func announceAdminToken(stderr io.Writer, dataDir, token string) {
	saved := "not saved for the CLI"
	if path, err := configPath("token"); err != nil {
		saved += ": " + err.Error()
	} else if err := writeUserFile(path, token+"\n"); err != nil {
		saved += ": " + err.Error()
	} else {
		saved = "saved for the local CLI in " + path
	}
	fmt.Fprintf(stderr, `
bosun: generated the API's admin token (shown this once; %s holds only its hash):

    %s

%s. Other clients: BOSUN_TOKEN=... or --token; more tokens: bosun token create, --tokens-file.

`, filepath.Join(dataDir, "api", "tokens"), token, saved)
}

// writeUserFile writes a private file of the user's configuration.
func writeUserFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, []byte(content), 0o600)
}
