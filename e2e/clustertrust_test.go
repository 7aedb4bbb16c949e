package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"

	"bosun/store"
)

// testHost is a network namespace joined to the test machine by a veth
// pair: a host of its own, for a server that must listen beyond loopback
// without listening anywhere on the test machine.
type testHost struct {
	ns           string
	hostIP, nsIP string // the test machine's end and the namespace's
	hostIf, nsIf string
}

func newTestHost(t *testing.T) *testHost {
	t.Helper()
	for n := os.Getpid() % 250; n < os.Getpid()%250+250; n++ {
		k := n % 250
		h := &testHost{ns: fmt.Sprintf("bosune2eh%d", k), hostIf: fmt.Sprintf("bosune2eh%d", k), nsIf: fmt.Sprintf("bosune2ep%d", k),
			hostIP: fmt.Sprintf("10.250.%d.1", k), nsIP: fmt.Sprintf("10.250.%d.2", k)}
		if out, err := exec.Command("ip", "netns", "add", h.ns).CombinedOutput(); err != nil {
			if strings.Contains(string(out), "exists") {
				continue
			}
			t.Fatalf("ip netns add: %v: %s", err, out)
		}
		t.Cleanup(func() {
			// Deleting the namespace deletes its end of the pair, and so both.
			exec.Command("ip", "netns", "del", h.ns).Run()
			exec.Command("ip", "link", "del", h.hostIf).Run()
		})
		for _, c := range [][]string{
			{"ip", "link", "add", h.hostIf, "type", "veth", "peer", "name", h.nsIf},
			{"ip", "link", "set", h.nsIf, "netns", h.ns},
			{"ip", "addr", "add", h.hostIP + "/30", "dev", h.hostIf},
			{"ip", "link", "set", h.hostIf, "up"},
			{"ip", "netns", "exec", h.ns, "ip", "addr", "add", h.nsIP + "/30", "dev", h.nsIf},
			{"ip", "netns", "exec", h.ns, "ip", "link", "set", h.nsIf, "up"},
			{"ip", "netns", "exec", h.ns, "ip", "link", "set", "lo", "up"},
		} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v: %s", strings.Join(c, " "), err, out)
			}
		}
		return h
	}
	t.Fatal("no free test host")
	return nil
}

// startServerOn runs a control plane (no agent) on a test host, with etcd
// and the API on the host's address, beyond its loopback.
func startServerOn(t *testing.T, h *testHost, repo *gitRepo, extra ...string) *stack {
	t.Helper()
	s := &stack{t: t, dataDir: t.TempDir(), repo: repo, wrap: []string{"ip", "netns", "exec", h.ns},
		apiAddr: h.nsIP + ":7070", dnsAddr: "127.0.0.1:5353", etcdAddr: h.nsIP + ":2379", proxyTable: "bosune2eth"}
	s.args = append([]string{"server", "--agent=false",
		"--repo", repo.dir, "--poll", "200ms",
		"--data-dir", s.dataDir,
		"--etcd-listen", s.etcdAddr,
		"--api-listen", s.apiAddr,
		"--dns-listen", s.dnsAddr,
		"--id", "e2e-trust",
	}, extra...)
	s.run()
	return s
}

// joinedPod prints a Secret's value: the node decrypts it with the keys
// the join gave it.
const joinedPod = `apiVersion: v1
kind: Secret
metadata:
  name: greeting
stringData:
  word: hello
---
apiVersion: v1
kind: Pod
metadata:
  name: hi
spec:
  restartPolicy: Never
  containers:
  - name: hi
    image: localhost/bosun-hello:v1
    env:
    - name: WORD
      valueFrom:
        secretKeyRef: {name: greeting, key: word}
    args: ["-print", "$(WORD) from the joined node"]
`

