package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"bosun/api"
)

// pinner trusts a server's certificate the way SSH trusts a host key:
// one that verifies against the system's roots needs nothing more;
// otherwise its SHA-256 fingerprint is saved for the server's address in
// ~/.config/bosun/known_servers on first use (and the user told), and a
// later certificate with another fingerprint is refused.
type pinner struct {
	addr   string // host:port, the key in known_servers
	stderr io.Writer

	mu      sync.Mutex
	trusted bool // this process already told the user / checked
	// file is known_servers' path; "" before the first use.
	file string
}

// pinError is a certificate that is not the one pinned for the address.
type pinError struct {
	addr, file     string
	line           int
	pinned, served string
}

func (e *pinError) Error() string {
	return fmt.Sprintf(`the certificate of the bosun server at %s has CHANGED
  trusted before: %s (%s:%d)
  offered now:    %s
Someone may be intercepting the connection, or the server has a new certificate.
The server logs its fingerprint at start ("api listening" ... "fingerprint"). If the new
one is the server's, delete line %d of %s and run the command again; to verify the
server with a CA instead, give --ca-file.`, e.addr, e.pinned, e.file, e.line, e.served, e.line, e.file)
}

// verify is tls.Config.VerifyConnection (with InsecureSkipVerify set, so
// that it alone decides).
func (p *pinner) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the server sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: cs.ServerName, Intermediates: inter}); err == nil {
		return nil
	}
	return p.check(api.Fingerprint(leaf.Raw))
}

// check compares fp with the fingerprint pinned for the address, pinning
// it when there is none.
func (p *pinner) check(fp string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	file, err := configPath("known_servers")
	if err != nil {
		return fmt.Errorf("the server's certificate is not signed by a CA this machine trusts, and there is no place to pin it (%v): give --ca-file", err)
	}
	p.file = file
	pinned, line, err := lookupPin(file, p.addr)
	if err != nil {
		return err
	}
	switch {
	case pinned == fp:
		return nil
	case pinned != "":
		return &pinError{addr: p.addr, file: file, line: line, pinned: pinned, served: fp}
	}
	if err := appendPin(file, p.addr, fp); err != nil {
		return fmt.Errorf("pin the server's certificate: %w", err)
	}
	if !p.trusted {
		fmt.Fprintf(p.stderr, "bosun: trusting %s on first use: certificate fingerprint %s (saved in %s; compare it with the fingerprint the server logs at start)\n", p.addr, fp, file)
	}
	p.trusted = true
	return nil
}

// lookupPin returns the fingerprint pinned for addr in file and its line,
// "" when there is none (or no file). Lines are "ADDR FINGERPRINT";
// blank lines and # comments are skipped.
func lookupPin(file, addr string) (string, int, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("known servers: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		n++
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 2 {
			return "", 0, fmt.Errorf("%s:%d: want ADDRESS FINGERPRINT", file, n)
		}
		if f[0] == addr {
			return f[1], n, nil
		}
	}
	return "", 0, sc.Err()
}

// appendPin adds "addr fp" to file (mode 0600, its directory 0700).
func appendPin(file, addr, fp string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "%s %s\n", addr, fp); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
