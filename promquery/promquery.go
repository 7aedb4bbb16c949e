package promquery

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// DefaultTimeout bounds a query when New is given no timeout.
const DefaultTimeout = 10 * time.Second

// Errors Scalar wraps, for callers that decide by them (errors.Is).
var (
	// ErrNoData: the query matched nothing (an empty vector), for example
	// a metric that was never scraped or a label that no series has.
	ErrNoData = errors.New("query returned no data")
	// ErrNotANumber: the query returned NaN or an infinity, for example
	// a ratio whose denominator is 0 because there was no traffic.
	ErrNotANumber = errors.New("query returned NaN or an infinity")
)

// WarningsError comes with a valid number: Prometheus answered, and warned
// that the answer may be incomplete.
type WarningsError struct {
	// Server is the base URL without credentials.
	Server   string
	Warnings []string
}

func (e *WarningsError) Error() string {
	return fmt.Sprintf("prometheus %s warned: %s", e.Server, strings.Join(e.Warnings, "; "))
}

// Client queries one Prometheus server. It is safe for concurrent use.
type Client struct {
	api     v1.API
	server  string // the base URL without credentials, for errors
	timeout time.Duration
}

// New returns a client of the Prometheus server at baseURL
// (http[s]://host:port[/prefix]; user:password@ in it is sent as basic
// auth). Each query is bounded by timeout (DefaultTimeout when 0).
func New(baseURL string, timeout time.Duration) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		shown := "(unparsable)"
		if err == nil {
			shown = publicURL(u)
		}
		return nil, fmt.Errorf("prometheus URL %s: want http://host:port or https://host:port, optionally with a path", shown)
	}
	if timeout < 0 {
		return nil, fmt.Errorf("prometheus timeout %s: must not be negative", timeout)
	}
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	// Queries are minutes apart (one per canary step interval): a kept-alive
	// connection would only hold a goroutine.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	var rt http.RoundTripper = tr
	if u.User != nil {
		pw, _ := u.User.Password()
		rt = basicAuth{user: u.User.Username(), password: pw, next: tr}
	}
	server := publicURL(u)
	u.User = nil
	c, err := api.NewClient(api.Config{Address: u.String(), RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("prometheus URL %s: %w", server, err)
	}
	return &Client{api: v1.NewAPI(c), server: server, timeout: timeout}, nil
}

// Server is the base URL the client queries, without credentials.
func (c *Client) Server() string { return c.server }

// Scalar evaluates expr at the instant at (now, by Prometheus's clock, when
// at is zero) and returns its one number: a scalar, or the value of an
// instant vector of exactly one series. See the package doc for the errors.
func (c *Client) Scalar(ctx context.Context, expr string, at time.Time) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	val, warnings, _, err := c.api.Query(ctx, expr, at, v1.WithTimeout(c.timeout))
	if err != nil {
		return 0, c.queryError(ctx, err, warnings)
	}
	v, err := one(val)
	if err != nil {
		return 0, err
	}
	if len(warnings) > 0 {
		return v, &WarningsError{Server: c.server, Warnings: warnings}
	}
	return v, nil
}

// one is the single number val holds, or why it holds none.
func one(val model.Value) (float64, error) {
	var v float64
	switch val := val.(type) {
	case *model.Scalar:
		v = float64(val.Value)
	case model.Vector:
		switch len(val) {
		case 0:
			return 0, ErrNoData
		case 1:
		default:
			return 0, fmt.Errorf("query returned %d series; it must return one number (use sum(...))", len(val))
		}
		if val[0].Histogram != nil {
			return 0, fmt.Errorf("query returned a histogram (%s); it must return one number (use histogram_quantile or histogram_count)", val[0].Metric)
		}
		v = float64(val[0].Value)
	case model.Matrix:
		return 0, fmt.Errorf("query returned a range vector of %d series; it must return one number (an instant query: rate(x[1m]), not x[1m])", len(val))
	case nil:
		return 0, ErrNoData
	default:
		return 0, fmt.Errorf("query returned a %s; it must return one number", val.Type())
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, notANumber(v)
	}
	return v, nil
}

// notANumber is ErrNotANumber naming the value.
type notANumber float64

func (v notANumber) Error() string {
	if math.IsNaN(float64(v)) {
		return "query returned NaN (0/0: nothing in the window?)"
	}
	return fmt.Sprintf("query returned %v (a division by 0?)", float64(v))
}

func (v notANumber) Is(target error) bool { return target == ErrNotANumber }

// queryError says why a query failed, naming the server without
// credentials and without the request's URL (which repeats the query).
func (c *Client) queryError(ctx context.Context, err error, warnings v1.Warnings) error {
	var msg string
	var apiErr *v1.Error
	var urlErr *url.Error
	switch {
	case errors.As(err, &apiErr):
		msg = apiErr.Error()
		if d := firstLine(apiErr.Detail); d != "" && apiErr.Type != v1.ErrBadData && apiErr.Type != v1.ErrExec {
			msg += ": " + d
		}
	case ctx.Err() == context.DeadlineExceeded:
		msg = fmt.Sprintf("no answer within %s", c.timeout)
	case errors.As(err, &urlErr):
		msg = urlErr.Err.Error()
	default:
		msg = err.Error()
	}
	if len(warnings) > 0 {
		msg += " (warnings: " + strings.Join(warnings, "; ") + ")"
	}
	return &queryError{msg: fmt.Sprintf("prometheus %s: %s", c.server, msg), err: err}
}

// queryError keeps the cause for errors.Is/As (context.Canceled, *v1.Error)
// behind a message that names neither the request URL nor credentials.
type queryError struct {
	msg string
	err error
}

func (e *queryError) Error() string { return e.msg }
func (e *queryError) Unwrap() error { return e.err }

// firstLine is the first line of an error answer's body, at most 200 bytes.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// publicURL is u without credentials, query or fragment.
func publicURL(u *url.URL) string {
	p := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return p.String()
}

type basicAuth struct {
	user, password string
	next           http.RoundTripper
}

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.password)
	return b.next.RoundTrip(r)
}
