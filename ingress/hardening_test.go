package ingress

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// A client cannot make the backend believe it is someone else: the
// headers that name the client or the way it came are the proxy's.
func TestServer_spoofedHeadersReplaced(t *testing.T) {
	names := []string{"X-Real-Ip", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Forwarded-Prefix",
		"X-Forwarded-Server", "True-Client-Ip", "X-Client-Ip", "Forwarded", "X-Original-Url"}
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := map[string]string{}
		for _, n := range names {
			out[n] = strings.Join(r.Header.Values(n), ",")
		}
		json.NewEncoder(w).Encode(out)
	}))
	defer echo.Close()
	s, po := endpointsFor("echo", echo.Listener.Addr().(*net.TCPAddr).Port)
	p := startProxy(t, Config{}, Input{Ingresses: []networkingv1.Ingress{ing("web", "i", "- / P echo:80")}, Services: []corev1.Service{s}, Pods: []*corev1.Pod{po}})
	req, _ := http.NewRequest("GET", "http://"+p.http+"/", nil)
	req.Host = "app.example"
	for _, n := range names {
		req.Header.Set(n, "6.6.6.6")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(p.http)
	want := map[string]string{"X-Real-Ip": "127.0.0.1", "X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "app.example",
		"X-Forwarded-Proto": "http", "X-Forwarded-Port": port}
	for _, n := range names {
		if got[n] != want[n] {
			t.Errorf("%s reached the backend as %q, want %q", n, got[n], want[n])
		}
	}
}

