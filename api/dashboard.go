package api

import (
	"errors"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/dashboard"
	"bosun/kube"
	"bosun/scheduler"
	"bosun/store"
)

// The web dashboard (package dashboard) is served by the API: the page at
// / and its files under /assets/ are Public (they hold no data), every
// call the page makes for data is a ReadOnly or Admin route like the
// CLI's, authenticated by the session cookie (cookie.go). The two
// /api/v1/dashboard/ routes give the page what the CLI computes on its
// side: a pod's line (SummarizePod) and a node's use.

var dashboardAssets = sync.OnceValues(dashboard.Load)

// dashboardURL is the dashboard's address for the log line of a server
// listening on addr: a wildcard address is shown as loopback.
func dashboardURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "https://" + addr + "/"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port) + "/"
}

// dashboardPage serves GET /: the page; with ?token=TOKEN (a link) it
// logs in (login) and redirects to / so that the token leaves the URL
// (and the browser's history) at once. Only a top-level navigation may
// log in by link: an image, a script or a frame of another site naming
// /?token= is refused before the token is looked at, so that it can
// neither count failures against the client's limit (locking its
// address out of the API) nor replace or clear its session.
func (s *Server) dashboardPage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has("token") {
		w.Header().Set("Cache-Control", "no-store")
		dashboard.SecurityHeaders(w.Header())
		if !linkNavigation(r) {
			s.authFailures.WithLabelValues(failCSRF).Inc()
			writeError(w, http.StatusForbidden, errors.New("a login link must be opened as a page"))
			return
		}
		if !s.login(w, r, r.URL.Query().Get("token")) {
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	a, err := dashboardAssets()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	a.ServePage(w, r)
}

// dashboardAsset serves GET /assets/{file}.
func (s *Server) dashboardAsset(w http.ResponseWriter, r *http.Request) {
	a, err := dashboardAssets()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	a.ServeAsset(w, r, r.PathValue("file"))
}

// PodRow is a pod as the dashboard lists it: kubectl's columns
// (SummarizePod) and what the pods page shows beside them.
type PodRow struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Owner is the controller, "Kind/namespace/name" (kube.OwnerOf).
	Owner string `json:"owner,omitempty"`
	// Track is the pod's bosun.dev/track (stable or canary), if any.
	Track    string    `json:"track,omitempty"`
	Node     string    `json:"node,omitempty"`
	IP       string    `json:"ip,omitempty"`
	Phase    string    `json:"phase"`
	Ready    int       `json:"ready"`
	Total    int       `json:"total"`
	Status   string    `json:"status"`
	Restarts int32     `json:"restarts"`
	Created  time.Time `json:"created,omitzero"`
	// Probes is the agent's summary of the pod's probes (their latest
	// failures), "" when they pass or there are none.
	Probes string `json:"probes,omitempty"`
	// Containers name the app containers, for the logs page.
	Containers []string `json:"containers"`
}

// PodRows lists the snapshot's pods as the dashboard shows them, sorted by
// namespace and name.
func PodRows(snap *store.Snapshot) []PodRow {
	out := make([]PodRow, 0, len(snap.Pods))
	for _, p := range snap.Pods {
		sum := SummarizePod(p)
		row := PodRow{
			Namespace: p.Namespace, Name: p.Name, Owner: kube.OwnerOf(p), Track: p.Labels[kube.LabelTrack],
			Node: p.Spec.NodeName, IP: p.Status.PodIP, Phase: string(p.Status.Phase),
			Ready: sum.Ready, Total: sum.Total, Status: sum.Status, Restarts: sum.Restarts,
			Created: p.CreationTimestamp.Time,
		}
		if row.Phase == "" {
			row.Phase = string(corev1.PodPending)
		}
		for _, c := range p.Status.Conditions {
			if c.Type == probesCondition && c.Status == corev1.ConditionFalse {
				row.Probes = c.Message
			}
		}
		for _, c := range p.Spec.Containers {
			row.Containers = append(row.Containers, c.Name)
		}
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// NodeRow is a node with its capacity and use: what the pods bound to it
// request (scheduler.RequestsOf, the scheduler's own sums) against what
// it offers (allocatable).
type NodeRow struct {
	Name          string `json:"name"`
	Ready         bool   `json:"ready"`
	Unschedulable bool   `json:"unschedulable,omitempty"`
	// Message is the Ready condition's message when the node is not ready.
	Message string `json:"message,omitempty"`
	Address string `json:"address,omitempty"`
	// MilliCPU and Memory (bytes) are allocatable, MaxPods the pods it
	// takes (0: any number).
	MilliCPU int64 `json:"milliCPU"`
	Memory   int64 `json:"memory"`
	MaxPods  int   `json:"maxPods"`
	// RequestedMilliCPU, RequestedMemory and Pods are the use: the pods
	// bound to it that have not finished.
	RequestedMilliCPU int64 `json:"requestedMilliCPU"`
	RequestedMemory   int64 `json:"requestedMemory"`
	Pods              int   `json:"pods"`
}

// NodeRows lists every known node (Nodes) with its use.
func NodeRows(snap *store.Snapshot) []NodeRow {
	use := map[string]*NodeRow{}
	for _, p := range snap.Pods {
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		u := use[p.Spec.NodeName]
		if u == nil {
			u = &NodeRow{}
			use[p.Spec.NodeName] = u
		}
		req := scheduler.RequestsOf(&p.Spec)
		u.RequestedMilliCPU += req.MilliCPU
		u.RequestedMemory += req.Memory
		u.Pods++
	}
	nodes := Nodes(snap)
	out := make([]NodeRow, 0, len(nodes))
	for i := range nodes {
		n := &nodes[i]
		sn := scheduler.NodeOf(n)
		row := NodeRow{
			Name: n.Name, Ready: kube.NodeReady(n), Unschedulable: n.Spec.Unschedulable,
			MilliCPU: sn.Allocatable.MilliCPU, Memory: sn.Allocatable.Memory, MaxPods: sn.MaxPods,
		}
		if len(n.Status.Addresses) > 0 {
			row.Address = n.Status.Addresses[0].Address
		}
		if !row.Ready {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady {
					row.Message = c.Message
				}
			}
		}
		if u := use[n.Name]; u != nil {
			row.RequestedMilliCPU, row.RequestedMemory, row.Pods = u.RequestedMilliCPU, u.RequestedMemory, u.Pods
		}
		out = append(out, row)
	}
	return out
}

// Rows is the answer of the /api/v1/dashboard/ routes.
type Rows[T any] struct {
	Items []T `json:"items"`
}

func (s *Server) dashboardPods(w http.ResponseWriter, r *http.Request) {
	snap, err := s.cfg.State.Snapshot(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, http.StatusOK, Rows[PodRow]{Items: PodRows(snap)})
}

func (s *Server) dashboardNodes(w http.ResponseWriter, r *http.Request) {
	snap, err := s.cfg.State.Snapshot(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, http.StatusOK, Rows[NodeRow]{Items: NodeRows(snap)})
}

// linkNavigation says whether a request is a browser's top-level
// navigation (Fetch Metadata: Sec-Fetch-Mode navigate, Sec-Fetch-Dest
// document), or comes from a client that sends no Fetch Metadata (curl,
// older browsers).
func linkNavigation(r *http.Request) bool {
	mode, dest := r.Header.Get("Sec-Fetch-Mode"), r.Header.Get("Sec-Fetch-Dest")
	return (mode == "" || mode == "navigate") && (dest == "" || dest == "document")
}
