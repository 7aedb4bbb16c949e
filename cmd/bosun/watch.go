package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// watch prints the objects, then every tick what changed, as kubectl get
// -w does: a row (or a document, or a name) per new or changed object,
// and the last row of a deleted one marked "(deleted)". It ends with ctx
// (nil: ^C ends a watch).
func (g *getter) watch(ctx context.Context, w io.Writer, every time.Duration) error {
	var prev []item
	var prevRows []string
	var prevLines map[string]bool // endpoints: rows compared as text
	first := true
	tick := time.NewTicker(every)
	defer tick.Stop()
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
		changed, gone := watchChanges(prev, cur)
		switch g.output {
		case "json", "yaml":
			for _, i := range changed {
				if g.output == "yaml" {
					fmt.Fprintln(w, "---")
				}
				if err := printRaw(w, g.output, cur[i].raw); err != nil {
					return err
				}
			}
		case "name":
			for _, i := range changed {
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
				for _, i := range changed {
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
		case <-tick.C:
		}
	}
}
