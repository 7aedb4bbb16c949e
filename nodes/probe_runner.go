package nodes

// The I/O of probes: one HTTP GET, TCP dial or exec inside the container
// per call. Decisions about the results live in probe.go.

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
)

// probeTarget is what one probe of one container instance acts on.
type probeTarget struct {
	probe     *corev1.Probe
	container *corev1.Container
	podIP     string
	ctr       client.Container // for exec: the container's process spec
	task      client.Task      // for exec
}

// prober runs probes. It is safe for concurrent use.
type prober struct {
	http   *http.Client
	execID atomic.Uint64
}

func newProber() *prober {
	return &prober{http: &http.Client{
		Transport: &http.Transport{
			// Like kubelet: no proxy, no connection reuse between probes,
			// and a server's certificate is not verified.
			Proxy:             nil,
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		},
		// A redirect is an answer: 3xx counts as success.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// run performs the probe once within timeout and reports whether it passed
// and, when not, why (in kubelet's words where kubelet has them).
func (pr *prober) run(ctx context.Context, t probeTarget, timeout time.Duration) (bool, string) {
	h := t.probe.ProbeHandler
	switch {
	case h.Exec != nil:
		return pr.exec(ctx, t, h.Exec.Command, timeout)
	case h.HTTPGet != nil:
		return pr.httpGet(ctx, t, h.HTTPGet, timeout)
	case h.TCPSocket != nil:
		return pr.tcp(ctx, t, h.TCPSocket, timeout)
	case h.GRPC != nil:
		return pr.grpc(ctx, t, h.GRPC, timeout)
	}
	return false, "probe has no handler (exec, httpGet, tcpSocket or grpc)"
}

// request builds the GET of an httpGet probe or hook: to the pod's IP
// unless the action names a host, with the action's headers.
func request(ctx context.Context, t probeTarget, g *corev1.HTTPGetAction) (*http.Request, error) {
	port, err := probePort(g.Port, t.container)
	if err != nil {
		return nil, err
	}
	host := g.Host
	if host == "" {
		host = t.podIP
	}
	scheme := "http"
	if g.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	path := g.Path
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	u, err := url.Parse(scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) + path)
	if err != nil {
		return nil, fmt.Errorf("URL: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "bosun-probe/1")
	req.Header.Set("Accept", "*/*")
	for _, hd := range g.HTTPHeaders {
		if http.CanonicalHeaderKey(hd.Name) == "Host" {
			req.Host = hd.Value
			continue
		}
		req.Header.Add(hd.Name, hd.Value)
	}
	return req, nil
}

func (pr *prober) httpGet(ctx context.Context, t probeTarget, g *corev1.HTTPGetAction, timeout time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := request(ctx, t, g)
	if err != nil {
		return false, err.Error()
	}
	resp, err := pr.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, fmt.Sprintf("Get %q: timeout after %s", req.URL.String(), timeout)
		}
		return false, err.Error()
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return true, ""
	}
	return false, fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)
}

// hookGet is an httpGet lifecycle hook: as kubelet's, it fails only when
// no HTTP answer comes back; the answer's status does not matter.
func (pr *prober) hookGet(ctx context.Context, t probeTarget, g *corev1.HTTPGetAction) error {
	req, err := request(ctx, t, g)
	if err != nil {
		return err
	}
	resp, err := pr.http.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	return resp.Body.Close()
}

func (pr *prober) tcp(ctx context.Context, t probeTarget, s *corev1.TCPSocketAction, timeout time.Duration) (bool, string) {
	port, err := probePort(s.Port, t.container)
	if err != nil {
		return false, err.Error()
	}
	host := s.Host
	if host == "" {
		host = t.podIP
	}
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false, err.Error()
	}
	c.Close()
	return true, ""
}

