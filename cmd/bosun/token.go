package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"bosun/api"
	"bosun/atomicfile"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make API tokens",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newTokenCreateCmd())
	return parentCmd(cmd)
}

// newTokenCreateCmd is `bosun token create --role ROLE --name NAME [-o
// json]`: a new random token, and the line of the tokens file
// (--tokens-file) that lets it in. Nothing is stored: the token goes to
// the client, the line to the servers' tokens file.
func newTokenCreateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create --role admin|read-only --name NAME",
		Short: "Make a new API token and the line of --tokens-file that lets it in",
		Long: `Create makes a new random API token and prints it with the line the servers'
--tokens-file needs for it. Nothing is stored: the token goes to its user,
the line to every server's tokens file (read again when it changes).`,
		Example: `  bosun token create --role read-only --name ci
  bosun token create --role admin --name alice -o json`,
		Args: cobra.NoArgs,
	}
	role := cmd.Flags().String("role", "", "admin or read-only (required)")
	name := cmd.Flags().String("name", "", "who uses the token: the actor in audit lines, e.g. ci or alice (required)")
	output := outputFlag(cmd, "json", "yaml")
	cmd.RegisterFlagCompletionFunc("role", cobra.FixedCompletions([]string{"admin", "read-only"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(cmd, *output, "json", "yaml"); err != nil {
			return err
		}
		return tokenCreate(cmd.OutOrStdout(), *role, *name, *output)
	}
	return cmd
}

func tokenCreate(stdout io.Writer, role, name, output string) error {
	tok := api.Token{Role: api.Role(role), Name: name}
	if tok.Role != api.RoleAdmin && tok.Role != api.RoleReadOnly {
		return &exitError{code: 2, err: fmt.Errorf("token create: --role %q: want admin or read-only", role)}
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
	if output != "" {
		return printOutput(stdout, output, map[string]string{"role": string(tok.Role), "name": tok.Name, "token": token, "line": tok.Line()})
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
