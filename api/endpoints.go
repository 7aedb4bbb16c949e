package api

import (
	"fmt"
	"net/http"

	"bosun/kube"
)

// endpoints answers GET /api/v1/endpoints[/{service}][?namespace=NS]: a
// List of the EndpointSlices of the Services (kube.EndpointSlices, the one
// model of a Service's endpoints, as DNS and the proxy read it), sorted by
// namespace and Service. A Service without endpoints has no slice; a
// Service that does not exist is 404.
func (s *Server) endpoints(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ns := r.URL.Query().Get("namespace")
	snap, err := s.cfg.State.Snapshot(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	items := []any{}
	found := false
	for i := range snap.Services {
		svc := &snap.Services[i]
		if (name != "" && svc.Name != name) || (ns != "" && svc.Namespace != ns) {
			continue
		}
		found = true
		for _, slice := range kube.EndpointSlices(svc, snap.Pods) {
			items = append(items, slice)
		}
	}
	if name != "" && !found {
		writeError(w, http.StatusNotFound, fmt.Errorf("service %q not found", name))
		return
	}
	writeJSON(w, http.StatusOK, List{APIVersion: "v1", Kind: "List", Items: items})
}
