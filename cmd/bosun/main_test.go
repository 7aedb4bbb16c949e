package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseLabels(t *testing.T) {
	got, err := parseLabels("zone=a, disk=ssd")
	if err != nil || !reflect.DeepEqual(got, map[string]string{"zone": "a", "disk": "ssd"}) {
		t.Errorf("parseLabels = %v, %v", got, err)
	}
	if _, err := parseLabels("zone"); err == nil || !strings.Contains(err.Error(), `"zone" is not key=value`) {
		t.Errorf("parseLabels(zone) err = %v", err)
	}
}

func TestRun_usageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"get"}, {"get", "widgets"}, {"validate"}} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("bosun %q: err %v, want exit 2", args, err)
		}
	}
}

func TestPlan_usageErrorsExit1(t *testing.T) {
	// plan's exit codes are a CI contract: 1 for every error.
	for _, args := range [][]string{{"plan"}, {"plan", "--ref", "a", "--dir", "b"}, {"plan", "--bogus"}} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 1 {
			t.Errorf("bosun %q: err %v, want exit 1", args, err)
		}
	}
}

func TestReadableDurations(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: readableDurations}))
	log.Info("x", "took", 1500*time.Millisecond, "n", 3)
	if !strings.Contains(buf.String(), `"took":"1.5s"`) || !strings.Contains(buf.String(), `"n":3`) {
		t.Errorf("log line = %s", buf.String())
	}
}

func TestProxyFlags_badTableExits2(t *testing.T) {
	for _, args := range [][]string{
		{"agent", "--cleanup", "--proxy-table", "no spaces"},
		{"agent", "--etcd-endpoints", "http://127.0.0.1:1", "--proxy-table", ""},
		{"server", "--repo", ".", "--proxy-table", "1st"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "--proxy-table") {
			t.Errorf("bosun %q: err %v, want exit 2 naming --proxy-table", args, err)
		}
	}
}
