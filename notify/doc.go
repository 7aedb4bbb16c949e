// Package notify tells people outside the cluster what bosun did with their
// commits: commit statuses on GitHub, GitLab and Gitea/Forgejo (so a pull
// request shows its rollout), a generic JSON webhook, and Slack-compatible
// incoming webhooks.
//
//	leader (a fenced write of the history succeeded)
//	   -> Notify(Event) -> per-sink bounded queue -> worker -> HTTP POST
//	                                                  ^ retry, backoff, Retry-After
//
// # Configuration
//
// A YAML file (bosun server --notify-config FILE), read by Load: unknown
// fields, missing ones and bad values are errors naming file:line and the
// field, and stop the server's start. See examples/notifications.
//
//	cluster: prod                       # status context bosun/prod
//	targetURL: https://bosun.example.com/?commit={commit}
//	sinks:
//	  - {type: github, repo: acme/deploy, tokenFile: /etc/bosun/github-token}
//	  - {type: gitlab, url: https://gitlab.example.com/api/v4, repo: acme/deploy, tokenFile: ...}
//	  - {type: gitea, url: https://git.example.com/api/v1, repo: acme/deploy, tokenFile: ...}
//	  - {type: webhook, url: https://ci.example.com/bosun, secretFile: /etc/bosun/hook-key}
//	  - {type: slack, urlFile: /etc/bosun/slack-url, events: [RevisionRejected, RolloutFailed, "Canary*"]}
//
// # Events and statuses
//
// Each Event carries the commit's SHA, the branch, a short message and a
// reason (the first error, file:line, of a rejected revision; why a rollout
// failed). Its type decides the commit status (StateOf): RevisionApplied,
// RevisionHeld, CanaryStarted and CanaryStepped are pending (GitLab:
// running, or pending when held); RolloutComplete, CanaryPromoted and
// CanaryEnded success; RevisionRejected, RolloutFailed, CanaryAborted and
// CanaryFailed failure; RevisionSuperseded error (GitLab: canceled). The
// status context is "bosun/<cluster>" (a canary's adds
// "/canary/<namespace>/<name>"), the target URL TargetURL.
//
// # Delivery
//
// Notify never blocks: each sink has a queue of Delivery.QueueSize; when it
// is full the oldest event is dropped (bosun_notify_dropped_total, a log
// line). One worker per sink sends its queue in order; a failed attempt
// (a network error, 408, 429, 5xx, a 403 with Retry-After) is retried
// after an exponential backoff with full jitter (Backoff) or the server's
// Retry-After, up to Delivery.MaxAttempts; other 4xx answers are final.
// Everything stops when Run's context ends.
//
// Only the leader sends: the server runs a Notifier for each leadership and
// feeds it outcomes after their fenced write to etcd succeeded, so a
// deposed leader cannot report anything. Events still queued when a
// leadership ends are dropped, not sent late (a late "pending" would
// overwrite the new leader's "success"). The new leader sends the status
// of the newest revision again to the status sinks (NotifyStatus), once:
// statuses are idempotent, so a failover costs at most one repeated status
// per status sink and repairs one the old leader lost; webhooks and Slack
// get each outcome at most once.
//
// # Secrets
//
// Tokens, webhook HMAC keys and Slack URLs are read from files at each send
// (rotate them in place) and never appear in logs, errors or metrics:
// errors of the HTTP client lose their URL, answers are redacted, metrics
// are labelled by sink name. Webhook requests carry X-Bosun-Event,
// X-Bosun-Delivery (the event's ID) and, with a secretFile,
// X-Bosun-Signature-256 (Sign), the form of GitHub's X-Hub-Signature-256.
//
// Metrics: bosun_notify_sent_total, bosun_notify_failed_total,
// bosun_notify_dropped_total, bosun_notify_retries_total,
// bosun_notify_queue_length, bosun_notify_request_duration_seconds,
// bosun_notify_delivery_latency_seconds, each by sink.
package notify
