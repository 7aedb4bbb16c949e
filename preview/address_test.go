package preview

import (
	"slices"
	"testing"
)

// TestObjects_serviceAddress: a created or changed Service shows the
// address and ports the revision gives it (the caller allocated them, as
// the server does before previewing); other kinds and deletions show none.
func TestObjects_serviceAddress(t *testing.T) {
	cur := set(t, service)
	cur.Services[0].Spec.ClusterIP = "10.96.0.12"
	next := set(t, service+"  type: NodePort\n", pod)
	next.Services[0].Spec.ClusterIP = "10.96.0.12"
	next.Services[0].Spec.Ports[0].NodePort = 30080
	var got []string
	for _, o := range Objects(cur, next) {
		got = append(got, o.Op+" "+o.Kind+" "+o.Address)
	}
	if want := []string{"create Pod ", "change Service 10.96.0.12 80:30080/TCP"}; !slices.Equal(got, want) {
		t.Errorf("changes %q, want %q", got, want)
	}
	got = nil
	for _, o := range Objects(nil, cur) {
		got = append(got, o.Op+" "+o.Kind+" "+o.Address)
	}
	if want := []string{"create Service 10.96.0.12 80/TCP"}; !slices.Equal(got, want) {
		t.Errorf("changes %q, want %q", got, want)
	}
}
