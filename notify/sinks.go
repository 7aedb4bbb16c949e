package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"unicode/utf8"
)

// maxDescription is the longest status description GitHub takes.
const maxDescription = 140

// statusContext is the context (GitLab: name) of a sink's statuses.
func (s SinkConfig) statusContext(cluster string, e Event) string {
	c := s.Context
	if c == "" {
		c = "bosun/" + cluster
	}
	if e.Canary != "" {
		c += "/canary/" + e.Canary
	}
	return c
}

// link is the event's target URL, or "".
func (c *Config) link(e Event) string {
	if c.TargetURL == "" {
		return ""
	}
	return strings.NewReplacer("{commit}", url.QueryEscape(e.Commit), "{branch}", url.QueryEscape(e.Branch)).Replace(c.TargetURL)
}

// description is a status' one-line text: the message, and the reason.
func description(e Event) string {
	d := e.Message
	if e.Reason != "" {
		d += ": " + e.Reason
	}
	return truncate(strings.ReplaceAll(d, "\n", " "), maxDescription)
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// readSecret reads a secret file, trimmed; errors name the file, never
// its content.
func readSecret(file, what string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read the %s file: %w", what, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("the %s file %s is empty", what, file)
	}
	return v, nil
}

// request builds the HTTP request that delivers e to sink s, with the
// secrets it holds (to be kept out of any error or log).
func (c *Config) request(ctx context.Context, s SinkConfig, e Event) (*http.Request, []string, error) {
	var (
		target  string
		body    any
		header  = http.Header{"Content-Type": {"application/json"}, "User-Agent": {"bosun-notify"}}
		secrets []string
	)
	state := StateOf(e.Type)
	switch s.Type {
	case TypeGitHub, TypeGitea, TypeForgejo, TypeGitLab:
		token, err := readSecret(s.TokenFile, "token")
		if err != nil {
			return nil, nil, err
		}
		secrets = append(secrets, token)
		base := strings.TrimSuffix(s.URL, "/")
		switch s.Type {
		case TypeGitHub:
			target = base + "/repos/" + s.Repo + "/statuses/" + url.PathEscape(e.Commit)
			header.Set("Authorization", "Bearer "+token)
			header.Set("Accept", "application/vnd.github+json")
			header.Set("X-GitHub-Api-Version", "2022-11-28")
			body = githubStatus{State: string(state), TargetURL: c.link(e), Description: description(e), Context: s.statusContext(c.Cluster, e)}
		case TypeGitea, TypeForgejo:
			target = base + "/repos/" + s.Repo + "/statuses/" + url.PathEscape(e.Commit)
			header.Set("Authorization", "token "+token)
			body = githubStatus{State: string(state), TargetURL: c.link(e), Description: description(e), Context: s.statusContext(c.Cluster, e)}
		case TypeGitLab:
			target = base + "/projects/" + url.PathEscape(s.Repo) + "/statuses/" + url.PathEscape(e.Commit)
			header.Set("PRIVATE-TOKEN", token)
			body = gitlabStatus{State: gitlabState(e.Type), Ref: e.Branch, Name: s.statusContext(c.Cluster, e),
				TargetURL: c.link(e), Description: description(e)}
		}
	case TypeWebhook, TypeSlack:
		target = s.URL
		if s.URLFile != "" {
			u, err := readSecret(s.URLFile, "URL")
			if err != nil {
				return nil, nil, err
			}
			if err := checkURL(u); err != nil {
				return nil, nil, fmt.Errorf("the URL in %s: %w", s.URLFile, err)
			}
			target = u
			secrets = append(secrets, u)
		}
		if s.Type == TypeSlack {
			body = slackMessage{Text: c.slackText(e)}
		} else {
			body = webhookPayload{Event: e, State: state, Cluster: c.Cluster, TargetURL: c.link(e)}
			header.Set("X-Bosun-Event", e.Type)
			header.Set("X-Bosun-Delivery", e.ID)
		}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, nil, err
	}
	if s.Type == TypeWebhook && s.SecretFile != "" {
		key, err := readSecret(s.SecretFile, "HMAC secret")
		if err != nil {
			return nil, nil, err
		}
		secrets = append(secrets, key)
		header.Set("X-Bosun-Signature-256", Sign([]byte(key), b))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(b))
	if err != nil {
		return nil, nil, fmt.Errorf("build the request to sink %s", s.Name) // the error quotes the URL
	}
	req.Header = header
	return req, secrets, nil
}

// Sign is the X-Bosun-Signature-256 header of body: "sha256=" and the hex
// HMAC-SHA256 of the body with key, the form of GitHub's
// X-Hub-Signature-256.
func Sign(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// githubStatus is the body of GitHub's and Gitea's POST .../statuses/{sha}.
type githubStatus struct {
	State       string `json:"state"`
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description"`
	Context     string `json:"context"`
}

// gitlabStatus is the body of GitLab's POST /projects/:id/statuses/:sha.
type gitlabStatus struct {
	State       string `json:"state"`
	Ref         string `json:"ref,omitempty"`
	Name        string `json:"name"`
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description"`
}

// gitlabState is GitLab's word for an event's state: a rollout in
// progress is running, a superseded one canceled.
func gitlabState(typ string) string {
	switch StateOf(typ) {
	case StateSuccess:
		return "success"
	case StateFailure:
		return "failed"
	case StateError:
		return "canceled"
	}
	if typ == RevisionApplied || typ == CanaryStarted || typ == CanaryStepped {
		return "running"
	}
	return "pending"
}

// webhookPayload is the JSON webhook's body: the event, its state, the
// cluster and the link.
type webhookPayload struct {
	Event
	State     State  `json:"state"`
	Cluster   string `json:"cluster"`
	TargetURL string `json:"targetURL,omitempty"`
}

// slackMessage is a Slack-compatible incoming webhook's body (Slack,
// Mattermost, Rocket.Chat, Discord's /slack endpoint).
type slackMessage struct {
	Text string `json:"text"`
}

func (c *Config) slackText(e Event) string {
	icon := map[State]string{StatePending: ":hourglass_flowing_sand:", StateSuccess: ":white_check_mark:",
		StateFailure: ":x:", StateError: ":heavy_minus_sign:"}[StateOf(e.Type)]
	commit := e.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if l := c.link(e); l != "" {
		commit = "<" + l + "|" + commit + ">"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s *%s* %s: `%s` on %s", icon, slackEscape(c.Cluster), slackEscape(e.Message), commit, slackEscape(e.Branch))
	if e.Canary != "" {
		fmt.Fprintf(&b, " (canary %s)", slackEscape(e.Canary))
	}
	if e.Subject != "" {
		fmt.Fprintf(&b, " %s", slackEscape(truncate(e.Subject, 100)))
	}
	errs := e.Errors
	if len(errs) == 0 && e.Reason != "" {
		errs = []string{e.Reason}
	}
	for i, r := range errs {
		if i == 5 {
			fmt.Fprintf(&b, "\n> … and %d more", len(errs)-5)
			break
		}
		fmt.Fprintf(&b, "\n> %s", slackEscape(truncate(r, 300)))
	}
	return b.String()
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
