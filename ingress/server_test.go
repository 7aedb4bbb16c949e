package ingress

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backend is an httptest server that says who it is and what it was sent.
func backend(t *testing.T, name string) (*httptest.Server, int) {
	t.Helper()
	up := websocket.Upgrader{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, append([]byte(name+": "), msg...)); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s host=%s path=%s xff=%s xfh=%s xfp=%s", name, r.Host, r.URL.Path,
			r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	return srv, p
}

// endpointsFor are a Service named name whose one ready pod is 127.0.0.1:port.
func endpointsFor(name string, port int) (corev1.Service, *corev1.Pod) {
	s := svc("web", name, 80, port)
	return s, pod("web", name+"-0", name, "127.0.0.1", true)
}

type proxyUnderTest struct {
	srv       *Server
	http, tls string
	reg       *prometheus.Registry
	log       *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startProxy(t *testing.T, cfg Config, in Input) *proxyUnderTest {
	t.Helper()
	reg := prometheus.NewRegistry()
	buf := &syncBuffer{}
	cfg.Registerer, cfg.AccessLog = reg, buf
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.SetTable(Build(in, nil))
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, hl, tl) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &proxyUnderTest{srv: s, http: hl.Addr().String(), tls: tl.Addr().String(), reg: reg, log: buf}
}

func get(t *testing.T, c *http.Client, url, host string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", url, host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServer_routesHostsAndPaths(t *testing.T) {
	_, pa := backend(t, "A")
	_, pb := backend(t, "B")
	sa, poa := endpointsFor("a", pa)
	sb, pob := endpointsFor("b", pb)
	sdown := svc("web", "down", 80, 1)
	// A port nothing listens on: connection refused.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := l.Addr().(*net.TCPAddr).Port
	l.Close()
	sref, poref := endpointsFor("refused", refused)
	in := Input{
		Ingresses: []networkingv1.Ingress{ing("web", "site",
			"a.example / P a:80", "b.example / P b:80", "a.example /b P b:80",
			"a.example /down P down:80", "a.example /refused P refused:80")},
		Services: []corev1.Service{sa, sb, sdown, sref},
		Pods:     []*corev1.Pod{poa, pob, poref},
	}
	p := startProxy(t, Config{}, in)
	c := &http.Client{}
	base := "http://" + p.http
	for _, tc := range []struct {
		host, path string
		code       int
		body       string
	}{
		{"a.example", "/x?token=s3cr3t-query", 200, "A host=a.example path=/x xff=127.0.0.1 xfh=a.example xfp=http"},
		{"A.EXAMPLE:8080", "/b/c", 200, "B host=A.EXAMPLE:8080 path=/b/c"},
		{"b.example", "/", 200, "B host=b.example"},
		{"c.example", "/", 404, "404 page not found"},
		{"a.example", "/down", 503, "503 service unavailable"}, // no internal name
		{"a.example", "/refused", 502, ""},
	} {
		code, body := get(t, c, base+tc.path, tc.host)
		if code != tc.code || !strings.HasPrefix(body, tc.body) {
			t.Errorf("%s%s: %d %q, want %d %q", tc.host, tc.path, code, body, tc.code, tc.body)
		}
	}
	if got := testutil.ToFloat64(p.srv.m.requests.WithLabelValues("web", "site", "200")); got != 3 {
		t.Errorf("requests 200: %v", got)
	}
	if got := testutil.ToFloat64(p.srv.m.requests.WithLabelValues("", "", "404")); got != 1 {
		t.Errorf("requests 404: %v", got)
	}
	if got := testutil.ToFloat64(p.srv.m.upstreamErrors.WithLabelValues("web", "site", "no_endpoint")); got != 1 {
		t.Errorf("no_endpoint errors: %v", got)
	}
	if got := testutil.ToFloat64(p.srv.m.upstreamErrors.WithLabelValues("web", "site", "connect")); got != 1 {
		t.Errorf("connect errors: %v", got)
	}
	if n := testutil.CollectAndCount(p.reg, "bosun_ingress_request_duration_seconds"); n != 2 {
		t.Errorf("duration series: %d, want 2 (web/site and the unmatched)", n)
	}
	// Access log: one JSON line per request, with the fields, never the query.
	lines := strings.Split(strings.TrimSpace(p.log.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("access log has %d lines:\n%s", len(lines), p.log.String())
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"msg": "request", "method": "GET", "host": "a.example", "path": "/x", "status": 200.0,
		"upstream": "127.0.0.1:" + strconv.Itoa(pa), "namespace": "web", "ingress": "site"} {
		if first[k] != want {
			t.Errorf("access log %s = %v, want %v", k, first[k], want)
		}
	}
	if first["bytes"].(float64) <= 0 || first["duration"].(float64) <= 0 {
		t.Errorf("access log bytes/duration: %v", first)
	}
	if strings.Contains(p.log.String(), "s3cr3t") {
		t.Error("the access log holds a query value")
	}
}

// testCA issues certificates for hosts, signed by one CA.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert, key, pool}
}

