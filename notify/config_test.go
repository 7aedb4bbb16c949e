package notify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse_defaultsAndEverySink(t *testing.T) {
	b, err := os.ReadFile("../examples/notifications/notify.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("notify.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	for _, s := range c.Sinks {
		types[s.Type] = true
	}
	for _, want := range []string{TypeGitHub, TypeGitLab, TypeGitea, TypeForgejo, TypeWebhook, TypeSlack} {
		if !types[want] {
			t.Errorf("the example has no %s sink", want)
		}
	}
	c, err = Parse("n.yaml", []byte("sinks:\n- type: github\n  repo: a/b\n  tokenFile: /t\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sinks[0]
	if s.Name != "github" || s.URL != "https://api.github.com" || c.Cluster != "bosun" {
		t.Errorf("defaults: %+v cluster %q", s, c.Cluster)
	}
	d := c.Delivery
	if d.QueueSize != 100 || d.MaxAttempts != 6 || d.InitialBackoff != time.Second || d.MaxBackoff != time.Minute || d.Timeout != 10*time.Second {
		t.Errorf("delivery defaults: %+v", d)
	}
}

func TestParse_errorsNameFileLineAndField(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown field", "sinks:\n- type: github\n  repo: a/b\n  tokenFile: /t\n  tokn: x\n", []string{"n.yaml:5: field tokn not found"}},
		{"empty", "", []string{"n.yaml: empty configuration"}},
		{"no sinks", "cluster: prod\n", []string{"n.yaml:1: sinks: want at least one sink"}},
		{"bad type", "sinks:\n- name: x\n  type: teams\n", []string{`n.yaml:3: sinks[0].type: "teams": want github`}},
		{"github needs repo and token", "sinks:\n- type: github\n", []string{"n.yaml:2: sinks[0].repo: required", "n.yaml:2: sinks[0].tokenFile: required"}},
		{"gitea needs url", "sinks:\n- type: gitea\n  repo: a/b\n  tokenFile: /t\n", []string{"n.yaml:2: sinks[0].url: required for gitea"}},
		{"bad repo", "sinks:\n- type: github\n  repo: nope\n  tokenFile: /t\n", []string{`n.yaml:3: sinks[0].repo: "nope": want owner/name`}},
		{"slack url inline", "sinks:\n- type: slack\n  url: https://hooks.slack.com/services/T/B/C\n", []string{"n.yaml:3: sinks[0].url: a Slack webhook URL is a secret"}},
		{"credentials in url", "sinks:\n- type: webhook\n  url: https://u:p@h/x\n", []string{"n.yaml:3: sinks[0].url: credentials in the URL"}},
		{"duplicate name", "sinks:\n- type: webhook\n  url: https://h/x\n- type: webhook\n  url: https://h/y\n", []string{`n.yaml:4: sinks[1].name: "webhook" is also the name of sinks[0]`}},
		{"unknown event", "sinks:\n- type: webhook\n  url: https://h/x\n  events: [RevisionApplied, RolloutFaild]\n", []string{`n.yaml:4: sinks[0].events[1]: "RolloutFaild" matches no event type`}},
		{"negative", "delivery:\n  queueSize: -1\nsinks:\n- type: webhook\n  url: https://h/x\n", []string{"n.yaml:2: delivery.queueSize: must not be negative"}},
		{"bad duration", "delivery:\n  timeout: soon\nsinks:\n- type: webhook\n  url: https://h/x\n", []string{"n.yaml:2: cannot unmarshal"}},
		{"field of another type", "sinks:\n- type: webhook\n  url: https://h/x\n  tokenFile: /t\n", []string{"n.yaml:4: sinks[0].tokenFile: not used by webhook"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("n.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant %q", err, w)
				}
			}
		})
	}
}

func TestLoad_missingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.yaml"))
	if err == nil || !strings.Contains(err.Error(), "none.yaml") {
		t.Fatalf("err = %v", err)
	}
}
