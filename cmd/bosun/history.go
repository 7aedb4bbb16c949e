package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"bosun/api"
	"bosun/store"
)

func cmdHistory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := serverFlag(fs)
	output := fs.String("o", "", "output: json (default a table)")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	var h api.HistoryList
	if err := newClient(server).do(ctx, "GET", "/api/v1/history", nil, &h); err != nil {
		return err
	}
	switch *output {
	case "json":
		return printJSON(stdout, h)
	case "":
		printHistory(stdout, h.Items, time.Now())
		return nil
	}
	return &exitError{code: 2, err: fmt.Errorf("-o %q: want json", *output)}
}

func printHistory(w io.Writer, items []store.HistoryEntry, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMMIT\tAGE\tAUTHOR\tRESULT\tREADY AFTER\tCHANGES\tMESSAGE")
	for _, e := range items {
		if e.Canary != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t%s\t-\tcanary %s\t%s\n", shortHash(e.Commit), age(e.SeenAt, now), e.Result, e.Canary, canaryDetail(e))
			continue
		}
		ready := "-"
		if e.ReadyAfter > 0 {
			ready = time.Duration(e.ReadyAfter).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", shortHash(e.Commit), age(e.SeenAt, now), authorName(e.Author),
			e.Result, ready, summarize(e.Changes), e.Message)
		for _, msg := range e.Errors {
			fmt.Fprintf(tw, "\t\t\t  %s\t\t\t\n", msg)
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
