package api

import (
	"context"
	"sync"
	"testing"
	"time"

	"bosun/store"
)

func TestEvents_filtersOldestFirstAndRefusesABadLimit(t *testing.T) {
	st := store.NewTest(t)
	rec, err := store.NewRecorder(st, store.RecorderConfig{Source: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { rec.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	pod := store.ObjectRef{Kind: "Pod", Namespace: "default", Name: "web-1"}
	rec.Eventf(pod, store.EventNormal, "Pulled", "Container image %q already present on machine", "hello")
	rec.Eventf(pod, store.EventNormal, "Started", "Started container app")
	rec.Eventf(store.ObjectRef{Kind: "Pod", Namespace: "shop", Name: "cart-1"}, store.EventWarning, "BackOff", "Back-off 10s restarting failed container app")
	h := newHandler(t, st)
	var all EventList
	deadline := time.Now().Add(20 * time.Second)
	for len(all.Events) < 3 && time.Now().Before(deadline) {
		if code := get(t, h, "GET", "/api/v1/events", &all); code != 200 {
			t.Fatalf("code %d", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(all.Events) != 3 || all.Events[0].Reason != "Pulled" || all.Events[2].Reason != "BackOff" {
		t.Fatalf("events %+v", all.Events)
	}
	var some EventList
	get(t, h, "GET", "/api/v1/events?namespace=default&kind=pod&name=web-1&limit=1", &some)
	if len(some.Events) != 1 || some.Events[0].Reason != "Started" || some.Events[0].Source != "n1" {
		t.Errorf("filtered %+v, want web-1's newest: Started", some.Events)
	}
	var none EventList
	if code := get(t, h, "GET", "/api/v1/events?namespace=nowhere", &none); code != 200 || none.Events == nil || len(none.Events) != 0 {
		t.Errorf("no events: code %d %+v, want 200 and []", code, none.Events)
	}
	for _, q := range []string{"limit=x", "limit=-1", "limit=1&limit=2"} {
		var e Error
		if code := get(t, h, "GET", "/api/v1/events?"+q, &e); code != 400 || e.Error == "" {
			t.Errorf("%s: code %d %q, want 400", q, code, e.Error)
		}
	}
}