// secret returns a kubernetes.io/tls Secret for hosts.
func (ca *testCA) secret(t *testing.T, ns, name string, hosts ...string) corev1.Secret {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: hosts[0]}, DNSNames: hosts,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	return corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: corev1.SecretTypeTLS, Data: map[string][]byte{
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}),
	}}
}

func TestServer_TLSBySNIAndHTTP2(t *testing.T) {
	ca := newTestCA(t)
	_, pa := backend(t, "A")
	_, pb := backend(t, "B")
	sa, poa := endpointsFor("a", pa)
	sb, pob := endpointsFor("b", pb)
	i := ing("web", "tls", "a.example / P a:80", "x.b.example / P b:80")
	i.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"a.example"}, SecretName: "a-cert"}, {Hosts: []string{"*.b.example"}, SecretName: "b-cert"},
		{Hosts: []string{"c.example"}, SecretName: "opaque"}, {Hosts: []string{"d.example"}, SecretName: "missing"}}
	opaque := ca.secret(t, "web", "opaque", "c.example")
	opaque.Type = corev1.SecretTypeOpaque
	in := Input{Ingresses: []networkingv1.Ingress{i}, Services: []corev1.Service{sa, sb}, Pods: []*corev1.Pod{poa, pob},
		Secrets: []corev1.Secret{ca.secret(t, "web", "a-cert", "a.example"), ca.secret(t, "web", "b-cert", "*.b.example"), opaque}}
	p := startProxy(t, Config{}, in)
	if w := p.srv.Table().Warnings; len(w) != 2 || !strings.Contains(w[0], "web/missing: not found") || !strings.Contains(w[1], "web/opaque: not of type kubernetes.io/tls") {
		t.Errorf("warnings: %q", w)
	}
	client := func(serverName string, h2 bool) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: serverName}, ForceAttemptHTTP2: h2,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", p.tls)
			}}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	for _, h2 := range []bool{false, true} {
		for host, want := range map[string]string{"a.example": "A host=a.example path=/p xff=127.0.0.1 xfh=a.example xfp=https", "x.b.example": "B host=x.b.example"} {
			req, _ := http.NewRequest("GET", "https://"+host+"/p", nil)
			resp, err := client(host, h2).Do(req)
			if err != nil {
				t.Fatalf("h2=%v %s: %v", h2, host, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.HasPrefix(string(b), want) {
				t.Errorf("h2=%v %s: %q, want %q", h2, host, b, want)
			}
			if wantMajor := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != wantMajor {
				t.Errorf("h2=%v %s: protocol %s", h2, host, resp.Proto)
			}
		}
	}
	// A name without a certificate gets the default one, which the CA does not sign.
	if _, err := client("c.example", false).Get("https://c.example/"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("c.example: err %v, want a certificate error", err)
	}
	conn, err := tls.Dial("tcp", p.tls, &tls.Config{InsecureSkipVerify: true, ServerName: "unknown.example"})
	if err != nil {
		t.Fatal(err)
	}
	if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "bosun-ingress-default" {
		t.Errorf("default certificate CN %q", cn)
	}
	conn.Close()
}

func TestServer_H2C(t *testing.T) {
	_, pa := backend(t, "A")
	sa, poa := endpointsFor("a", pa)
	p := startProxy(t, Config{H2C: true}, Input{Ingresses: []networkingv1.Ingress{ing("web", "i", "- / P a:80")}, Services: []corev1.Service{sa}, Pods: []*corev1.Pod{poa}})
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + p.http + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || !strings.HasPrefix(string(b), "A ") {
		t.Errorf("h2c: %s %q", resp.Proto, b)
	}
}

func TestServer_webSocketEcho(t *testing.T) {
	_, pa := backend(t, "A")
	sa, poa := endpointsFor("a", pa)
	p := startProxy(t, Config{}, Input{Ingresses: []networkingv1.Ingress{ing("web", "ws", "ws.example / P a:80")}, Services: []corev1.Service{sa}, Pods: []*corev1.Pod{poa}})
	hdr := http.Header{"Host": {"ws.example"}}
	d := websocket.Dialer{NetDial: func(_, _ string) (net.Conn, error) { return net.Dial("tcp", p.http) }}
	c, resp, err := d.Dial("ws://ws.example/ws", hdr)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	// The table changes while the WebSocket is open: it stays open.
	p.srv.SetTable(Build(Input{}, nil))
	for i := range 3 {
		msg := fmt.Sprintf("hello %d", i)
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "A: "+msg {
			t.Errorf("echo %q", got)
		}
	}
	c.Close()
	waitFor(t, func() bool {
		return testutil.ToFloat64(p.srv.m.requests.WithLabelValues("web", "ws", "101")) == 1
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A request in progress when the table changes (its route removed)
// finishes; new requests see the new table.
func TestServer_swapKeepsLongRequest(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
	}))
	defer slow.Close()
	port := slow.Listener.Addr().(*net.TCPAddr).Port
	s, po := endpointsFor("slow", port)
	p := startProxy(t, Config{}, Input{Ingresses: []networkingv1.Ingress{ing("web", "long", "- / P slow:80")}, Services: []corev1.Service{s}, Pods: []*corev1.Pod{po}})
	resp, err := http.Get("http://" + p.http + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, _ := br.ReadString('\n'); line != "first\n" {
		t.Fatalf("first line %q", line)
	}
	p.srv.SetTable(Build(Input{}, nil))
	if code, _ := get(t, http.DefaultClient, "http://"+p.http+"/stream", "x"); code != 404 {
		t.Errorf("after the swap a new request got %d, want 404", code)
	}
	close(release)
	if line, err := br.ReadString('\n'); line != "second\n" {
		t.Fatalf("after the swap: %q %v", line, err)
	}
}

// Shutdown cuts an open WebSocket and returns: no goroutine is left
// (TestMain checks).
func TestServer_shutdownCutsUpgraded(t *testing.T) {
	_, pa := backend(t, "A")
	sa, poa := endpointsFor("a", pa)
	s, err := New(Config{ShutdownTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.SetTable(Build(Input{Ingresses: []networkingv1.Ingress{ing("web", "ws", "- / P a:80")}, Services: []corev1.Service{sa}, Pods: []*corev1.Pod{poa}}, nil))
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, hl, nil) }()
	c, _, err := (&websocket.Dialer{}).Dial("ws://"+hl.Addr().String()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.ReadMessage(); err == nil {
		t.Error("the WebSocket is still open after shutdown")
	}
}

func TestCertificate_wildcardAndAnyHost(t *testing.T) {
	ca := newTestCA(t)
	i := ing("web", "i")
	i.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"*.example.com"}, SecretName: "wild"}, {SecretName: "any"}}
	tab := Build(Input{Ingresses: []networkingv1.Ingress{i}, Secrets: []corev1.Secret{ca.secret(t, "web", "wild", "*.example.com"), ca.secret(t, "web", "any", "any")}}, NewCertCache())
	name := func(sn string) string {
		c := tab.Certificate(sn)
		if c == nil {
			return "<nil>"
		}
		x, _ := x509.ParseCertificate(c.Certificate[0])
		return x.Subject.CommonName
	}
	for sn, want := range map[string]string{"a.example.com": "*.example.com", "A.Example.Com": "*.example.com", "a.b.example.com": "any", "": "any"} {
		if got := name(sn); got != want {
			t.Errorf("Certificate(%q) = %s, want %s", sn, got, want)
		}
	}
}
