package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// ResultHeld is the history result of a revision that is valid but waits
// for a sync window (package syncwindow) to end; HistoryEntry.Detail says
// "held (sync window until <time>): <why>". A held entry becomes
// progressing when the revision is applied (at the window's end, by a
// manual sync the windows allow, or by `bosun sync --force`), or
// superseded by a newer revision.
const ResultHeld = "held"

// HeldStatus is the revision a sync window holds, in the sync status.
type HeldStatus struct {
	Revision Revision `json:"revision"`
	// Until is when the windows stop blocking it, zero when that is not
	// within a year; Reason names the window that blocks it.
	Until  time.Time `json:"until,omitzero"`
	Reason string    `json:"reason"`
}

const heldKey = "held"

// Held is the held revision's objects and the windows file that holds it,
// kept in etcd (encrypted at rest like Desired, as it holds Secrets) so
// that a new leader goes on holding it, and applies it when the windows
// let it, whatever commit its own clone of the repository is at.
type Held struct {
	Desired Desired `json:"desired"`
	// Windows is the revision's .bosun/windows.yaml, as in Git.
	Windows []byte `json:"windows,omitempty"`
	// Seq is the history entry that records it.
	Seq int64 `json:"seq"`
}

// PutHeld records the held revision, gzipped.
func PutHeld(h *Held) (Op, error) {
	return putGzipJSON(heldKey, "held revision", h)
}

// DeleteHeld forgets the held revision.
func DeleteHeld() Op { return Op{key: Prefix + heldKey} }

// Held reads the held revision; nil when none is held.
func (s *Store) Held(ctx context.Context) (*Held, error) {
	var h Held
	if ok, err := s.getGzipJSON(ctx, heldKey, "held revision", &h); !ok {
		return nil, err
	}
	return &h, nil
}

// SyncRequestSpec is a request to the leader (RequestSyncSpec): fetch the
// repository now and, for a manual sync or a forced one, apply the
// revision a sync window holds.
type SyncRequestSpec struct {
	// Reason is what the fetch is attributed to in the audit lines.
	Reason string `json:"reason"`
	// Manual marks `bosun sync` (not a webhook): it applies a held
	// revision when its windows allow manual syncs (manualSync).
	Manual bool `json:"manual,omitempty"`
	// Force applies the held revision Commit whatever the windows say;
	// By (a token's name) and Why (the operator's reason) go into its
	// history entry.
	Force  bool   `json:"force,omitempty"`
	Commit string `json:"commit,omitempty"`
	By     string `json:"by,omitempty"`
	Why    string `json:"why,omitempty"`
}

// RequestSyncSpec writes a sync request; see RequestSync.
func (s *Store) RequestSyncSpec(ctx context.Context, req SyncRequestSpec) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	b, _ := json.Marshal(struct {
		SyncRequestSpec
		At time.Time `json:"at"`
	}{req, time.Now()})
	if err := s.retry(ctx, func(ctx context.Context) error {
		_, err := s.cli.Put(ctx, Prefix+syncRequestKey, string(b))
		return err
	}); err != nil {
		return fmt.Errorf("request sync: %w", err)
	}
	return nil
}

// SyncRequestSpec reads the last sync request and the etcd revision it was
// written at (0 when there was none); see SyncRequest.
func (s *Store) SyncRequestSpec(ctx context.Context) (SyncRequestSpec, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, Prefix+syncRequestKey)
	if err != nil {
		return SyncRequestSpec{}, 0, fmt.Errorf("read sync request: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return SyncRequestSpec{}, 0, nil
	}
	var req SyncRequestSpec
	_ = json.Unmarshal(resp.Kvs[0].Value, &req) // a request without a reason is still one
	return req, resp.Kvs[0].ModRevision, nil
}
