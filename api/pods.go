package api

import (
	"fmt"
	"net/http"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"bosun/kube"
)

// PodDeleted is the answer of DELETE /api/v1/namespaces/{namespace}/pods/{name}.
type PodDeleted struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
	Node      string `json:"node,omitempty"`
	// Controller is "Kind/name" of the pod's controller, "" for a
	// standalone Pod (which Git brings back under its name).
	Controller string `json:"controller,omitempty"`
}

// deletePod deletes one pod, as kubectl delete pod does: its node stops it
// (with its grace period, preStop hooks first) and its controller, or Git
// for a standalone Pod, starts it again. It is how an operator restarts
// one pod (a StatefulSet's web-1, a stuck daemon pod) without a commit.
// ?uid= deletes only that incarnation.
func (s *Server) deletePod(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	for what, v := range map[string]string{"namespace": ns, "name": name} {
		if errs := validation.IsDNS1123Subdomain(v); len(errs) > 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("pod %s %q: %v", what, v, errs))
			return
		}
	}
	snap, err := s.cfg.State.Snapshot(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	p := snap.Pod(ns, name)
	if p == nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("pod %s/%s not found", ns, name))
		return
	}
	uid := types.UID(r.URL.Query().Get("uid"))
	if uid != "" && uid != p.UID {
		writeError(w, http.StatusConflict, fmt.Errorf("pod %s/%s is now uid %s, not %s: not deleted", ns, name, p.UID, uid))
		return
	}
	deleted, err := s.st.DeletePodNow(r.Context(), p.Spec.NodeName, ns, name, p.UID)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	if !deleted {
		writeError(w, http.StatusConflict, fmt.Errorf("pod %s/%s changed while it was being deleted: not deleted; try again", ns, name))
		return
	}
	out := PodDeleted{Namespace: ns, Name: name, UID: string(p.UID), Node: p.Spec.NodeName}
	if kind, owner := kube.Controller(p); kind != "" {
		out.Controller = kind + "/" + owner
	}
	s.log.Info("pod deleted", "pod", ns+"/"+name, "uid", p.UID, "node", p.Spec.NodeName, "controller", out.Controller, "actor", actor(r))
	writeJSON(w, http.StatusOK, out)
}
