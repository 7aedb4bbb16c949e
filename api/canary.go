package api

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"bosun/canary"
	"bosun/kube"
	"bosun/store"
)

// PhaseWaiting is the phase the API gives a canary that main's Deployment
// asks for but that has no stored state yet: the leader has not fetched
// its branch. It is not one of canary.Phase's values, which are stored.
const PhaseWaiting canary.Phase = "Waiting"

// CanaryStatus is the answer of GET /api/v1/canaries/{namespace}/{name},
// and one item of GET /api/v1/canaries: a Deployment's canary as stored,
// as main's annotations ask for it, and as its pods run.
type CanaryStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// State is the canary as the leader stored it, without its pod
	// template (which carries env values from Git; Hash names it). A
	// canary that has no state yet has Phase PhaseWaiting.
	State canary.State `json:"state"`
	// Spec is what main's Deployment asks for; nil when it asks for no
	// canary any more (the stored state is the ended canary's).
	Spec *CanarySpec `json:"spec,omitempty"`
	// Pods are the canary's pods (bosun.dev/track: canary), by name.
	Pods []CanaryPod `json:"pods"`
	// Desired is how many canary pods run while the canary progresses;
	// Ready how many of Pods are ready.
	Desired int `json:"desired"`
	Ready   int `json:"ready"`
	// Stable counts the Deployment's other pods; StableReady the ready
	// ones; StableDesired is its spec.replicas.
	Stable        int   `json:"stable"`
	StableReady   int   `json:"stableReady"`
	StableDesired int32 `json:"stableDesired"`
	// Weight is the canary's share of new connections in percent, and
	// StableWeight the rest; both 0 when the canary does not run.
	Weight       int32 `json:"weight"`
	StableWeight int32 `json:"stableWeight"`
	// NextStepAt is when the next step is due (zero on the last step or
	// when the canary does not run); with a query, the step also waits for
	// a check made after that time to pass (NextStepNeedsCheck).
	NextStepAt         time.Time `json:"nextStepAt,omitzero"`
	NextStepNeedsCheck bool      `json:"nextStepNeedsCheck,omitempty"`
}

// CanarySpec is canary.Spec as the API shows it.
type CanarySpec struct {
	Branch string  `json:"branch"`
	Steps  []int32 `json:"steps"`
	// Interval is a Go duration ("2m0s").
	Interval string `json:"interval"`
	// Replicas is bosun.dev/canary-replicas, 0 when not given (enough pods
	// for the weight).
	Replicas     int32    `json:"replicas,omitempty"`
	Query        string   `json:"query,omitempty"`
	Max          *float64 `json:"max,omitempty"`
	Min          *float64 `json:"min,omitempty"`
	FailureLimit int      `json:"failureLimit"`
}

// CanaryPod is one pod of a canary.
type CanaryPod struct {
	Name     string `json:"name"`
	Ready    bool   `json:"ready"`
	Status   string `json:"status"` // SummarizePod's STATUS
	Restarts int32  `json:"restarts"`
	Node     string `json:"node,omitempty"`
	IP       string `json:"ip,omitempty"`
}

