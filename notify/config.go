package notify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the notification configuration (bosun server --notify-config).
// The zero value of every optional field is its default.
type Config struct {
	// Cluster names this cluster in statuses and messages: the status
	// context is "bosun/<cluster>" (default "bosun").
	Cluster string `yaml:"cluster"`
	// TargetURL is the link of statuses and messages (the dashboard);
	// "{commit}" and "{branch}" in it are replaced. Empty: no link.
	TargetURL string `yaml:"targetURL"`
	// Sinks are where events go, each with its own queue.
	Sinks []SinkConfig `yaml:"sinks"`
	// Delivery bounds queues and retries, for every sink.
	Delivery Delivery `yaml:"delivery"`
}

// Delivery is how events are delivered.
type Delivery struct {
	// QueueSize bounds each sink's queue (default 100): when it is full
	// the oldest event is dropped.
	QueueSize int `yaml:"queueSize"`
	// MaxAttempts bounds the attempts of one event (default 6).
	MaxAttempts int `yaml:"maxAttempts"`
	// InitialBackoff (default 1s) doubles at each failed attempt, with
	// full jitter, up to MaxBackoff (default 1m). A Retry-After the server
	// sends is honoured, up to MaxRetryAfter (default 10m).
	InitialBackoff time.Duration `yaml:"initialBackoff"`
	MaxBackoff     time.Duration `yaml:"maxBackoff"`
	MaxRetryAfter  time.Duration `yaml:"maxRetryAfter"`
	// Timeout bounds one request (default 10s).
	Timeout time.Duration `yaml:"timeout"`
}

// Sink types.
const (
	TypeGitHub  = "github"
	TypeGitLab  = "gitlab"
	TypeGitea   = "gitea"
	TypeForgejo = "forgejo" // Gitea's API
	TypeWebhook = "webhook"
	TypeSlack   = "slack"
)

// SinkConfig is one sink.
type SinkConfig struct {
	// Name identifies the sink in logs and metrics (lower case letters,
	// digits and '-'); default its type.
	Name string `yaml:"name"`
	// Type is github, gitlab, gitea, forgejo, webhook or slack.
	Type string `yaml:"type"`
	// URL is the API root of a Git host (default https://api.github.com;
	// https://HOST/api/v3 for GitHub Enterprise; https://gitlab.com/api/v4;
	// https://HOST/api/v1 for Gitea and Forgejo, required), or a webhook's
	// URL. A Slack URL is a secret: give it in URLFile.
	URL string `yaml:"url"`
	// URLFile holds the URL of a webhook or a Slack incoming webhook,
	// read at each send.
	URLFile string `yaml:"urlFile"`
	// Repo is "owner/name" on GitHub and Gitea, the project's path
	// ("group/sub/project") or numeric ID on GitLab.
	Repo string `yaml:"repo"`
	// TokenFile holds a Git host's API token, read at each send (rotate it
	// in place).
	TokenFile string `yaml:"tokenFile"`
	// SecretFile holds a webhook's HMAC key: each request then carries
	// X-Bosun-Signature-256: sha256=<hex HMAC-SHA256 of the body>.
	SecretFile string `yaml:"secretFile"`
	// Context overrides the status context ("bosun/<cluster>").
	Context string `yaml:"context"`
	// Events filters the event types the sink gets: names or patterns
	// ("Canary*"); empty: every type.
	Events []string `yaml:"events"`
}

func (s SinkConfig) isStatus() bool {
	switch s.Type {
	case TypeGitHub, TypeGitLab, TypeGitea, TypeForgejo:
		return true
	}
	return false
}

