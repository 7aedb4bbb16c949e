package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestHandler_answersPodAndVersion(t *testing.T) {
	version = "v7"
	c, err := configFromEnv(env(map[string]string{"POD_NAME": "web-1"}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newHandler(c, http.DefaultClient))
	defer srv.Close()
	if code, body := get(t, srv.URL+"/"); code != 200 || body != "hello from web-1 version v7\n" {
		t.Fatalf("GET / = %d %q", code, body)
	}
	if code, body := get(t, srv.URL+"/healthz"); code != 200 || body != "ok" {
		t.Fatalf("GET /healthz = %d %q", code, body)
	}
	if code, _ := get(t, srv.URL+"/nope"); code != 404 {
		t.Fatalf("GET /nope = %d, want 404", code)
	}
}

func TestHandler_failReadyMakesHealthz500(t *testing.T) {
	c, _ := configFromEnv(env(map[string]string{"FAIL_READY": "1"}))
	srv := httptest.NewServer(newHandler(c, http.DefaultClient))
	defer srv.Close()
	if code, _ := get(t, srv.URL+"/healthz"); code != 500 {
		t.Fatalf("GET /healthz = %d, want 500", code)
	}
}

func TestHandler_upstreamProxiesBody(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "from upstream")
	}))
	defer up.Close()
	c, _ := configFromEnv(env(map[string]string{"UPSTREAM": up.URL}))
	srv := httptest.NewServer(newHandler(c, http.DefaultClient))
	defer srv.Close()
	if code, body := get(t, srv.URL+"/upstream"); code != 200 || body != "from upstream" {
		t.Fatalf("GET /upstream = %d %q", code, body)
	}
}

func TestConfigFromEnv(t *testing.T) {
	c, err := configFromEnv(env(map[string]string{"CRASH_AFTER": "1.5s", "PORT": "9090"}))
	if err != nil || c.CrashAfter != 1500*time.Millisecond || c.Port != "9090" {
		t.Fatalf("got %+v, %v", c, err)
	}
	if _, err := configFromEnv(env(map[string]string{"CRASH_AFTER": "soon"})); err == nil {
		t.Fatal("bad CRASH_AFTER accepted")
	}
	if c, _ := configFromEnv(env(nil)); c.Port != "8080" || c.Pod == "" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestProbe_passesOn2xxAnd3xxOnly(t *testing.T) {
	c, err := configFromEnv(env(map[string]string{"POD_NAME": "web-1"}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newHandler(c, http.DefaultClient))
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if err := probe(client, srv.URL+"/healthz"); err != nil {
		t.Errorf("probe /healthz: %v", err)
	}
	if err := probe(client, srv.URL+"/nope"); err == nil {
		t.Error("probe /nope passed, want a 404 failure")
	}
	c.FailReady = true
	failing := httptest.NewServer(newHandler(c, http.DefaultClient))
	defer failing.Close()
	if err := probe(client, failing.URL+"/healthz"); err == nil {
		t.Error("probe of a FAIL_READY /healthz passed")
	}
}
