package api

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"bosun/store"
)

func readyPod(name, ip string, labels map[string]string, ready bool) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("u-" + name), Labels: labels},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "i"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
}

// seed writes pods (with their statuses), a service and the leader.
func seed(t *testing.T) *store.Store {
	t.Helper()
	st := store.NewTest(t)
	ctx := context.Background()
	lead, err := st.Campaign(ctx, "replica-1", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lead.Resign(context.Background()) })
	pods := []*corev1.Pod{
		readyPod("web-a", "10.88.0.3", map[string]string{"app": "web"}, true),
		readyPod("web-b", "10.88.0.2", map[string]string{"app": "web"}, true),
		readyPod("web-c", "10.88.0.4", map[string]string{"app": "web"}, false),
		readyPod("db-a", "10.88.0.9", map[string]string{"app": "db"}, true),
	}
	var ops []store.Op
	for _, p := range pods {
		op, _ := store.PutPod(&corev1.Pod{ObjectMeta: p.ObjectMeta, Spec: p.Spec})
		ops = append(ops, op)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Type: corev1.ServiceTypeClusterIP,
			ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}}}}
	op, _ := store.PutService(svc)
	ops = append(ops, op)
	if err := lead.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if err := st.PutPodStatus(ctx, p.Namespace, p.Name, store.PodStatus{UID: p.UID, Node: cmp.Or(p.Spec.NodeName, "n1"), Status: p.Status}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func get(t *testing.T, h http.Handler, method, path string, out any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, rec.Body.String(), err)
		}
	}
	return rec.Code
}

func TestStatus_endpointsAreReadyPodsOnly(t *testing.T) {
	st := seed(t)
	h := newHandler(t, st)
	var s Status
	if code := get(t, h, "GET", "/api/v1/status", &s); code != 200 {
		t.Fatalf("status code %d", code)
	}
	if s.Leader != "replica-1" {
		t.Errorf("leader = %q", s.Leader)
	}
	if len(s.Services) != 1 || !reflect.DeepEqual(s.Services[0], ServiceStatus{Namespace: "default", Name: "web", Type: "ClusterIP",
		ClusterIP: "10.96.0.10", Ports: "80/TCP", Endpoints: []string{"10.88.0.2", "10.88.0.3"}, Ready: 2}) {
		t.Errorf("services = %+v, want web 10.96.0.10 with 10.88.0.2, 10.88.0.3", s.Services)
	}
	if s.Pods.Total != 4 || s.Pods.ByPhase["Running"] != 4 {
		t.Errorf("pods = %+v", s.Pods)
	}
}

func TestList_isKubernetesShaped(t *testing.T) {
	st := seed(t)
	h := newHandler(t, st)
	var list struct {
		APIVersion, Kind string
		Items            []corev1.Pod
	}
	if code := get(t, h, "GET", "/api/v1/pods", &list); code != 200 {
		t.Fatalf("code %d", code)
	}
	if list.Kind != "List" || list.APIVersion != "v1" || len(list.Items) != 4 {
		t.Fatalf("list = %s %s with %d items", list.APIVersion, list.Kind, len(list.Items))
	}
	p := list.Items[0]
	if p.Kind != "Pod" || p.APIVersion != "v1" || p.Status.PodIP == "" || p.Spec.NodeName != "n1" || p.Status.Phase != corev1.PodRunning {
		t.Errorf("item = %s %s ip %q node %q phase %q", p.APIVersion, p.Kind, p.Status.PodIP, p.Spec.NodeName, p.Status.Phase)
	}
	var one struct{ Items []corev1.Pod }
	get(t, h, "GET", "/api/v1/pods/web-b", &one)
	if len(one.Items) != 1 || one.Items[0].Name != "web-b" {
		t.Errorf("get web-b = %v", one.Items)
	}
	var e Error
	if code := get(t, h, "GET", "/api/v1/pods/nope", &e); code != 404 || e.Error == "" {
		t.Errorf("missing pod: code %d, error %q", code, e.Error)
	}
	if code := get(t, h, "GET", "/api/v1/widgets", &e); code != 404 {
		t.Errorf("unknown kind: code %d", code)
	}
}

// testAdminToken is the admin token of newHandler's server.
const testAdminToken = "bosun_test-admin-token"

