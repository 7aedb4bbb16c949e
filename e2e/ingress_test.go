package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// ingressApp is a Deployment and its Service for the ingress test: the
// hello app with ROLE=<name> in its environment (GET /env shows it).
func ingressApp(name string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: 1
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      containers:
      - name: app
        image: localhost/bosun-hello:v1
        imagePullPolicy: IfNotPresent
        env:
        - {name: PORT, value: "8080"}
        - {name: ROLE, value: %[1]s}
        ports:
        - {name: http, containerPort: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
spec:
  selector: {app: %[1]s}
  ports:
  - {name: http, port: 80, targetPort: http}
`, name)
}

const ingressSite = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: site
spec:
  ingressClassName: bosun
  tls:
  - hosts: [web.example.test, api.example.test]
    secretName: site-tls
  rules:
  - host: web.example.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}
      - {path: /env, pathType: Exact, backend: {service: {name: api, port: {number: 80}}}}
  - host: api.example.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
`

// e2eCA is a test CA and one server certificate it signed.
func e2eCA(t *testing.T, hosts ...string) (pool *x509.CertPool, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ingress e2e CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: hosts[0]}, DNSNames: hosts,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return pool, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}

// TestIngress: two hosts and a path route to different Services over HTTP
// and HTTPS (a test CA), a WebSocket echo passes through the real ingress
// to a pod, a new commit changes the routes while that WebSocket stays
// open, and the proxy's metrics and access log show the requests without
// the TLS key anywhere in the log.
func TestIngress(t *testing.T) {
	t.Parallel()
	pool, certPEM, keyPEM := e2eCA(t, "web.example.test", "api.example.test")
	repo := newGitRepo(t)
	repo.write("apps.yaml", ingressApp("web")+"---\n"+ingressApp("api"))
	repo.write("tls.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: site-tls\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n"+
		indent(string(certPEM), "    ")+"\n  tls.key: |\n"+indent(string(keyPEM), "    ")+"\n")
	repo.write("ingress.yaml", ingressSite)
	repo.commit("web and api behind an Ingress")
	httpAddr, tlsAddr := freePort(t), freePort(t)
	accessLog := filepath.Join(t.TempDir(), "access.log")
	s := startStack(t, repo, "--ingress-listen", httpAddr, "--ingress-tls-listen", tlsAddr, "--ingress-access-log", accessLog)

	plain := &http.Client{Timeout: 10 * time.Second}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", tlsAddr)
		}}
	defer tr.CloseIdleConnections()
	secure := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	fetch := func(c *http.Client, url, host string) (int, string, error) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	expect := func(c *http.Client, url, host, want string) func() error {
		return func() error {
			code, body, err := fetch(c, url, host)
			if err != nil {
				return err
			}
			if code != 200 || !strings.Contains(body, want) {
				return fmt.Errorf("%s (Host %s): %d %q, want 200 with %q", url, host, code, body, want)
			}
			return nil
		}
	}
	s.waitFor("web.example.test to answer from a web pod over HTTP", 3*time.Minute, expect(plain, "http://"+httpAddr+"/", "web.example.test", "hello from web-"))

	t.Run("hosts and paths route to their Services over HTTP", func(t *testing.T) {
		s.waitFor("api.example.test", 30*time.Second, expect(plain, "http://"+httpAddr+"/", "api.example.test", "hello from api-"))
		s.waitFor("web.example.test/env (Exact) goes to api", 30*time.Second, expect(plain, "http://"+httpAddr+"/env", "web.example.test", "ROLE=api"))
		// Both apps answer 404 to /env/x: the access log's upstream says
		// which pod got it.
		webIPs := ips(readyPods(s.pods(), "web-"))
		if len(webIPs) == 0 {
			t.Fatal("no ready web pod")
		}
		code, body, err := fetch(plain, "http://"+httpAddr+"/env/x-not-exact", "web.example.test")
		if err != nil || code != 404 || strings.Contains(body, "ROLE") {
			t.Fatalf("/env/x-not-exact: %d %q %v", code, body, err)
		}
		s.waitFor("the access log line of /env/x-not-exact to name a web pod", 30*time.Second, func() error {
			b, err := os.ReadFile(accessLog)
			if err != nil {
				return err
			}
			for _, line := range strings.Split(string(b), "\n") {
				var e struct{ Path, Upstream string }
				if json.Unmarshal([]byte(line), &e) != nil || e.Path != "/env/x-not-exact" {
					continue
				}
				host, _, _ := net.SplitHostPort(e.Upstream)
				if !slices.Contains(webIPs, host) {
					return fmt.Errorf("/env/x-not-exact went to %s, not a web pod (%v)", e.Upstream, webIPs)
				}
				return nil
			}
			return errors.New("no line yet")
		})
		code, _, err = fetch(plain, "http://"+httpAddr+"/", "nothing.example.test")
		if err != nil || code != 404 {
			t.Errorf("an unknown host: %d %v, want 404", code, err)
		}
	})

	t.Run("HTTPS with the Secret's certificate, chosen by SNI, over HTTP/2", func(t *testing.T) {
		for host, want := range map[string]string{"web.example.test": "hello from web-", "api.example.test": "hello from api-"} {
			req, _ := http.NewRequest("GET", "https://"+host+"/", nil)
			resp, err := secure.Do(req)
			if err != nil {
				t.Fatalf("https %s: %v", host, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), want) || resp.ProtoMajor != 2 {
				t.Errorf("https %s: %s %q, want HTTP/2 and %q", host, resp.Proto, b, want)
			}
		}
	})

	t.Run("a WebSocket echo passes through, and stays open across a new commit", func(t *testing.T) {
		d := websocket.Dialer{NetDial: func(_, _ string) (net.Conn, error) { return net.Dial("tcp", httpAddr) }, HandshakeTimeout: 10 * time.Second}
		conn, resp, err := d.Dial("ws://web.example.test/ws", nil)
		if err != nil {
			t.Fatalf("dial: %v (%v)", err, resp)
		}
		defer conn.Close()
		echo := func(msg string) {
			t.Helper()
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				t.Fatalf("write: %v", err)
			}
			_, got, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !strings.HasPrefix(string(got), "web-") || !strings.HasSuffix(string(got), ": "+msg) {
				t.Fatalf("echo %q", got)
			}
		}
		echo("before")
		// A new commit: a third host, the /env route gone.
		repo.write("ingress.yaml", strings.Replace(ingressSite, "      - {path: /env, pathType: Exact, backend: {service: {name: api, port: {number: 80}}}}\n", "", 1)+
			"  - host: new.example.test\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}\n")
		repo.commit("ingress: new.example.test")
		s.cli("sync")
		s.waitFor("new.example.test to route to api", time.Minute, expect(plain, "http://"+httpAddr+"/", "new.example.test", "hello from api-"))
		echo("after the new commit")
	})

	t.Run("metrics and the access log", func(t *testing.T) {
		// The WebSocket closed just now: its handler may still be ending.
		s.waitFor("the WebSocket in the metrics and the access log", 30*time.Second, func() error {
			metrics, err := s.getText("/metrics")
			if err != nil {
				return err
			}
			for _, want := range []string{`bosun_ingress_requests_total{code="200",ingress="site",namespace="default"}`,
				`bosun_ingress_requests_total{code="101",ingress="site",namespace="default"} 1`,
				`bosun_ingress_request_duration_seconds_bucket{ingress="site",namespace="default"`, "bosun_ingress_table_builds_total"} {
				if !strings.Contains(metrics, want) {
					return fmt.Errorf("/metrics has no %s", want)
				}
			}
			b, err := os.ReadFile(accessLog)
			if err != nil {
				return err
			}
			if !strings.Contains(string(b), `"host":"api.example.test","path":"/"`) || !strings.Contains(string(b), `"status":101`) {
				return fmt.Errorf("access log:\n%s", b)
			}
			return nil
		})
	})

	// The TLS key (a Secret value) appears in no log.
	keyLine := strings.Split(string(keyPEM), "\n")[1]
	s.logMu.Lock()
	leaked := strings.Contains(s.log.String(), keyLine)
	s.logMu.Unlock()
	if leaked {
		t.Error("the server's log holds the TLS key")
	}
	if b, _ := os.ReadFile(accessLog); strings.Contains(string(b), keyLine) {
		t.Error("the access log holds the TLS key")
	}
}

// TestIngress_serverWithoutAgent: a server without its node agent cannot
// reach pods, so it refuses the ingress flags (exit 2) before starting.
func TestIngress_serverWithoutAgent(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(bosun(t), "server", "--repo", t.TempDir(), "--data-dir", t.TempDir(), "--agent=false", "--ingress-listen", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "need this machine's node agent") {
		t.Errorf("bosun server --agent=false --ingress-listen: %v\n%s", err, out)
	}
}
