package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	corev1 "k8s.io/api/core/v1"

	"bosun/nodes"
	"bosun/podnet"
)

// TestCLI walks the cobra CLI against a real stack: shell completion of
// pod names (the bash script sourced in bash, and `__complete`), version
// of client and server, -o name, describe of each kind, events, and get -w
// printing the pods a commit adds.
func TestCLI(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.copyDir("../examples/hello")
	repo.commit("hello")
	s := startStack(t, repo)
	s.pin()
	var web []corev1.Pod
	s.waitFor("3 web pods ready", 90*time.Second, func() error {
		if web = readyPods(s.pods(), "web-"); len(web) != 3 {
			return fmt.Errorf("%d ready web pods", len(web))
		}
		return nil
	})
	pod := web[0].Name

	t.Run("completion bash sources cleanly and completes pod names", func(t *testing.T) {
		out, err := s.cli("completion", "bash")
		if err != nil || !strings.Contains(out, "__start_bosun") {
			t.Fatalf("bosun completion bash: %v\n%.300s", err, out)
		}
		script := filepath.Join(t.TempDir(), "bosun.bash")
		os.WriteFile(script, []byte(out), 0o644)
		// Without the bash-completion package, a minimal stand-in for the
		// one function of it the script calls.
		shim := `_get_comp_words_by_ref() { cur="${COMP_WORDS[COMP_CWORD]}"; prev="${COMP_WORDS[COMP_CWORD-1]}"; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }`
		if _, err := os.Stat("/usr/share/bash-completion/bash_completion"); err == nil {
			shim = "source /usr/share/bash-completion/bash_completion"
		}
		// Sourcing it prints nothing and fails nothing.
		src := exec.Command("bash", "--norc", "--noprofile", "-c", fmt.Sprintf("set -e; source %q; declare -F __start_bosun >/dev/null", script))
		if b, err := src.CombinedOutput(); err != nil || len(b) > 0 {
			t.Fatalf("bash sourcing the completion script: %v\n%s", err, b)
		}
		// compopt works only inside a completion bash itself runs: the
		// test calls the function as bash would, so it stands in for it.
		shim += "\ncompopt() { :; }"
		complete := func(line string) []string {
			t.Helper()
			words := strings.Fields(line)
			if strings.HasSuffix(line, " ") {
				words = append(words, "")
			}
			quoted := make([]string, len(words))
			for i, w := range words {
				quoted[i] = fmt.Sprintf("%q", w)
			}
			prog := fmt.Sprintf(`source %q
%s
COMP_WORDS=(%s); COMP_CWORD=%d; COMP_LINE=%q; COMP_POINT=${#COMP_LINE}
__start_bosun
printf '%%s\n' "${COMPREPLY[@]}"`, script, shim, strings.Join(quoted, " "), len(words)-1, line)
			cmd := exec.Command("bash", "--norc", "--noprofile", "-c", prog)
			cmd.Env = append(s.cliCmd().Env, "PATH="+filepath.Dir(bosun(t))+":"+os.Getenv("PATH"))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			b, err := cmd.Output()
			if err != nil || stderr.Len() > 0 {
				t.Fatalf("bash completing %q: %v\nstderr: %s", line, err, stderr.String())
			}
			return strings.Fields(string(b))
		}
		got := complete("bosun get pods ")
		for _, p := range web {
			if !strings.Contains(strings.Join(got, " "), p.Name) {
				t.Errorf("bash completes `bosun get pods ` with %q, want %s among them", got, p.Name)
			}
		}
		if got := complete("bosun logs " + pod[:len(pod)-2]); len(got) != 1 || got[0] != pod {
			t.Errorf("bash completes `bosun logs %s` with %q, want %s", pod[:len(pod)-2], got, pod)
		}
		if got := complete("bosun describe deployment w"); len(got) != 1 || got[0] != "web" {
			t.Errorf("bash completes `bosun describe deployment w` with %q, want web", got)
		}
		if got := strings.Join(complete("bosun get "), " "); !strings.Contains(got, "pods") || !strings.Contains(got, "deployments") {
			t.Errorf("bash completes `bosun get ` with %q, want the kinds", got)
		}
		// The protocol under every shell's script.
		out, err = s.cli("__complete", "get", "pods", "-n", "default", "")
		if err != nil || !strings.Contains(out, pod+"\n") || !strings.Contains(out, ":4\n") {
			t.Errorf("bosun __complete get pods -n default '': %v\n%s", err, out)
		}
		for _, sh := range []string{"zsh", "fish", "powershell"} {
			if out, err := s.cli("completion", sh); err != nil || len(out) < 100 {
				t.Errorf("bosun completion %s: %v\n%.200s", sh, err, out)
			}
		}
	})

	t.Run("version prints the client's and the server's", func(t *testing.T) {
		out, err := s.cli("version")
		if err != nil || !strings.Contains(out, "Client: bosun ") || !strings.Contains(out, "Server: bosun ") {
			t.Errorf("bosun version: %v\n%s", err, out)
		}
		out, err = s.cli("version", "-o", "json")
		var v struct {
			Client, Server struct{ Version, GoVersion string }
		}
		if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.Server.GoVersion == "" || v.Client.Version == "" {
			t.Errorf("bosun version -o json: %v\n%s", err, out)
		}
		out, err = s.cli("version", "--server", "https://127.0.0.1:1")
		if err == nil || !strings.Contains(out, "Client: bosun ") || !strings.Contains(out, "server version") {
			t.Errorf("bosun version with no server: %v\n%s", err, out)
		}
	})

	t.Run("-o name", func(t *testing.T) {
		out, err := s.cli("get", "pods", "-n", "default", "-o", "name")
		if err != nil || !strings.Contains(out, "pod/"+pod+"\n") || strings.Contains(out, "NAME") {
			t.Errorf("bosun get pods -o name: %v\n%s", err, out)
		}
		if out, err := s.cli("get", "deploy", "-A", "-o", "name"); err != nil || !strings.Contains(out, "deployment/web\n") {
			t.Errorf("bosun get deploy -A -o name: %v\n%s", err, out)
		}
		if out, err := s.cli("get", "pods", "-A", "-n", "default"); err == nil || !strings.Contains(out, "not both") {
			t.Errorf("bosun get pods -A -n default: %v\n%s", err, out)
		}
	})

	t.Run("describe", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want []string
		}{
			{[]string{"describe", "pod", pod}, []string{"Name:           " + pod, "Node:           e2e-node", "Status:         Running",
				"Containers:", "Image:", "Image pull:", "pulled", "State:          Running since", "Restarts:", "Conditions:", "Events:"}},
			{[]string{"describe", "deployment", "web"}, []string{"Replicas:       3 desired", "Pods:", pod, "Events:"}},
			{[]string{"describe", "svc", "web"}, []string{"Type:           ClusterIP", "Endpoints:", web[0].Status.PodIP, "Events:"}},
			{[]string{"describe", "node", "e2e-node"}, []string{"Status:         Ready", "Allocatable:", pod, "Events:"}},
		} {
			out, err := s.cli(tc.args...)
			if err != nil {
				t.Errorf("bosun %s: %v\n%s", strings.Join(tc.args, " "), err, out)
				continue
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("bosun %s lacks %q:\n%s", strings.Join(tc.args, " "), w, out)
				}
			}
		}
		if out, err := s.cli("describe", "pod", "nosuch"); err == nil || !strings.Contains(out, "not found") {
			t.Errorf("bosun describe pod nosuch: %v\n%s", err, out)
		}
	})

	t.Run("events", func(t *testing.T) {
		s.waitFor("the pod's Started event", 30*time.Second, func() error {
			out, err := s.cli("events", "--for", "pod/"+pod, "-n", "default")
			if err != nil || !strings.Contains(out, "Started") || !strings.Contains(out, "default/pod/"+pod) {
				return fmt.Errorf("bosun events --for pod/%s: %v\n%s", pod, err, out)
			}
			return nil
		})
		if out, err := s.cli("events", "-A", "-o", "wide"); err != nil || !strings.Contains(out, "SOURCE") || !strings.Contains(out, "Scheduled") {
			t.Errorf("bosun events -A -o wide: %v\n%s", err, out)
		}
		out, err := s.cli("events", "--for", "pod/"+pod, "-o", "json")
		var list struct{ Events []struct{ Reason string } }
		if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list.Events) == 0 {
			t.Errorf("bosun events --for pod/%s -o json: %v\n%s", pod, err, out)
		}
		if out, err := s.cli("describe", "pod", pod); err != nil || !strings.Contains(out, "Started") || strings.Contains(out, "Events:         <none>") {
			t.Errorf("bosun describe pod %s shows no events: %v\n%s", pod, err, out)
		}
		if out, err := s.cli("events", "--for", "nonsense"); err == nil || !strings.Contains(out, "KIND/NAME") {
			t.Errorf("bosun events --for nonsense: %v\n%s", err, out)
		}
	})

	t.Run("get -w prints the pods a commit adds", func(t *testing.T) {
		cmd := s.cliCmd("get", "pods", "-n", "default", "-w")
		var mu sync.Mutex
		var out bytes.Buffer
		cmd.Stdout = &lockedWriter{mu: &mu, w: &out}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		defer func() {
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}()
		text := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
		s.waitFor("get -w to list the pods", 30*time.Second, func() error {
			if !strings.Contains(text(), pod) {
				return fmt.Errorf("output so far:\n%s", text())
			}
			return nil
		})
		before := text()
		repo.write("web/deployment.yaml", strings.Replace(readFile(t, repo.dir+"/web/deployment.yaml"), "replicas: 3", "replicas: 4", 1))
		repo.commit("scale web to 4")
		s.waitFor("get -w to print the new pod", 90*time.Second, func() error {
			for _, p := range s.pods() {
				if strings.HasPrefix(p.Name, "web-") && !strings.Contains(before, p.Name) && strings.Contains(text()[len(before):], p.Name) {
					return nil
				}
			}
			return fmt.Errorf("output so far:\n%s", text())
		})
		if n := strings.Count(text(), "NAMESPACE"); n != 1 {
			t.Errorf("get -w printed the header %d times:\n%s", n, text())
		}
	})

	t.Run("status -w prints the status, then changes", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		cmd := s.cliCmd("status", "-w")
		cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
		cmd.Env = s.cliCmd().Env
		out, _ := cmd.Output()
		if !strings.Contains(string(out), "Leader:") {
			t.Errorf("bosun status -w:\n%s", out)
		}
	})
}

