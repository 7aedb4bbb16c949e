package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"bosun/reconciler"
	"bosun/store"
)

// Node operations: POST /api/v1/nodes/{name}/cordon, /uncordon and /drain
// (Admin; each call audited by its route), and GET /api/v1/nodes/{name}/drain
// (ReadOnly: where a drain stands). The server that takes the call writes
// the node's store.NodeControl record; the leader acts on it. Agents
// cannot write those records (etcd RBAC), so a node cannot uncordon
// itself.

// Annotations the API sets on the nodes it lists.
const (
	// AnnotationCordoned says who cordoned a node and when: "admin at
	// 2026-03-01T12:00:00Z".
	AnnotationCordoned = "bosun.dev/cordoned"
	// AnnotationDrain is set on a node being drained: "drain" or "drain
	// --force".
	AnnotationDrain = "bosun.dev/drain"
)

// DrainRequest is the body of POST /api/v1/nodes/{name}/drain (optional).
type DrainRequest struct {
	// Force also evicts standalone Pods (recreated on another node) and
	// running Jobs' pods (counted as failed and replaced).
	Force bool `json:"force,omitempty"`
}

// NodeOpResult answers the node operations.
type NodeOpResult struct {
	Node          string `json:"node"`
	Result        string `json:"result"`
	Unschedulable bool   `json:"unschedulable"`
	Draining      bool   `json:"draining"`
	Force         bool   `json:"force,omitempty"`
	// Progress is where the drain stands (drain routes only).
	Progress *reconciler.DrainProgress `json:"progress,omitempty"`
}

// Nodes lists the known nodes (store.Snapshot.KnownNodes) as the API
// shows them: registered ones as their agents wrote them, others NotReady
// (their Ready condition False since the leader saw them go, with the
// leader's message), each unschedulable when cordoned or draining.
func Nodes(snap *store.Snapshot) []corev1.Node {
	registered := make(map[string]*corev1.Node, len(snap.Nodes))
	for i := range snap.Nodes {
		registered[snap.Nodes[i].Name] = &snap.Nodes[i]
	}
	health := make(map[string]*store.NodeHealth, len(snap.NodeHealth))
	for i := range snap.NodeHealth {
		health[snap.NodeHealth[i].Node] = &snap.NodeHealth[i]
	}
	controls := make(map[string]*store.NodeControl, len(snap.NodeControls))
	for i := range snap.NodeControls {
		controls[snap.NodeControls[i].Node] = &snap.NodeControls[i]
	}
	var out []corev1.Node
	for _, name := range snap.KnownNodes() {
		h := health[name]
		var n corev1.Node
		switch reg := registered[name]; {
		case reg != nil:
			n = *reg.DeepCopy()
			if h != nil && h.Ready {
				setReady(&n, corev1.ConditionTrue, h.Reason, h.Message, h.Since)
			}
		case h != nil && h.LastSeen != nil:
			n = *h.LastSeen.DeepCopy()
		default:
			n = corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		}
		if registered[name] == nil {
			reason, msg, since := store.ReasonNodeLeaseExpired, "the node is not registered: its agent is not running or cannot reach etcd", time.Time{}
			if h != nil && !h.Ready {
				reason, msg, since = h.Reason, h.Message, h.Since
			}
			setReady(&n, corev1.ConditionFalse, reason, msg, since)
		}
		if c := controls[name]; c != nil && (c.Unschedulable || c.Drain != nil) {
			n.Spec.Unschedulable = true
			if n.Annotations == nil {
				n.Annotations = map[string]string{}
			}
			n.Annotations[AnnotationCordoned] = strings.TrimSpace(c.Who + " at " + c.When.UTC().Format(time.RFC3339))
			if c.Drain != nil {
				n.Annotations[AnnotationDrain] = map[bool]string{false: "drain", true: "drain --force"}[c.Drain.Force]
			}
		}
		out = append(out, n)
	}
	return out
}

// setReady sets n's Ready condition; its transition time is since (when
// known).
func setReady(n *corev1.Node, status corev1.ConditionStatus, reason, msg string, since time.Time) {
	c := corev1.NodeCondition{Type: corev1.NodeReady, Status: status, Reason: reason, Message: msg}
	if !since.IsZero() {
		c.LastTransitionTime = metav1.NewTime(since)
	}
	i := slices.IndexFunc(n.Status.Conditions, func(c corev1.NodeCondition) bool { return c.Type == corev1.NodeReady })
	if i < 0 {
		n.Status.Conditions = append(n.Status.Conditions, c)
		return
	}
	c.LastHeartbeatTime = n.Status.Conditions[i].LastHeartbeatTime
	n.Status.Conditions[i] = c
}

// nodeOf checks the {name} of a node route and that the node is known;
// it answers the error itself and returns false.
func (s *Server) nodeOf(w http.ResponseWriter, r *http.Request) (string, *store.Snapshot, bool) {
	name := r.PathValue("name")
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		writeError(w, http.StatusBadRequest, fmt.Errorf("node name %q: %s", name, strings.Join(errs, "; ")))
		return "", nil, false
	}
	snap, err := s.cfg.State.Snapshot(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return "", nil, false
	}
	if !slices.Contains(snap.KnownNodes(), name) {
		writeError(w, http.StatusNotFound, fmt.Errorf("node %q not found: it is not registered and no pod is bound to it (bosun get nodes lists the nodes)", name))
		return "", nil, false
	}
	return name, snap, true
}

