// Package gitsource follows one branch of a Git repository (main), and the
// extra branches it is told to follow besides (canaries), and hands out
// their revisions.
//
// A Source keeps one bare go-git clone under Config.Dir/repo and fetches
// each branch B with the forcing refspec +refs/heads/B:refs/remotes/origin/B,
// so a force-pushed branch is followed like any other move of its head. Each
// commit handed out is exported into its own directory,
// Config.Dir/rev/<full hash>, written once and renamed into place; callers
// read manifests from Revision.Dir while the next fetch runs without tearing
// the files under them. Each branch keeps the snapshots of its newest few
// heads (see keptRevisions) and a snapshot is removed once no branch keeps
// it: a busy canary branch never prunes main's current snapshot, nor main a
// canary's, and a commit shared by two branches is exported once and stays
// while either keeps it. A caller must finish with a revision before its
// branch moves that far ahead.
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
// Extra branches (Follow), on the same channel:
//   - Follow sets the extra branches at any time, from any goroutine, without
//     waiting for a fetch; Config.Branch and duplicates are ignored. A change
//     triggers a fetch. Every Revision carries its Branch.
//   - Main first: each poll fetches main and sends its revision as above;
//     only then, and only if main's fetch succeeded, one ls-remote
//     (Remote.ListContext) tells which extra branches exist and which moved,
//     and one fetch with one forcing refspec per moved branch brings those.
//     A poll with nothing new fetches no extra branch. Their failures are
//     theirs: recorded in Status.Branches, never in main's Failures, retried
//     after their own backoff (cut short by Trigger or a newly followed
//     branch).
//   - For each followed branch Run sends a Revision whenever its head
//     differs from the last one sent for it, and once when it is newly
//     followed, by this Run (a new leader needs it even if the clone had
//     it). Extra branches are not sent from the clone before the network, as
//     main is: they come after Follow and the first fetch; if that fetch
//     (main's) fails, a branch the clone already has is sent from it.
//   - A branch that is not on the remote, or whose name is invalid, is sent
//     once as Revision{Branch: b, Missing: true, Err: reason} (no Commit, no
//     Dir), and again if it disappears after having existed (its
//     remote-tracking ref is then removed); when it appears later its
//     revision is sent as usual.
//   - A branch no longer followed has its remote-tracking ref and the
//     snapshots only it kept removed at the next loop; nothing more is sent
//     for it.
//
// Signed commits and triggers (verify.go, trigger.go):
//   - With Config.TrustedKeys, every commit exported (a branch's head, or
//     Resolve's) is verified once, when exported, against those keys:
//     Revision.Verification carries the signer or why the commit is not to
//     be trusted (signature.Keyring.Verify, at the time of the export). The
//     Source only reports; callers decide (the leader rejects).
//   - Revision.Trigger says what made Run send a revision: "start" (from
//     the clone, before the network), "poll", "trigger" (Trigger), or the
//     reason given to TriggerBy (a webhook's, `bosun sync`'s).
//
// Resolve (for `bosun plan --ref`) fetches any other branch, tag or commit
// reachable from a branch into refs/bosun/resolve/ of the same clone and
// exports it under Config.Dir/resolved; it never changes what Run follows.
// Its snapshots are freed by Release or once keptResolved newer ones exist.
//
// Transports are go-git's: local paths and file:// (which run the git
// binary's git-upload-pack), git://, http(s):// and ssh:// or scp-like
// user@host:path. Config.Auth says how the server is reached and trusted,
// and every conversation with the server (main's fetch, the extra
// branches' ls-remote and fetch, Resolve) reads it afresh from its files,
// so a rotated key, password, token, CA bundle or known_hosts needs no
// restart:
//   - ssh: the key of Auth.SSHKeyFile, or else the ssh-agent's. The
//     server's host key is always checked against known_hosts
//     (Auth.SSHKnownHosts, default DefaultKnownHosts: ~/.ssh/known_hosts
//     and /etc/ssh/ssh_known_hosts, those that exist), read with
//     github.com/skeema/knownhosts; the host key algorithms asked for are
//     those known_hosts has for the host. An unknown, changed or @revoked
//     key is a *HostKeyError whose message (in Status.FetchError and
//     BranchStatus.Error) says which, with the presented fingerprint, the
//     known_hosts line it differs from, or the ssh-keyscan command that adds
//     it. Auth.InsecureIgnoreHostKey is the only way to skip the check.
//   - http(s): basic auth from Auth.Username and Auth.PasswordFile (or the
//     URL's userinfo, taken out of the URL before go-git or the clone's
//     config see it), or a bearer token from Auth.TokenFile; Auth.CAFile
//     adds a private CA to the system's. A server's refusal names the
//     credentials refused (user and file), never their value.
//
// Secrets (the URL's password, the password and token files' content)
// never appear in logs, errors or Status: URLs are shown as
// https://user:***@host (RedactURL does it for callers), error text is
// scrubbed of every secret value, raw and URL-escaped, before it leaves the
// package, and a URL that does not parse is refused without quoting it.
// Check validates a Config without the network and returns what a server
// should warn about at every start (host keys not verified, a password in
// the URL, credentials over plain http, secret files others can read).
//
// Metrics (Config.Metrics, metrics.go): bosun_git_fetches_total{result},
// bosun_git_fetch_failures_total and bosun_git_fetch_duration_seconds count
// main's fetches (one cut short by shutdown is not counted); while a
// Source runs, bosun_git_fetch_consecutive_failures,
// bosun_git_last_fetch_timestamp_seconds, bosun_git_revision_timestamp_seconds
// and bosun_git_revision_age_seconds (since the head's commit time) describe
// it, and are absent otherwise (a replica that does not lead).
package gitsource
