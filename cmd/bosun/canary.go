package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"bosun/api"
	"bosun/canary"
)

func newCanaryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "canary [NAME|NAMESPACE/NAME]",
		Aliases: []string{"canaries"},
		Short:   "List the canaries, or show one's spec, state, pods and checks",
		Long: `Canary lists the canaries: Deployments whose ` + canary.AnnotationBranch + `
annotation names a branch whose pod template runs beside the stable one.
With a name it shows that canary: its branch and commit, phase and weight,
the spec main asks for, its pods, its checks newest first, and the commits
that were aborted (never run again).`,
		Example: `  bosun canary
  bosun canary web
  bosun canary prod/web -o json`,
		Args: cobra.MaximumNArgs(1),
	}
	client := clientFlags(cmd)
	output := outputFlag(cmd, "json", "yaml")
	ns := namespaceFlags(cmd, client, "")
	cmd.ValidArgsFunction = completeFirst(client, "deployments")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(cmd, *output, "json", "yaml"); err != nil {
			return err
		}
		namespace, err := ns.resolve(cmd)
		if err != nil {
			return err
		}
		return runCanary(cmd.Context(), newClient(client), namespace, args, *output, cmd.OutOrStdout())
	}
	return cmd
}

func runCanary(ctx context.Context, c *client, namespace string, args []string, output string, stdout io.Writer) error {
	if len(args) == 0 {
		path := "/api/v1/canaries"
		if namespace != "" {
			path += "?namespace=" + url.QueryEscape(namespace)
		}
		var list api.CanaryList
		if err := c.do(ctx, "GET", path, nil, &list); err != nil {
			return err
		}
		if output != "" {
			return printOutput(stdout, output, list)
		}
		if len(list.Items) == 0 {
			fmt.Fprintln(stdout, "No canaries: no Deployment names a branch in "+canary.AnnotationBranch+".")
			return nil
		}
		sums := make([]api.CanarySummary, len(list.Items))
		for i := range list.Items {
			sums[i] = list.Items[i].Summary()
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		printCanaryTable(tw, sums)
		return tw.Flush()
	}
	ns, name := namespace, args[0]
	if a, b, ok := strings.Cut(name, "/"); ok {
		ns, name = a, b
	}
	path := "/api/v1/canaries/" + url.PathEscape(name)
	if ns != "" {
		path = "/api/v1/canaries/" + url.PathEscape(ns) + "/" + url.PathEscape(name)
	}
	var cs api.CanaryStatus
	if err := c.do(ctx, "GET", path, nil, &cs); err != nil {
		return err
	}
	if output != "" {
		return printOutput(stdout, output, cs)
	}
	printCanary(stdout, &cs, time.Now())
	return nil
}

// printCanaryTable writes the canaries' lines, as `bosun canary` and the
// CANARY section of `bosun status` show them.
func printCanaryTable(tw io.Writer, sums []api.CanarySummary) {
	fmt.Fprintf(tw, "CANARY\tBRANCH@COMMIT\tPHASE\tWEIGHT\tSTEP\tPODS\tANALYSIS\n")
	for _, s := range sums {
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Namespace, s.Name, branchAt(s.Branch, s.Commit), s.Phase,
			weightLabel(s.Weight), stepLabel(s), podsLabel(s), analysisLabel(s))
	}
}

func branchAt(branch, commit string) string {
	if commit == "" {
		return branch
	}
	return branch + "@" + shortHash(commit)
}

func weightLabel(w int32) string {
	if w == 0 {
		return "-"
	}
	return fmt.Sprintf("%d%%", w)
}

// stepLabel is "2/3", "-" when the canary does not run.
func stepLabel(s api.CanarySummary) string {
	if s.Step == 0 || s.Steps == 0 {
		return "-"
	}
	return strconv.Itoa(s.Step) + "/" + strconv.Itoa(s.Steps)
}

func podsLabel(s api.CanarySummary) string {
	if s.Desired == 0 && s.Ready == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d", s.Ready, s.Desired)
}

// analysisLabel is why a canary stopped, else its latest check.
func analysisLabel(s api.CanarySummary) string {
	switch {
	case s.Reason != "":
		return s.Reason
	case s.LastCheck != "":
		return s.LastCheck
	case s.Phase == canary.Progressing:
		return "no check yet"
	}
	return "-"
}