// TestCLI_reset: bosun reset refuses while the server runs; once it has
// stopped, reset leaves no container, network namespace, bridge or
// nftables table of the stack, and --data removes its data directory.
func TestCLI_reset(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.copyDir("../examples/hello")
	repo.commit("hello")
	s := startStack(t, repo)
	s.waitFor("3 web pods ready", 90*time.Second, func() error {
		if n := len(readyPods(s.pods(), "web-")); n != 3 {
			return fmt.Errorf("%d ready web pods", n)
		}
		return nil
	})
	bridge, netnsDir := argOf(t, s.args, "--bridge"), argOf(t, s.args, "--netns-dir")
	reset := []string{"reset", "--yes", "--data", "--data-dir", s.dataDir, "--containerd-address", s.containerd,
		"--netns-dir", netnsDir, "--bridge", bridge, "--proxy-table", s.proxyTable, "--cni-cache-dir", t.TempDir()}

	out, err := exec.Command(bosun(t), reset...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "bosun runs on this machine") || !strings.Contains(string(out), fmt.Sprint("pid ", s.cmd.Process.Pid)) {
		t.Fatalf("bosun reset while the server runs: %v\n%s", err, out)
	}
	// --force does not let --data remove the directories of a running
	// server (it would mount volumes again while they go).
	out, err = exec.Command(bosun(t), append(reset, "--force")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is in use by a running bosun") {
		t.Fatalf("bosun reset --data --force while the server runs: %v\n%s", err, out)
	}
	// Without --yes and with nothing typed, nothing happens.
	out, err = exec.Command(bosun(t), append(without(without(reset, "--yes"), "--data"), "--force")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not confirmed") {
		t.Fatalf("bosun reset without --yes: %v\n%s", err, out)
	}
	if n := countContainers(t, s.containerd); n == 0 {
		t.Fatalf("an unconfirmed reset removed the containers")
	}

	s.stop(syscall.SIGTERM)
	// The stopped server leaves its pods running (an agent restart adopts
	// them): they are what reset is for. --force as other tests' bosun
	// processes run on this machine.
	if n := countContainers(t, s.containerd); n == 0 {
		t.Logf("no container left running after the server stopped")
	}
	out, err = exec.Command(bosun(t), append(reset, "--force")...).CombinedOutput()
	if err != nil {
		t.Fatalf("bosun reset: %v\n%s", err, out)
	}
	t.Logf("bosun reset:\n%s", out)
	if n := countContainers(t, s.containerd); n != 0 {
		t.Errorf("%d containers left after reset", n)
	}
	if entries, _ := os.ReadDir(netnsDir); len(entries) != 0 {
		t.Errorf("network namespaces left in %s: %v", netnsDir, entries)
	}
	if out, err := exec.Command("ip", "link", "show", bridge).CombinedOutput(); err == nil {
		t.Errorf("bridge %s left:\n%s", bridge, out)
	}
	for _, table := range []string{s.proxyTable, podnet.TableName(bridge), nodes.LocalnetTable(bridge)} {
		if out, err := exec.Command("nft", "list", "table", "ip", table).CombinedOutput(); err == nil {
			t.Errorf("nftables table ip %s left:\n%s", table, out)
		}
	}
	if _, err := os.Stat(s.dataDir); !os.IsNotExist(err) {
		t.Errorf("data dir %s: %v, want it removed", s.dataDir, err)
	}
	// Again: nothing left to do is not an error.
	if out, err := exec.Command(bosun(t), append(reset, "--force")...).CombinedOutput(); err != nil {
		t.Errorf("bosun reset a second time: %v\n%s", err, out)
	}
}

// argOf is the value of flag in args.
func argOf(t *testing.T, args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatalf("no %s in %q", flag, args)
	return ""
}

func without(args []string, drop string) []string {
	var out []string
	for _, a := range args {
		if a != drop {
			out = append(out, a)
		}
	}
	return out
}

// countContainers counts the containers of bosun's namespace.
func countContainers(t *testing.T, address string) int {
	t.Helper()
	c, err := client.New(address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctrs, err := c.Containers(namespaces.WithNamespace(context.Background(), "bosun"))
	if err != nil {
		t.Fatal(err)
	}
	return len(ctrs)
}
