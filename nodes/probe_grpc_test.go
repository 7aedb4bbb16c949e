package nodes

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// grpcServer serves grpc.health.v1 on 127.0.0.1 (withHealth false: a gRPC
// server without the health service) and returns its port.
func grpcServer(t *testing.T, withHealth bool) (int32, *health.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	if withHealth {
		healthpb.RegisterHealthServer(srv, hs)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return int32(ln.Addr().(*net.TCPAddr).Port), hs
}

func TestProber_grpc(t *testing.T) {
	port, hs := grpcServer(t, true)
	hs.SetServingStatus("db", healthpb.HealthCheckResponse_NOT_SERVING)
	bare, _ := grpcServer(t, false)
	// A listener that accepts and never answers: the probe times out.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silentPort := int32(silent.Addr().(*net.TCPAddr).Port)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := int32(closed.Addr().(*net.TCPAddr).Port)
	closed.Close()

	svc := func(s string) *string { return &s }
	pr := newProber()
	for _, tc := range []struct {
		name    string
		action  corev1.GRPCAction
		ok      bool
		wantMsg string
	}{
		{"serving (the server's overall status)", corev1.GRPCAction{Port: port}, true, ""},
		{"a service not serving", corev1.GRPCAction{Port: port, Service: svc("db")}, false, `service unhealthy (responded with "NOT_SERVING")`},
		{"an unknown service", corev1.GRPCAction{Port: port, Service: svc("nope")}, false, "code = NotFound"},
		{"no health service", corev1.GRPCAction{Port: bare}, false, "doesn't implement the grpc health protocol"},
		{"no answer within the timeout", corev1.GRPCAction{Port: silentPort}, false, "timeout"},
		{"nothing listening", corev1.GRPCAction{Port: closedPort}, false, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := probeTarget{probe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &tc.action}}, container: &corev1.Container{}, podIP: "127.0.0.1"}
			start := time.Now()
			ok, msg := pr.run(context.Background(), target, 300*time.Millisecond)
			if ok != tc.ok || !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("got %v %q, want %v %q", ok, msg, tc.ok, tc.wantMsg)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("took %s with a 300ms timeout", took)
			}
		})
	}
}

func TestRunHandler_hooks(t *testing.T) {
	codes := map[string]int{"/ok": 200, "/fail": 500}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(codes[r.URL.Path])
	}))
	defer srv.Close()
	host, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	a := &Agent{prober: newProber()}
	c := &corev1.Container{Name: "app"}
	get := func(path string, port int) *corev1.LifecycleHandler {
		return &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt(port)}}
	}
	// As kubelet's: any HTTP answer passes, even a 500; no answer fails.
	if err := a.runHandler(context.Background(), get("/ok", port), c, host, nil, nil); err != nil {
		t.Errorf("200: %v", err)
	}
	if err := a.runHandler(context.Background(), get("/fail", port), c, host, nil, nil); err != nil {
		t.Errorf("500: %v", err)
	}
	srv.Close()
	if err := a.runHandler(context.Background(), get("/ok", port), c, host, nil, nil); err == nil {
		t.Error("no server: passed")
	}
	// sleep waits, and a context that ends first fails it.
	sleep := &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1}}
	start := time.Now()
	if err := a.runHandler(context.Background(), sleep, c, host, nil, nil); err != nil || time.Since(start) < time.Second {
		t.Errorf("sleep 1: %v after %s", err, time.Since(start))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := a.runHandler(ctx, sleep, c, host, nil, nil); err == nil {
		t.Error("sleep cut short by its context: passed")
	}
	// exec without a running container fails with why.
	exec := &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"/true"}}}
	if err := a.runHandler(context.Background(), exec, c, host, nil, nil); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("exec without a task: %v", err)
	}
}

func TestProbeGrace_probeOverridesPod(t *testing.T) {
	five := int64(5)
	c := &corev1.Container{LivenessProbe: &corev1.Probe{TerminationGracePeriodSeconds: &five}, StartupProbe: &corev1.Probe{}}
	if g := probeGrace(c, probeLiveness, 30*time.Second); g != 5*time.Second {
		t.Errorf("liveness kill grace %s, want 5s", g)
	}
	if g := probeGrace(c, probeStartup, 30*time.Second); g != 30*time.Second {
		t.Errorf("startup kill grace %s, want the pod's 30s", g)
	}
}