// printCanary writes one canary's details: its branch and state, the spec
// main asks for, its pods, its checks newest first and the commits never
// run again.
func printCanary(w io.Writer, c *api.CanaryStatus, now time.Time) {
	st := &c.State
	fmt.Fprintf(w, "Canary:    %s/%s\n", c.Namespace, c.Name)
	branch := st.Branch
	if st.Commit != "" {
		branch += " at " + shortHash(st.Commit)
		if st.Subject != "" {
			branch += fmt.Sprintf(" %q", st.Subject)
		}
	}
	fmt.Fprintf(w, "Branch:    %s\n", branch)
	phase := string(st.Phase)
	if st.Active() {
		steps := 1
		if c.Spec != nil {
			steps = len(c.Spec.Steps)
		}
		phase += fmt.Sprintf(", step %d of %d: canary %d%%, stable %d%% of new connections", st.Step+1, steps, c.Weight, c.StableWeight)
	}
	fmt.Fprintf(w, "Phase:     %s\n", phase)
	if st.Reason != "" {
		fmt.Fprintf(w, "Reason:    %s\n", st.Reason)
	}
	if !st.StartedAt.IsZero() {
		line := fmt.Sprintf("started %s ago", age(st.StartedAt, now))
		if st.Active() && !st.StepStartedAt.IsZero() {
			line += fmt.Sprintf(", this step %s ago", age(st.StepStartedAt, now))
		}
		if !st.EndedAt.IsZero() {
			line += fmt.Sprintf(", ended %s ago", age(st.EndedAt, now))
		}
		fmt.Fprintf(w, "Time:      %s\n", line)
	}
	if !c.NextStepAt.IsZero() {
		next := "due now"
		if d := c.NextStepAt.Sub(now); d > 0 {
			next = "in " + d.Round(time.Second).String()
		}
		if c.NextStepNeedsCheck {
			next += ", once a check made after then passes"
		}
		fmt.Fprintf(w, "Next step: %s\n", next)
	}
	if st.Hash != "" {
		fmt.Fprintf(w, "Template:  %s\n", st.Hash)
	}
	if s := c.Spec; s != nil {
		steps := make([]string, len(s.Steps))
		for i, v := range s.Steps {
			steps[i] = fmt.Sprintf("%d%%", v)
		}
		spec := "weight " + strings.Join(steps, " -> ")
		if len(s.Steps) > 1 {
			spec += ", a step every " + s.Interval
		}
		if s.Replicas > 0 {
			spec += fmt.Sprintf(", %d canary pods", s.Replicas)
		} else {
			spec += ", canary pods for the weight"
		}
		fmt.Fprintf(w, "Spec:      %s\n", spec)
		if s.Query != "" {
			gate := fmt.Sprintf("%q", s.Query)
			if s.Min != nil {
				gate += " >= " + strconv.FormatFloat(*s.Min, 'g', -1, 64)
			}
			if s.Max != nil {
				gate += " <= " + strconv.FormatFloat(*s.Max, 'g', -1, 64)
			}
			fmt.Fprintf(w, "Gate:      %s every %s, abort after %d failed in a row\n", gate, s.Interval, s.FailureLimit)
		}
	} else {
		fmt.Fprintf(w, "Spec:      (main's Deployment names no canary branch any more)\n")
	}
	fmt.Fprintf(w, "Pods:      canary %d/%d ready, stable %d/%d ready (%d desired)\n", c.Ready, c.Desired, c.StableReady, c.Stable, c.StableDesired)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(c.Pods) > 0 {
		fmt.Fprintf(tw, "\nPOD\tREADY\tSTATUS\tRESTARTS\tNODE\tIP\n")
		for _, p := range c.Pods {
			fmt.Fprintf(tw, "%s\t%v\t%s\t%d\t%s\t%s\n", p.Name, p.Ready, p.Status, p.Restarts, dash(p.Node), dash(p.IP))
		}
	}
	if len(st.Checks) > 0 {
		fmt.Fprintf(tw, "\nCHECKED\tSIGNAL\tRESULT\tMESSAGE\n")
		for i := len(st.Checks) - 1; i >= 0; i-- {
			ch := st.Checks[i]
			res := "failed"
			if ch.OK {
				res = "ok"
			}
			fmt.Fprintf(tw, "%s ago\t%s\t%s\t%s\n", age(ch.At, now), ch.Signal, res, ch.Message)
		}
	}
	tw.Flush()
	if len(st.AbortedCommits) > 0 {
		short := make([]string, len(st.AbortedCommits))
		for i, c := range st.AbortedCommits {
			short[len(short)-1-i] = shortHash(c)
		}
		fmt.Fprintf(w, "\nAborted commits (never run again; push a new commit to retry): %s\n", strings.Join(short, ", "))
	}
}
