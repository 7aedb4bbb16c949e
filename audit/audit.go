// Package audit writes bosun's audit lines: one log line at Info for each
// thing that changed what the cluster runs or who may change it, saying
// what happened and who or what caused it.
//
// Every audit line carries the same three attributes, so one filter
// (audit=true) finds them all and the same fields read the same way:
//
//	audit=true
//	event=<what happened>   dotted, component first: revision.accepted, revision.rejected,
//	                        canary.revision.accepted, canary.revision.rejected, api.sync, webhook.accepted, ...
//	actor=<who>             the verified signer of a commit, a token's name, a webhook's source
//
// followed by the event's own attributes (commit, branch, trigger, result,
// remote address, ...). Secrets never go into an audit line: callers pass
// names, fingerprints and hashes, not tokens or values.
package audit

import (
	"context"
	"log/slog"
)

// Attribute names shared by every audit line.
const (
	KeyAudit = "audit"
	KeyEvent = "event"
	KeyActor = "actor"
)

// Log writes one audit line to log at Info: audit=true, event, actor, then
// attrs. A nil log writes nothing.
func Log(ctx context.Context, log *slog.Logger, event, actor string, attrs ...slog.Attr) {
	if log == nil {
		return
	}
	all := make([]slog.Attr, 0, len(attrs)+3)
	all = append(all, slog.Bool(KeyAudit, true), slog.String(KeyEvent, event), slog.String(KeyActor, actor))
	all = append(all, attrs...)
	log.LogAttrs(ctx, slog.LevelInfo, "audit: "+event, all...)
}
