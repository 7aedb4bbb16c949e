package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"bosun/store"
)

func send(t *testing.T, h http.Handler, method, path, body string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec.Code, rec.Body.String()
}

// TestNodeOps_cordonDrainUncordon: the node of seed's pods is known (pods
// are bound to it) though no agent registered it: listed NotReady. A drain
// without force is refused (its pods have no controller) and writes
// nothing; cordon, a forced drain and uncordon write and delete the node's
// record, which the node list shows.
func TestNodeOps_cordonDrainUncordon(t *testing.T) {
	st := seed(t)
	h := newHandler(t, st)
	ctx := context.Background()

	var list struct{ Items []corev1.Node }
	if code := get(t, h, "GET", "/api/v1/nodes", &list); code != 200 || len(list.Items) != 1 || list.Items[0].Name != "n1" {
		t.Fatalf("nodes: %d %+v", code, list.Items)
	}
	if c := list.Items[0].Status.Conditions; len(c) != 1 || c[0].Type != corev1.NodeReady || c[0].Status != corev1.ConditionFalse || c[0].Reason != store.ReasonNodeLeaseExpired {
		t.Errorf("an unregistered node's conditions: %+v", c)
	}

	code, body := send(t, h, "POST", "/api/v1/nodes/n1/drain", "")
	if code != http.StatusConflict || !strings.Contains(body, "default/db-a") || !strings.Contains(body, "--force") {
		t.Errorf("drain without force: %d %s", code, body)
	}
	if cs, _ := st.NodeControls(ctx); len(cs) != 0 {
		t.Errorf("a refused drain wrote %+v", cs)
	}
	if code, body := send(t, h, "POST", "/api/v1/nodes/nope/cordon", ""); code != http.StatusNotFound || !strings.Contains(body, `node \"nope\" not found`) {
		t.Errorf("cordon of an unknown node: %d %s", code, body)
	}
	if code, body := send(t, h, "POST", "/api/v1/nodes/Bad_Name/cordon", ""); code != http.StatusBadRequest || !strings.Contains(body, "Bad_Name") {
		t.Errorf("cordon of a bad name: %d %s", code, body)
	}
	if code, body := send(t, h, "POST", "/api/v1/nodes/n1/drain", `{"forse": true}`); code != http.StatusBadRequest || !strings.Contains(body, "forse") {
		t.Errorf("drain with an unknown field: %d %s", code, body)
	}

	if code, body := send(t, h, "POST", "/api/v1/nodes/n1/cordon", ""); code != 200 {
		t.Fatalf("cordon: %d %s", code, body)
	}
	cs, err := st.NodeControls(ctx)
	if err != nil || len(cs) != 1 || !cs[0].Unschedulable || cs[0].Drain != nil || cs[0].Who != "test-admin" || cs[0].When.IsZero() {
		t.Fatalf("after cordon: %+v %v", cs, err)
	}
	get(t, h, "GET", "/api/v1/nodes", &list)
	if n := list.Items[0]; !n.Spec.Unschedulable || !strings.HasPrefix(n.Annotations[AnnotationCordoned], "test-admin at ") {
		t.Errorf("a cordoned node as listed: unschedulable %v, annotations %v", n.Spec.Unschedulable, n.Annotations)
	}

	code, body = send(t, h, "POST", "/api/v1/nodes/n1/drain", `{"force": true}`)
	var res NodeOpResult
	if code != http.StatusAccepted || json.Unmarshal([]byte(body), &res) != nil || !res.Draining || !res.Force || res.Progress == nil || res.Progress.Left != 4 {
		t.Fatalf("forced drain: %d %s", code, body)
	}
	if cs, _ := st.NodeControls(ctx); len(cs) != 1 || cs[0].Drain == nil || !cs[0].Drain.Force {
		t.Errorf("after drain: %+v", cs)
	}
	if code := get(t, h, "GET", "/api/v1/nodes/n1/drain", &res); code != 200 || res.Result != "draining" || res.Progress.Left != 4 || res.Progress.Pods["Pod/default/web-a"] != 1 {
		t.Errorf("drain progress: %d %+v %+v", code, res, res.Progress)
	}

	if code, body := send(t, h, "POST", "/api/v1/nodes/n1/uncordon", ""); code != 200 || !strings.Contains(body, `"uncordoned"`) {
		t.Errorf("uncordon: %d %s", code, body)
	}
	if cs, _ := st.NodeControls(ctx); len(cs) != 0 {
		t.Errorf("after uncordon: %+v", cs)
	}
	if code, body := send(t, h, "POST", "/api/v1/nodes/n1/uncordon", ""); code != 200 || !strings.Contains(body, "already schedulable") {
		t.Errorf("uncordon again: %d %s", code, body)
	}
}

// TestNodeOps_adminOnly: node operations are Admin routes, audited as node.*.
func TestNodeOps_adminOnly(t *testing.T) {
	for _, rt := range Routes() {
		if strings.HasPrefix(rt.Pattern, "POST /api/v1/nodes/") && (rt.Access != Admin || !strings.HasPrefix(rt.Event, "node.")) {
			t.Errorf("route %s: access %v, event %q; want Admin, node.*", rt.Pattern, rt.Access, rt.Event)
		}
	}
}