// Until the first route table is set, requests get 503 with Retry-After,
// not a 404 that says the route does not exist.
func TestServer_503UntilFirstTable(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, hl, nil) }()
	defer func() { cancel(); <-done }()
	resp, err := http.Get("http://" + hl.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("before the first table: %d Retry-After=%q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	s.SetTable(Build(Input{}, nil))
	if code, _ := get(t, http.DefaultClient, "http://"+hl.Addr().String()+"/", "x"); code != 404 {
		t.Errorf("after the first table: %d, want 404", code)
	}
}

// A client that stops sending its body is cut after StallTimeout; a long
// upload and a long streamed answer that keep moving, and an idle
// WebSocket, are not.
func TestServer_stallTimeout(t *testing.T) {
	const stall = 300 * time.Millisecond
	backendErr := make(chan error, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			select {
			case backendErr <- err:
			default:
			}
			return
		}
		fmt.Fprintf(w, "got %d", n)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		for i := range 12 {
			fmt.Fprintf(w, "line %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(stall / 3)
		}
	})
	up := websocket.Upgrader{}
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
			c.WriteMessage(mt, msg)
		}
	})
	be := httptest.NewServer(mux)
	defer be.Close()
	s, po := endpointsFor("app", be.Listener.Addr().(*net.TCPAddr).Port)
	p := startProxy(t, Config{StallTimeout: stall}, Input{Ingresses: []networkingv1.Ingress{ing("web", "i", "- / P app:80")}, Services: []corev1.Service{s}, Pods: []*corev1.Pod{po}})

	t.Run("a trickling client is cut", func(t *testing.T) {
		c, err := net.Dial("tcp", p.http)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c) // the answer, then the close
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("the stalled request lasted %v", took)
		}
		if !strings.HasPrefix(string(b), "HTTP/1.1 408") {
			t.Errorf("the stalled client got %q, want 408", b)
		}
		select {
		case <-backendErr:
		case <-time.After(5 * time.Second):
			t.Error("the backend still waits for the body")
		}
		if got := testutil.ToFloat64(p.srv.m.upstreamErrors.WithLabelValues("web", "i", "response")); got != 0 {
			t.Errorf("a stalled client counted as an upstream error: %v", got)
		}
	})

	t.Run("an upload that keeps moving is not cut", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			for range 10 { // 10 × stall/3: longer than stall in all
				pw.Write([]byte(strings.Repeat("x", 100)))
				time.Sleep(stall / 3)
			}
			pw.Close()
		}()
		resp, err := http.Post("http://"+p.http+"/upload", "application/octet-stream", pr)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "got 1000" {
			t.Errorf("slow upload: %d %q", resp.StatusCode, b)
		}
	})

	t.Run("a long stream is not cut", func(t *testing.T) {
		resp, err := http.Get("http://" + p.http + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		n := 0
		for sc := bufio.NewScanner(resp.Body); sc.Scan(); n++ {
		}
		if n != 12 {
			t.Errorf("the stream gave %d lines of 12", n)
		}
	})

	t.Run("an idle WebSocket stays open", func(t *testing.T) {
		c, _, err := (&websocket.Dialer{}).Dial("ws://"+p.http+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i := range 2 {
			time.Sleep(2 * stall)
			if err := c.WriteMessage(websocket.TextMessage, []byte(strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, msg, err := c.ReadMessage(); err != nil || string(msg) != strconv.Itoa(i) {
				t.Fatalf("after %v idle: %q %v", 2*stall, msg, err)
			}
		}
	})
}

// The canary split holds through the server when the table is rebuilt
// between requests.
func TestServer_canarySplitAcrossTables(t *testing.T) {
	_, pa := backend(t, "stable")
	_, pc := backend(t, "canary")
	s := svc("web", "app", 80, 0)
	s.Spec.Ports[0].TargetPort = intstr.FromString("http")
	mk := func(name string, port int, track, weight string) *corev1.Pod {
		p := trackPod(name, "127.0.0.1", track, weight)
		p.Spec.Containers = []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}}
		return p
	}
	in := Input{Ingresses: []networkingv1.Ingress{ing("web", "i", "- / P app:80")}, Services: []corev1.Service{s},
		Pods: []*corev1.Pod{mk("a", pa, "stable", "90"), mk("c", pc, "canary", "10")}}
	p := startProxy(t, Config{}, in)
	canary := 0
	for i := range 100 {
		if i%3 == 0 {
			p.srv.SetTable(Build(in, nil))
		}
		if _, body := get(t, http.DefaultClient, "http://"+p.http+"/", "x"); strings.HasPrefix(body, "canary") {
			canary++
		}
	}
	if canary != 10 {
		t.Errorf("the canary got %d of 100 requests, want 10", canary)
	}
}

// A Secret whose key does not match its certificate, and one of garbage,
// beside a good one: their hosts get the default certificate, the good
// one's host its own, and the warnings hold no key material.
func TestServer_badTLSSecretBesideGood(t *testing.T) {
	ca := newTestCA(t)
	good := ca.secret(t, "web", "good", "good.example")
	mismatched := ca.secret(t, "web", "mismatched", "mismatched.example")
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	kd, _ := x509.MarshalECPrivateKey(otherKey)
	mismatched.Data["tls.key"] = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
	garbage := ca.secret(t, "web", "garbage", "garbage.example")
	garbage.Data["tls.key"] = []byte("-----BEGIN EC PRIVATE KEY-----\nc2VjcmV0LWdhcmJhZ2Uta2V5\n-----END EC PRIVATE KEY-----\n")
	i := ing("web", "tls", "good.example / P a:80")
	i.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"good.example"}, SecretName: "good"},
		{Hosts: []string{"mismatched.example"}, SecretName: "mismatched"}, {Hosts: []string{"garbage.example"}, SecretName: "garbage"}}
	p := startProxy(t, Config{}, Input{Ingresses: []networkingv1.Ingress{i}, Secrets: []corev1.Secret{good, mismatched, garbage}})
	w := strings.Join(p.srv.Table().Warnings, "\n")
	if !strings.Contains(w, "web/mismatched: tls.crt and tls.key are not a valid key pair") || !strings.Contains(w, "web/garbage: tls.crt and tls.key are not a valid key pair") {
		t.Errorf("warnings:\n%s", w)
	}
	for _, sec := range []corev1.Secret{mismatched, garbage} {
		for _, line := range strings.Split(string(sec.Data["tls.key"]), "\n") {
			if len(line) > 8 && !strings.HasPrefix(line, "-----") && strings.Contains(w, line) {
				t.Errorf("a warning holds key material of %s", sec.Name)
			}
		}
	}
	cn := func(name string) string {
		c, err := tls.Dial("tcp", p.tls, &tls.Config{InsecureSkipVerify: true, ServerName: name})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	for name, want := range map[string]string{"good.example": "good.example", "mismatched.example": "bosun-ingress-default", "garbage.example": "bosun-ingress-default"} {
		if got := cn(name); got != want {
			t.Errorf("%s got the certificate of %s, want %s", name, got, want)
		}
	}
}

// A plain request in progress at shutdown finishes when it takes less
// than ShutdownTimeout, and Serve returns after it.
func TestServer_shutdownLetsRequestFinish(t *testing.T) {
	arrived := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		time.Sleep(500 * time.Millisecond)
		io.WriteString(w, "finished")
	}))
	defer slow.Close()
	sv, po := endpointsFor("slow", slow.Listener.Addr().(*net.TCPAddr).Port)
	s, err := New(Config{ShutdownTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s.SetTable(Build(Input{Ingresses: []networkingv1.Ingress{ing("web", "i", "- / P slow:80")}, Services: []corev1.Service{sv}, Pods: []*corev1.Pod{po}}, nil))
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, hl, nil) }()
	type answer struct {
		code int
		body string
		err  error
	}
	got := make(chan answer, 1)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	go func() {
		resp, err := (&http.Client{Transport: tr}).Get("http://" + hl.Addr().String() + "/")
		if err != nil {
			got <- answer{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- answer{resp.StatusCode, string(b), err}
	}()
	<-arrived
	start := time.Now()
	cancel()
	a := <-got
	if a.err != nil || a.code != 200 || a.body != "finished" {
		t.Errorf("the request in progress at shutdown: %d %q %v", a.code, a.body, a.err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %v for a request of 0.5 s", took)
	}
}
