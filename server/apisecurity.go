package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"bosun/api"
)

// apiSecurity returns the API's tokens and certificate: from the files
// the configuration names, or generated into DataDir/api on the first
// start (an admin token, whose hash alone is kept, and a self-signed
// certificate), reused afterwards.
func apiSecurity(cfg Config, log *slog.Logger) (*api.Tokens, *tls.Certificate, error) {
	dir := filepath.Join(cfg.DataDir, "api")
	tokensFile := cfg.TokensFile
	if tokensFile == "" {
		tokensFile = filepath.Join(dir, "tokens")
		token, err := api.EnsureAdminToken(tokensFile)
		if err != nil {
			return nil, nil, err
		}
		if token != "" {
			log.Info("generated the API's admin token; only its hash is stored", "file", tokensFile)
			if cfg.OnAdminToken != nil {
				cfg.OnAdminToken(token)
			}
		}
	}
	tokens, err := api.LoadTokens(tokensFile, log)
	if err != nil {
		return nil, nil, err
	}
	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		if cfg.TLSCertFile == "" || cfg.TLSKeyFile == "" {
			return nil, nil, fmt.Errorf("api: give both a TLS certificate and its key")
		}
		cert, err := api.LoadCertificate(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, nil, err
		}
		return tokens, cert, nil
	}
	host, _ := os.Hostname()
	ss, err := api.SelfSignedCertificate(dir, api.CertificateHosts(cfg.APIListen, host), time.Now())
	if err != nil {
		return nil, nil, err
	}
	fp := api.Fingerprint(ss.Certificate.Leaf.Raw)
	switch {
	case ss.Expired:
		log.Warn("the API's self-signed certificate had expired and was replaced: clients that pinned it must trust the new fingerprint", "file", ss.CertFile, "fingerprint", fp)
	case ss.Created:
		log.Info("generated a self-signed certificate for the API", "file", ss.CertFile, "fingerprint", fp)
	}
	if len(ss.Missing) > 0 {
		log.Warn("the API's self-signed certificate does not name these hosts: clients that verify names (Prometheus, curl) refuse it there; delete it and its key to generate one that does (pinned clients then see a new fingerprint)",
			"missing", ss.Missing, "file", ss.CertFile)
	}
	return tokens, ss.Certificate, nil
}