// CanarySummary is a canary's line in Status.
type CanarySummary struct {
	Namespace string       `json:"namespace"`
	Name      string       `json:"name"`
	Branch    string       `json:"branch"`
	Commit    string       `json:"commit,omitempty"` // short
	Phase     canary.Phase `json:"phase"`
	Weight    int32        `json:"weight"`
	// Step is the current step, from 1, of Steps.
	Step    int `json:"step"`
	Steps   int `json:"steps"`
	Ready   int `json:"ready"`
	Desired int `json:"desired"`
	// LastCheck is the newest analysis result's message.
	LastCheck string `json:"lastCheck,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// CanaryList is the answer of GET /api/v1/canaries.
type CanaryList struct {
	Items []CanaryStatus `json:"items"`
}

// BuildCanaries describes every canary: each stored one, and each that a
// Deployment asks for without a stored state yet, sorted by namespace and
// name. It never includes a pod template.
func BuildCanaries(snap *store.Snapshot) []CanaryStatus {
	deps := map[string]*appsv1.Deployment{}
	for i := range snap.Deployments {
		d := &snap.Deployments[i]
		deps[d.Namespace+"/"+d.Name] = d
	}
	var out []CanaryStatus
	seen := map[string]bool{}
	for _, st := range snap.Canaries {
		seen[st.Key()] = true
		out = append(out, canaryStatus(st, deps[st.Key()], snap))
	}
	for k, d := range deps {
		if seen[k] {
			continue
		}
		if spec, _ := canary.Parse(d.Annotations); spec != nil {
			st := canary.State{Namespace: d.Namespace, Name: d.Name, Branch: spec.Branch, Phase: PhaseWaiting,
				Reason: "waiting for the leader to fetch branch " + spec.Branch}
			out = append(out, canaryStatus(st, d, snap))
		}
	}
	slices.SortFunc(out, func(a, b CanaryStatus) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

func canaryStatus(st canary.State, d *appsv1.Deployment, snap *store.Snapshot) CanaryStatus {
	st.Template = nil // env values from Git: the hash names it
	st.Checks = slices.Clone(st.Checks)
	st.AbortedCommits = slices.Clone(st.AbortedCommits)
	cs := CanaryStatus{Namespace: st.Namespace, Name: st.Name, State: st, Pods: []CanaryPod{}}
	var spec *canary.Spec
	if d != nil {
		spec, _ = canary.Parse(d.Annotations)
		cs.StableDesired = 1
		if d.Spec.Replicas != nil {
			cs.StableDesired = *d.Spec.Replicas
		}
	}
	if spec != nil {
		cs.Spec = &CanarySpec{Branch: spec.Branch, Steps: spec.Steps, Interval: spec.Interval.String(), Replicas: spec.Replicas,
			Query: spec.Query, Max: spec.Max, Min: spec.Min, FailureLimit: spec.FailureLimit}
	}
	for _, p := range snap.PodsOwnedBy("Deployment/" + st.Key()) {
		if p.Labels[canary.LabelTrack] != canary.TrackCanary {
			cs.Stable++
			if kube.PodReady(p) {
				cs.StableReady++
			}
			continue
		}
		if kube.PodReady(p) {
			cs.Ready++
		}
		sum := SummarizePod(p)
		cs.Pods = append(cs.Pods, CanaryPod{Name: p.Name, Ready: kube.PodReady(p), Status: sum.Status, Restarts: sum.Restarts,
			Node: p.Spec.NodeName, IP: p.Status.PodIP})
	}
	slices.SortFunc(cs.Pods, func(a, b CanaryPod) int { return cmp.Compare(a.Name, b.Name) })
	if st.Active() && spec != nil {
		cs.Weight, cs.StableWeight = st.Weight, 100-st.Weight
		cs.Desired = spec.CanaryReplicas(int(cs.StableDesired), st.Weight)
		if st.Step < len(spec.Steps)-1 {
			cs.NextStepAt = st.StepStartedAt.Add(spec.Interval)
			cs.NextStepNeedsCheck = spec.Query != ""
		}
	}
	return cs
}

// Summary is the canary's line in Status.
func (c *CanaryStatus) Summary() CanarySummary {
	s := CanarySummary{Namespace: c.Namespace, Name: c.Name, Branch: c.State.Branch, Commit: shortCommit(c.State.Commit),
		Phase: c.State.Phase, Weight: c.Weight, Step: c.State.Step + 1, Ready: c.Ready, Desired: c.Desired, Reason: c.State.Reason}
	if c.Spec != nil {
		s.Steps = len(c.Spec.Steps)
	}
	if !c.State.Active() {
		s.Step = 0
	}
	if n := len(c.State.Checks); n > 0 {
		s.LastCheck = c.State.Checks[n-1].Message
	}
	return s
}

func shortCommit(c string) string {
	if len(c) > 10 {
		return c[:10]
	}
	return c
}

// canaries answers GET /api/v1/canaries[?namespace=NS].
func (s *Server) canaries(w http.ResponseWriter, r *http.Request) {
	snap, err := s.cfg.State.Snapshot(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	ns := r.URL.Query().Get("namespace")
	list := CanaryList{Items: []CanaryStatus{}}
	for _, c := range BuildCanaries(snap) {
		if ns == "" || c.Namespace == ns {
			list.Items = append(list.Items, c)
		}
	}
	writeJSON(w, http.StatusOK, list)
}

// canary answers GET /api/v1/canaries/[{namespace}/]{name}: 404 when the
// Deployment has no canary; without a namespace, 400 when Deployments of
// that name in several namespaces have one.
func (s *Server) canary(w http.ResponseWriter, r *http.Request) {
	snap, err := s.cfg.State.Snapshot(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	var found []CanaryStatus
	for _, c := range BuildCanaries(snap) {
		if c.Name == name && (ns == "" || c.Namespace == ns) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 1:
		writeJSON(w, http.StatusOK, found[0])
		return
	case 0:
	default:
		var where []string
		for _, c := range found {
			where = append(where, c.Namespace+"/"+c.Name)
		}
		writeError(w, http.StatusBadRequest, fmt.Errorf("%d canaries are named %s (%s): give the namespace", len(found), name, strings.Join(where, ", ")))
		return
	}
	what, why := name, "no such Deployment"
	if ns != "" {
		what = ns + "/" + name
	}
	for i := range snap.Deployments {
		if d := &snap.Deployments[i]; d.Name == name && (ns == "" || d.Namespace == ns) {
			why = "the Deployment names no canary branch (" + canary.AnnotationBranch + ")"
		}
	}
	writeError(w, http.StatusNotFound, fmt.Errorf("no canary for deployment %s: %s", what, why))
}
