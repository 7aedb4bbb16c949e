package main

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Shell completion: cobra's `bosun completion bash|zsh|fish|powershell`
// prints the script; the script asks `bosun __complete ARGS...` for the
// words, and the functions here answer with names from the API (pods,
// deployments, services, nodes, namespaces), read with the command's own
// --server, --token, --ca-file and -n.

// completionTimeout bounds how long a completion waits for the API: a
// shell that hangs on TAB is worse than no names.
const completionTimeout = 5 * time.Second

// kindCompletions are the kinds `bosun get` takes, the plural names first.
func kindCompletions() []cobra.Completion {
	out := strings.Split(kindList, ", ")
	for k := range kinds {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out[len(strings.Split(kindList, ", ")):])
	return out
}

// completeNames completes the names of objects of kind (an API collection:
// pods, deployments, ...), in the namespace of the command's -n when it
// has one set.
func completeNames(o *clientOptions, kind string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		ns := ""
		if f := cmd.Flags().Lookup("namespace"); f != nil && f.Changed && kind != "namespaces" && kind != "nodes" {
			ns = f.Value.String()
		}
		names, err := objectNames(cmd.Context(), newClient(o), kind, ns)
		if err != nil {
			cobra.CompDebugln("bosun: complete "+kind+": "+err.Error(), true)
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, n := range names {
			if strings.HasPrefix(n, toComplete) {
				out = append(out, n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeFirst completes the first argument with names of kind, and no
// further argument.
func completeFirst(o *clientOptions, kind string) cobra.CompletionFunc {
	names := completeNames(o, kind)
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return names(cmd, args, toComplete)
	}
}

// objectNames lists the names of the objects of kind (sorted, each once).
func objectNames(ctx context.Context, c *client, kind, namespace string) ([]string, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()
	path := "/api/v1/" + kind
	if namespace != "" {
		path += "?namespace=" + url.QueryEscape(namespace)
	}
	var raw json.RawMessage
	if err := c.do(ctx, "GET", path, nil, &raw); err != nil {
		return nil, err
	}
	items, err := listItems(raw)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, it := range items {
		_, name, _ := strings.Cut(it.name, "/")
		names = append(names, name)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}
