package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"bosun/api"
	"bosun/store"
)

func newStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster at a glance: leader, synced commit, nodes, deployments, services",
		Long: `Status shows what the cluster runs: the leader, the commit applied (and a
rejected one with its errors), the etcd members, the nodes, the Deployments
with their rollouts, the Services with their ready endpoints, the canaries,
and the pods that are not ready. -w prints it again whenever it changes.`,
		Example: `  bosun status
  bosun status -o json
  bosun status -w`,
		Args: cobra.NoArgs,
	}
	client := clientFlags(cmd)
	output := outputFlag(cmd, "json", "yaml")
	watch := cmd.Flags().BoolP("watch", "w", false, "print the status again whenever it changes (as the server's watch tells, or checked every second)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(cmd, *output, "json", "yaml"); err != nil {
			return err
		}
		c, w := newClient(client), cmd.OutOrStdout()
		render := func(ctx context.Context) (string, error) {
			var st api.Status
			if err := c.do(ctx, "GET", "/api/v1/status", nil, &st); err != nil {
				return "", err
			}
			var b bytes.Buffer
			if *output != "" {
				err := printOutput(&b, *output, st)
				return b.String(), err
			}
			printStatus(&b, &st)
			return b.String(), nil
		}
		if !*watch {
			text, err := render(cmd.Context())
			if err == nil {
				io.WriteString(w, text)
			}
			return err
		}
		ctx, cancel := context.WithCancel(cmd.Context())
		defer cancel()
		return watchText(ctx, w, c.changes(ctx, watchKinds["status"], time.Second), *output == "yaml", render)
	}
	return cmd
}

