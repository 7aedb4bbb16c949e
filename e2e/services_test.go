package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
)

// nobodyService selects no pod: a Service without endpoints.
const nobodyService = `apiVersion: v1
kind: Service
metadata:
  name: nobody
spec:
  selector: {app: nobody}
  ports:
  - {name: http, port: 80, targetPort: 8080}
`

// TestServices runs examples/services on the real stack and shows the
// Service proxy's data path (issue 8): from the host and from a pod,
// connections to web's virtual IP (resolved through the stack's DNS)
// spread over its 3 ready pods at their port named http; a pod reaches its
// own Service; a Service without endpoints refuses at once; UDP works and
// moves to the new pod when the old one goes; a 90/10 weighted pair splits
// 90/10; a node port answers on the node's address; scaling 3 -> 1 sends
// nothing to a removed pod once the rules dropped it; the rules outlive a
// restart of bosun and are rebuilt the same; --cleanup removes them.
func TestServices(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.copyDir("../examples/services")
	repo.write("nobody.yaml", nobodyService)
	repo.commit("services")
	s := startStack(t, repo)
	s.waitFor("web 3, client 1, split 3+1 pods ready", 120*time.Second, func() error {
		pods := s.pods()
		for prefix, n := range map[string]int{"web-": 3, "client-": 1, "split-stable-": 3, "split-canary-": 1} {
			if got := len(readyPods(pods, prefix)); got != n {
				return fmt.Errorf("%d %s pods ready, want %d", got, prefix, n)
			}
		}
		return nil
	})
	web := readyPods(s.pods(), "web-")
	client := readyPods(s.pods(), "client-")[0]
	vip := s.clusterIP("web")
	// The proxy has programmed web's 3 endpoints once all 3 answer.
	s.waitFor("the 3 web pods to answer through the VIP", 30*time.Second, func() error {
		got := countAnswers(30, 1, func() (string, error) { return askHost("http://" + vip + "/") })
		if len(got) != 3 || got["error"] > 0 {
			return fmt.Errorf("answers %v", got)
		}
		return nil
	})

	t.Run("DNS answers the virtual IP", func(t *testing.T) {
		r, err := s.lookup(webName, mdns.TypeA)
		if err != nil {
			t.Fatal(err)
		}
		if got := aRecords(r); !slices.Equal(got, []string{vip}) {
			t.Fatalf("A %s = %v; want the ClusterIP %s", webName, got, vip)
		}
	})

	t.Run("from the host, 300 connections to the name spread over the 3 ready endpoints", func(t *testing.T) {
		r, err := s.lookup(webName, mdns.TypeA) // the host resolves through the stack's DNS
		if err != nil || len(aRecords(r)) != 1 {
			t.Fatalf("A %s: %v, %v", webName, r, err)
		}
		addr := aRecords(r)[0]
		got := countAnswers(300, 10, func() (string, error) { return askHost("http://" + addr + ":80/") })
		checkSpread(t, got, web, 300)
	})

	t.Run("from a pod, 300 requests to the Service's name spread over the 3 endpoints", func(t *testing.T) {
		// The pod's HTTP client keeps connections per host name as spelled,
		// so each request spells the (case-insensitive) name differently:
		// every request is a new connection, a new choice of endpoint.
		var mu sync.Mutex
		n := 0
		got := countAnswers(300, 10, func() (string, error) {
			mu.Lock()
			n++
			i := n
			mu.Unlock()
			return askFrom(client, "http://"+caseVariant(webName, i)+"/")
		})
		checkSpread(t, got, web, 300)
	})

	t.Run("a pod reaches its own Service", func(t *testing.T) {
		for range 5 {
			got, err := askFrom(client, "http://client.default.svc.cluster.local/")
			if err != nil || got != client.Name {
				t.Fatalf("pod %s through its own Service: %q, %v", client.Name, got, err)
			}
		}
	})

	t.Run("a Service without endpoints refuses within 100 ms", func(t *testing.T) {
		nobody := s.clusterIP("nobody")
		for range 10 {
			start := time.Now()
			c, err := net.DialTimeout("tcp", nobody+":80", 2*time.Second)
			took := time.Since(start)
			if err == nil {
				c.Close()
				t.Fatalf("connected to %s, which has no endpoints", nobody)
			}
			if !errors.Is(err, syscall.ECONNREFUSED) || took > 100*time.Millisecond {
				t.Fatalf("dial %s: %v after %v; want connection refused within 100 ms", nobody, err, took)
			}
		}
		start := time.Now()
		body, err := httpGet(fetchURL(client, "http://nobody.default.svc.cluster.local/"))
		if err != nil || !strings.Contains(body, "connection refused") {
			t.Fatalf("from a pod: %q, %v; want connection refused", body, err)
		}
		t.Logf("from a pod (name resolution included): refused after %v", time.Since(start))
	})

	t.Run("UDP through the Service, from a pod and from the host", func(t *testing.T) {
		got := countAnswers(30, 1, func() (string, error) {
			body, err := httpGet("http://" + client.Status.PodIP + ":8080/udp?addr=echo.default.svc.cluster.local:5300")
			return strings.TrimSpace(body), err
		})
		if len(got) < 2 || !allIn(got, web) {
			t.Errorf("30 datagrams from a pod (a new socket each) answered by %v; want 2 or 3 of the web pods", got)
		}
		c, err := net.Dial("udp", s.clusterIP("echo")+":5300")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if name, err := askUDP(c); err != nil || !allIn(map[string]int{name: 1}, web) {
			t.Fatalf("from the host: %q, %v", name, err)
		}
	})

	t.Run("weights 90/10 over 1000 connections", func(t *testing.T) {
		split := s.clusterIP("split")
		versions := countAnswers(1000, 10, func() (string, error) {
			body, err := httpGetNew("http://" + split + "/")
			if m := helloRE.FindStringSubmatch(body); err == nil && m != nil {
				return m[2], nil
			}
			return "", fmt.Errorf("answer %q: %v", body, err)
		})
		canary := float64(versions["v2"]) / 1000
		t.Logf("3 stable pods (weight 90) and 1 canary pod (weight 10): %v", versions)
		if versions["error"] > 0 || canary < 0.06 || canary > 0.14 {
			t.Fatalf("canary share %.1f %% (%v); want 10 %% (6-14 %%)", 100*canary, versions)
		}
	})

	t.Run("node port on the node's address", func(t *testing.T) {
		svc := s.service("web-nodeport")
		np := svc.Spec.Ports[0].NodePort
		if np == 0 {
			t.Fatalf("web-nodeport has no node port: %+v", svc.Spec.Ports)
		}
		addr := s.nodeAddress("e2e-node")
		got, err := askHost(fmt.Sprintf("http://%s:%d/", addr, np))
		if err != nil || !allIn(map[string]int{got: 1}, web) {
			t.Fatalf("GET %s:%d: %q, %v", addr, np, got, err)
		}
	})

	t.Run("scale 3 -> 1: no connection reaches a removed pod once its endpoint is withdrawn", func(t *testing.T) {
		ipOf := map[string]string{}
		for _, p := range web {
			ipOf[p.Name] = p.Status.PodIP
		}
		type answer struct {
			start time.Time
			pod   string
			err   error
		}
		var (
			mu      sync.Mutex
			answers []answer
			stop    = make(chan struct{})
			done    = make(chan struct{})
		)
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				pod, err := askHost("http://" + vip + "/")
				mu.Lock()
				answers = append(answers, answer{start, pod, err})
				mu.Unlock()
			}
		}()
		// When each pod's address leaves the table, as seen by nft.
		gone := map[string]time.Time{}
		repo.write("web.yaml", strings.Replace(readFile(t, repo.dir+"/web.yaml"), "replicas: 3", "replicas: 1", 1))
		repo.commit("web: 1 replica")
		deadline := time.Now().Add(60 * time.Second)
		for len(gone) < 2 && time.Now().Before(deadline) {
			listing := nftList(t, s.proxyTable)
			for name, ip := range ipOf {
				if _, ok := gone[name]; !ok && !strings.Contains(listing, `"`+ip+`"`) {
					gone[name] = time.Now()
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(2 * time.Second) // the removed pods' preStop (1 s) and grace period have passed
		close(stop)
		<-done
		if len(gone) != 2 {
			t.Fatalf("endpoints withdrawn: %v; want 2 of %v", gone, ipOf)
		}
		var errs []string
		after := 0
		for _, a := range answers {
			if a.err != nil {
				errs = append(errs, a.err.Error())
				continue
			}
			if at, ok := gone[a.pod]; ok {
				if a.start.After(at) {
					t.Errorf("a connection started %v after %s left the rules reached it", a.start.Sub(at), a.pod)
				}
			} else {
				after++
			}
		}
		t.Logf("%d connections during the scale-down, %d to the pod that stays, %d failed", len(answers), after, len(errs))
		if len(errs) > 0 {
			t.Errorf("%d connections failed during the scale-down: %v", len(errs), errs[:min(5, len(errs))])
		}
	})

	t.Run("UDP moves to the new pod when the old one goes", func(t *testing.T) {
		// One socket, one source port: without the conntrack flush, its
		// datagrams would keep going to the removed pod.
		c, err := net.Dial("udp", s.clusterIP("echo")+":5300")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var old string
		s.waitFor("one web pod answering UDP", 30*time.Second, func() error {
			old, err = askUDP(c)
			return err
		})
		oldIP := podIP(s.pods(), old)
		repo.write("web.yaml", strings.Replace(readFile(t, repo.dir+"/web.yaml"), "        - name: UDP_PORT", "        - name: ROLLED\n          value: \"1\"\n        - name: UDP_PORT", 1))
		repo.commit("web: roll")
		var goneAt time.Time
		s.waitFor("the old pod to leave the rules", 90*time.Second, func() error {
			askUDP(c) // keep the flow alive, as a statsd client does
			if strings.Contains(nftList(t, s.proxyTable), `"`+oldIP+`"`) {
				return fmt.Errorf("%s (%s) still in the rules", old, oldIP)
			}
			goneAt = time.Now()
			return nil
		})
		var now string
		s.waitFor("another pod to answer the same socket", 5*time.Second, func() error {
			now, err = askUDP(c)
			if err == nil && now == old {
				err = fmt.Errorf("still %s", old)
			}
			return err
		})
		t.Logf("the same socket: %s, then %s %v after %s left the rules", old, now, time.Since(goneAt), old)
	})

	t.Run("the rules outlive a restart of bosun and are rebuilt the same", func(t *testing.T) {
		before := nftList(t, s.proxyTable)
		s.stop(syscall.SIGTERM)
		if got := nftList(t, s.proxyTable); got != before {
			t.Fatalf("the table changed when bosun stopped:\n%s", got)
		}
		if _, err := askHost("http://" + vip + "/"); err != nil {
			t.Fatalf("the VIP while bosun is down: %v", err)
		}
		s.start()
		s.waitFor("a full sync by the new process", 30*time.Second, func() error {
			if n := s.metric(`bosun_proxy_sync_seconds_count{kind="full"}`); n < 1 {
				return fmt.Errorf("%v full syncs", n)
			}
			return nil
		})
		s.waitFor("the same rules as before", 30*time.Second, func() error {
			if got := nftList(t, s.proxyTable); got != before {
				return fmt.Errorf("rules differ:\n%s\nbefore:\n%s", got, before)
			}
			return nil
		})
	})

	t.Run("cleanup removes the table, and succeeds when there is none", func(t *testing.T) {
		s.stop(syscall.SIGTERM)
		for range 2 {
			if out, err := exec.Command(bosun(t), "agent", "--cleanup", "--proxy-table", s.proxyTable).CombinedOutput(); err != nil {
				t.Fatalf("bosun agent --cleanup: %v\n%s", err, out)
			}
			if out, err := exec.Command("nft", "list", "table", "ip", s.proxyTable).CombinedOutput(); err == nil {
				t.Fatalf("table %s still there:\n%s", s.proxyTable, out)
			}
		}
	})
}

// TestServices_secondAgent: a second node's agent (its own table) programs
// the same rules as the server's embedded agent.
func TestServices_secondAgent(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.copyDir("../examples/services")
	repo.commit("services")
	s := startStack(t, repo)
	b := startAgent(t, s, "node-b")
	s.waitFor("every pod ready", 120*time.Second, func() error {
		pods := s.pods()
		if n := len(readyPods(pods, "")); n != 8 || len(pods) != 8 {
			return fmt.Errorf("%d of %d pods ready, want 8", n, len(pods))
		}
		return nil
	})
	var ipsAll []string
	for _, p := range s.pods() {
		ipsAll = append(ipsAll, p.Status.PodIP)
	}
	norm := func(table string) string {
		return strings.ReplaceAll(nftList(t, table), `"`+table+`"`, `"TABLE"`)
	}
	s.waitFor("both tables to hold every endpoint, and to be the same", 30*time.Second, func() error {
		a, bb := norm(s.proxyTable), norm(b.proxyTable)
		for _, ip := range ipsAll {
			if !strings.Contains(a, `"`+ip+`"`) || !strings.Contains(bb, `"`+ip+`"`) {
				return fmt.Errorf("%s missing from a table", ip)
			}
		}
		if a != bb {
			return fmt.Errorf("the tables differ:\n%s", lineDiffE2E(a, bb))
		}
		return nil
	})
	t.Logf("%s and %s: the same %d objects (table, maps, chains, rules) for %d endpoints", s.proxyTable, b.proxyTable,
		strings.Count(norm(s.proxyTable), "\n")+1, len(ipsAll))
}

// clusterIP waits for the Service's virtual IP and returns it.
func (s *stack) clusterIP(name string) string {
	s.t.Helper()
	var ip string
	s.waitFor("a ClusterIP for "+name, 30*time.Second, func() error {
		ip = s.service(name).Spec.ClusterIP
		if ip == "" || ip == corev1.ClusterIPNone {
			return fmt.Errorf("service %s has clusterIP %q", name, ip)
		}
		return nil
	})
	return ip
}

func (s *stack) service(name string) corev1.Service {
	s.t.Helper()
	var list struct{ Items []corev1.Service }
	if err := s.getJSON("/api/v1/services", &list); err != nil {
		s.t.Fatal(err)
	}
	for _, svc := range list.Items {
		if svc.Name == name && svc.Namespace == "default" {
			return svc
		}
	}
	s.t.Fatalf("no service %s", name)
	return corev1.Service{}
}

// nodeAddress is a node's InternalIP.
func (s *stack) nodeAddress(name string) string {
	s.t.Helper()
	var list struct{ Items []corev1.Node }
	if err := s.getJSON("/api/v1/nodes", &list); err != nil {
		s.t.Fatal(err)
	}
	for _, n := range list.Items {
		for _, a := range n.Status.Addresses {
			if n.Name == name && a.Type == corev1.NodeInternalIP {
				return a.Address
			}
		}
	}
	s.t.Fatalf("node %s has no InternalIP", name)
	return ""
}

// metric reads one sample (name and labels as /metrics writes them) of the
// stack's metrics; -1 when it is not there.
func (s *stack) metric(sample string) float64 {
	body, err := s.getText("/metrics")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// caseVariant spells name with the letters chosen by the bits of i in
// upper case: the same DNS name, another host to an HTTP client's pool.
func caseVariant(name string, i int) string {
	b := []byte(name)
	for j := range b {
		if b[j] >= 'a' && b[j] <= 'z' {
			if i&1 == 1 {
				b[j] -= 'a' - 'A'
			}
			i >>= 1
		}
	}
	return string(b)
}

var helloRE = regexp.MustCompile(`hello from (\S+) version (\S+)`)

// newConns is an HTTP client that opens a new connection per request, so
// that each request is a new choice of endpoint.
var newConns = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func httpGetNew(u string) (string, error) {
	resp, err := newConns.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// askHost GETs u from the host on a new connection and returns the name of
// the hello pod that answered.
func askHost(u string) (string, error) {
	body, err := httpGetNew(u)
	if m := helloRE.FindStringSubmatch(body); err == nil && m != nil {
		return m[1], nil
	}
	return "", fmt.Errorf("GET %s: %q, %v", u, body, err)
}

func fetchURL(from corev1.Pod, u string) string {
	return "http://" + from.Status.PodIP + ":8080/fetch?url=" + url.QueryEscape(u)
}

// askFrom GETs u from inside pod from (hello's /fetch) and returns the
// name of the hello pod that answered.
func askFrom(from corev1.Pod, u string) (string, error) {
	body, err := httpGet(fetchURL(from, u))
	if m := helloRE.FindStringSubmatch(body); err == nil && m != nil {
		return m[1], nil
	}
	return "", fmt.Errorf("from %s: GET %s: %q, %v", from.Name, u, body, err)
}

// askUDP sends one datagram on c and returns the answer (hello answers
// with its pod's name).
func askUDP(c net.Conn) (string, error) {
	c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Write([]byte("ping")); err != nil {
		return "", err
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	return strings.TrimSpace(string(buf[:n])), err
}

// countAnswers asks n times, conc at a time, and counts the answers
// ("error" counts failures).
func countAnswers(n, conc int, ask func() (string, error)) map[string]int {
	var mu sync.Mutex
	got := map[string]int{}
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for range work {
				a, err := ask()
				if err != nil {
					a = "error"
				}
				mu.Lock()
				got[a]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return got
}

// checkSpread wants every answer from one of pods and each pod at least
// 20 % of n.
func checkSpread(t *testing.T, got map[string]int, pods []corev1.Pod, n int) {
	t.Helper()
	t.Logf("%d connections: %v", n, got)
	if !allIn(got, pods) {
		t.Fatalf("answers %v: not all from the ready pods", got)
	}
	for _, p := range pods {
		if got[p.Name] < n/5 {
			t.Errorf("pod %s got %d of %d (< 20 %%): %v", p.Name, got[p.Name], n, got)
		}
	}
}

func allIn(got map[string]int, pods []corev1.Pod) bool {
	for name := range got {
		if !slices.ContainsFunc(pods, func(p corev1.Pod) bool { return p.Name == name }) {
			return false
		}
	}
	return true
}

func podIP(pods []corev1.Pod, name string) string {
	for _, p := range pods {
		if p.Name == name {
			return p.Status.PodIP
		}
	}
	return ""
}

// nftList is `nft -j list table ip NAME` normalized for comparison: no
// handles, the elements of maps sorted, the elements of sets (session
// affinity's, which traffic fills) left out, objects in a stable order. ""
// when the table is not there.
func nftList(t testing.TB, table string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("nft", "-j", "list", "table", "ip", table)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "No such file or directory") {
			return ""
		}
		t.Fatalf("nft list table %s: %v: %s", table, err, stderr.String())
	}
	var doc struct {
		Nftables []map[string]map[string]any `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("nft -j: %v", err)
	}
	var lines []string
	for _, o := range doc.Nftables {
		for kind, body := range o {
			if kind == "metainfo" {
				continue
			}
			delete(body, "handle")
			if kind == "set" {
				delete(body, "elem")
			}
			if elems, ok := body["elem"].([]any); ok {
				slices.SortFunc(elems, func(a, b any) int {
					x, _ := json.Marshal(a)
					y, _ := json.Marshal(b)
					return bytes.Compare(x, y)
				})
			}
			b, _ := json.Marshal(map[string]any{kind: body})
			lines = append(lines, string(b))
		}
	}
	// Rules keep their order within a chain: sort stably by everything
	// but their position, which the chain's name and the kind give.
	key := func(l string) string {
		var o map[string]map[string]any
		json.Unmarshal([]byte(l), &o)
		for kind, body := range o {
			name, _ := body["name"].(string)
			if kind == "rule" {
				name, _ = body["chain"].(string)
			}
			return map[string]string{"table": "0", "set": "1", "map": "2", "chain": "3", "rule": "4"}[kind] + name
		}
		return ""
	}
	slices.SortStableFunc(lines, func(a, b string) int { return strings.Compare(key(a), key(b)) })
	return strings.Join(lines, "\n")
}

// lineDiffE2E lists the lines of a not in b and of b not in a.
func lineDiffE2E(a, b string) string {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range as {
		if !slices.Contains(bs, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bs {
		if !slices.Contains(as, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}