var (
	nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	repoRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$`)
)

// Load reads and validates a configuration file. Errors name the file, the
// line and the field.
func Load(file string) (*Config, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return Parse(file, b)
}

// Parse validates a configuration read from file.
func Parse(file string, b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty configuration: want at least one sink", file)
		}
		return nil, yamlError(file, err)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(b, &root) // decoded above
	lines := lineFinder{file: file, root: &root}
	var errs []error
	if c.Cluster != "" && !nameRE.MatchString(c.Cluster) {
		errs = append(errs, lines.err(-1, "cluster", "must be lower case letters, digits and '-'"))
	}
	if c.TargetURL != "" {
		if err := checkURL(strings.NewReplacer("{commit}", "x", "{branch}", "x").Replace(c.TargetURL)); err != nil {
			errs = append(errs, lines.err(-1, "targetURL", err.Error()))
		}
	}
	d := c.Delivery
	for _, f := range []struct {
		name string
		neg  bool
	}{{"queueSize", d.QueueSize < 0}, {"maxAttempts", d.MaxAttempts < 0}, {"initialBackoff", d.InitialBackoff < 0},
		{"maxBackoff", d.MaxBackoff < 0}, {"maxRetryAfter", d.MaxRetryAfter < 0}, {"timeout", d.Timeout < 0}} {
		if f.neg {
			errs = append(errs, lines.errAt(lines.find("delivery", f.name), "delivery."+f.name+": must not be negative"))
		}
	}
	if len(c.Sinks) == 0 {
		errs = append(errs, lines.err(-1, "sinks", "want at least one sink"))
	}
	names := map[string]int{}
	for i := range c.Sinks {
		s := &c.Sinks[i]
		if s.Name == "" {
			s.Name = s.Type
		}
		field := func(f string) string { return fmt.Sprintf("sinks[%d].%s", i, f) }
		bad := func(f, msg string, args ...any) {
			errs = append(errs, lines.err(i, f, fmt.Sprintf("%s: %s", field(f), fmt.Sprintf(msg, args...))))
		}
		if !nameRE.MatchString(s.Name) {
			bad("name", "%q: must be lower case letters, digits and '-'", s.Name)
		} else if j, ok := names[s.Name]; ok {
			bad("name", "%q is also the name of sinks[%d]", s.Name, j)
		} else {
			names[s.Name] = i
		}
		switch s.Type {
		case TypeGitHub, TypeGitLab, TypeGitea, TypeForgejo:
			if s.URL == "" && s.Type == TypeGitHub {
				s.URL = "https://api.github.com"
			}
			if s.URL == "" && s.Type == TypeGitLab {
				s.URL = "https://gitlab.com/api/v4"
			}
			if s.URL == "" {
				bad("url", "required for %s: the API root, https://HOST/api/v1", s.Type)
			} else if err := checkURL(s.URL); err != nil {
				bad("url", "%v", err)
			}
			switch {
			case s.Repo == "":
				bad("repo", "required for %s", s.Type)
			case s.Type == TypeGitLab:
				if _, err := strconv.Atoi(s.Repo); err != nil && !strings.Contains(s.Repo, "/") {
					bad("repo", "%q: want the project's path (group/project) or numeric ID", s.Repo)
				}
			case !repoRE.MatchString(s.Repo):
				bad("repo", "%q: want owner/name", s.Repo)
			}
			if s.TokenFile == "" {
				bad("tokenFile", "required for %s: a file holding the API token", s.Type)
			}
			for _, f := range []struct{ name, v string }{{"urlFile", s.URLFile}, {"secretFile", s.SecretFile}} {
				if f.v != "" {
					bad(f.name, "not used by %s", s.Type)
				}
			}
		case TypeWebhook, TypeSlack:
			switch {
			case s.Type == TypeSlack && s.URL != "":
				bad("url", "a Slack webhook URL is a secret: give it in urlFile")
			case s.URL != "" && s.URLFile != "":
				bad("url", "give url or urlFile, not both")
			case s.URL == "" && s.URLFile == "":
				bad("urlFile", "required for %s (or url for a webhook)", s.Type)
			case s.URL != "":
				if err := checkURL(s.URL); err != nil {
					bad("url", "%v", err)
				}
			}
			if s.Type == TypeSlack && s.SecretFile != "" {
				bad("secretFile", "not used by slack")
			}
			for _, f := range []struct{ name, v string }{{"repo", s.Repo}, {"tokenFile", s.TokenFile}, {"context", s.Context}} {
				if f.v != "" {
					bad(f.name, "not used by %s", s.Type)
				}
			}
		case "":
			bad("type", "required: github, gitlab, gitea, forgejo, webhook or slack")
		default:
			bad("type", "%q: want github, gitlab, gitea, forgejo, webhook or slack", s.Type)
		}
		for j, p := range s.Events {
			if _, err := pathMatchErr(p); err != nil || !knownType(p) {
				errs = append(errs, lines.errAt(lines.find("sinks", i, "events", j),
					fmt.Sprintf("%s: %q matches no event type (%s)", field(fmt.Sprintf("events[%d]", j)), p, strings.Join(Types, ", "))))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.Delivery = c.Delivery.withDefaults()
	if c.Cluster == "" {
		c.Cluster = "bosun"
	}
	return &c, nil
}

func (d Delivery) withDefaults() Delivery {
	if d.QueueSize == 0 {
		d.QueueSize = 100
	}
	if d.MaxAttempts == 0 {
		d.MaxAttempts = 6
	}
	if d.InitialBackoff == 0 {
		d.InitialBackoff = time.Second
	}
	if d.MaxBackoff == 0 {
		d.MaxBackoff = time.Minute
	}
	if d.MaxRetryAfter == 0 {
		d.MaxRetryAfter = 10 * time.Minute
	}
	if d.Timeout == 0 {
		d.Timeout = 10 * time.Second
	}
	return d
}

// checkURL accepts absolute http(s) URLs without credentials (a URL with
// credentials in it belongs in a file).
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL") // url's error quotes the URL
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return errors.New("want an absolute http:// or https:// URL")
	}
	if u.User != nil {
		return errors.New("credentials in the URL: put them in a file (tokenFile, urlFile)")
	}
	return nil
}

// yamlError turns the YAML decoder's errors into file:line: messages.
func yamlError(file string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, len(te.Errors))
		for i, e := range te.Errors {
			errs[i] = errors.New(file + ":" + strings.TrimPrefix(e, "line "))
		}
		return errors.Join(errs...)
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	return errors.New(file + ":" + strings.TrimPrefix(msg, "line "))
}

// lineFinder finds the line of a field in the parsed document.
type lineFinder struct {
	file string
	root *yaml.Node
}

// find walks keys (strings) and sequence indexes (ints) from the root and
// returns the line of the deepest node found.
func (f lineFinder) find(path ...any) int {
	n := f.root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						line, next = n.Content[i].Line, n.Content[i+1]
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

// err is an error of a field of sink i (or of the top level when i < 0).
func (f lineFinder) err(i int, field, msg string) error {
	if i < 0 {
		return f.errAt(f.find(field), field+": "+msg)
	}
	return f.errAt(f.find("sinks", i, field), msg)
}

func (f lineFinder) errAt(line int, msg string) error {
	return fmt.Errorf("%s:%d: %s", f.file, line, msg)
}
