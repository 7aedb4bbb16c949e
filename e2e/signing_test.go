package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/store"
)

// signingKeys are the keys of a signing test: OpenPGP keys in a GNUPGHOME
// of their own, SSH keys made with ssh-keygen, and the --trusted-keys
// directory that trusts alice (OpenPGP) and bob (SSH) but not mallory
// (OpenPGP) nor eve (SSH).
type signingKeys struct {
	t              *testing.T
	gnupg          string
	dir            string // --trusted-keys
	alice, mallory string // OpenPGP fingerprints
	bob, eve       string // SSH private key files
	bobFP, eveFP   string // SHA256:... fingerprints
}

func newSigningKeys(t *testing.T) *signingKeys {
	t.Helper()
	for _, bin := range []string{"gpg", "gpgconf", "ssh-keygen"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (Debian: gnupg, openssh-client)", bin)
		}
	}
	k := &signingKeys{t: t, gnupg: t.TempDir(), dir: t.TempDir()}
	if err := os.Chmod(k.gnupg, 0o700); err != nil {
		t.Fatal(err)
	}
	// gpg starts an agent for the keys; it goes with the test.
	t.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "gpg-agent")
		cmd.Env = append(os.Environ(), "GNUPGHOME="+k.gnupg)
		cmd.Run()
	})
	k.alice = k.gpgKey("Alice <alice@example.com>")
	k.mallory = k.gpgKey("Mallory <mallory@example.com>")
	pub := k.run("gpg", "--batch", "--armor", "--export", k.alice)
	if err := os.WriteFile(filepath.Join(k.dir, "alice.asc"), []byte(pub), 0o644); err != nil {
		t.Fatal(err)
	}

	var bobPub string
	k.bob, bobPub, k.bobFP = k.sshKey("bob")
	k.eve, _, k.eveFP = k.sshKey("eve")
	signers := "# who may sign the manifests\nbob@example.com namespaces=\"git\" " + bobPub + "\n"
	if err := os.WriteFile(filepath.Join(k.dir, "allowed_signers"), []byte(signers), 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k *signingKeys) run(name string, args ...string) string {
	k.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+k.gnupg)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		k.t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

// gpgKey makes an ed25519 OpenPGP signing key without passphrase and
// returns its fingerprint.
func (k *signingKeys) gpgKey(uid string) string {
	k.t.Helper()
	k.run("gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
	sc := bufio.NewScanner(strings.NewReader(k.run("gpg", "--batch", "--with-colons", "--list-keys", uid)))
	for sc.Scan() {
		if f := strings.Split(sc.Text(), ":"); f[0] == "fpr" {
			return f[9]
		}
	}
	k.t.Fatalf("no fingerprint for %s", uid)
	return ""
}

// sshKey makes an ed25519 key; it returns the private key file, the public
// key line and its fingerprint.
func (k *signingKeys) sshKey(name string) (file, pub, fp string) {
	k.t.Helper()
	file = filepath.Join(k.t.TempDir(), name)
	k.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", file)
	b, err := os.ReadFile(file + ".pub")
	if err != nil {
		k.t.Fatal(err)
	}
	f := strings.Fields(k.run("ssh-keygen", "-l", "-E", "sha256", "-f", file+".pub"))
	return file, strings.TrimSpace(string(b)), f[1]
}

// How to sign: git's own flags, as a user would set them.
func (k *signingKeys) gpg(fpr string) []string {
	return []string{"-c", "gpg.format=openpgp", "-c", "user.signingkey=" + fpr}
}

func (k *signingKeys) ssh(keyFile string) []string {
	return []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + keyFile}
}

// commit commits everything in repo, signed with `git commit -S` when sign
// is set, and returns the commit.
func (k *signingKeys) commit(repo *gitRepo, sign []string, msg string) string {
	k.t.Helper()
	repo.git("add", "-A")
	args := append([]string{"-C", repo.dir, "-c", "user.name=e2e", "-c", "user.email=e2e@bosun.test"}, sign...)
	args = append(args, "commit", "-q", "-m", msg)
	if sign != nil {
		args = append(args, "-S")
	}
	k.run("git", args...)
	return repo.git("rev-parse", "HEAD")
}

// auditLines returns the audit lines of the server's log.
func (s *stack) auditLines() []map[string]any {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(s.log.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["audit"] == true {
			out = append(out, m)
		}
	}
	return out
}