// exec runs command inside the container's task, with the container's
// environment, user and working directory. Exit status 0 passes; on timeout
// (none when timeout <= 0) or when ctx ends the process is killed and the
// probe fails.
func (pr *prober) exec(ctx context.Context, t probeTarget, command []string, timeout time.Duration) (bool, string) {
	if len(command) == 0 {
		return false, "exec probe has no command"
	}
	if t.task == nil || t.ctr == nil {
		return false, "container is not running"
	}
	spec, err := t.ctr.Spec(ctx)
	if err != nil {
		return false, fmt.Sprintf("container spec: %v", err)
	}
	if spec.Process == nil {
		return false, "container spec has no process"
	}
	ps := *spec.Process
	ps.Args = command
	ps.Terminal = false
	ps.ConsoleSize = nil
	out := &cappedBuffer{max: 1 << 10}
	id := fmt.Sprintf("probe-%d", pr.execID.Add(1))
	proc, err := t.task.Exec(ctx, id, &ps, cio.NewCreator(cio.WithStreams(nil, out, out)))
	if err != nil {
		return false, fmt.Sprintf("exec %q: %v", command, err)
	}
	// The process is removed (and its output streams closed) whatever
	// happens, even when ctx has ended. An error means the task is gone
	// or going, which frees the process too.
	deleted := false
	remove := func() {
		if deleted {
			return
		}
		deleted = true
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, _ = proc.Delete(dctx, client.WithProcessKill)
	}
	defer remove()
	statusC, err := proc.Wait(ctx)
	if err != nil {
		return false, fmt.Sprintf("exec %q: wait: %v", command, err)
	}
	if err := proc.Start(ctx); err != nil {
		return false, fmt.Sprintf("exec %q: %v", command, err)
	}
	var expired <-chan time.Time
	if timeout > 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case st := <-statusC:
		code, _, err := st.Result()
		if err != nil {
			return false, fmt.Sprintf("exec %q: %v", command, err)
		}
		if code == 0 {
			return true, ""
		}
		remove() // waits for the output to be copied
		msg := fmt.Sprintf("command %q exited with %d", command, code)
		if o := bytes.TrimSpace(out.Bytes()); len(o) > 0 {
			msg += ": " + string(o)
		}
		return false, msg
	case <-expired:
		_ = proc.Kill(context.WithoutCancel(ctx), syscall.SIGKILL)
		return false, fmt.Sprintf("command %q timed out after %s", command, timeout)
	case <-ctx.Done():
		return false, ctx.Err().Error()
	}
}

// cappedBuffer keeps the first max bytes written to it; exec output is
// copied into it from containerd's FIFO goroutines.
type cappedBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}

func (b *cappedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// grpc checks the container's grpc.health.v1 service as kubelet does: a
// plaintext connection to podIP:port (TLS without verifying the server's
// certificate when mode is TLS), one Check of the named service within the
// timeout; SERVING passes.
func (pr *prober) grpc(ctx context.Context, t probeTarget, g *corev1.GRPCAction, timeout time.Duration) (bool, string) {
	if g.Port < 1 || g.Port > 65535 {
		return false, fmt.Sprintf("port %d: out of range 1-65535", g.Port)
	}
	service := ""
	if g.Service != nil {
		service = *g.Service
	}
	creds := insecure.NewCredentials()
	if g.Mode != nil && *g.Mode == corev1.GRPCProbeModeTLS {
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})
	}
	addr := net.JoinHostPort(t.podIP, strconv.Itoa(int(g.Port)))
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// passthrough: the address is an IP, no resolver is needed.
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent("bosun-probe/1"),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", a)
		}),
	)
	if err != nil {
		return false, fmt.Sprintf("error: failed to connect service at %q: %v", addr, err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		switch status.Code(err) {
		case codes.Unimplemented:
			return false, fmt.Sprintf("this server doesn't implement the grpc health protocol (grpc.health.v1.Health): %s", addr)
		case codes.DeadlineExceeded:
			return false, fmt.Sprintf("timeout: health rpc did not complete within %s", timeout)
		}
		return false, fmt.Sprintf("error: health rpc probe failed: %v", err)
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return false, fmt.Sprintf("service unhealthy (responded with %q)", st.String())
	}
	return true, ""
}
