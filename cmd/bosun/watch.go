package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// item is one object of a list the API answered, for -o name and -w.
type item struct {
	key  string // namespace/name: the same object across two lists
	name string // kind/name, as -o name prints it ("pod/web-x2x9q")
	raw  json.RawMessage
}

// listItems splits a List into its objects.
func listItems(raw json.RawMessage) ([]item, error) {
	var list struct{ Items []json.RawMessage }
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("decode the list: %w", err)
	}
	out := make([]item, 0, len(list.Items))
	for _, r := range list.Items {
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Namespace string `json:"namespace"`
				Name      string `json:"name"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(r, &meta); err != nil {
			return nil, fmt.Errorf("decode an object of the list: %w", err)
		}
		kind := strings.ToLower(meta.Kind)
		if kind == "" {
			kind = "object"
		}
		out = append(out, item{
			key:  kind + "/" + meta.Metadata.Namespace + "/" + meta.Metadata.Name,
			name: kind + "/" + meta.Metadata.Name,
			raw:  r,
		})
	}
	return out, nil
}

// watchChanges is what -w prints after a new list: the indexes of cur's
// objects that are new or changed since prev, and prev's objects that are
// gone. A pure function of the two lists.
func watchChanges(prev, cur []item) (changed []int, gone []int) {
	before := make(map[string]string, len(prev))
	for _, it := range prev {
		before[it.key] = string(it.raw)
	}
	now := make(map[string]bool, len(cur))
	for i, it := range cur {
		now[it.key] = true
		if old, ok := before[it.key]; !ok || old != string(it.raw) {
			changed = append(changed, i)
		}
	}
	for i, it := range prev {
		if !now[it.key] {
			gone = append(gone, i)
		}
	}
	return changed, gone
}

// tableRows renders the table of raw and returns its header and one row
// per object (nil rows when the kind's table has no row per object, as
// endpoints' has one per Service).
func tableRows(kind string, raw json.RawMessage, wide bool, now time.Time, n int) (string, []string, error) {
	var b bytes.Buffer
	if err := printTable(&b, kind, raw, wide, now); err != nil {
		return "", nil, err
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != n+1 || kind == "endpoints" {
		return lines[0], nil, nil
	}
	return lines[0], lines[1:], nil
}

// watch prints the objects, then what changed each time the server's
// watch says they did (or every tick on a server without one), as
// kubectl get -w does: a row (or a document, or a name) per new or
// changed object, and the last row of a deleted one marked "(deleted)".
// It ends with ctx (nil: ^C ends a watch).
func (g *getter) watch(ctx context.Context, w io.Writer, every time.Duration) error {
	var prev []item
	var prevRows []string
	var prevLines map[string]bool // endpoints: rows compared as text
	first := true
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changed := g.c.changes(ctx, watchKinds[g.kind], every)
	for {
		raw, err := g.fetch(ctx)
		if errors.Is(err, context.Canceled) {
			return nil
		}
		if err != nil {
			return err
		}
		cur, err := listItems(raw)
		if err != nil {
			return err
		}
		changedItems, gone := watchChanges(prev, cur)
		switch g.output {
		case "json", "yaml":
			for _, i := range changedItems {
				if g.output == "yaml" {
					fmt.Fprintln(w, "---")
				}
				if err := printRaw(w, g.output, cur[i].raw); err != nil {
					return err
				}
			}
		case "name":
			for _, i := range changedItems {
				fmt.Fprintln(w, cur[i].name)
			}
		default:
			header, rows, err := tableRows(g.kind, raw, g.output == "wide", time.Now(), len(cur))
			if err != nil {
				return err
			}
			if first {
				fmt.Fprintln(w, header)
			}
			if rows == nil {
				lines := map[string]bool{}
				var b bytes.Buffer
				printTable(&b, g.kind, raw, g.output == "wide", time.Now())
				for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")[1:] {
					lines[l] = true
					if !prevLines[l] {
						fmt.Fprintln(w, l)
					}
				}
				prevLines = lines
			} else {
				for _, i := range changedItems {
					fmt.Fprintln(w, rows[i])
				}
				for _, i := range gone {
					if i < len(prevRows) {
						fmt.Fprintln(w, prevRows[i]+"   (deleted)")
					}
				}
			}
			prevRows = rows
		}
		prev, first = cur, false
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// watchKinds are the kinds of state GET /api/v1/watch names that a
// collection's objects follow; a collection not here is polled.
var watchKinds = map[string][]string{
	"pods": {"pods"}, "deployments": {"deployments"}, "services": {"services"}, "nodes": {"nodes"},
	"endpoints": {"pods", "services"}, "canaries": {"canaries"}, "events": {"events"},
	"status": {"nodes", "pods", "deployments", "services", "canaries", "sync"},
}

// changes signals when the kinds of state change, as the server's GET
// /api/v1/watch (Server-Sent Events) says, so that -w fetches again only
// then. A server without that route, a kinds of nil, or a stream that
// breaks fall back to a signal every `every` (a poll). The goroutine ends
// with ctx.
func (c *client) changes(ctx context.Context, kinds []string, every time.Duration) <-chan struct{} {
	ch := make(chan struct{}, 1)
	signal := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	go func() {
		if kinds != nil {
			c.followWatch(ctx, kinds, signal)
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				signal()
			}
		}
	}()
	return ch
}

// followWatch reads GET /api/v1/watch until it ends, calling signal for
// each event about one of kinds (and for "ready").
func (c *client) followWatch(ctx context.Context, kinds []string, signal func()) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1/watch", nil)
	if err != nil {
		return
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.send(c.stream, req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return
	}
	sc := bufio.NewScanner(resp.Body)
	var name, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event:"):
			name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data = strings.TrimSpace(strings.TrimPrefix(line, "data:"))
		case line == "":
			if watchEventConcerns(name, data, kinds) {
				signal()
			}
			name, data = "", ""
		}
	}
}

// watchEventConcerns says whether a watch event (its name and data) is
// about one of kinds: "ready", or "changed" naming one of them.
func watchEventConcerns(name, data string, kinds []string) bool {
	switch name {
	case "ready":
		return true
	case "changed":
		var ev struct{ Kinds []string }
		if json.Unmarshal([]byte(data), &ev) != nil {
			return true
		}
		for _, k := range ev.Kinds {
			if slices.Contains(kinds, k) {
				return true
			}
		}
	}
	return false
}
