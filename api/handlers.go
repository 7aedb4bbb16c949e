package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"bosun/store"
)

// maxPlanBody bounds POST /api/v1/plan (the files of `bosun plan --dir`).
const maxPlanBody = 32 << 20

// HistoryList is the answer of GET /api/v1/history, newest first.
type HistoryList struct {
	Items []store.HistoryEntry `json:"items"`
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	h, err := s.st.History(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, http.StatusOK, HistoryList{Items: h})
}

func (s *Server) plan(w http.ResponseWriter, r *http.Request) {
	var req PlanRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPlanBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("plan request over %d bytes", maxPlanBody))
			return
		}
		writeError(w, http.StatusBadRequest, fmt.Errorf("plan request: %w", err))
		return
	}
	if (req.Ref == "") == (len(req.Files) == 0) {
		writeError(w, http.StatusBadRequest, errors.New("plan request: give exactly one of ref and files"))
		return
	}
	res, err := s.backend.Plan(r.Context(), req)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := LogRequest{
		Namespace: r.PathValue("namespace"),
		Pod:       r.PathValue("pod"),
		Container: q.Get("container"),
		Follow:    q.Get("follow") == "1" || q.Get("follow") == "true",
		Previous:  q.Get("previous") == "1" || q.Get("previous") == "true",
	}
	if t := q.Get("tail"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("tail=%q: want a number >= 0", t))
			return
		}
		req.TailLines = n
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	// Errors before the first byte get a status; later ones end the stream.
	sw := &startedWriter{w: w}
	if err := s.backend.Logs(r.Context(), req, sw); err != nil && !sw.started {
		writeError(w, statusOf(err), err)
	}
}

// startedWriter remembers whether anything was written, and flushes every
// write so that `bosun logs -f` sees lines as they come.
type startedWriter struct {
	w       http.ResponseWriter
	started bool
}

func (s *startedWriter) Write(p []byte) (int, error) {
	s.started = true
	n, err := s.w.Write(p)
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
	return n, err
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}
