package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDeletePod: an admin deletes one pod by name; an unknown pod is 404, a
// stale uid 409, and nothing else is deleted. The cache the API reads
// follows the store, so the deleted pod leaves the list.
func TestDeletePod(t *testing.T) {
	st := seed(t)
	h := newHandler(t, st)
	ctx := context.Background()
	if code, body := send(t, h, "DELETE", "/api/v1/namespaces/default/pods/nope", ""); code != http.StatusNotFound || !strings.Contains(body, "default/nope not found") {
		t.Errorf("unknown pod: %d %s", code, body)
	}
	if code, body := send(t, h, "DELETE", "/api/v1/namespaces/default/pods/Bad_Name", ""); code != http.StatusBadRequest {
		t.Errorf("bad name: %d %s", code, body)
	}
	if code, body := send(t, h, "DELETE", "/api/v1/namespaces/default/pods/web-a?uid=other", ""); code != http.StatusConflict || !strings.Contains(body, "not deleted") {
		t.Errorf("stale uid: %d %s", code, body)
	}
	code, body := send(t, h, "DELETE", "/api/v1/namespaces/default/pods/web-a?uid=u-web-a", "")
	if code != http.StatusOK || !strings.Contains(body, `"name":"web-a"`) || !strings.Contains(body, `"node":"n1"`) {
		t.Fatalf("delete web-a: %d %s", code, body)
	}
	pods, _, err := st.PodsOnNode(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pods {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); strings.Contains(got, "web-a") || !strings.Contains(got, "web-b") || !strings.Contains(got, "db-a") {
		t.Errorf("pods left on n1: %s", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := send(t, h, "DELETE", "/api/v1/namespaces/default/pods/web-a", "")
		if code == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deleting web-a again: %d %s, want 404 once the cache follows", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeletePod_adminOnly(t *testing.T) {
	found := 0
	for _, rt := range Routes() {
		if strings.Contains(rt.Pattern, "/pods/") && strings.HasPrefix(rt.Pattern, "DELETE ") {
			found++
			if rt.Access != Admin || rt.Event != "pod.delete" {
				t.Errorf("route %s: access %v, event %q; want Admin, pod.delete", rt.Pattern, rt.Access, rt.Event)
			}
		}
	}
	if found != 1 {
		t.Errorf("%d DELETE routes of pods, want 1", found)
	}
}