// TestClusterTrust: a server whose etcd listens beyond loopback serves it
// over mutual TLS only; a machine joins with the token the server printed
// (a wrong token is refused), runs the cluster's pods, serves their logs to
// the servers only, and can write nothing in etcd but its own node and pod
// statuses.
func TestClusterTrust(t *testing.T) {
	t.Parallel()
	h := newTestHost(t)
	repo := newGitRepo(t)
	repo.write("hi.yaml", joinedPod)
	repo.commit("a pod for the joined node")
	s := startServerOn(t, h, repo)
	pkiDir := filepath.Join(s.dataDir, "pki")
	tokenFile := filepath.Join(pkiDir, "join-token")
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	etcdURL := "https://" + s.etcdAddr

	t.Run("etcd refuses a client without a certificate", func(t *testing.T) {
		cli, err := store.DialTLS([]string{etcdURL}, &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if _, err := cli.Get(ctx, store.Prefix, clientv3.WithPrefix()); err == nil {
			t.Fatal("read etcd without a client certificate")
		}
		// Plain text does not get an answer either.
		if resp, err := (&http.Client{Timeout: 3 * time.Second}).Get("http://" + s.etcdAddr + "/v3/kv/range"); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Fatalf("plain HTTP to etcd: %s", resp.Status)
			}
		}
	})

	t.Run("a wrong join token is refused", func(t *testing.T) {
		state := t.TempDir()
		wrong := strings.TrimSpace(string(token))
		wrong = wrong[:len(wrong)-4] + "0000"
		if wrong == strings.TrimSpace(string(token)) {
			wrong = wrong[:len(wrong)-4] + "1111"
		}
		out, err := exec.Command(bosun(t), "agent", "--server", "https://"+s.apiAddr, "--token", wrong,
			"--node-name", "intruder", "--state-dir", state, "--containerd-address", "/nonexistent.sock").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "wrong join token") {
			t.Fatalf("agent with a wrong token: %v\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(state, "pki", "node.crt")); !os.IsNotExist(err) {
			t.Fatal("the refused agent has a certificate")
		}
		if strings.Contains(s.logTail(200), wrong[len(wrong)-20:]) {
			t.Fatal("the server logged the presented token")
		}
	})

	a := startAgentWith(t, "node-j", "--server", "https://"+s.apiAddr, "--token-file", tokenFile,
		"--node-ip", h.hostIP, "--listen", h.hostIP+":0")

	t.Run("the joined node runs the pod, with its Secret, and serves its log to the server", func(t *testing.T) {
		s.waitFor("the pod to have run on node-j", 60*time.Second, func() error {
			for _, p := range s.pods() {
				if p.Name == "hi" && p.Spec.NodeName == "node-j" && p.Status.Phase == "Succeeded" {
					return nil
				}
			}
			return fmt.Errorf("pods: %d", len(s.pods()))
		})
		out, err := s.cli("logs", "hi")
		if err != nil || out != "hello from the joined node\n" {
			t.Fatalf("bosun logs hi (through the server, over mutual TLS): %v\n%q", err, out)
		}
		// Without the servers' certificate the node's log server answers nobody.
		c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, InsecureSkipVerify: true}}}
		var list struct{ Items []corev1.Node }
		if err := s.getJSON("/api/v1/nodes", &list); err != nil {
			t.Fatal(err)
		}
		for _, n := range list.Items {
			if n.Name != "node-j" {
				continue
			}
			addr := net.JoinHostPort(h.hostIP, fmt.Sprint(n.Status.DaemonEndpoints.KubeletEndpoint.Port))
			if resp, err := c.Get("https://" + addr + "/logs/default/hi/hi"); err == nil {
				resp.Body.Close()
				t.Fatalf("a client without the servers' certificate read the log: %s", resp.Status)
			}
		}
	})

	t.Run("the node's certificate writes only its own keys", func(t *testing.T) {
		dir := filepath.Join(a.stateDir, "pki")
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key"))
		if err != nil {
			t.Fatal(err)
		}
		cli, err := store.DialTLS([]string{etcdURL}, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, key := range []string{store.NodeKey("node-x"), store.PodStatusKey("node-x", "default", "hi"), store.PodKey("node-j", "default", "evil"), store.Prefix + "sync"} {
			if _, err := cli.Put(ctx, key, "{}"); err == nil || !strings.Contains(err.Error(), "permission denied") {
				t.Errorf("node-j put %s: %v, want permission denied", key, err)
			}
		}
		if _, err := cli.Get(ctx, store.PodStatusKey("node-j", "default", "hi")); err != nil {
			t.Errorf("node-j cannot read its pod's status: %v", err)
		}
	})

	t.Run("the token is printed once and never logged", func(t *testing.T) {
		secret := strings.TrimSpace(string(token))
		log := s.logTail(100000)
		if n := strings.Count(log, secret); n != 1 {
			t.Fatalf("the join token appears %d times in the server's output, want once (the join command)", n)
		}
		for _, line := range strings.Split(log, "\n") {
			if strings.HasPrefix(line, "{") && strings.Contains(line, secret) {
				t.Fatalf("a log line holds the join token: %s", line)
			}
		}
	})
}

// TestClusterTrust_insecure: the plain form needs --insecure, and says so
// at every start; an agent refuses a plain etcd beyond loopback without it.
func TestClusterTrust_insecure(t *testing.T) {
	t.Parallel()
	h := newTestHost(t)
	repo := newGitRepo(t)
	repo.write("README.md", "nothing\n")
	repo.commit("empty")
	s := startServerOn(t, h, repo, "--insecure")
	s.waitFor("the warning", 10*time.Second, func() error {
		if !strings.Contains(s.logTail(200), "INSECURE") {
			return fmt.Errorf("no warning yet")
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(s.dataDir, "pki", "join-token")); !os.IsNotExist(err) {
		t.Errorf("an insecure server made a join token: %v", err)
	}
	out, err := exec.Command(bosun(t), "agent", "--etcd-endpoints", "http://"+s.etcdAddr, "--node-name", "plain",
		"--state-dir", t.TempDir(), "--containerd-address", "/nonexistent.sock").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "beyond loopback") {
		t.Fatalf("agent on a plain etcd beyond loopback without --insecure: %v\n%s", err, out)
	}
}
