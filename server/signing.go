package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"bosun/audit"
	"bosun/gitsource"
	"bosun/signature"
	"bosun/store"
)

// Signed commits (--verify-commits, --trusted-keys). The Git source
// verifies each head it hands out against the keys read at start
// (Revision.Verification); here the leader turns the verdict into what it
// records and decides.

// untrusted returns why rev may not run, or "" when it may: commits are
// not verified, or it is signed by a trusted key. The text is the
// rejection's error, as status and history show it.
func untrusted(rev gitsource.Revision) string {
	v := rev.Verification
	if v == nil || v.Err == nil {
		return ""
	}
	msg := fmt.Sprintf("commit %s: %v", short7(rev.Commit), v.Err)
	if errors.Is(v.Err, signature.ErrNotSigned) {
		msg += " (--verify-commits is on)"
	}
	return msg
}

// signerOf is what history and status record of rev's signature: who
// signed it, or why nobody trusted did; "" when commits are not verified.
func signerOf(rev gitsource.Revision) string {
	v := rev.Verification
	var ue *signature.UntrustedError
	switch {
	case v == nil:
		return ""
	case v.Err == nil:
		return v.Signer.String()
	case errors.Is(v.Err, signature.ErrNotSigned):
		return "unsigned"
	case errors.As(v.Err, &ue) && ue.Kind == signature.SSH:
		return fmt.Sprintf("untrusted SSH key %s (%s)", ue.Fingerprint, ue.KeyType)
	case errors.As(v.Err, &ue):
		return fmt.Sprintf("untrusted %s key %s", ue.Kind, ue.Fingerprint)
	default:
		return "invalid signature"
	}
}

// auditRevision writes the audit line of a revision accepted or rejected:
// event revision.<result> (canary.revision.<result> for a canary branch's
// head); the actor is the verified signer, or the commit's author as Git
// records it (unverified) when commits are not verified or the signature
// is not trusted.
func auditRevision(ctx context.Context, log *slog.Logger, rev gitsource.Revision, canary bool, result, reason string) {
	event := "revision." + result
	if canary {
		event = "canary.revision." + result
	}
	actor, signer := rev.Author, signerOf(rev)
	switch {
	case rev.Verification.Trusted():
		actor = rev.Verification.Signer.Identity
	case signer == "":
		signer = "not verified"
	}
	attrs := []slog.Attr{
		slog.String("commit", rev.Commit), slog.String("branch", rev.Branch), slog.String("author", rev.Author),
		slog.String("signer", signer), slog.String("trigger", rev.Trigger), slog.String("result", result),
	}
	if reason != "" {
		attrs = append(attrs, slog.String("reason", reason))
	}
	audit.Log(ctx, log, event, actor, attrs...)
}

// short7 is the abbreviated hash users see in Git's own messages.
func short7(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	return commit
}

// triggerSync asks the Git source for a fetch now, for a sync request (a
// webhook, `bosun sync`): the revision it brings carries the request's
// reason as its trigger, for the audit line.
// It returns the request when it is news (a manual or forced sync may
// apply a held revision, syncwindow.go).
func (l *leader) triggerSync(ctx context.Context) (store.SyncRequestSpec, bool) {
	req, rev, err := l.st.SyncRequestSpec(ctx)
	if err != nil || rev <= l.syncRev || req.Reason == "" {
		l.src.Trigger()
		return store.SyncRequestSpec{}, false
	}
	l.syncRev = rev
	l.src.TriggerBy(req.Reason)
	return req, true
}
