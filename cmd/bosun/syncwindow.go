package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"bosun/api"
	"bosun/manifest"
	"bosun/store"
	"bosun/syncwindow"
)

// syncForceFlags are `bosun sync`'s flags for sync windows: --force
// --reason TEXT [--commit HASH] applies the revision a window holds.
type syncForceFlags struct {
	force  bool
	reason string
	commit string
}

func syncWindowFlags(fs *flagSet) *syncForceFlags {
	f := &syncForceFlags{}
	fs.BoolVar(&f.force, "force", false, "apply the revision a sync window holds now, whatever the windows say (admin; needs --reason)")
	fs.StringVar(&f.reason, "reason", "", "with --force: why, recorded in the revision's history entry")
	fs.StringVar(&f.commit, "commit", "", "with --force: the held commit (a prefix of 7 or more), so that a newer one is never forced by mistake")
	return f
}

// run forces the held revision; it returns handled false when --force was
// not given.
func (f *syncForceFlags) run(ctx context.Context, server *clientOptions, stdout io.Writer) (handled bool, err error) {
	if !f.force {
		if f.reason != "" || f.commit != "" {
			return true, &exitError{code: 2, err: errors.New("--reason and --commit go with --force")}
		}
		return false, nil
	}
	if f.reason == "" {
		return true, &exitError{code: 2, err: errors.New("--force needs --reason TEXT: why the sync window is overridden (the history records it)")}
	}
	var res api.ForceSyncResult
	if err := newClient(server).do(ctx, "POST", "/api/v1/sync/force", api.ForceSyncRequest{Reason: f.reason, Commit: f.commit}, &res); err != nil {
		return true, err
	}
	fmt.Fprintf(stdout, "sync forced: the leader applies %s %q now\n", shortHash(res.Revision.Commit), res.Revision.Message)
	return true, nil
}

// printHeld is `bosun status`'s line for a revision a sync window holds.
func printHeld(w io.Writer, sync store.SyncStatus) {
	h := sync.Held
	if h == nil {
		return
	}
	until := ""
	if !h.Until.IsZero() {
		until = " until " + h.Until.Local().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "Held:     %s %q: held (sync window%s): %s\n", shortHash(h.Revision.Commit), h.Revision.Message, until, h.Reason)
	fmt.Fprintf(w, "          (applied when the window ends; bosun sync --force --reason TEXT applies it now)\n")
}

// historyDetail is the line under a revision's history entry that says
// why it was held or how it was applied after a hold; "" for others.
func historyDetail(e store.HistoryEntry) string {
	if e.Canary != "" || e.Detail == "" {
		return ""
	}
	return e.Detail
}

// withWindows adds the problems of dir's .bosun/windows.yaml (`bosun
// validate` of a repository's root) to a load's error.
func withWindows(dir string, set *manifest.Set, err error) (*manifest.Set, error) {
	_, _, werr := syncwindow.Load(dir)
	if werr == nil {
		return set, err
	}
	var errs, more manifest.Errors
	if err != nil && !errors.As(err, &errs) {
		return nil, err
	}
	if !errors.As(werr, &more) {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, syncwindow.File), werr)
	}
	errs = append(append(manifest.Errors{}, errs...), more...)
	manifest.SortErrors(errs)
	return nil, errs
}
