package e2e

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"
)

// BenchmarkServiceLatency: HTTP request latency from the host to one hello
// pod, through its Service's virtual IP against its pod IP directly, in
// the same run (requests alternate, so both see the same machine load):
// with a new connection per request (the SYN goes through the nat chains,
// every later packet through conntrack) and over one kept-alive
// connection. Reports p50 and p99 of each, and the VIP's overhead at p50.
//
//	go test -run XXX -bench ServiceLatency -benchtime 2000x ./e2e/
func BenchmarkServiceLatency(b *testing.B) {
	repo := newGitRepo(b)
	repo.write("web.yaml", `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: localhost/bosun-hello:v1
        ports:
        - {name: http, containerPort: 8080}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
`)
	repo.commit("web")
	s := startStack(b, repo)
	s.waitFor("the web pod ready", 90*time.Second, func() error {
		if n := len(readyPods(s.pods(), "web-")); n != 1 {
			return fmt.Errorf("%d ready", n)
		}
		return nil
	})
	pod := readyPods(s.pods(), "web-")[0]
	vip := s.clusterIP("web")
	targets := map[string]string{"direct": "http://" + pod.Status.PodIP + ":8080/", "vip": "http://" + vip + "/"}
	s.waitFor("the VIP to answer", 30*time.Second, func() error { _, err := askHost(targets["vip"]); return err })

	for _, mode := range []string{"new-conn", "keepalive"} {
		b.Run(mode, func(b *testing.B) {
			clients := map[string]*http.Client{}
			for name := range targets {
				tr := &http.Transport{DisableKeepAlives: mode == "new-conn"}
				defer tr.CloseIdleConnections()
				clients[name] = &http.Client{Timeout: 5 * time.Second, Transport: tr}
			}
			lat := map[string][]time.Duration{}
			get := func(name string) {
				start := time.Now()
				resp, err := clients[name].Get(targets[name])
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[name] = append(lat[name], time.Since(start))
			}
			for range 50 { // warm up both paths
				get("direct")
				get("vip")
			}
			clear(lat)
			b.ResetTimer()
			for i := range b.N {
				if i%2 == 0 {
					get("direct")
					get("vip")
				} else {
					get("vip")
					get("direct")
				}
			}
			b.StopTimer()
			p := func(name string, q float64) float64 {
				d := slices.Clone(lat[name])
				slices.Sort(d)
				return float64(d[min(len(d)-1, int(q*float64(len(d))))].Microseconds())
			}
			for _, name := range []string{"direct", "vip"} {
				b.ReportMetric(p(name, 0.5), name+"-p50-µs")
				b.ReportMetric(p(name, 0.99), name+"-p99-µs")
			}
			b.ReportMetric(100*(p("vip", 0.5)/p("direct", 0.5)-1), "vip-overhead-p50-%")
			b.ReportMetric(0, "ns/op")
		})
	}
}
