package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"bosun/api"
)

// versions is what `bosun version -o json|yaml` prints.
type versions struct {
	Client api.VersionInfo  `json:"client"`
	Server *api.VersionInfo `json:"server,omitempty"`
	// ServerError is why the server's version is missing.
	ServerError string `json:"serverError,omitempty"`
}

func newVersionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client's version and the server's",
		Long: `Version prints this binary's version, commit, Go version and platform, and
those of the server the CLI talks to (--server, $BOSUN_SERVER), asked at
GET /api/v1/version. An unreachable server is an error (exit 1) after the
client's version; --client asks no server.`,
		Example: `  bosun version
  bosun version --client
  bosun version --server https://10.0.0.1:7070 -o json`,
		Args: cobra.NoArgs,
	}
	client := clientFlags(cmd)
	output := outputFlag(cmd, "json", "yaml")
	clientOnly := cmd.Flags().Bool("client", false, "only the client's version: ask no server")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(cmd, *output, "json", "yaml"); err != nil {
			return err
		}
		v := versions{Client: clientVersion()}
		var serverErr error
		if !*clientOnly {
			var sv api.VersionInfo
			if serverErr = newClient(client).do(cmd.Context(), "GET", "/api/v1/version", nil, &sv); serverErr == nil {
				v.Server = &sv
			} else {
				v.ServerError = serverErr.Error()
			}
		}
		w := cmd.OutOrStdout()
		if *output != "" {
			if err := printOutput(w, *output, v); err != nil {
				return err
			}
		} else {
			printVersion(w, "Client", v.Client)
			if v.Server != nil {
				printVersion(w, "Server", *v.Server)
			}
		}
		if serverErr != nil {
			return fmt.Errorf("server version: %w", serverErr)
		}
		return nil
	}
	return cmd
}

// clientVersion is this binary's build, with the version main.version
// was given at build time.
func clientVersion() api.VersionInfo {
	v := api.BuildVersion()
	if version != "dev" {
		v.Version = version
	}
	return v
}

func printVersion(w io.Writer, who string, v api.VersionInfo) {
	commit := ""
	if v.Commit != "" {
		commit = " (commit " + shortHash(v.Commit) + ")"
	}
	fmt.Fprintf(w, "%s: bosun %s%s, %s, %s\n", who, v.Version, commit, v.GoVersion, v.Platform)
}
