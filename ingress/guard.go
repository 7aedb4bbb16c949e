package ingress

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"sync/atomic"
	"time"
)

// What the server does to requests beyond routing them: stall deadlines
// on bodies and answers, and the headers that name the client.

// renew moves the connection's write deadline StallTimeout ahead: called
// before every write, so only a client that takes no byte for that long is
// cut. Writers without deadlines (none in net/http) are left alone.
func (r *recorder) renew() {
	if r.rc != nil && !r.hijacked {
		_ = r.rc.SetWriteDeadline(time.Now().Add(r.stall))
	}
}

// stallReader is a request body whose every read must make progress
// within StallTimeout; once the body is read to its end the connection's
// read deadline is cleared (net/http then reads in the background to see
// the client leave, and a deadline there would cancel the request).
type stallReader struct {
	io.ReadCloser
	rc      *http.ResponseController
	stall   time.Duration
	stalled atomic.Bool // a read hit the deadline
}

func (b *stallReader) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.stall))
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		_ = b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The deadline stays: net/http's discarding of the rest of the
		// body after the handler fails at once too, and the connection
		// is closed.
		b.stalled.Store(true)
	}
	return n, err
}

// spoofable are request headers that tell a backend who the client is or
// how it reached the proxy, which a client could set to lie: the proxy
// removes them (and sets X-Real-IP and X-Forwarded-Port itself), so that a
// backend that trusts them trusts only the proxy. ReverseProxy already
// replaces X-Forwarded-For, -Host and -Proto.
var spoofable = []string{"Forwarded", "True-Client-IP", "X-Client-IP", "X-Cluster-Client-IP", "X-Original-Forwarded-For",
	"X-Forwarded-Server", "X-Forwarded-Prefix", "X-Forwarded-Scheme", "X-Forwarded-Ssl", "X-Scheme",
	"X-Original-URL", "X-Original-URI", "X-Rewrite-URL"}

// forwardedHeaders sets X-Real-IP to the client's address and
// X-Forwarded-Port to the listener's port, and removes the spoofable
// headers.
func forwardedHeaders(pr *httputil.ProxyRequest) {
	h := pr.Out.Header
	for _, k := range spoofable {
		h.Del(k)
	}
	h.Set("X-Real-IP", remoteIP(pr.In.RemoteAddr))
	h.Del("X-Forwarded-Port")
	if a, ok := pr.In.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, port, err := net.SplitHostPort(a.String()); err == nil {
			h.Set("X-Forwarded-Port", port)
		}
	}
}
