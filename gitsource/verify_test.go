package gitsource

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bosun/signature"
)

// sshSigningKey makes an ed25519 key with ssh-keygen and returns the
// private key file and the public key line.
func sshSigningKey(t *testing.T) (keyFile, pub string) {
	t.Helper()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen not installed")
	}
	keyFile = filepath.Join(t.TempDir(), "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	b, err := os.ReadFile(keyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return keyFile, strings.TrimSpace(string(b))
}

// signedCommit commits on main signed with the SSH key (unsigned when key
// is empty), pushes and returns the head.
func (u *upstream) signedCommit(key, msg string) string {
	u.t.Helper()
	args := []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + key, "commit", "-q", "--allow-empty", "-m", msg}
	if key != "" {
		args = append(args, "-S")
	}
	u.git(u.work, args...)
	u.git(u.work, "push", "-q", "origin", "main")
	return u.git(u.work, "rev-parse", "HEAD")
}

func TestRun_verifiesEachHeadAndSaysWhatTriggeredIt(t *testing.T) {
	ada, adaPub := sshSigningKey(t)
	eve, evePub := sshSigningKey(t)
	keyDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(keyDir, "allowed_signers"), []byte("ada@example.com "+adaPub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	keys, err := signature.LoadDir(keyDir, time.UTC)
	if err != nil {
		t.Fatal(err)
	}

	up := newUpstream(t)
	first := up.signedCommit(ada, "signed by ada")
	s := newSource(t, Config{URL: up.bare, Poll: time.Hour, TrustedKeys: keys})
	out, _ := runSource(t, s)

	rev := receive(t, out)
	if rev.Commit != first || rev.Trigger != TriggerPoll {
		t.Fatalf("first revision %s (trigger %q), want %s (poll)", rev.Commit, rev.Trigger, first)
	}
	if !rev.Verification.Trusted() || rev.Verification.Signer.Identity != "ada@example.com" || rev.Verification.Signer.Kind != signature.SSH {
		t.Fatalf("verification of a commit signed by a trusted key: %+v", rev.Verification)
	}
	if fp := rev.Verification.Signer.Fingerprint; !strings.HasPrefix(fp, "SHA256:") {
		t.Errorf("fingerprint %q", fp)
	}

	unsigned := up.signedCommit("", "not signed")
	s.TriggerBy("github push " + unsigned[:7] + " by ada")
	rev = receive(t, out)
	if rev.Commit != unsigned || rev.Trigger != "github push "+unsigned[:7]+" by ada" {
		t.Fatalf("revision %s (trigger %q), want %s from the push", rev.Commit, rev.Trigger, unsigned)
	}
	if rev.Verification.Trusted() || !errors.Is(rev.Verification.Err, signature.ErrNotSigned) {
		t.Fatalf("unsigned commit: verification %+v", rev.Verification)
	}

	byEve := up.signedCommit(eve, "signed by eve")
	s.Trigger()
	rev = receive(t, out)
	var ue *signature.UntrustedError
	if rev.Commit != byEve || rev.Trigger != TriggerRequested || !errors.As(rev.Verification.Err, &ue) {
		t.Fatalf("commit by an unknown key: %s trigger %q verification %+v", rev.Commit, rev.Trigger, rev.Verification)
	}
	if !strings.Contains(evePub, "ssh-ed25519") || ue.KeyType != "ed25519" {
		t.Errorf("untrusted key type %q", ue.KeyType)
	}

	// Resolve verifies too (bosun plan --ref).
	res, err := s.Resolve(t.Context(), first)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release(res)
	if !res.Verification.Trusted() {
		t.Errorf("resolved signed commit: %+v", res.Verification)
	}
}

func TestFetch_withoutTrustedKeysVerifiesNothing(t *testing.T) {
	up := newUpstream(t)
	up.commit("one", nil)
	s := newSource(t, Config{URL: up.bare})
	rev, _ := mustFetch(t, s)
	if rev.Verification != nil {
		t.Fatalf("verification %+v without trusted keys", rev.Verification)
	}
}
