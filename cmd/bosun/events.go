package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"bosun/store"
)

// event is an event as GET /api/v1/events answers it.
type event = store.Event

// eventList is the answer of GET /api/v1/events, oldest first.
type eventList struct {
	Events []event `json:"events"`
}

// errNoEvents is a server without the events API (404 on its route).
var errNoEvents = errors.New("this server keeps no events (no GET /api/v1/events)")

// fetchEvents asks for the events of an object (kind and name may be
// empty: all of them) in namespace ("" all).
func fetchEvents(ctx context.Context, c *client, namespace, kind, name string) ([]event, error) {
	q := url.Values{}
	q.Set("namespace", namespace)
	if kind != "" {
		q.Set("kind", kind)
	}
	if name != "" {
		q.Set("name", name)
	}
	var list eventList
	err := c.do(ctx, "GET", "/api/v1/events?"+q.Encode(), nil, &list)
	var se *statusError
	if errors.As(err, &se) && se.code == http.StatusNotFound { // a server older than GET /api/v1/events
		return nil, errNoEvents
	}
	return list.Events, err
}

// objectKinds maps what users type after --for to an event's object kind.
var objectKinds = map[string]string{
	"pods": "Pod", "deployments": "Deployment", "services": "Service", "nodes": "Node", "jobs": "Job",
	"cronjobs": "CronJob", "configmaps": "ConfigMap", "secrets": "Secret", "namespaces": "Namespace", "endpoints": "Service",
}

func newEventsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "List the cluster's recent events, oldest first",
		Long: `Events lists what happened to the cluster's objects, oldest first: pods
scheduled, images pulled, containers started, killed and restarted, probes
failing, rollout steps, revisions applied, rejected or held. Events are kept
for a while (an hour by default) and bounded in number. --for narrows them to
one object; -w keeps printing new ones.`,
		Example: `  bosun events
  bosun events -n prod -w
  bosun events --for pod/web-7d4b9-x2x9q
  bosun events --for deployment/web -o json`,
		Args: cobra.NoArgs,
	}
	client := clientFlags(cmd)
	output := outputFlag(cmd, "json", "yaml", "wide", "name")
	ns := namespaceFlags(cmd, client, "")
	watch := cmd.Flags().BoolP("watch", "w", false, "after the events so far, print new ones as they come (as the server's watch tells, or checked every second)")
	forObj := cmd.Flags().String("for", "", "only the events of this object, KIND/NAME (pod/web-x2x9q, deployment/web, node/node-b)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(cmd, *output, "json", "yaml", "wide", "name"); err != nil {
			return err
		}
		namespace, err := ns.resolve(cmd)
		if err != nil {
			return err
		}
		kind, name := "", ""
		if *forObj != "" {
			k, n, ok := strings.Cut(*forObj, "/")
			coll, known := kinds[strings.ToLower(k)]
			if !ok || n == "" || !known {
				return usageError(cmd, "--for %q: want KIND/NAME, e.g. pod/web-x2x9q", *forObj)
			}
			kind, name = objectKinds[coll], n
		}
		c, w := newClient(client), cmd.OutOrStdout()
		seen := map[string]string{} // id -> count and last time printed
		first := true
		ctx, cancel := context.WithCancel(cmd.Context())
		defer cancel()
		var changed <-chan struct{}
		if *watch {
			changed = c.changes(ctx, watchKinds["events"], time.Second)
		}
		for {
			evs, err := fetchEvents(cmd.Context(), c, namespace, kind, name)
			if *watch && cmd.Context().Err() != nil {
				return nil
			}
			if errors.Is(err, errNoEvents) && *output == "" {
				fmt.Fprintln(w, "No events: "+err.Error()+".")
				return nil
			}
			if err != nil {
				return err
			}
			if !*watch && *output != "" && *output != "wide" && *output != "name" {
				return printOutput(w, *output, eventList{Events: nonNil(evs)})
			}
			var fresh []event
			now := make(map[string]string, len(evs)) // only what the server still has: expired events are forgotten
			for _, e := range evs {
				mark := fmt.Sprint(e.Count, e.LastTime.UnixNano())
				if seen[e.ID] != mark {
					fresh = append(fresh, e)
				}
				now[e.ID] = mark
			}
			seen = now
			if err := printEvents(w, fresh, *output, first, time.Now()); err != nil {
				return err
			}
			if first && len(evs) == 0 && *output == "" && !*watch {
				fmt.Fprintln(w, "No events.")
			}
			first = false
			if !*watch {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-changed:
			}
		}
	}
	return cmd
}

func nonNil(evs []event) []event {
	if evs == nil {
		return []event{}
	}
	return evs
}

// printEvents prints events as a table (with its header when header is
// set and there are any), documents or names.
func printEvents(w io.Writer, evs []event, output string, header bool, now time.Time) error {
	switch output {
	case "json", "yaml":
		for _, e := range evs {
			if output == "yaml" {
				fmt.Fprintln(w, "---")
			}
			if err := printOutput(w, output, e); err != nil {
				return err
			}
		}
		return nil
	case "name":
		for _, e := range evs {
			fmt.Fprintln(w, "event/"+e.ID)
		}
		return nil
	}
	if len(evs) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header {
		h := "LAST SEEN\tTYPE\tREASON\tOBJECT\tMESSAGE"
		if output == "wide" {
			h = "LAST SEEN\tTYPE\tREASON\tOBJECT\tSOURCE\tCOUNT\tFIRST SEEN\tMESSAGE"
		}
		fmt.Fprintln(tw, h)
	}
	for _, e := range evs {
		obj := strings.ToLower(e.Object.Kind) + "/" + e.Object.Name
		if e.Object.Namespace != "" {
			obj = e.Object.Namespace + "/" + obj
		}
		if output == "wide" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", age(e.LastTime, now), e.Type, e.Reason, obj, dash(e.Source), e.Count, age(e.FirstTime, now), e.Message)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", age(e.LastTime, now), e.Type, e.Reason, obj, e.Message)
	}
	return tw.Flush()
}

// describeEvents is the Events section of describe: the object's recent
// events, "<none>" when it has none or the server keeps none.
func describeEvents(ctx context.Context, w io.Writer, c *client, namespace, kind, name string, now time.Time) {
	evs, err := fetchEvents(ctx, c, namespace, kind, name)
	switch {
	case errors.Is(err, errNoEvents), err == nil && len(evs) == 0:
		fmt.Fprintln(w, "Events:         <none>")
		return
	case err != nil:
		fmt.Fprintf(w, "Events:         (could not be read: %v)\n", err)
		return
	}
	fmt.Fprintln(w, "Events:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TYPE\tREASON\tAGE\tFROM\tMESSAGE")
	for _, e := range evs {
		when := age(e.LastTime, now)
		if e.Count > 1 {
			when += fmt.Sprintf(" (x%d over %s)", e.Count, age(e.FirstTime, now))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", e.Type, e.Reason, when, dash(e.Source), e.Message)
	}
	tw.Flush()
}
