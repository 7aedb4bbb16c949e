package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestCommands_everyOneHasHelp: every command of the tree has a short and
// a long description, and every one that runs has examples.
func TestCommands_everyOneHasHelp(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if c.Hidden || c.Name() == "help" || strings.HasPrefix(c.CommandPath(), "bosun completion") {
			return
		}
		if c.Short == "" {
			t.Errorf("%s: no short description", c.CommandPath())
		}
		if c.HasSubCommands() {
			return
		}
		if c.Long == "" || c.Example == "" {
			t.Errorf("%s: long description %d bytes, examples %d bytes", c.CommandPath(), len(c.Long), len(c.Example))
		}
	}
	walk(newRoot())
}

// TestRun_helpExitsZeroOnStdout: --help is not an error.
func TestRun_helpExitsZeroOnStdout(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"get", "--help"}, {"node", "drain", "-h"}, {"help", "describe"}} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut); err != nil || !strings.Contains(out.String(), "Usage:") {
			t.Errorf("bosun %q: %v\nstdout %q", args, err, out.String())
		}
	}
}

// TestRun_parentsWithoutSubcommandExit2 keeps `bosun token` a usage error.
func TestRun_parentsWithoutSubcommandExit2(t *testing.T) {
	for _, args := range [][]string{{"node"}, {"token"}, {"secrets"}, {"etcd", "member"}, {"node", "frob"}, {"describe", "pod"},
		{"describe", "configmap", "x"}, {"get", "pods", "-o", "table"}, {"version", "-o", "wide"}} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("bosun %q: err %v, want exit 2", args, err)
		}
	}
}

func TestWatchChanges(t *testing.T) {
	it := func(key, raw string) item { return item{key: key, raw: json.RawMessage(raw)} }
	for _, tc := range []struct {
		name          string
		prev, cur     []item
		changed, gone []int
	}{
		{"first list: all new", nil, []item{it("a", "1"), it("b", "1")}, []int{0, 1}, nil},
		{"nothing changed", []item{it("a", "1")}, []item{it("a", "1")}, nil, nil},
		{"one changed, one added", []item{it("a", "1"), it("b", "1")}, []item{it("a", "2"), it("b", "1"), it("c", "1")}, []int{0, 2}, nil},
		{"one gone", []item{it("a", "1"), it("b", "1")}, []item{it("b", "1")}, nil, []int{0}},
	} {
		changed, gone := watchChanges(tc.prev, tc.cur)
		if !reflect.DeepEqual(changed, tc.changed) || !reflect.DeepEqual(gone, tc.gone) {
			t.Errorf("%s: changed %v gone %v, want %v %v", tc.name, changed, gone, tc.changed, tc.gone)
		}
	}
}

func TestListItems_namesForDashOName(t *testing.T) {
	items, err := listItems(json.RawMessage(`{"items":[{"kind":"Pod","metadata":{"namespace":"a","name":"web-1"}},{"kind":"Node","metadata":{"name":"n1"}}]}`))
	if err != nil || len(items) != 2 || items[0].name != "pod/web-1" || items[1].name != "node/n1" || items[0].key == items[1].key {
		t.Errorf("listItems = %+v, %v", items, err)
	}
}

func TestRunningBosun(t *testing.T) {
	got := runningBosun(map[int][]string{
		1:   {"/sbin/init"},
		10:  {"/usr/local/bin/bosun", "server", "--repo", "/srv/r"},
		11:  {"bosun", "agent", "--cleanup"},
		12:  {"/tmp/x/bosun", "agent", "--node-name", "b"},
		13:  {"bosun", "get", "pods"},
		14:  {"/usr/bin/bosun-hello"},
		99:  {"bosun", "reset"},
		100: {"bosun", "server"}, // self
	}, 100)
	want := []string{"pid 10: /usr/local/bin/bosun server --repo /srv/r", "pid 12: /tmp/x/bosun agent --node-name b"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("runningBosun = %q, want %q", got, want)
	}
}

func TestWatchEventConcerns(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		kinds      []string
		want       bool
	}{
		{"ready", `{"kinds":["pods"]}`, []string{"events"}, true},
		{"changed", `{"kinds":["pods","sync"],"revision":7}`, []string{"pods"}, true},
		{"changed", `{"kinds":["history"],"revision":7}`, []string{"pods", "services"}, false},
		{"changed", `not json`, []string{"pods"}, true},
		{"", "", []string{"pods"}, false}, // a heartbeat comment
	} {
		if got := watchEventConcerns(tc.name, tc.data, tc.kinds); got != tc.want {
			t.Errorf("watchEventConcerns(%q, %q, %q) = %v", tc.name, tc.data, tc.kinds, got)
		}
	}
}
