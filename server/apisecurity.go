package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"bosun/api"
	"bosun/pki"
)

// apiSecurity returns the API's tokens and certificate: from the files
// the configuration names, or generated into DataDir/api on the first
// start and reused afterwards: an admin token, whose hash alone is kept,
// and a certificate issued by the cluster CA (ca; self-signed without
// one), served with the CA so that joining machines can check it.
func apiSecurity(cfg Config, ca *pki.CA, log *slog.Logger) (*api.Tokens, *tls.Certificate, error) {
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
	var issuer *api.Issuer
	if ca != nil {
		issuer = &api.Issuer{CA: ca.Cert, Issue: func(hosts []string) ([]byte, []byte, error) {
			req := pki.Request{CommonName: "bosun-api", Server: true}
			for _, h := range hosts {
				if ip := net.ParseIP(h); ip != nil {
					req.IPs = append(req.IPs, ip)
				} else {
					req.DNSNames = append(req.DNSNames, h)
				}
			}
			return ca.Issue(req)
		}}
	}
	g, err := api.GeneratedCertificate(dir, api.CertificateHosts(cfg.APIListen, host), time.Now(), issuer)
	if err != nil {
		return nil, nil, err
	}
	fp := api.Fingerprint(g.Certificate.Leaf.Raw)
	switch {
	case g.Renewed || g.Reissued:
		why := "it neared its end"
		if g.Reissued {
			why = "the cluster CA did not sign it"
		}
		log.Warn("issued the API a new certificate because "+why+": clients that pinned the one before must trust the new fingerprint", "file", g.CertFile, "fingerprint", fp)
	case g.Created:
		log.Info("issued the API a certificate of the cluster CA", "file", g.CertFile, "fingerprint", fp)
	}
	if len(g.Missing) > 0 {
		log.Warn("the API's certificate does not name these hosts: clients that verify names (Prometheus, curl) refuse it there; delete it and its key to issue one that does (pinned clients then see a new fingerprint)",
			"missing", g.Missing, "file", g.CertFile)
	}
	return tokens, g.Certificate, nil
}
