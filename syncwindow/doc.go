// Package syncwindow decides when a new revision may be applied: Argo CD's
// sync windows, kept in the repository itself (File, `.bosun/windows.yaml`
// at the root of the tracked branch) so that a deploy freeze goes through
// review like any other change.
//
//	windows:
//	- kind: deny                 # deny | allow
//	  schedule: "0 17 * * 5"     # 5-field cron (robfig/cron): when the window opens
//	  duration: 64h              # Go duration: how long it stays open
//	  timeZone: Europe/Berlin    # IANA name; default UTC
//	  manualSync: false          # see below
//
// The rules are Argo CD's:
//   - a deny window that is active blocks: deny wins over allow;
//   - when allow windows exist, revisions are applied only inside one;
//   - no windows (or no file) means no restriction.
//
// A window is active at t when one of its schedule's times s has
// s <= t < s+duration; durations are absolute (a window over a DST change
// lasts its duration, not its wall-clock span), and schedule times are
// those of robfig/cron in the window's zone: a time skipped by a spring
// change does not occur that day (02:30 in Berlin on the last Sunday of
// March), one repeated by an autumn change occurs twice, once per offset.
//
// manualSync follows Argo CD too: while every active deny window has
// manualSync: true (or, with no deny active, while outside the allow
// windows one of them has it), a manual sync (`bosun sync`, which any
// admin token may run) applies a held revision; automatic application
// (the leader's, at fetch) stays blocked. `bosun sync --force --reason`
// overrides any window and is recorded in the history; it is bosun's own
// addition.
//
// The package is pure: Parse decodes and validates the file's bytes
// (errors are manifest.Errors, "`.bosun/windows.yaml:LINE: field:
// message`"), Active and ManualAllowed decide for a time passed in. Load
// (load.go) is the one function that reads a directory.
package syncwindow
