package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"bosun/api"
	"bosun/store"
)

func newHistoryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List the revisions the cluster has seen, newest first",
		Long: `History lists the commits the leader has seen, newest first: applied,
rejected (with each error's file:line), superseded, and canary events, with
how long the rollout took to be ready and what each one changed.`,
		Example: `  bosun history
  bosun history -o json`,
		Args: cobra.NoArgs,
	}
	client := clientFlags(cmd)
	output := outputFlag(cmd, "json", "yaml")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(cmd, *output, "json", "yaml"); err != nil {
			return err
		}
		var h api.HistoryList
		if err := newClient(client).do(cmd.Context(), "GET", "/api/v1/history", nil, &h); err != nil {
			return err
		}
		if *output != "" {
			return printOutput(cmd.OutOrStdout(), *output, h)
		}
		printHistory(cmd.OutOrStdout(), h.Items, time.Now())
		return nil
	}
	return cmd
}

// printHistory prints the entries as a table; a SIGNER column (last, as
// its values are long) appears when any entry was verified
// (--verify-commits).
func printHistory(w io.Writer, items []store.HistoryEntry, now time.Time) {
	signed := slices.ContainsFunc(items, func(e store.HistoryEntry) bool { return e.Signer != "" })
	signer := func(e store.HistoryEntry) string {
		if !signed {
			return ""
		}
		return "\t" + cmp.Or(e.Signer, "-")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "COMMIT\tAGE\tAUTHOR\tRESULT\tREADY AFTER\tCHANGES\tMESSAGE"
	if signed {
		header += "\tSIGNER"
	}
	fmt.Fprintln(tw, header)
	for _, e := range items {
		if e.Canary != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t%s\t-\tcanary %s\t%s%s\n", shortHash(e.Commit), age(e.SeenAt, now), e.Result, e.Canary, canaryDetail(e), signer(e))
			continue
		}
		ready := "-"
		if e.ReadyAfter > 0 {
			ready = time.Duration(e.ReadyAfter).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s%s\n", shortHash(e.Commit), age(e.SeenAt, now), authorName(e.Author),
			e.Result, ready, summarize(e.Changes), e.Message, signer(e))
		for _, msg := range append(slices.Clip(e.Errors), historyDetail(e)) { // historyDetail: syncwindow.go
			if msg == "" {
				continue
			}
			fmt.Fprintf(tw, "\t\t\t  %s\t\t\t%s\n", msg, map[bool]string{true: "\t"}[signed])
		}
	}
	tw.Flush()
}

// canaryDetail is a canary entry's MESSAGE: "canary/web-v2@1a2b3c4d5e
// aborted: readiness: pod web-x not ready for 30s".
func canaryDetail(e store.HistoryEntry) string {
	what := strings.TrimPrefix(e.Result, "canary ")
	out := branchAt(e.Branch, e.Commit) + " " + what
	if e.Detail != "" {
		out += ": " + e.Detail
	}
	return out
}

// summarize lists changes as "+Deployment/web ~Service/web", at most a few.
func summarize(changes []store.ObjectChange) string {
	if len(changes) == 0 {
		return "-"
	}
	var parts []string
	for i, c := range changes {
		if i == 4 {
			parts = append(parts, fmt.Sprintf("(+%d more)", len(changes)-i))
			break
		}
		parts = append(parts, c.Op+c.Kind+"/"+c.Name)
	}
	return strings.Join(parts, " ")
}

func authorName(a string) string {
	name, _, _ := strings.Cut(a, " <")
	return name
}
