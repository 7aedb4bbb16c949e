package server

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bosun/sopsfile/sopstest"
)

// TestConfig_loadSOPSKey: --sops-age-key-file gives every loader of
// revisions a Decrypter; a key file others can read is warned about; a bad
// one stops the start, naming the file and line but not the line.
func TestConfig_loadSOPSKey(t *testing.T) {
	id := sopstest.NewIdentity(t)
	path := sopstest.KeyFile(t, t.TempDir(), id)
	var logs bytes.Buffer
	cfg := Config{SOPSAgeKeyFile: path, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	if err := cfg.loadSOPSKey(); err != nil || cfg.Policy.Decrypter == nil {
		t.Fatalf("loadSOPSKey: %v, decrypter %v", err, cfg.Policy.Decrypter)
	}
	if !strings.Contains(logs.String(), id.Recipient) || strings.Contains(logs.String(), "readable by other users") {
		t.Errorf("log:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), id.Secret) {
		t.Fatal("the log shows the private key")
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	cfg = Config{SOPSAgeKeyFile: path, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	if err := cfg.loadSOPSKey(); err != nil || !strings.Contains(logs.String(), "readable by other users") {
		t.Errorf("a key file of mode 0644: %v\n%s", err, logs.String())
	}

	bad := filepath.Join(t.TempDir(), "bad.agekey")
	if err := os.WriteFile(bad, []byte("# comment\n"+id.Secret+"x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = Config{SOPSAgeKeyFile: bad, Logger: slog.New(slog.DiscardHandler)}
	err := cfg.loadSOPSKey()
	if err == nil || !strings.Contains(err.Error(), "bad.agekey:2: not an age identity") || strings.Contains(err.Error(), id.Secret) {
		t.Errorf("a bad key file: %v", err)
	}
	if cfg := (Config{Logger: slog.New(slog.DiscardHandler)}); cfg.loadSOPSKey() != nil || cfg.Policy.Decrypter != nil {
		t.Error("without a key file there is no decrypter")
	}
}
