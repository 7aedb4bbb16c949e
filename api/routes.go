package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Route is one route of the API: a ServeMux pattern (with its method),
// who may call it, and for an Admin route the event its audit lines name.
type Route struct {
	Pattern string
	Access  Access
	// Event names the calls of an Admin route in the audit log
	// ("api.sync", see package audit); required for Admin routes.
	Event   string
	Handler http.Handler
}

// routeTable is every route of the API with its Access: the one place a
// route is registered (New registers nothing else), so a new route cannot
// go without a role. Reads are ReadOnly, changes Admin (audited), and
// Public is for routes with credentials of their own or none needed.
var routeTable = []struct {
	pattern string
	access  Access
	event   string
	serve   func(*Server, http.ResponseWriter, *http.Request)
}{
	// Public: probes, and the webhook receiver, which checks its HMAC.
	{"GET /healthz", Public, "", (*Server).healthz},
	{"GET /readyz", Public, "", (*Server).readyz},
	{"POST /api/v1/webhooks/git", Public, "", (*Server).webhook},
	// The dashboard (dashboard.go, cookie.go): the page and its files hold
	// no data; /login and /logout set and clear the session cookie.
	{"GET /{$}", Public, "", (*Server).dashboardPage},
	{"GET /assets/{file}", Public, "", (*Server).dashboardAsset},
	{"POST /login", Public, "", (*Server).loginForm},
	{"POST /logout", Public, "", (*Server).logout},

	// Read-only.
	{"GET /api/v1/status", ReadOnly, "", (*Server).status},
	{"GET /api/v1/version", ReadOnly, "", (*Server).version}, // version.go
	{"GET /api/v1/history", ReadOnly, "", (*Server).history},
	{"GET /api/v1/events", ReadOnly, "", (*Server).events},      // events.go
	{"GET /api/v1/watch", ReadOnly, "", (*Server).watchChanges}, // the dashboard's live feed (watch.go)
	{"GET /api/v1/dashboard/pods", ReadOnly, "", (*Server).dashboardPods},
	{"GET /api/v1/dashboard/nodes", ReadOnly, "", (*Server).dashboardNodes},
	{"GET /api/v1/logs/{namespace}/{pod}", ReadOnly, "", (*Server).logs},
	{"POST /api/v1/plan", ReadOnly, "", (*Server).plan}, // a preview: it changes nothing
	{"GET /api/v1/endpoints", ReadOnly, "", (*Server).endpoints},
	{"GET /api/v1/endpoints/{name}", ReadOnly, "", (*Server).endpoints},
	{"GET /api/v1/prometheus/targets", ReadOnly, "", (*Server).promTargets},
	{"GET /api/v1/canaries", ReadOnly, "", (*Server).canaries},
	{"GET /api/v1/canaries/{name}", ReadOnly, "", (*Server).canary},
	{"GET /api/v1/canaries/{namespace}/{name}", ReadOnly, "", (*Server).canary},
	{"GET /api/v1/nodes/{name}/drain", ReadOnly, "", (*Server).drainProgress},
	{"GET /api/v1/{kind}", ReadOnly, "", (*Server).list},
	{"GET /api/v1/{kind}/{name}", ReadOnly, "", (*Server).list},
	{"GET /metrics", ReadOnly, "", (*Server).metrics},

	// Admin: every call is audited.
	{"POST /api/v1/sync", Admin, "api.sync", (*Server).sync},
	{"POST /api/v1/sync/force", Admin, "api.sync.force", (*Server).syncForce},        // syncwindow.go
	{"POST /api/v1/nodes/{name}/cordon", Admin, "node.cordon", (*Server).cordonNode}, // nodeops.go
	{"POST /api/v1/nodes/{name}/uncordon", Admin, "node.uncordon", (*Server).uncordonNode},
	{"POST /api/v1/nodes/{name}/drain", Admin, "node.drain", (*Server).drainNode},
	{"DELETE /api/v1/nodes/{name}", Admin, "node.delete", (*Server).deleteNode},                     // nodes.go
	{"DELETE /api/v1/namespaces/{namespace}/pods/{name}", Admin, "pod.delete", (*Server).deletePod}, // pods.go
	{"DELETE /api/v1/etcd/members/{name}", Admin, "etcd.member.remove", (*Server).removeMember},
}

// Routes lists the API's own routes with their Access (without handlers),
// for documentation and tests; a Server also serves Config.Routes.
func Routes() []Route {
	out := make([]Route, 0, len(routeTable))
	for _, rt := range routeTable {
		out = append(out, Route{Pattern: rt.pattern, Access: rt.access, Event: rt.event})
	}
	return out
}

// register adds the route table and extra to the mux, refusing a route
// without an Access, an Admin route without an Event, and a pattern given
// twice.
func (s *Server) register(extra []Route) error {
	all := make([]Route, 0, len(routeTable)+len(extra))
	for _, rt := range routeTable {
		serve := rt.serve
		all = append(all, Route{Pattern: rt.pattern, Access: rt.access, Event: rt.event,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serve(s, w, r) })})
	}
	all = append(all, extra...)
	var errs []error
	for _, rt := range all {
		switch {
		case rt.Access != Public && rt.Access != ReadOnly && rt.Access != Admin:
			errs = append(errs, fmt.Errorf("route %q: no access (Public, ReadOnly or Admin)", rt.Pattern))
			continue
		case rt.Access == Admin && rt.Event == "":
			errs = append(errs, fmt.Errorf("route %q: an Admin route needs an Event for its audit lines", rt.Pattern))
			continue
		case rt.Handler == nil:
			errs = append(errs, fmt.Errorf("route %q: no handler", rt.Pattern))
			continue
		}
		if _, dup := s.routes[rt.Pattern]; dup {
			errs = append(errs, fmt.Errorf("route %q: registered twice", rt.Pattern))
			continue
		}
		s.routes[rt.Pattern] = rt
		s.mux.Handle(rt.Pattern, rt.Handler)
	}
	return errors.Join(errs...)
}
