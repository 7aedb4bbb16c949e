package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"bosun/api"
	"bosun/manifest"
)

// cmdPlan previews a branch, commit or directory. Exit 0: nothing would
// change; 2: something would; 1: error (including an invalid revision).
func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("plan", flag.ContinueOnError)
	flags.SetOutput(stderr)
	server := serverFlag(flags)
	ref := flags.String("ref", "", "branch, tag or commit of the tracked repository to preview")
	dir := flags.String("dir", "", "directory of manifests to preview (instead of --ref)")
	output := flags.String("o", "", "output: json (default text)")
	if err := flags.Parse(args); err != nil {
		return &exitError{code: 1, err: err}
	}
	if (*ref == "") == (*dir == "") || flags.NArg() > 0 {
		return &exitError{code: 1, err: errors.New("usage: bosun plan --ref BRANCH|COMMIT | --dir DIR [-o json]")}
	}
	req := api.PlanRequest{Ref: *ref}
	if *dir != "" {
		files, err := readManifests(*dir)
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		req.Files = files
	}
	var res api.PlanResult
	if err := newClient(*server).do(ctx, "POST", "/api/v1/plan", req, &res); err != nil {
		return &exitError{code: 1, err: err}
	}
	if *output == "json" {
		if err := printJSON(stdout, res); err != nil {
			return &exitError{code: 1, err: err}
		}
	} else {
		printPlan(stdout, &res, *ref, *dir)
	}
	switch {
	case len(res.Errors) > 0:
		return &exitError{code: 1, err: fmt.Errorf("the revision is invalid: %d error(s); it would be rejected", len(res.Errors))}
	case res.Preview != nil && res.Preview.Changed():
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