// newHandler returns the API's handler on st, with every request that
// carries no Authorization header sent with testAdminToken.
func newHandler(t *testing.T, st *store.Store) http.Handler {
	t.Helper()
	s, err := New(Config{Tokens: StaticTokens(Token{Role: RoleAdmin, Name: "test-admin", Hash: HashToken(testAdminToken)})}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			r.Header.Set("Authorization", "Bearer "+testAdminToken)
		}
		h.ServeHTTP(w, r)
	})
}

func TestSync_recordsARequestForTheLeader(t *testing.T) {
	st := seed(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := st.Changes(ctx, store.SyncRequestPrefix)
	<-changes // the watch is established
	if code := get(t, newHandler(t, st), "POST", "/api/v1/sync", nil); code != http.StatusAccepted {
		t.Fatalf("sync: code %d, want 202", code)
	}
	select {
	case <-changes:
	case <-time.After(5 * time.Second):
		t.Fatal("no sync request reached the store")
	}
}

func TestWebhook_offWithoutASecret(t *testing.T) {
	st := seed(t)
	var e Error
	if code := get(t, newHandler(t, st), "POST", "/api/v1/webhooks/git", &e); code != http.StatusNotFound || e.Error == "" {
		t.Errorf("webhook without a secret: code %d, error %q; want 404 with a reason", code, e.Error)
	}
}

func TestRolloutState(t *testing.T) {
	cond := func(status corev1.ConditionStatus, reason, msg string) []appsv1.DeploymentCondition {
		return []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: status, Reason: reason, Message: msg}}
	}
	for _, tc := range []struct {
		name string
		st   appsv1.DeploymentStatus
		want string
	}{
		{"complete", appsv1.DeploymentStatus{Replicas: 2, UpdatedReplicas: 2, Conditions: cond(corev1.ConditionTrue, "NewReplicaSetAvailable", "")}, "complete"},
		{"surge pod still there", appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 2, Conditions: cond(corev1.ConditionTrue, "NewReplicaSetAvailable", "")}, "progressing"},
		{"updating", appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 1, Conditions: cond(corev1.ConditionTrue, "ReplicaSetUpdated", "")}, "progressing"},
		{"failed", appsv1.DeploymentStatus{Conditions: cond(corev1.ConditionFalse, "ProgressDeadlineExceeded", `ReplicaSet "web-abc" has timed out progressing.`)}, `failed: ReplicaSet "web-abc" has timed out progressing.`},
		{"no condition yet", appsv1.DeploymentStatus{}, "progressing"},
	} {
		d := &appsv1.Deployment{Status: tc.st}
		if got := rolloutState(d, 2); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestEndpoints_areEndpointSlices: GET /api/v1/endpoints[/{service}]
// answers kube.EndpointSlices of each Service; a Service that does not
// exist is 404.
func TestEndpoints_areEndpointSlices(t *testing.T) {
	st := seed(t)
	h := newHandler(t, st)
	var list struct {
		APIVersion, Kind string
		Items            []discoveryv1.EndpointSlice
	}
	for _, path := range []string{"/api/v1/endpoints", "/api/v1/endpoints/web", "/api/v1/endpoints/web?namespace=default"} {
		if code := get(t, h, "GET", path, &list); code != 200 {
			t.Fatalf("%s: code %d", path, code)
		}
		if list.Kind != "List" || len(list.Items) != 1 {
			t.Fatalf("%s: %s with %d items", path, list.Kind, len(list.Items))
		}
		sl := list.Items[0]
		var addrs []string
		ready := 0
		for _, ep := range sl.Endpoints {
			addrs = append(addrs, ep.Addresses...)
			if *ep.Conditions.Ready {
				ready++
			}
		}
		if sl.Kind != "EndpointSlice" || sl.Labels[discoveryv1.LabelServiceName] != "web" || len(sl.Ports) != 1 || *sl.Ports[0].Port != 8080 ||
			!reflect.DeepEqual(addrs, []string{"10.88.0.2", "10.88.0.3", "10.88.0.4"}) || ready != 2 {
			t.Errorf("%s: slice %+v", path, sl)
		}
	}
	if code := get(t, h, "GET", "/api/v1/endpoints?namespace=other", &list); code != 200 || len(list.Items) != 0 {
		t.Errorf("another namespace: code %d, %d items", code, len(list.Items))
	}
	var e Error
	if code := get(t, h, "GET", "/api/v1/endpoints/nope", &e); code != 404 || e.Error != `service "nope" not found` {
		t.Errorf("missing service: code %d, error %q", code, e.Error)
	}
}