// watchText prints what render returns, then again each time it changes
// (checked at each signal of changed), separated as a stream of
// documents, until ctx ends.
func watchText(ctx context.Context, w io.Writer, changed <-chan struct{}, yamlDocs bool, render func(context.Context) (string, error)) error {
	last := ""
	for n := 0; ; {
		text, err := render(ctx)
		if errors.Is(err, context.Canceled) || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if text != last {
			switch {
			case yamlDocs:
				io.WriteString(w, "---\n")
			case n > 0:
				fmt.Fprintf(w, "\n--- %s\n", time.Now().Format("15:04:05"))
			}
			io.WriteString(w, text)
			last = text
			n++
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

func printStatus(w io.Writer, st *api.Status) {
	leader := st.Leader
	if leader == "" {
		leader = "(none)"
	}
	if st.Etcd != nil && !st.Etcd.Quorum {
		leader = "(unknown: etcd has no quorum)"
	}
	fmt.Fprintf(w, "Leader:   %s\n", leader)
	if e := st.Etcd; e != nil && e.Message != "" {
		fmt.Fprintf(w, "Etcd:     %s\n", e.Message)
	}
	if a := st.Sync.Applied; a != nil {
		fmt.Fprintf(w, "Synced:   %s %q by %s\n", shortHash(a.Commit), a.Message, a.Author)
		if a.Signer != "" {
			fmt.Fprintf(w, "Signed:   %s\n", a.Signer)
		}
	} else {
		fmt.Fprintf(w, "Synced:   (nothing applied yet)\n")
	}
	if s := st.Sync.Seen; s != nil && len(st.Sync.Errors) > 0 {
		fmt.Fprintf(w, "Rejected: %s %q: %d error(s)\n", shortHash(s.Commit), s.Message, len(st.Sync.Errors))
		for _, e := range st.Sync.Errors {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	printHeld(w, st.Sync) // syncwindow.go
	if st.Sync.FetchError != "" {
		fmt.Fprintf(w, "Fetch:    failing: %s\n", st.Sync.FetchError)
	}
	for _, b := range st.Sync.Branches {
		switch {
		case b.Error != "":
			fmt.Fprintf(w, "Branch:   %s: %s\n", b.Name, b.Error)
		case b.Commit != "":
			fmt.Fprintf(w, "Branch:   %s at %s\n", b.Name, shortHash(b.Commit))
		default:
			fmt.Fprintf(w, "Branch:   %s: not fetched yet\n", b.Name)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if e := st.Etcd; e != nil && len(e.Members) > 1 {
		fmt.Fprintf(tw, "\nETCD MEMBER\tHEALTH\tROLE\tCLIENT URL\n")
		for _, m := range e.Members {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, memberHealth(m), memberRole(m), m.ClientURL)
		}
	}
	fmt.Fprintf(tw, "\nNODE\tREADY\tPODS\tCPU\tMEMORY\n")
	for _, n := range st.Nodes {
		fmt.Fprintf(tw, "%s\t%v\t%d\t%s\t%s\n", n.Name, n.Ready, n.Pods, n.CPU, n.Memory)
	}
	fmt.Fprintf(tw, "\nDEPLOYMENT\tREADY\tUP-TO-DATE\tROLLOUT\n")
	for _, d := range st.Deployments {
		fmt.Fprintf(tw, "%s/%s\t%d/%d\t%d\t%s\n", d.Namespace, d.Name, d.Ready, d.Desired, d.Updated, d.Rollout)
	}
	fmt.Fprintf(tw, "\nSERVICE\tADDRESS\n")
	for _, s := range st.Services {
		fmt.Fprintf(tw, "%s/%s\t%s\n", s.Namespace, s.Name, serviceLine(s))
	}
	tw.Flush()
	if len(st.Canaries) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		printCanaryTable(tw, st.Canaries)
		tw.Flush()
	}
	phases := []string{}
	for _, p := range slices.Sorted(maps.Keys(st.Pods.ByPhase)) { // the same text for the same status (-w)
		phases = append(phases, fmt.Sprintf("%d %s", st.Pods.ByPhase[p], p))
	}
	fmt.Fprintf(w, "\nPods: %d (%s)\n", st.Pods.Total, strings.Join(phases, ", "))
	for _, u := range st.Pods.Unschedulable {
		fmt.Fprintf(w, "  unschedulable: %s\n", u)
	}
	for _, u := range st.Pods.NotReady {
		fmt.Fprintf(w, "  not ready: %s\n", u)
	}
	for _, u := range st.Pods.Initializing {
		fmt.Fprintf(w, "  initializing: %s\n", u)
	}
	if len(st.FailedJobs) > 0 {
		fmt.Fprintf(w, "\nFailed jobs: %d\n", len(st.FailedJobs))
		for _, j := range st.FailedJobs {
			fmt.Fprintf(w, "  %s\n", j)
		}
	}
}

func shortHash(h string) string {
	if len(h) > 10 {
		return h[:10]
	}
	return h
}

func newSyncCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Make the leader fetch the repository now (--force: apply what a sync window holds)",
		Long: `Sync asks the leader to fetch the repository now rather than at its next
poll, and apply the new commit if there is one (admin token).

--force --reason TEXT applies the revision a sync window holds
(.bosun/windows.yaml) now, whatever the windows say; the history records the
reason. --commit names the held commit, so that a newer one is never forced
by mistake.`,
		Example: `  bosun sync
  bosun sync --force --reason "hotfix for INC-123" --commit 1a2b3c4`,
		Args: cobra.NoArgs,
	}
	client := clientFlags(cmd)
	force := syncWindowFlags(cmd.Flags()) // syncwindow.go
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		if handled, err := force.run(ctx, client, stdout); handled {
			return err
		}
		if err := newClient(client).do(ctx, "POST", "/api/v1/sync", nil, nil); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "sync requested: the leader fetches the repository now")
		return nil
	}
	return cmd
}

// serviceLine is a Service's line in `bosun status`: its virtual IP (or
// headless) and how many endpoints are ready, "10.96.0.12 -> 3 ready
// endpoints".
func serviceLine(s api.ServiceStatus) string {
	addr := s.ClusterIP
	switch addr {
	case "None":
		addr = "headless"
	case "":
		addr = "<no address yet>"
	}
	if s.Type == "NodePort" {
		addr += " (" + s.Ports + ")"
	}
	noun := "endpoints"
	if s.Ready == 1 {
		noun = "endpoint"
	}
	return fmt.Sprintf("%s -> %d ready %s", addr, s.Ready, noun)
}

// memberHealth is an etcd member's HEALTH column: reachable, or why not.
func memberHealth(m store.MemberHealth) string {
	switch {
	case m.Reachable && m.Error != "":
		return "reachable, " + m.Error
	case m.Reachable:
		return "reachable"
	case m.Error != "":
		return "unreachable: " + m.Error
	}
	return "unreachable"
}

// memberRole is an etcd member's ROLE column.
func memberRole(m store.MemberHealth) string {
	switch {
	case m.Learner:
		return "learner (joining)"
	case m.Leader:
		return "raft leader"
	}
	return "voter"
}
