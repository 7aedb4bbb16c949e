// Package signature verifies the signatures of Git commits against a set
// of trusted keys, and says who signed.
//
// A Keyring is loaded once from a directory (LoadDir): OpenPGP public keys
// (*.asc, *.gpg, *.pub) and an OpenSSH allowed_signers file
// (ParseAllowedSigners). Keyring.Verify takes the signed payload (the
// commit object without its gpgsig headers), the signature block and the
// time of the check, and returns the Signer or why the commit is not to
// be trusted:
//
//   - ErrNotSigned: there is no signature;
//   - *UntrustedError: a signature by a key that is not trusted, naming the
//     key (OpenPGP fingerprint or key ID; SSH SHA256 fingerprint and type);
//   - any other error: a signature that does not verify (the commit was
//     changed), by an expired or revoked key, outside the valid-after /
//     valid-before window of its allowed_signers line, in another SSH
//     namespace than "git" or one its line does not allow, of several
//     signatures, or of a format other than OpenPGP and SSH.
//
// OpenPGP verification is go-crypto's (ProtonMail/go-crypto, which go-git's
// Commit.Verify also uses), with the check's time passed in rather than
// read from the clock; SSH signatures are hiddeco/sshsig's (as Flux uses
// it). Times are judged at the time of the check, not at the commit's
// date: the date is written by whoever made the commit, so a key past its
// valid-before could otherwise sign back-dated commits.
//
// The package does no I/O beyond reading the key directory in LoadDir, and
// keeps no state: what is trusted is what was loaded.
package signature
