package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"

	"bosun/store"
)

// ForceSyncRequest is the body of POST /api/v1/sync/force (`bosun sync
// --force --reason TEXT`): apply the revision a sync window holds, now.
type ForceSyncRequest struct {
	// Reason is why, recorded in the revision's history entry; required.
	Reason string `json:"reason"`
	// Commit, when given, must be the held revision's (a full hash or a
	// prefix of at least 7 characters), so that a force never applies a
	// newer commit than the one its caller looked at.
	Commit string `json:"commit,omitempty"`
}

// ForceSyncResult answers a force: the held revision the leader applies.
type ForceSyncResult struct {
	Result   string         `json:"result"`
	Revision store.Revision `json:"revision"`
}

// maxForceReason bounds the reason kept in the history.
const maxForceReason = 500

// syncForce asks the leader to apply the held revision at once, whatever
// its windows say (Admin, audited as api.sync.force; the leader's audit
// line revision.released carries the reason). 409 when no revision is
// held.
func (s *Server) syncForce(w http.ResponseWriter, r *http.Request) {
	var req ForceSyncRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("force request: %w", err))
		return
	}
	req.Reason = strings.TrimSpace(req.Reason)
	switch {
	case req.Reason == "":
		writeError(w, http.StatusBadRequest, errors.New("force request: reason: required (why the sync window is overridden)"))
		return
	case len(req.Reason) > maxForceReason:
		writeError(w, http.StatusBadRequest, fmt.Errorf("force request: reason: longer than %d bytes", maxForceReason))
		return
	case strings.ContainsFunc(req.Reason, unicode.IsControl):
		writeError(w, http.StatusBadRequest, errors.New("force request: reason: must be one line of text"))
		return
	case req.Commit != "" && len(req.Commit) < 7:
		writeError(w, http.StatusBadRequest, errors.New("force request: commit: give at least 7 characters"))
		return
	}
	sync, err := s.st.SyncStatus(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	if sync.Held == nil {
		writeError(w, http.StatusConflict, errors.New("no revision is held by a sync window"))
		return
	}
	held := sync.Held.Revision
	if req.Commit != "" && !strings.HasPrefix(held.Commit, req.Commit) {
		writeError(w, http.StatusConflict, fmt.Errorf("the held revision is %s, not %s", held.Commit, req.Commit))
		return
	}
	by := "anonymous"
	if tok, ok := TokenFrom(r.Context()); ok {
		by = tok.Name
	}
	spec := store.SyncRequestSpec{Reason: "bosun sync --force by " + by + " from " + r.RemoteAddr,
		Force: true, Commit: held.Commit, By: by, Why: req.Reason}
	if err := s.st.RequestSyncSpec(r.Context(), spec); err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, http.StatusAccepted, ForceSyncResult{Result: "force requested", Revision: held})
}

// manualSync is the sync request of POST /api/v1/sync: a manual sync, which
// applies a held revision when its windows allow manual syncs.
func manualSync(r *http.Request, reason string) store.SyncRequestSpec {
	spec := store.SyncRequestSpec{Reason: reason, Manual: true, By: "anonymous"}
	if tok, ok := TokenFrom(r.Context()); ok {
		spec.By = tok.Name
	}
	return spec
}