// TestSigning: with --verify-commits, a commit signed by a trusted key is
// applied and its signer recorded (OpenPGP with gpg, SSH with ssh-keygen,
// both through `git commit -S`); an unsigned commit, one signed by an
// OpenPGP key and one by an SSH key that are not trusted are rejected
// whole while the last good revision keeps running; status, history and
// the audit lines say who signed or that nobody did; a canary branch
// whose head is not trusted does not run, and runs once it is.
func TestSigning(t *testing.T) {
	t.Parallel()
	k := newSigningKeys(t)
	repo := newGitRepo(t)
	repo.write("web.yaml", canaryWeb(2, "v1", "t1", "/healthz"))
	first := k.commit(repo, k.gpg(k.alice), "web v1, signed by alice with gpg")
	s := startWebhookStackTB(t, repo, "--verify-commits", "--trusted-keys", k.dir)
	s.waitWeb(2)
	aliceSigner := "Alice <alice@example.com> (OpenPGP key " + k.alice + ")"
	if h := s.history(); len(h) != 1 || h[0].Commit != first || h[0].Signer != aliceSigner {
		t.Fatalf("history %+v: want %s signed by %s", h, first, aliceSigner)
	}
	running := podNames(readyPods(s.pods(), "web-"))

	for _, tc := range []struct {
		name, signer, err string
		sign              []string
	}{
		{name: "unsigned", signer: "unsigned", err: "not signed (--verify-commits is on)"},
		{name: "OpenPGP key not trusted", sign: k.gpg(k.mallory), signer: "untrusted OpenPGP key " + k.mallory,
			err: "signed by OpenPGP key " + k.mallory + ", which is not among the trusted OpenPGP keys in " + k.dir},
		{name: "SSH key not trusted", sign: k.ssh(k.eve), signer: "untrusted SSH key " + k.eveFP + " (ed25519)",
			err: "signed by SSH key " + k.eveFP + " (ed25519), which is not in " + filepath.Join(k.dir, "allowed_signers")},
	} {
		t.Run(tc.name+" is rejected; v1 keeps running", func(t *testing.T) {
			repo.write("web.yaml", canaryWeb(2, "v2", tc.name, "/healthz"))
			c := k.commit(repo, tc.sign, tc.name)
			s.notify()
			want := fmt.Sprintf("commit %.7s: %s", c, tc.err)
			s.waitFor("the rejection of "+c[:7], 20*time.Second, func() error {
				st, err := s.status()
				if err != nil || st.Sync.Seen == nil || st.Sync.Seen.Commit != c {
					return fmt.Errorf("status: %v", err)
				}
				if len(st.Sync.Errors) != 1 || st.Sync.Errors[0] != want || st.Sync.Seen.Signer != tc.signer || st.Sync.Applied.Commit != first {
					t.Fatalf("status: applied %+v seen %+v errors %q; want %q", st.Sync.Applied, st.Sync.Seen, st.Sync.Errors, want)
				}
				return nil
			})
			h := s.history()[0]
			if h.Commit != c || h.Result != store.ResultRejected || h.Signer != tc.signer || len(h.Errors) != 1 || h.Errors[0] != want {
				t.Fatalf("history entry %+v", h)
			}
			out, err := s.cli("status")
			if err != nil || !strings.Contains(out, want) {
				t.Errorf("bosun status does not say %q: %v\n%s", want, err, out)
			}
			// bosun plan of the commit says the same, before any push.
			out, err = s.cli("plan", "--ref", c)
			if err == nil || !strings.Contains(out, want) {
				t.Errorf("bosun plan --ref %.7s does not say %q: %v\n%s", c, want, err, out)
			}
			if now := podNames(readyPods(s.pods(), "web-")); strings.Join(now, ",") != strings.Join(running, ",") {
				t.Fatalf("web pods %v, want the last good revision's %v untouched", now, running)
			}
		})
	}

	var good string
	t.Run("signed by a trusted SSH key is applied", func(t *testing.T) {
		repo.write("web.yaml", canaryWeb(2, "v2", "t2", "/healthz"))
		good = k.commit(repo, k.ssh(k.bob), "web v2, signed by bob with ssh")
		s.notify()
		waitImage(s, 2, "localhost/bosun-hello:v2")
		bobSigner := "bob@example.com (SSH key " + k.bobFP + " ed25519)"
		st, err := s.status()
		if err != nil || st.Sync.Applied.Commit != good || st.Sync.Applied.Signer != bobSigner || len(st.Sync.Errors) != 0 {
			t.Fatalf("status %+v, %v", st.Sync, err)
		}
		out, err := s.cli("status")
		if err != nil || !strings.Contains(out, "Signed:   "+bobSigner) {
			t.Errorf("bosun status: %v\n%s", err, out)
		}
		out, err = s.cli("history")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"SIGNER", bobSigner, "unsigned", "untrusted SSH key " + k.eveFP, "untrusted OpenPGP key " + k.mallory, aliceSigner} {
			if !strings.Contains(out, want) {
				t.Errorf("bosun history lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("a canary branch runs only with a trusted head", func(t *testing.T) {
		const branch = "canary/web-v3"
		ann := []string{"bosun.dev/canary-branch: " + branch, `bosun.dev/canary-weight: "50"`, "bosun.dev/canary-step-interval: 5s"}
		repo.git("checkout", "-q", "-b", branch)
		repo.write("web.yaml", canaryWeb(2, "v1", "t3", "/healthz", ann...))
		unsigned := k.commit(repo, nil, "web v3 on the canary branch, unsigned")
		repo.git("checkout", "-q", "main")
		repo.write("web.yaml", canaryWeb(2, "v2", "t2", "/healthz", ann...))
		k.commit(repo, k.ssh(k.bob), "web: canary of "+branch)
		s.notify()
		entry := s.waitEntry(store.ResultCanaryFailed, unsigned, 30*time.Second)
		if want := fmt.Sprintf("branch %s: commit %.7s: not signed (--verify-commits is on)", branch, unsigned); !strings.Contains(entry, want) {
			t.Fatalf("canary entry %q lacks %q", entry, want)
		}
		if n := len(withPrefix(s.pods(), "web-")); n != 2 {
			t.Fatalf("%d web pods: the untrusted canary ran", n)
		}

		repo.git("checkout", "-q", branch)
		repo.write("web.yaml", canaryWeb(2, "v1", "t4", "/healthz", ann...))
		signed := k.commit(repo, k.gpg(k.alice), "web v3 on the canary branch, signed by alice")
		repo.git("checkout", "-q", "main")
		s.notifyBranch(branch, signed)
		s.waitEntry(store.ResultCanaryStarted, signed, 60*time.Second)
	})

	t.Run("every revision applied or rejected has one audit line", func(t *testing.T) {
		var got []string
		for _, l := range s.auditLines() {
			if !strings.Contains(fmt.Sprint(l["event"]), "revision.") {
				continue // the webhooks' and API calls' audit lines
			}
			got = append(got, fmt.Sprintf("%v %.7v signer=%v actor=%v trigger=%v", l["event"], l["commit"], l["signer"], l["actor"], l["trigger"]))
			if l["author"] != "e2e <e2e@bosun.test>" || l["commit"] == "" {
				t.Errorf("audit line %v", l)
			}
		}
		text := strings.Join(got, "\n")
		for _, want := range []string{
			fmt.Sprintf("revision.accepted %.7s signer=%s actor=Alice <alice@example.com>", first, aliceSigner),
			"revision.rejected", "signer=unsigned actor=e2e <e2e@bosun.test> trigger=github push",
			"signer=untrusted OpenPGP key " + k.mallory, "signer=untrusted SSH key " + k.eveFP,
			fmt.Sprintf("revision.accepted %.7s signer=bob@example.com (SSH key %s ed25519) actor=bob@example.com trigger=github push %.7s by e2e", good, k.bobFP, good),
			"canary.revision.rejected", "canary.revision.accepted",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("audit lines lack %q:\n%s", want, text)
			}
		}
		if n := strings.Count(text, "revision.rejected"); n != 4 { // 3 on main, 1 canary
			t.Errorf("%d rejected audit lines, want 4:\n%s", n, text)
		}
	})
}

func podNames(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

// waitImage waits for exactly n ready web pods, all of image.
func waitImage(s *stack, n int, image string) {
	s.t.Helper()
	s.waitFor(fmt.Sprintf("%d ready web pods of %s", n, image), 90*time.Second, func() error {
		all := withPrefix(s.pods(), "web-")
		ready := readyPods(all, "web-")
		if len(all) != n || len(ready) != n {
			return fmt.Errorf("%d pods, %d ready", len(all), len(ready))
		}
		for _, p := range ready {
			if imageOf(&p) != image {
				return fmt.Errorf("pod %s runs %s", p.Name, imageOf(&p))
			}
		}
		return nil
	})
}

// TestSigning_startupErrors: --verify-commits without keys, or with keys
// that do not load, stops the server at start with an error naming the
// file (and line).
func TestSigning_startupErrors(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "allowed_signers"), []byte("# team\nbob@example.com ssh-ed25519 notakey\n"), 0o644)
	priv := t.TempDir()
	os.WriteFile(filepath.Join(priv, "alice.asc"), []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxx\n-----END PGP PRIVATE KEY BLOCK-----\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no keys", []string{"--verify-commits"}, "--verify-commits needs --trusted-keys DIR"},
		{"keys without verification", []string{"--trusted-keys", bad}, "--trusted-keys is given without --verify-commits"},
		{"empty dir", []string{"--verify-commits", "--trusted-keys", t.TempDir()}, "holds no key"},
		{"bad allowed_signers", []string{"--verify-commits", "--trusted-keys", bad}, filepath.Join(bad, "allowed_signers") + ":2: no valid public key"},
		{"private key", []string{"--verify-commits", "--trusted-keys", priv}, filepath.Join(priv, "alice.asc") + ": holds a PRIVATE key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"server", "--repo", t.TempDir(), "--data-dir", t.TempDir(), "--agent=false",
				"--api-listen", freePort(t), "--etcd-listen", freePort(t), "--dns-listen", freePort(t)}, tc.args...)
			cmd := exec.Command(bosun(t), args...)
			done := make(chan struct{})
			var out []byte
			var err error
			go func() { out, err = cmd.CombinedOutput(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("bosun server did not stop at start:\n%s", out)
			}
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("exit %v, output lacks %q:\n%s", err, tc.want, out)
			}
		})
	}
}
