package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"bosun/store"
)

// EventList is the answer of GET /api/v1/events: the events that match,
// oldest first.
type EventList struct {
	Events []store.Event `json:"events"`
}

// maxEventsLimit bounds ?limit=.
const maxEventsLimit = 10000

// events serves GET /api/v1/events?namespace=&kind=&name=&limit=: the
// events of every source (agents and servers) that match, oldest first;
// namespace "" is every namespace, limit keeps the newest.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.EventFilter{Namespace: q.Get("namespace"), Kind: q.Get("kind"), Name: q.Get("name")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxEventsLimit {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit %q: want a number from 0 to %d", v, maxEventsLimit))
			return
		}
		f.Limit = n
	}
	for _, k := range []string{"namespace", "kind", "name", "limit"} {
		if len(q[k]) > 1 {
			writeError(w, http.StatusBadRequest, errors.New(k+": given more than once"))
			return
		}
	}
	evs, err := s.st.Events(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	if evs == nil {
		evs = []store.Event{}
	}
	writeJSON(w, http.StatusOK, EventList{Events: evs})
}
