package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"bosun/api"
	"bosun/canary"
	"bosun/manifest"
)

// newPlanCmd previews a branch, commit or directory. Exit 0: nothing
// would change; 2: something would; 1: error (including an invalid
// revision and a wrong use of the command).
func newPlanCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan --ref BRANCH|COMMIT | --dir DIR",
		Short: "Preview what a branch, commit or directory would change",
		Long: `Plan shows what the cluster would do with a revision, without doing it: the
objects created, changed (with a diff) and deleted, the pods started and
stopped, the rollouts and whether the nodes have room. A canary branch (one
a Deployment's bosun.dev/canary-branch names) also shows what its canary
would run.

Exit codes, for CI: 0 no change, 2 changes, 1 an error (an invalid revision,
a canary that would fail, a wrong flag).`,
		Example: `  bosun plan --ref my-branch
  bosun plan --ref 1a2b3c4 -o json
  bosun plan --dir ./deploy`,
		Annotations: map[string]string{annotationUsageExit: "1"},
		Args:        cobra.NoArgs,
	}
	client := clientFlags(cmd)
	ref := cmd.Flags().String("ref", "", "branch, tag or commit of the tracked repository to preview")
	dir := cmd.Flags().String("dir", "", "directory of manifests to preview (instead of --ref)")
	output := outputFlag(cmd, "json", "yaml")
	cmd.MarkFlagDirname("dir")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(cmd, *output, "json", "yaml"); err != nil {
			return err
		}
		if (*ref == "") == (*dir == "") {
			return usageError(cmd, "give --ref BRANCH|COMMIT or --dir DIR (one of them)")
		}
		return runPlan(cmd.Context(), newClient(client), *ref, *dir, *output, cmd.OutOrStdout())
	}
	return cmd
}

func runPlan(ctx context.Context, c *client, ref, dir, output string, stdout io.Writer) error {
	req := api.PlanRequest{Ref: ref}
	if dir != "" {
		files, err := readManifests(dir)
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		req.Files = files
	}
	var res api.PlanResult
	if err := c.do(ctx, "POST", "/api/v1/plan", req, &res); err != nil {
		return &exitError{code: 1, err: err}
	}
	if output != "" {
		if err := printOutput(stdout, output, res); err != nil {
			return &exitError{code: 1, err: err}
		}
	} else {
		printPlan(stdout, &res, ref, dir)
	}
	starts := false
	for _, c := range res.Canaries {
		if c.Phase == canary.Failed {
			return &exitError{code: 1, err: fmt.Errorf("the canary of %s/%s would fail: %s", c.Namespace, c.Name, c.Reason)}
		}
		starts = starts || len(c.Pods) > 0
	}
	switch {
	case len(res.Errors) > 0:
		return &exitError{code: 1, err: fmt.Errorf("the revision is invalid: %d error(s); it would be rejected", len(res.Errors))}
	case starts, res.Preview != nil && res.Preview.Changed():
		return &exitError{code: 2}
	}
	return nil
}

// readManifests reads the manifest files under dir, as the server finds
// them in a revision.
func readManifests(dir string) (map[string]string, error) {
	data, err := manifest.ReadFiles(dir, "")
	if err != nil {
		return nil, fmt.Errorf("read %s:\n%w", dir, err)
	}
	files := make(map[string]string, len(data))
	for name, b := range data {
		files[name] = string(b)
	}
	return files, nil
}

