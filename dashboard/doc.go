// Package dashboard is bosun's built-in web dashboard: one page of plain
// HTML, CSS and JavaScript, embedded in the binary (embed; no build step,
// no npm, nothing fetched from elsewhere), served by the API (package api)
// at / with its files under /assets/.
//
// The page holds no data and is served without a token. Everything it
// shows it reads from the API's own routes, as the CLI does, and so
// behind the same authentication: the login form (POST /login) or a link
// /?token=TOKEN puts the token in an HttpOnly, Secure, SameSite=Strict
// cookie (api.CookieName), which the API accepts as it accepts
// Authorization: Bearer; the link redirects to / at once so that the token
// leaves the address bar. Every request of the page sends api.CSRFHeader:
// the API refuses a change (any method but GET, HEAD, OPTIONS)
// authenticated by the cookie without it, or from another origin.
//
// Pages (the URL's fragment, #/NAME):
//
//	overview     leader, synced commit (and a rejected one), pods by phase,
//	             nodes with capacity and use (GET /api/v1/status, /api/v1/dashboard/nodes)
//	deployments  ready/desired, rollout state, canaries with weight and step
//	pods         kubectl's READY, STATUS, RESTARTS, node, IP, probes (GET /api/v1/dashboard/pods); a filter
//	services     cluster IP, ports, ready endpoints
//	history      each revision with the objects it changed (+ ~ -), a rejected one's errors (file:line)
//	plan         POST /api/v1/plan of a branch, tag or commit
//	logs/NS/POD  a container's log, streamed (GET /api/v1/logs/NS/POD?follow=1)
//	events       GET /api/v1/events (a notice while the server has none: 404)
//
// Live updates: the page keeps one EventSource on GET /api/v1/watch (see
// package api: "changed" events naming the kinds that changed, fed by the
// replica's cache and etcd watches; heartbeats) and re-renders the page
// shown when a kind it reads changed. It renders first once the stream
// says "ready", so that no change between its first read and the watch is
// missed. There is no polling.
//
// Security: the Content-Security-Policy (ContentSecurityPolicy) allows
// scripts, styles and connections from the API's origin only, and no
// inline script or style; every text from the cluster (commit messages,
// names, errors, logs) is escaped or set as text. The token is never put
// in the page, a URL past the login redirect, or a log line.
//
// Load time: the pods page with 1,000 pods renders in well under a second
// (e2e TestDashboard_loadsThousandPodsUnderASecond measures it in headless
// Chromium).
package dashboard
