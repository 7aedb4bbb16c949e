package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// NodeDeleted is the answer of DELETE /api/v1/nodes/{name}.
type NodeDeleted struct {
	Node string `json:"node"`
	// Registered: the node was registered (deleted with force).
	Registered bool `json:"registered"`
	// PodCIDR is the pod subnet freed ("" if it had none).
	PodCIDR string `json:"podCIDR,omitempty"`
	// Pods are the pods bound to it, which the leader replaces now.
	Pods int `json:"pods"`
	// Statuses are the pod statuses removed.
	Statuses int64 `json:"statuses"`
}

// deleteNode forgets a node (bosun node delete): its registration, its
// pod subnet record, its pod statuses and its cordon record, in one
// transaction (store.DeleteNode); the leader then replaces its pods at
// once and every agent removes its route. A node that is registered and
// Ready (its agent runs) is refused unless ?force=true.
func (s *Server) deleteNode(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		writeError(w, http.StatusBadRequest, fmt.Errorf("node %q: %v", name, errs))
		return
	}
	force := r.URL.Query().Get("force") == "true"
	ctx := r.Context()
	nodes, err := s.st.Nodes(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	i := slices.IndexFunc(nodes, func(n corev1.Node) bool { return n.Name == name })
	registered := i >= 0
	if registered && ready(nodes[i]) && !force {
		writeError(w, http.StatusConflict, fmt.Errorf("node %s is registered and Ready: its agent runs. Stop the agent first (or drain it), or delete it anyway with --force: its pods are replaced elsewhere and its agent stops", name))
		return
	}
	pods, _, err := s.st.PodsOnNode(ctx, name)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	_, recorded, err := s.st.NodeSubnet(ctx, name)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	if !registered && !recorded && len(pods) == 0 {
		writeError(w, http.StatusNotFound, errors.New("no node "+name+": not registered, no pod subnet, no pods bound to it"))
		return
	}
	d, err := s.st.DeleteNode(ctx, name)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	s.log.Info("node deleted", "node", name, "registered", d.Registered, "podCIDR", d.PodCIDR, "pods", len(pods), "statuses", d.Statuses, "force", force)
	writeJSON(w, http.StatusOK, NodeDeleted{Node: name, Registered: d.Registered, PodCIDR: d.PodCIDR, Pods: len(pods), Statuses: d.Statuses})
}

func ready(n corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