func printPlan(w io.Writer, res *api.PlanResult, ref, dir string) {
	what := "directory " + dir
	if ref != "" {
		what = ref
		if r := res.Revision; r != nil {
			what = fmt.Sprintf("%s (%s %q)", ref, shortHash(r.Commit), r.Message)
		}
	}
	against := "nothing applied yet"
	if c := res.Current; c != nil {
		against = fmt.Sprintf("%s %q", shortHash(c.Commit), c.Message)
	}
	fmt.Fprintf(w, "Plan for %s against %s\n", what, against)
	if len(res.Canaries) > 0 {
		printCanaryPlans(w, res.Canaries)
		if res.Revision == nil {
			return
		}
		fmt.Fprintf(w, "\nIf %s were merged into main:\n", ref)
	}
	if len(res.Errors) > 0 {
		fmt.Fprintf(w, "\nInvalid: this revision would be rejected whole:\n")
		for _, e := range res.Errors {
			fmt.Fprintf(w, "  %s\n", e)
		}
		return
	}
	p := res.Preview
	if p == nil || !p.Changed() {
		fmt.Fprintln(w, "\nNo changes.")
		return
	}
	if len(p.Objects) > 0 {
		fmt.Fprintln(w, "\nObjects:")
		for _, o := range p.Objects {
			sign := map[string]string{"create": "+", "change": "~", "delete": "-"}[o.Op]
			fmt.Fprintf(w, "  %s %s %s/%s", sign, o.Kind, o.Namespace, o.Name)
			if o.Address != "" {
				fmt.Fprintf(w, "  (%s)", o.Address)
			}
			fmt.Fprintln(w)
			if len(o.Fields) > 0 {
				fmt.Fprintf(w, "      changed: %s\n", strings.Join(o.Fields, ", "))
			}
			if o.Diff != "" && o.Op == "change" {
				for _, line := range strings.Split(strings.TrimRight(o.Diff, "\n"), "\n") {
					fmt.Fprintf(w, "      %s\n", line)
				}
			}
		}
	}
	if len(p.Pods) > 0 {
		fmt.Fprintln(w, "\nPods:")
		for _, pc := range p.Pods {
			fmt.Fprintf(w, "  %-5s %s/%s", pc.Op, pc.Namespace, pc.Name)
			if pc.Reason != "" {
				fmt.Fprintf(w, "  (%s)", pc.Reason)
			}
			fmt.Fprintln(w)
		}
	}
	if len(p.Rollouts) > 0 {
		fmt.Fprintln(w, "\nRollouts:")
		for _, r := range p.Rollouts {
			fmt.Fprintf(w, "  %s\n", r)
		}
	}
	fmt.Fprintf(w, "\nCapacity: %s\n", p.Verdict)
}

// printCanaryPlans shows what a canary branch would run beside each
// Deployment that names it.
func printCanaryPlans(w io.Writer, plans []api.CanaryPlan) {
	for _, c := range plans {
		fmt.Fprintf(w, "\nCanary of Deployment %s/%s from branch %s:\n", c.Namespace, c.Name, branchAt(c.Branch, c.Commit))
		if c.Current != "" {
			fmt.Fprintf(w, "  now:      %s\n", c.Current)
		}
		switch c.Phase {
		case canary.Progressing:
			steps := make([]string, len(c.Steps))
			for i, v := range c.Steps {
				steps[i] = fmt.Sprintf("%d%%", v)
			}
			fmt.Fprintf(w, "  runs:     %d canary %s of template %s beside %d stable (%s), canary %d%% / stable %d%% of new connections",
				c.Replicas, plural(c.Replicas, "pod"), c.Hash, c.StableReplicas, c.StableHash, c.Weight, c.StableWeight)
			if len(steps) > 1 {
				fmt.Fprintf(w, " (steps %s)", strings.Join(steps, " -> "))
			}
			fmt.Fprintln(w)
		default:
			fmt.Fprintf(w, "  would not run: %s: %s\n", c.Phase, c.Reason)
		}
		if len(c.Changes) > 0 {
			fmt.Fprintf(w, "  template: differs from main's:\n")
			for _, ch := range c.Changes {
				fmt.Fprintf(w, "    %s\n", ch)
			}
		} else if c.Hash != "" {
			fmt.Fprintf(w, "  template: the same as main's\n")
		}
		for _, p := range c.Pods {
			fmt.Fprintf(w, "  %-5s %s/%s", p.Op, c.Namespace, p.Name)
			if p.Node != "" {
				fmt.Fprintf(w, " on %s", p.Node)
			}
			if p.Reason != "" {
				fmt.Fprintf(w, "  (%s)", p.Reason)
			}
			fmt.Fprintln(w)
		}
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
