package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
)

func TestLog_oneInfoLineWithTheSharedAttributes(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	Log(context.Background(), log, "revision.accepted", "alice@example.com", slog.String("commit", "1a2b3c4"))
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	want := map[string]any{"level": "INFO", "msg": "audit: revision.accepted", "audit": true,
		"event": "revision.accepted", "actor": "alice@example.com", "commit": "1a2b3c4"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %v, want %v (line %s)", k, line[k], v, buf.String())
		}
	}
	if bytes.Count(buf.Bytes(), []byte("\n")) != 1 {
		t.Errorf("not one line: %q", buf.String())
	}
	Log(context.Background(), nil, "x", "y") // no panic
}
