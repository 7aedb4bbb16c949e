package gitsource

import (
	"fmt"
	"io"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"bosun/signature"
)

// Verification is what the trusted keys (Config.TrustedKeys) say of a
// commit's signature.
type Verification struct {
	// Signer is who signed the commit; zero when Err is set.
	Signer signature.Signer
	// Err says why the commit is not to be trusted: signature.ErrNotSigned,
	// a *signature.UntrustedError, or another error of the signature (it
	// does not verify, its key expired, ...). nil when Signer is set.
	Err error
}

// Trusted reports whether the commit is signed by a trusted key.
func (v *Verification) Trusted() bool { return v != nil && v.Err == nil }

// verify checks the signature of c when commits are verified; it returns
// nil when they are not. The verdict is the keys' at the time of the check
// (see signature.Keyring.Verify), made once per commit exported: a branch
// head is verified when it is first handed out (and again by a new Source,
// e.g. after a restart).
func (s *Source) verify(c *object.Commit) *Verification {
	keys := s.cfg.TrustedKeys
	if keys == nil {
		return nil
	}
	payload, err := signedPayload(c)
	if err != nil {
		return &Verification{Err: fmt.Errorf("read the signed part of the commit: %w", err)}
	}
	signer, err := keys.Verify(payload, []byte(c.PGPSignature), time.Now())
	if err != nil {
		s.cfg.Logger.Warn("commit not trusted", "commit", shortHash(c.Hash), "err", err)
		return &Verification{Err: err}
	}
	s.cfg.Logger.Debug("commit signature verified", "commit", shortHash(c.Hash), "signer", signer.String())
	return &Verification{Signer: signer}
}

// signedPayload is what a commit's signature is made over: the commit
// object without its gpgsig headers, byte for byte as stored.
func signedPayload(c *object.Commit) ([]byte, error) {
	var o plumbing.MemoryObject
	if err := c.EncodeWithoutSignature(&o); err != nil {
		return nil, err
	}
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func shortHash(h plumbing.Hash) string { return h.String()[:12] }
