package reconciler

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestDriver_largePlansAreSummarised: a pass logs each action at info level
// up to maxActionLogs; beyond that one summary at info and the actions at
// debug.
func TestDriver_largePlansAreSummarised(t *testing.T) {
	actions := func(n int) []Action {
		out := make([]Action, n)
		for i := range out {
			out[i] = Action{Type: DeletePod, Namespace: "default", Name: fmt.Sprintf("web-%d", i), Reason: "pruned"}
		}
		out[0].Type = DeleteService
		return out
	}
	for _, tc := range []struct {
		n                  int
		level              slog.Level
		wantLines, summary int
	}{
		{n: 3, level: slog.LevelInfo, wantLines: 3},
		{n: maxActionLogs, level: slog.LevelInfo, wantLines: maxActionLogs},
		{n: maxActionLogs + 1, level: slog.LevelInfo, wantLines: 0, summary: 1},
		{n: maxActionLogs + 1, level: slog.LevelDebug, wantLines: maxActionLogs + 1, summary: 1},
	} {
		var buf bytes.Buffer
		d := &Driver{Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tc.level}))}
		d.logActions(actions(tc.n))
		out := buf.String()
		if got := strings.Count(out, "msg=action "); got != tc.wantLines {
			t.Errorf("%d actions at %v: %d action lines, want %d", tc.n, tc.level, got, tc.wantLines)
		}
		if got := strings.Count(out, "large plan"); got != tc.summary {
			t.Errorf("%d actions at %v: %d summaries, want %d", tc.n, tc.level, got, tc.summary)
		}
		if tc.summary == 1 && !strings.Contains(out, fmt.Sprintf("actions=%d DeletePod=%d DeleteService=1", tc.n, tc.n-1)) {
			t.Errorf("summary lacks the counts by type:\n%s", out)
		}
	}
}