func actor(r *http.Request) string {
	if tok, ok := TokenFrom(r.Context()); ok {
		return tok.Name
	}
	return ""
}

func controlOf(snap *store.Snapshot, node string) *store.NodeControl {
	for i := range snap.NodeControls {
		if snap.NodeControls[i].Node == node {
			return &snap.NodeControls[i]
		}
	}
	return nil
}

// cordonNode serves POST /api/v1/nodes/{name}/cordon: no new pod is placed
// on the node. A drain in progress stays.
func (s *Server) cordonNode(w http.ResponseWriter, r *http.Request) {
	name, snap, ok := s.nodeOf(w, r)
	if !ok {
		return
	}
	c := store.NodeControl{Node: name, Unschedulable: true, Who: actor(r), When: s.now().UTC()}
	if prev := controlOf(snap, name); prev != nil {
		c.Drain = prev.Drain
	}
	if err := s.st.PutNodeControl(r.Context(), &c); err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	s.log.Info("node cordoned", "node", name, "by", c.Who)
	writeJSON(w, http.StatusOK, NodeOpResult{Node: name, Result: "cordoned", Unschedulable: true, Draining: c.Drain != nil})
}

// uncordonNode serves POST /api/v1/nodes/{name}/uncordon: the node takes
// new pods again, and a drain in progress stops.
func (s *Server) uncordonNode(w http.ResponseWriter, r *http.Request) {
	name, _, ok := s.nodeOf(w, r)
	if !ok {
		return
	}
	had, err := s.st.DeleteNodeControl(r.Context(), name)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	result := "uncordoned"
	if !had {
		result = "already schedulable"
	}
	s.log.Info("node uncordoned", "node", name, "by", actor(r), "was_cordoned", had)
	writeJSON(w, http.StatusOK, NodeOpResult{Node: name, Result: result})
}

// drainNode serves POST /api/v1/nodes/{name}/drain: cordon, and have the
// leader move the node's pods away (reconciler.Drain). Without force, a
// node with pods no controller owns is refused, as kubectl drain refuses
// it, and nothing changes.
func (s *Server) drainNode(w http.ResponseWriter, r *http.Request) {
	var req DrainRequest
	if r.Body != nil {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("read the request: %w", err))
			return
		}
		if len(strings.TrimSpace(string(body))) > 0 {
			dec := json.NewDecoder(strings.NewReader(string(body)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				writeError(w, http.StatusBadRequest, fmt.Errorf("drain request: %w", err))
				return
			}
		}
	}
	name, snap, ok := s.nodeOf(w, r)
	if !ok {
		return
	}
	if !req.Force {
		if pods := reconciler.DrainRefusals(name, snap.Pods); len(pods) > 0 {
			writeError(w, http.StatusConflict, fmt.Errorf("cannot drain node %s: %d pods are not managed by a Deployment or Job: %s (drain with --force to delete them; bosun recreates them from Git on another node)",
				name, len(pods), strings.Join(pods, ", ")))
			return
		}
	}
	c := store.NodeControl{Node: name, Unschedulable: true, Drain: &store.NodeDrain{Force: req.Force}, Who: actor(r), When: s.now().UTC()}
	if err := s.st.PutNodeControl(r.Context(), &c); err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	s.log.Info("node drain requested", "node", name, "by", c.Who, "force", req.Force)
	p := reconciler.DrainStatus(name, observedOf(snap), reconciler.Drain{Force: req.Force})
	writeJSON(w, http.StatusAccepted, NodeOpResult{Node: name, Result: "draining", Unschedulable: true, Draining: true, Force: req.Force, Progress: &p})
}

// drainProgress serves GET /api/v1/nodes/{name}/drain: where the node's
// drain stands (the pods left on it by owner, what holds them).
func (s *Server) drainProgress(w http.ResponseWriter, r *http.Request) {
	name, snap, ok := s.nodeOf(w, r)
	if !ok {
		return
	}
	res := NodeOpResult{Node: name, Result: "schedulable"}
	var d reconciler.Drain
	if c := controlOf(snap, name); c != nil {
		res.Unschedulable = c.Unschedulable || c.Drain != nil
		res.Result = "cordoned"
		if c.Drain != nil {
			res.Draining, res.Force, res.Result = true, c.Drain.Force, "draining"
			d.Force = c.Drain.Force
		}
	}
	p := reconciler.DrainStatus(name, observedOf(snap), d)
	if res.Draining && p.Done {
		res.Result = "drained"
	}
	res.Progress = &p
	writeJSON(w, http.StatusOK, res)
}

// observedOf is what DrainStatus needs of a snapshot.
func observedOf(snap *store.Snapshot) reconciler.Observed {
	o := reconciler.Observed{Nodes: snap.Nodes, Pods: snap.Pods}
	for _, t := range snap.Terminating {
		o.Terminating = append(o.Terminating, reconciler.TerminatingPod{Namespace: t.Namespace, Name: t.Name, Node: t.Node, Owner: t.Owner})
	}
	return o
}
