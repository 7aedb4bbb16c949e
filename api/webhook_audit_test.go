package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestWebhook_auditLinesNameSourceAndDelivery: every webhook, accepted or
// refused, logs one audit line with the source address, the provider and
// the Git host's delivery id; never the secret.
func TestWebhook_auditLinesNameSourceAndDelivery(t *testing.T) {
	f := newWebhookFixture(t, testSecret)
	body := pushBody("refs/heads/main")
	for _, tc := range []struct {
		name, deliveryHeader, delivery, wantResult, wantEvent string
		sign                                                  bool
	}{
		{"github", "X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958", "result=triggered", "event=webhook.accepted", true},
		{"github", "X-GitHub-Delivery", "0b9f0c2a-bad-signature", "result=unauthorized", "event=webhook.refused", false},
		{"gitlab", "X-Gitlab-Event-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e", "result=triggered", "event=webhook.accepted", true},
		{"gitea", "X-Gitea-Delivery", "c5a0e6f1-gitea", "result=triggered", "event=webhook.accepted", true},
	} {
		h := http.Header{}
		for _, hk := range hooks {
			if hk.name == tc.name {
				hk.setEvent(h, hk.push)
				secret := testSecret
				if !tc.sign {
					secret = "wrong secret"
				}
				hk.setSig(h, secret, body)
			}
		}
		h.Set(tc.deliveryHeader, tc.delivery)
		f.do("POST", h, body)
		var line string
		for _, l := range strings.Split(f.logs.String(), "\n") {
			if strings.Contains(l, tc.delivery) {
				line = l
			}
		}
		for _, want := range []string{"audit=true", tc.wantEvent, "actor=webhook:" + tc.name, "remote=192.0.2.1:1234", tc.wantResult} {
			if !strings.Contains(line, want) {
				t.Errorf("%s delivery %s: audit line %q lacks %q", tc.name, tc.delivery, line, want)
			}
		}
	}
	// A request that names no delivery is audited all the same.
	f.do("POST", http.Header{"X-Bosun-Event": {"push"}}, body)
	if n := strings.Count(f.logs.String(), "audit=true"); n != 5 {
		t.Errorf("%d audit lines for 5 webhooks:\n%s", n, f.logs.String())
	}
	assertNoSecret(t, "logs", f.logs.String(), body)
}
