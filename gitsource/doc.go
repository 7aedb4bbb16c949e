// Package gitsource follows one branch of a Git repository and hands out its
// revisions.
//
// A Source keeps a bare go-git clone under Config.Dir/repo and fetches the
// branch with the forcing refspec +refs/heads/B:refs/remotes/origin/B, so a
// force-pushed branch is followed like any other move of its head. Each
// commit handed out is exported into its own directory,
// Config.Dir/rev/<full hash>, written once and renamed into place; callers
// read manifests from Revision.Dir while the next fetch runs without tearing
// the files under them. The newest few snapshots are kept (see
// keptRevisions); older ones are removed, so a caller must finish with a
// revision before it falls that far behind.
//
// Contract of Run:
//   - On start, if Dir already holds a clone of the same URL with the branch
//     fetched, its revision is sent before any network access, so a restarted
//     server re-emits what it was running even while the Git server is down.
//     The clone is reused, never recloned.
//   - It then fetches at once and every Poll; a Revision is sent whenever the
//     branch head differs from the last one sent.
//   - A failed fetch sends nothing (the last revision stays current), is
//     recorded in Status (FetchError, Failures, NextRetry) and is retried after
//     backoff(Poll, failures): Poll, doubling, capped at five minutes. One
//     success resets it.
//   - Each fetch is bounded by Config.FetchTimeout, so a server that accepts
//     and then stalls counts as a failure instead of stopping the loop.
//   - Trigger asks for a fetch now (webhooks, `bosun sync`); triggers coalesce
//     and also cut a backoff wait short.
//   - Run returns ctx.Err() once ctx is done.
//
// Resolve (for `bosun plan --ref`) fetches any other branch, tag or commit
// reachable from a branch into refs/bosun/resolve/ of the same clone and
// exports it under Config.Dir/resolved; it never changes what Run follows.
// Its snapshots are freed by Release or once keptResolved newer ones exist.
//
// Transports are go-git's: local paths and file:// (which run the git
// binary's git-upload-pack), git://, http(s):// with optional basic auth, and
// ssh:// or scp-like user@host:path with a private key file. Secrets
// (passwords from PasswordFile or embedded in the URL) never appear in logs,
// errors or Status: URLs are shown as https://user:***@host and any error
// text is scrubbed of the secret values before it leaves the package.
package gitsource
