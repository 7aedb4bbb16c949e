package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
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

func TestTask_writesPrintsAndExits(t *testing.T) {
	dir := t.TempDir()
	var out strings.Builder
	tk := task{writes: []string{dir + "/a=one", dir + "/b=two=2"}, print: "done", exit: 3}
	if !tk.given() {
		t.Fatal("task not given")
	}
	if code := tk.run(&out); code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}
	for name, want := range map[string]string{"a": "one", "b": "two=2"} {
		b, err := os.ReadFile(dir + "/" + name)
		if err != nil || string(b) != want {
			t.Fatalf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	if out.String() != "done\n" {
		t.Fatalf("printed %q", out.String())
	}
	if bad := (&task{writes: []string{"nopath"}}); bad.run(io.Discard) != 2 {
		t.Fatal("a -write without = must exit 2")
	}
}

func TestHandler_filesAndWrites(t *testing.T) {
	dir := t.TempDir()
	c, _ := configFromEnv(env(nil))
	srv := httptest.NewServer(newHandler(c, http.DefaultClient))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/write?path="+dir+"/f", "text/plain", strings.NewReader("data"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /write: %v %v", resp, err)
	}
	resp.Body.Close()
	if code, body := get(t, srv.URL+"/file?path="+dir+"/f"); code != 200 || body != "data" {
		t.Fatalf("GET /file = %d %q", code, body)
	}
	if code, body := get(t, srv.URL+"/stat?path="+dir+"/f"); code != 200 || !strings.HasPrefix(body, "mode 0644 uid ") || !strings.HasSuffix(body, " size 4\n") {
		t.Fatalf("GET /stat = %d %q", code, body)
	}
	if code, _ := get(t, srv.URL+"/file?path="+dir+"/missing"); code != 404 {
		t.Fatalf("GET /file of a missing file = %d, want 404", code)
	}
	resp, err = http.Post(srv.URL+"/write?path="+dir, "text/plain", strings.NewReader("x"))
	if err != nil || resp.StatusCode != 500 {
		t.Fatalf("POST /write onto a directory: %v %v, want 500", resp, err)
	}
	resp.Body.Close()
	if code, body := get(t, srv.URL+"/self"); code != 200 || !strings.Contains(body, "Uid:") || !strings.Contains(body, "CapEff:") {
		t.Fatalf("GET /self = %d %q", code, body)
	}
	if code, body := get(t, srv.URL+"/sysctl?name=kernel.ostype"); code != 200 || body != "Linux\n" {
		t.Fatalf("GET /sysctl = %d %q", code, body)
	}
}

func TestGRPCHealth_servesAndFails(t *testing.T) {
	for _, fail := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		ln.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- serveGRPCHealth(ctx, port, fail) }()
		conn, err := grpc.NewClient("127.0.0.1:"+port, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		var resp *healthpb.HealthCheckResponse
		for i := 0; i < 50; i++ {
			resp, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "hello"})
			if err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		conn.Close()
		cancel()
		<-done
		want := healthpb.HealthCheckResponse_SERVING
		if fail {
			want = healthpb.HealthCheckResponse_NOT_SERVING
		}
		if err != nil || resp.GetStatus() != want {
			t.Fatalf("fail=%v: Check = %v, %v; want %v", fail, resp.GetStatus(), err, want)
		}
	}
}

func TestConfigFromEnv_errorRate(t *testing.T) {
	c, err := configFromEnv(env(map[string]string{"ERROR_RATE": "0.25"}))
	if err != nil || c.ErrorRate != 0.25 {
		t.Fatalf("ERROR_RATE=0.25: got %v, %v", c.ErrorRate, err)
	}
	for _, bad := range []string{"x", "-0.1", "1.5", "NaN"} {
		if _, err := configFromEnv(env(map[string]string{"ERROR_RATE": bad})); err == nil || !strings.Contains(err.Error(), "ERROR_RATE") {
			t.Errorf("ERROR_RATE=%s: err = %v, want one naming ERROR_RATE", bad, err)
		}
	}
}

// metric reads hello_http_requests_total{code} from the app's /metrics.
func metric(t *testing.T, base, code string) string {
	t.Helper()
	_, body := get(t, base+"/metrics")
	prefix := `hello_http_requests_total{code="` + code + `"} `
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return v
		}
	}
	t.Fatalf("no %s in /metrics:\n%s", prefix, body)
	return ""
}

func TestMetrics_countRequestsByCodeButNotScrapes(t *testing.T) {
	c, _ := configFromEnv(env(nil))
	srv := httptest.NewServer(newHandler(c, http.DefaultClient))
	defer srv.Close()
	if v := metric(t, srv.URL, "500"); v != "0" {
		t.Fatalf("500 before any request = %s, want 0 (the series exists from the start)", v)
	}
	for range 3 {
		get(t, srv.URL+"/")
	}
	get(t, srv.URL+"/healthz")
	get(t, srv.URL+"/nope")
	if v := metric(t, srv.URL, "200"); v != "4" {
		t.Errorf("200 = %s, want 4 (3 x / and /healthz; scrapes not counted)", v)
	}
	if v := metric(t, srv.URL, "404"); v != "1" {
		t.Errorf("404 = %s, want 1", v)
	}
}

func TestErrorRate_failsThatShareOfRoot(t *testing.T) {
	for _, tc := range []struct {
		rate     float64
		min, max int
	}{{0, 0, 0}, {1, 1000, 1000}, {0.5, 400, 600}} { // 0.5: 6 standard deviations either side
		c, _ := configFromEnv(env(map[string]string{"ERROR_RATE": strconv.FormatFloat(tc.rate, 'f', -1, 64)}))
		srv := httptest.NewServer(newHandler(c, http.DefaultClient))
		failed := 0
		for range 1000 {
			code, body := get(t, srv.URL+"/")
			if code == 500 {
				if body != "injected error\n" {
					t.Fatalf("500 body %q", body)
				}
				failed++
			}
		}
		if code, _ := get(t, srv.URL+"/healthz"); code != 200 {
			t.Errorf("rate %v: /healthz = %d: only / fails", tc.rate, code)
		}
		if got := metric(t, srv.URL, "500"); got != strconv.Itoa(failed) {
			t.Errorf("rate %v: 500 counter %s, %d answered", tc.rate, got, failed)
		}
		srv.Close()
		if failed < tc.min || failed > tc.max {
			t.Errorf("ERROR_RATE=%v: %d of 1000 failed, want %d..%d", tc.rate, failed, tc.min, tc.max)
		}
	}
}
